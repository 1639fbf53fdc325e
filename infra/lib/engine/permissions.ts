import * as iam from 'aws-cdk-lib/aws-iam';

import { EnvironmentConfig } from '../config';
import { engineClientIdPrefix } from '../naming';
import { DEVICE_CHANNELS, SHADOW_REPLIES, iotArn, partitionOf } from '../topics';
import { DOCUMENTS_KEY_PREFIX } from './documents';

/**
 * DynamoDB actions of the engine's device document store: conditional `PutItem` (the
 * default write mode), `BatchWriteItem` (the `batch` write mode) and `Scan` (restoring every
 * device at start). `DescribeTable` and `CreateTable`, which the engine calls only with
 * `storage.create_tables`, are left out because this stack owns the table.
 */
export const DEVICE_STATE_ACTIONS = ['dynamodb:PutItem', 'dynamodb:BatchWriteItem', 'dynamodb:Scan'];

/**
 * S3 actions on document objects. The engine presigns PutObject and GetObject URLs with the
 * task role's credentials, so browsers upload and download with these rights. It calls
 * HeadObject, which `s3:GetObject` covers, to check an upload, and DeleteObject itself.
 */
export const DOCUMENT_OBJECT_ACTIONS = ['s3:PutObject', 's3:GetObject', 's3:DeleteObject'];

export interface EnginePermissionsProps {
  readonly config: EnvironmentConfig;
  readonly deviceStateTableArn: string;
  /** Undefined when the environment has no Timestream for LiveAnalytics table. */
  readonly telemetryTableArn?: string;
  /** Name of the log group the metrics sidecar writes embedded-metric-format events to. */
  readonly metricsLogGroupName: string;
  readonly documentsBucketArn: string;
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
    ...documentStatements(props.documentsBucketArn),
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

/** Builds the statements on the documents bucket, limited to keys under the engine's prefix. */
function documentStatements(bucketArn: string): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'DocumentObjects',
      actions: DOCUMENT_OBJECT_ACTIONS,
      resources: [`${bucketArn}/${DOCUMENTS_KEY_PREFIX}*`],
    }),
    // S3 returns 404 for HeadObject on a missing key only to a caller that may list the
    // bucket, and 403 to any other. The engine needs the 404 to tell a document whose upload
    // never arrived from a store failure.
    // NOTE: the 404 relies on S3 checking the s3:prefix condition against the requested key,
    // which ceph/ceph pull request 68577 describes as S3's behaviour. No deployment has
    // confirmed it yet; a 403 here makes `.../complete` fail with 503 instead of 409.
    new iam.PolicyStatement({
      sid: 'DocumentListing',
      actions: ['s3:ListBucket'],
      resources: [bucketArn],
      conditions: { StringLike: { 's3:prefix': [`${DOCUMENTS_KEY_PREFIX}*`] } },
    }),
  ];
}
