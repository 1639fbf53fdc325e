import { EnvironmentConfig } from '../config';
import { TelemetryTable } from '../data-stack';

/** Variable that ECS fills from the database secret's `password` field. */
export const DATABASE_PASSWORD_VARIABLE = 'VALMETAL_STORAGE__DATABASE_PASSWORD';

export interface EngineStorageProps {
  readonly config: EnvironmentConfig;
  readonly deviceStateTableName: string;
  /** Undefined when the environment has no Timestream for LiveAnalytics table. */
  readonly telemetryTable?: TelemetryTable;
  /** `postgres://user@host:port/database`, without the password. */
  readonly databaseUrl: string;
}

/**
 * Builds the engine's `VALMETAL_STORAGE__*` variables, except the password: device documents
 * go to DynamoDB, telemetry to Timestream when the environment has it and to the SQL database
 * otherwise, and everything else to PostgreSQL.
 *
 * NOTE: with Timestream as the only time-series store, the engine keeps no SQL telemetry
 * history, so the dashboard's chart endpoint returns 501 and its charts show live points only.
 */
export function engineStorageEnvironment(props: EngineStorageProps): Record<string, string> {
  const { config, telemetryTable } = props;
  const environment: Record<string, string> = {
    VALMETAL_STORAGE__DATABASE_URL: props.databaseUrl,
    VALMETAL_STORAGE__SHADOWS: 'dynamodb',
    VALMETAL_STORAGE__DYNAMODB__TABLE: props.deviceStateTableName,
    VALMETAL_STORAGE__DYNAMODB__AWS__REGION: config.region,
    // Every task writes the documents of every device, and only conditional writes keep an
    // older document from replacing a newer one when several engines write.
    VALMETAL_STORAGE__DYNAMODB__WRITE: 'conditional',
    // The journal survives a crash of the engine process, which a container restart inside the
    // task recovers from. `disk` would add a flush per message and still lose the journal on a
    // host failure, because the replacement task gets a new volume.
    VALMETAL_STORAGE__JOURNAL__DURABILITY: 'process',
  };
  if (telemetryTable === undefined) {
    environment.VALMETAL_STORAGE__TIMESERIES = '["sql"]';
    return environment;
  }
  return {
    ...environment,
    VALMETAL_STORAGE__TIMESERIES: '["timestream"]',
    VALMETAL_STORAGE__TIMESTREAM__DATABASE: telemetryTable.databaseName,
    VALMETAL_STORAGE__TIMESTREAM__TABLE: telemetryTable.tableName,
    VALMETAL_STORAGE__TIMESTREAM__AWS__REGION: config.region,
    VALMETAL_STORAGE__TIMESTREAM__MAGNETIC_STORE_WRITES: String(telemetryTable.magneticStoreWrites),
    VALMETAL_STORAGE__TIMESTREAM__MEMORY_STORE_RETENTION: `${telemetryTable.memoryStoreRetentionHours}h`,
  };
}
