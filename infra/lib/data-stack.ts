import { Annotations, CfnOutput, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as timestream from 'aws-cdk-lib/aws-timestream';
import { Construct } from 'constructs';

import { EnvironmentConfig } from './config';
import { resourcePrefix } from './naming';

export interface DataStackProps extends StackProps {
  readonly config: EnvironmentConfig;
}

/** Name of the Timestream table in the environment's Timestream database. */
export const TELEMETRY_TABLE_NAME = 'telemetry';

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
 * Stores of device state and telemetry history: the engine writes device documents to the
 * DynamoDB table and, when `timestreamLiveAnalytics` is on, telemetry to Timestream.
 */
export class DataStack extends Stack {
  readonly deviceStateTable: dynamodb.Table;
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

/** Silences synth's warning that Timestream for LiveAnalytics is in maintenance mode. */
function acknowledgeMaintenanceMode(resource: Construct): void {
  Annotations.of(resource).acknowledgeWarning(
    'CloudFormation-Validate::W3697',
    'Known: the setting timestreamLiveAnalytics turns these resources off for accounts that cannot create them',
  );
}
