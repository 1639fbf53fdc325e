import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';

import { EnvironmentConfig } from '../config';
import { resourcePrefix } from '../naming';

/** Database that the instance creates and the engine uses. */
export const DATABASE_NAME = 'valmetal';
/** Master user of the instance, which the engine connects as. */
export const DATABASE_USER = 'valmetal';
export const POSTGRES_PORT = 5432;
/** PostgreSQL major version. RDS applies minor versions itself. */
export const POSTGRES_MAJOR_VERSION = '17';

export interface EngineDatabaseProps {
  readonly config: EnvironmentConfig;
  readonly vpc: ec2.IVpc;
  readonly removalPolicy: RemovalPolicy;
}

/**
 * The engine's PostgreSQL database for farms, equipment, users, rules, alarm history and the
 * notification outbox: one Amazon RDS instance in the VPC's private subnets, with storage
 * encryption, automated backups and a generated password in Secrets Manager.
 */
export class EngineDatabase extends Construct {
  readonly instance: rds.DatabaseInstance;
  /** The generated secret, a JSON object whose `password` field the engine needs. */
  readonly secret: secretsmanager.ISecret;
  /** `postgres://user@host:port/database?sslmode=require`, without the password. */
  readonly url: string;

  constructor(scope: Construct, id: string, props: EngineDatabaseProps) {
    super(scope, id);
    const { config, vpc } = props;

    const securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc,
      description: 'valmetal database: PostgreSQL from the engine tasks only',
      allowAllOutbound: false,
    });

    // The default excluded characters of a generated password include every one that could
    // make the engine's configuration loader read it as a list, a map or a quoted string.
    const generatedSecret = new rds.DatabaseSecret(this, 'Secret', { username: DATABASE_USER });
    // A retained instance is unusable without its password, so the secret follows its policy.
    generatedSecret.applyRemovalPolicy(props.removalPolicy);

    const version = rds.PostgresEngineVersion.of(POSTGRES_MAJOR_VERSION, POSTGRES_MAJOR_VERSION);
    const engine = rds.DatabaseInstanceEngine.postgres({ version });
    this.instance = new rds.DatabaseInstance(this, 'Instance', {
      instanceIdentifier: resourcePrefix(config.name),
      engine,
      instanceType: new ec2.InstanceType(config.databaseInstanceType),
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [securityGroup],
      publiclyAccessible: false,
      port: POSTGRES_PORT,
      databaseName: DATABASE_NAME,
      credentials: rds.Credentials.fromSecret(generatedSecret, DATABASE_USER),
      storageType: rds.StorageType.GP3,
      allocatedStorage: config.databaseStorageGiB,
      storageEncrypted: true,
      multiAz: config.databaseMultiAz,
      backupRetention: Duration.days(config.databaseBackupRetentionDays),
      copyTagsToSnapshot: true,
      autoMinorVersionUpgrade: true,
      allowMajorVersionUpgrade: false,
      deletionProtection: config.retainData,
      removalPolicy: props.removalPolicy,
    });

    // The attachment adds the instance's host and port to the secret, and referring to it
    // makes readers wait until the instance exists.
    this.secret = this.instance.secret ?? generatedSecret;

    const host = this.instance.dbInstanceEndpointAddress;
    const port = this.instance.dbInstanceEndpointPort;
    // TLS is required, as RDS for PostgreSQL requires it by default. `require` encrypts without
    // checking the server's certificate, whose CA bundle the engine's image does not carry.
    this.url = `postgres://${DATABASE_USER}@${host}:${port}/${DATABASE_NAME}?sslmode=require`;
  }

  /** Allows PostgreSQL connections from `peer`. */
  allowConnectionsFrom(peer: ec2.IConnectable, description: string): void {
    this.instance.connections.allowFrom(peer, ec2.Port.tcp(POSTGRES_PORT), description);
  }
}
