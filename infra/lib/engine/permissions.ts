import * as iam from 'aws-cdk-lib/aws-iam';

import { EnvironmentConfig } from '../config';
import { engineClientIdPrefix } from '../naming';
import { DEVICE_CHANNELS, SHADOW_REPLIES, iotArn, partitionOf } from '../topics';

/**
 * DynamoDB actions of the engine's device document store: conditional `PutItem` (the
 * default write mode), `BatchWriteItem` (the `batch` write mode) and `Scan` (restoring every
 * device at start). `DescribeTable` and `CreateTable`, which the engine calls only with
 * `storage.create_tables`, are left out because this stack owns the table.
 */
export const DEVICE_STATE_ACTIONS = ['dynamodb:PutItem', 'dynamodb:BatchWriteItem', 'dynamodb:Scan'];

export interface EnginePermissionsProps {
  readonly config: EnvironmentConfig;
  readonly deviceStateTableArn: string;
  /** Undefined when the environment has no Timestream for LiveAnalytics table. */
  readonly telemetryTableArn?: string;
  /** Name of the log group the metrics sidecar writes embedded-metric-format events to. */
  readonly metricsLogGroupName: string;
}

/**
 * Builds the statements of the engine task role, each limited to the resources the engine uses.
 *
 * The IoT statements apply when the engine authenticates to AWS IoT Core with the task role's
 * credentials (MQTT over WebSockets with SigV4), which the engine cannot do yet.
 */
export function engineTaskStatements(props: EnginePermissionsProps): iam.PolicyStatement[] {
  const { config } = props;
  const prefix = config.topicPrefix;
  const metricsLogGroupArn =
    `arn:${partitionOf(config.region)}:logs:${config.region}:${config.account}` +
    `:log-group:${props.metricsLogGroupName}`;
  const statements = [
    new iam.PolicyStatement({
      sid: 'IotConnectAsEngine',
      actions: ['iot:Connect'],
      resources: [iotArn(config, 'client', `${engineClientIdPrefix(config.name)}*`)],
    }),
    new iam.PolicyStatement({
      sid: 'IotSubscribeEquipmentTopics',
      actions: ['iot:Subscribe'],
      // In a topicfilter ARN the MQTT wildcard `+` is literal: only this exact filter matches.
      resources: DEVICE_CHANNELS.map((channel) => iotArn(config, 'topicfilter', `${prefix}/+/${channel}`)),
    }),
    new iam.PolicyStatement({
      sid: 'IotReceiveEquipmentTopics',
      actions: ['iot:Receive'],
      resources: DEVICE_CHANNELS.map((channel) => iotArn(config, 'topic', `${prefix}/*/${channel}`)),
    }),
    // TODO: add Subscribe and Receive on `{prefix}/+/shadow/update` and `/get` when the engine
    // serves shadow requests.
    new iam.PolicyStatement({
      sid: 'IotPublishShadowReplies',
      actions: ['iot:Publish'],
      resources: SHADOW_REPLIES.map((reply) => iotArn(config, 'topic', `${prefix}/*/${reply}`)),
    }),
    new iam.PolicyStatement({
      sid: 'DeviceStateStore',
      actions: DEVICE_STATE_ACTIONS,
      resources: [props.deviceStateTableArn],
    }),
    new iam.PolicyStatement({
      sid: 'MetricsSidecarLogs',
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
      resources: [metricsLogGroupArn, `${metricsLogGroupArn}:log-stream:*`],
    }),
  ];
  if (props.telemetryTableArn !== undefined) {
    statements.push(
      new iam.PolicyStatement({
        sid: 'TimestreamWriteTelemetry',
        actions: ['timestream:WriteRecords'],
        resources: [props.telemetryTableArn],
      }),
      new iam.PolicyStatement({
        sid: 'TimestreamDescribeEndpoints',
        actions: ['timestream:DescribeEndpoints'],
        // DescribeEndpoints supports no resource-level permissions, so AWS requires "*".
        resources: ['*'],
      }),
    );
  }
  return statements;
}
