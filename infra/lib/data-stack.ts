import { Annotations, CfnOutput, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as timestream from 'aws-cdk-lib/aws-timestream';
import { Construct } from 'constructs';

import { EnvironmentConfig } from './config';
import { resourcePrefix } from './naming';

export interface DataStackProps extends StackProps {
  readonly config: EnvironmentConfig;
}

/**
 * Stores of device state and telemetry history.
 *
 * NOTE: the engine does not write to either store yet; shadows live in memory and alarm history
 * in a task-local SQLite file. These resources and the task role's access to them are ready for
 * the persistence the engine still has to gain.
 */
export class DataStack extends Stack {
  readonly deviceStateTable: dynamodb.Table;
  /** ARN of the Timestream table, or undefined when `timestreamLiveAnalytics` is false. */
  readonly telemetryTableArn?: string;

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
      const table = new timestream.CfnTable(this, 'TelemetryTable', {
        databaseName: prefix,
        tableName: 'telemetry',
        retentionProperties: {
          MemoryStoreRetentionPeriodInHours: String(config.timestreamMemoryRetentionHours),
          MagneticStoreRetentionPeriodInDays: String(config.timestreamMagneticRetentionDays),
        },
        // Replayed recordings and devices that reconnect after an outage send frames older
        // than the memory store's retention; only the magnetic store accepts those.
        magneticStoreWriteProperties: { EnableMagneticStoreWrites: true },
      });
      table.addResourceDependency(database);
      table.applyRemovalPolicy(removalPolicy);
      acknowledgeMaintenanceMode(table);
      this.telemetryTableArn = table.attrArn;
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
