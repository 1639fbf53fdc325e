import { EnvironmentConfig } from './config';

/**
 * MQTT topics of the platform, shared by the device IoT policy and the engine's task role so
 * that both always name the same topics.
 *
 * A device publishes frames to `{prefix}/{device_id}/telemetry` and presence to
 * `{prefix}/{device_id}/status`; the engine subscribes to both with the `+` wildcard.
 */
export const DEVICE_CHANNELS = ['telemetry', 'status'] as const;

/** Shadow requests a device sends; the engine does not serve them yet. */
export const SHADOW_REQUESTS = ['shadow/update', 'shadow/get'] as const;

/** Shadow replies the engine will publish to a device. */
export const SHADOW_REPLIES = [
  'shadow/update/accepted',
  'shadow/update/rejected',
  'shadow/update/delta',
  'shadow/update/documents',
  'shadow/get/accepted',
  'shadow/get/rejected',
] as const;

/**
 * AWS IoT policy variable of the thing name of the connected certificate. A device's client id
 * must equal its thing name under the device policy.
 */
export const THING_NAME_VARIABLE = '${iot:Connection.Thing.ThingName}';

/** ARN partition of a region: `aws`, `aws-cn` or `aws-us-gov`. */
export function partitionOf(region: string): string {
  if (region.startsWith('cn-')) {
    return 'aws-cn';
  }
  if (region.startsWith('us-gov-')) {
    return 'aws-us-gov';
  }
  return 'aws';
}

/** ARN of an AWS IoT Core client, topic or topic filter in the environment's account. */
export function iotArn(
  config: EnvironmentConfig,
  resourceType: 'client' | 'topic' | 'topicfilter',
  name: string,
): string {
  return `arn:${partitionOf(config.region)}:iot:${config.region}:${config.account}:${resourceType}/${name}`;
}
