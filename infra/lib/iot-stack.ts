import { CfnOutput, Stack, StackProps } from 'aws-cdk-lib';
import * as iot from 'aws-cdk-lib/aws-iot';
import { Construct } from 'constructs';

import { EnvironmentConfig } from './config';
import { resourcePrefix } from './naming';
import {
  DEVICE_CHANNELS,
  SHADOW_REPLIES,
  SHADOW_REQUESTS,
  THING_NAME_VARIABLE,
  iotArn,
} from './topics';

export interface IotStackProps extends StackProps {
  readonly config: EnvironmentConfig;
}

/**
 * The device side of AWS IoT Core: a thing group for the equipment and the IoT policy that
 * every device certificate gets.
 *
 * No topic rule is created: the engine reads the equipment topics itself through its own MQTT
 * subscription (`{prefix}/+/telemetry` and `{prefix}/+/status`), with the rights of its task
 * role.
 */
export class IotStack extends Stack {
  readonly thingGroup: iot.CfnThingGroup;
  readonly devicePolicy: iot.CfnPolicy;

  constructor(scope: Construct, id: string, props: IotStackProps) {
    super(scope, id, props);
    const { config } = props;
    const prefix = resourcePrefix(config.name);

    this.thingGroup = new iot.CfnThingGroup(this, 'EquipmentGroup', {
      thingGroupName: `${prefix}-equipment`,
      thingGroupProperties: {
        thingGroupDescription: `Barn equipment that reports to the valmetal ${config.name} engine`,
      },
    });

    this.devicePolicy = new iot.CfnPolicy(this, 'DevicePolicy', {
      policyName: `${prefix}-device`,
      policyDocument: devicePolicyDocument(config),
    });

    new CfnOutput(this, 'ThingGroupName', { value: this.thingGroup.ref });
    new CfnOutput(this, 'DevicePolicyName', {
      description: 'Attach to each device certificate, or to the thing group, when provisioning',
      value: this.devicePolicy.ref,
    });
  }
}

/**
 * Builds the device IoT policy: a device may connect only with its own thing name as client id,
 * from a certificate attached to that thing, and use only the topics under its own id.
 */
export function devicePolicyDocument(config: EnvironmentConfig): Record<string, unknown> {
  const ownTopic = (suffix: string) => `${config.topicPrefix}/${THING_NAME_VARIABLE}/${suffix}`;
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'ConnectAsOwnThing',
        Effect: 'Allow',
        Action: 'iot:Connect',
        Resource: iotArn(config, 'client', THING_NAME_VARIABLE),
        Condition: { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } },
      },
      {
        Sid: 'PublishOwnTopics',
        Effect: 'Allow',
        Action: 'iot:Publish',
        Resource: [...DEVICE_CHANNELS, ...SHADOW_REQUESTS].map((suffix) =>
          iotArn(config, 'topic', ownTopic(suffix)),
        ),
      },
      {
        Sid: 'SubscribeOwnShadowReplies',
        Effect: 'Allow',
        Action: 'iot:Subscribe',
        Resource: SHADOW_REPLIES.map((suffix) => iotArn(config, 'topicfilter', ownTopic(suffix))),
      },
      {
        Sid: 'ReceiveOwnShadowReplies',
        Effect: 'Allow',
        Action: 'iot:Receive',
        Resource: SHADOW_REPLIES.map((suffix) => iotArn(config, 'topic', ownTopic(suffix))),
      },
    ],
  };
}
