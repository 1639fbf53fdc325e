import { Annotations, CfnOutput, Duration, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as timestream from 'aws-cdk-lib/aws-timestream';
import { Construct } from 'constructs';

import { EnvironmentConfig } from './config';
import { resourcePrefix } from './naming';

export interface DataStackProps extends StackProps {
  readonly config: EnvironmentConfig;
}

/** Name of the Timestream table in the environment's Timestream database. */
export const TELEMETRY_TABLE_NAME = 'telemetry';

/**
 * Days S3 keeps an object version after a newer version or a delete marker replaces it, so a
 * document that was overwritten or deleted by mistake can be restored within that time.
 */
export const NONCURRENT_VERSION_EXPIRATION_DAYS = 30;

/**
 * Days after which S3 aborts an unfinished multipart upload and frees its parts. Browsers
 * upload documents with one presigned PUT, valid for at most 1 hour (`url_ttl`), so only an
 * abandoned upload by other means is still unfinished after a day.
 */
export const INCOMPLETE_UPLOAD_EXPIRATION_DAYS = 1;

/** The Timestream table and the settings the engine's Timestream sink must repeat. */
export interface TelemetryTable {
  readonly arn: string;
  readonly databaseName: string;
  readonly tableName: string;
  /** Memory store retention of the table in hours. */
  readonly memoryStoreRetentionHours: number;
  /** Whether the table accepts records older than the memory store retention. */
  readonly magneticStoreWrites: boolean;
}

/**
 * Stores of device state, telemetry history and equipment documents: the engine writes device
 * documents to the DynamoDB table and, when `timestreamLiveAnalytics` is on, telemetry to
 * Timestream. Browsers upload and download equipment files in the S3 bucket through URLs that
 * the engine presigns.
 */
export class DataStack extends Stack {
  readonly deviceStateTable: dynamodb.Table;
  readonly documentsBucket: s3.Bucket;
  /** Undefined when `timestreamLiveAnalytics` is false. */
  readonly telemetryTable?: TelemetryTable;

  constructor(scope: Construct, id: string, props: DataStackProps) {
    super(scope, id, props);
    const { config } = props;
    const prefix = resourcePrefix(config.name);
    const removalPolicy = config.retainData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;

    this.deviceStateTable = new dynamodb.Table(this, 'DeviceStateTable', {
      tableName: `${prefix}-device-state`,
      partitionKey: { name: 'device_id', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      deletionProtection: config.retainData,
      removalPolicy,
    });
    new CfnOutput(this, 'DeviceStateTableName', { value: this.deviceStateTable.tableName });

    this.documentsBucket = createDocumentsBucket(this, config, removalPolicy);
    new CfnOutput(this, 'DocumentsBucketName', { value: this.documentsBucket.bucketName });

    if (config.timestreamLiveAnalytics) {
      const database = new timestream.CfnDatabase(this, 'TelemetryDatabase', {
        databaseName: prefix,
      });
      database.applyRemovalPolicy(removalPolicy);
      acknowledgeMaintenanceMode(database);
      // Replayed recordings and devices that reconnect after an outage send frames older
      // than the memory store's retention; only the magnetic store accepts those.
      const magneticStoreWrites = true;
      const table = new timestream.CfnTable(this, 'TelemetryTable', {
        databaseName: prefix,
        tableName: TELEMETRY_TABLE_NAME,
        retentionProperties: {
          MemoryStoreRetentionPeriodInHours: String(config.timestreamMemoryRetentionHours),
          MagneticStoreRetentionPeriodInDays: String(config.timestreamMagneticRetentionDays),
        },
        magneticStoreWriteProperties: { EnableMagneticStoreWrites: magneticStoreWrites },
      });
      table.addResourceDependency(database);
      table.applyRemovalPolicy(removalPolicy);
      acknowledgeMaintenanceMode(table);
      this.telemetryTable = {
        arn: table.attrArn,
        databaseName: prefix,
        tableName: TELEMETRY_TABLE_NAME,
        memoryStoreRetentionHours: config.timestreamMemoryRetentionHours,
        magneticStoreWrites,
      };
      new CfnOutput(this, 'TelemetryTableArn', { value: table.attrArn });
    }
  }
}

/**
 * Creates the bucket of equipment documents (manuals, service reports, photos): private,
 * encrypted with S3 managed keys, reachable over TLS 1.2 or newer only, and versioned.
 *
 * NOTE: CloudFormation deletes only an empty bucket, so without `retainData` deleting the stack
 * fails until every object version in the bucket is deleted. CDK's `autoDeleteObjects` would
 * empty it through a Lambda-backed custom resource, which is left out to keep every resource
 * tagged and every role free of AWS managed policies.
 */
function createDocumentsBucket(scope: Construct, config: EnvironmentConfig, removalPolicy: RemovalPolicy): s3.Bucket {
  return new s3.Bucket(scope, 'DocumentsBucket', {
    // Bucket names are global across accounts, so the account and region make this one unique.
    bucketName: `${resourcePrefix(config.name)}-documents-${config.account}-${config.region}`,
    encryption: s3.BucketEncryption.S3_MANAGED,
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    enforceSSL: true,
    minimumTLSVersion: 1.2,
    versioned: true,
    lifecycleRules: [
      {
        id: 'expire-replaced-versions',
        noncurrentVersionExpiration: Duration.days(NONCURRENT_VERSION_EXPIRATION_DAYS),
        // Removes a delete marker once the versions behind it have expired.
        expiredObjectDeleteMarker: true,
        abortIncompleteMultipartUploadAfter: Duration.days(INCOMPLETE_UPLOAD_EXPIRATION_DAYS),
      },
    ],
    cors: [
      {
        // The dashboard PUTs a file to the presigned URL that the engine returns and GETs it
        // back the same way, both with fetch() from the dashboard's page.
        allowedOrigins: [`https://${config.dashboardDomain}`],
        allowedMethods: [s3.HttpMethods.PUT, s3.HttpMethods.GET],
        // The dashboard sends each header signed into the URL except Content-Length, which
        // the browser sets itself. Those are Content-Type and any x-amz-* header the SDK signs.
        allowedHeaders: ['content-type', 'x-amz-*'],
        maxAge: 3600,
      },
    ],
    removalPolicy,
  });
}

/** Silences synth's warning that Timestream for LiveAnalytics is in maintenance mode. */
function acknowledgeMaintenanceMode(resource: Construct): void {
  Annotations.of(resource).acknowledgeWarning(
    'CloudFormation-Validate::W3697',
    'Known: the setting timestreamLiveAnalytics turns these resources off for accounts that cannot create them',
  );
}
