import { Duration } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';

import { EnvironmentConfig } from '../config';
import { engineClientIdPrefix, engineFamily } from '../naming';
import { cloudWatchAgentConfig, prometheusScrapeConfig } from './metrics-sidecar';
import { DATABASE_PASSWORD_VARIABLE } from './storage';

export const ENGINE_CONTAINER_NAME = 'engine';
export const ENGINE_PORT = 8080;
/** Liveness endpoint: 200 while the process serves HTTP, whatever the broker's state. */
export const LIVENESS_PATH = '/healthz';
/** The image's unprivileged user and group (see the Dockerfile). */
export const ENGINE_USER = '10001:10001';
/**
 * Data directory of the engine: its journal, dead-letter files and MQTT client id. The image
 * declares it as a VOLUME, and the task mounts a task volume there, which lives as long as
 * the task, so a restarted engine container finds the journal it left.
 */
export const ENGINE_DATA_DIR = '/var/lib/valmetal';
/** File in the data directory that keeps the task's MQTT client id across container restarts. */
export const CLIENT_ID_FILE = `${ENGINE_DATA_DIR}/mqtt-client-id`;
export const TASK_CPU = 512;
export const TASK_MEMORY_MIB = 1024;
/**
 * Time between SIGTERM and SIGKILL. On SIGTERM the engine drains MQTT and HTTP for up to 2 s
 * each, then its sinks one after another, each for up to `drain_timeout` (10 s by default).
 * That is 34 s with the Timestream, DynamoDB and equipment sinks, and 44 s with both
 * time-series stores.
 */
export const ENGINE_STOP_TIMEOUT_SECONDS = 60;
/**
 * Run time after which a crashed engine container is restarted inside its task. A container
 * that exits sooner, such as on an invalid setting, stops the task. ECS accepts 60 to 1800 s.
 */
export const RESTART_ATTEMPT_PERIOD_SECONDS = 60;

export interface EngineTaskProps {
  readonly config: EnvironmentConfig;
  /** Git commit SHA; the image tag. */
  readonly version: string;
  readonly repository: ecr.IRepository;
  readonly taskStatements: iam.PolicyStatement[];
  /** `VALMETAL_STORAGE__*` variables other than the password. */
  readonly storageEnvironment: Record<string, string>;
  /** `VALMETAL_AUTH__*` variables: how the engine checks bearer tokens. */
  readonly authEnvironment: Record<string, string>;
  /** `VALMETAL_EQUIPMENT__DOCUMENTS__*` variables: where equipment documents are stored. */
  readonly documentsEnvironment: Record<string, string>;
  /** Secret whose `password` field becomes `VALMETAL_STORAGE__DATABASE_PASSWORD`. */
  readonly databaseSecret: secretsmanager.ISecret;
  readonly logGroup: logs.ILogGroup;
  readonly metricsLogGroupName: string;
}

/**
 * The engine's task definition, the only family of the application: the engine serves the
 * dashboard from files compiled into its binary, next to `/ws` and the REST API, so a separate
 * web-client family would have nothing to run.
 */
export class EngineTask extends Construct {
  readonly taskDefinition: ecs.FargateTaskDefinition;
  readonly taskRole: iam.Role;
  readonly executionRole: iam.Role;
  readonly engineContainer: ecs.ContainerDefinition;

  constructor(scope: Construct, id: string, props: EngineTaskProps) {
    super(scope, id);
    const { config } = props;
    const family = engineFamily(config.name);

    this.taskRole = new iam.Role(this, 'TaskRole', {
      roleName: `${family}-task`,
      description: 'Rights of the valmetal engine process: its MQTT topics, device state, telemetry and equipment documents',
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      inlinePolicies: {
        engine: new iam.PolicyDocument({ statements: props.taskStatements }),
      },
    });
    // ECS adds image pull, log delivery and secret read rights to this role, never to the
    // task role, so the engine process itself cannot read the secret through the API.
    this.executionRole = new iam.Role(this, 'ExecutionRole', {
      roleName: `${family}-execution`,
      description: 'Used by ECS to pull the engine image, deliver its logs and read the database password',
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
    });

    this.taskDefinition = new ecs.FargateTaskDefinition(this, 'TaskDefinition', {
      family,
      cpu: TASK_CPU,
      memoryLimitMiB: TASK_MEMORY_MIB,
      runtimePlatform: {
        cpuArchitecture: ecs.CpuArchitecture.X86_64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
      taskRole: this.taskRole,
      executionRole: this.executionRole,
    });
    this.taskDefinition.addVolume({ name: 'data' });

    this.engineContainer = this.taskDefinition.addContainer('Engine', {
      containerName: ENGINE_CONTAINER_NAME,
      image: ecs.ContainerImage.fromEcrRepository(props.repository, props.version),
      essential: true,
      user: ENGINE_USER,
      readonlyRootFilesystem: true,
      portMappings: [{ containerPort: ENGINE_PORT, name: 'http', appProtocol: ecs.AppProtocol.http }],
      // Each task connects with a client id of its own; the task role may connect only with
      // ids that start with this prefix. The id is kept on the task volume, so a restarted
      // container resumes the broker session, and the broker sends again what the crashed
      // process had received but not acknowledged.
      entryPoint: ['/bin/sh', '-c'],
      command: [
        `{ [ -s ${CLIENT_ID_FILE} ] || cat /proc/sys/kernel/random/uuid > ${CLIENT_ID_FILE}; }` +
          ` && export VALMETAL_MQTT__CLIENT_ID="${engineClientIdPrefix(config.name)}$(cat ${CLIENT_ID_FILE})"` +
          ' && exec /usr/local/bin/valmetal serve',
      ],
      environment: {
        VALMETAL_HTTP__ADDR: `0.0.0.0:${ENGINE_PORT}`,
        VALMETAL_MQTT__HOST: config.mqttHost,
        VALMETAL_MQTT__PORT: String(config.mqttPort),
        VALMETAL_MQTT__TOPIC_PREFIX: config.topicPrefix,
        VALMETAL_STORAGE__DATA_DIR: ENGINE_DATA_DIR,
        ...props.storageEnvironment,
        ...props.authEnvironment,
        ...props.documentsEnvironment,
      },
      secrets: {
        [DATABASE_PASSWORD_VARIABLE]: ecs.Secret.fromSecretsManager(props.databaseSecret, 'password'),
      },
      healthCheck: {
        command: ['CMD-SHELL', `wget -q -O /dev/null http://127.0.0.1:${ENGINE_PORT}${LIVENESS_PATH} || exit 1`],
        interval: Duration.seconds(30),
        timeout: Duration.seconds(5),
        retries: 3,
        startPeriod: Duration.seconds(30),
      },
      stopTimeout: Duration.seconds(ENGINE_STOP_TIMEOUT_SECONDS),
      // A restart keeps the task and its volume, so the engine replays its journal. A replaced
      // task would start with an empty volume.
      enableRestartPolicy: true,
      restartAttemptPeriod: Duration.seconds(RESTART_ATTEMPT_PERIOD_SECONDS),
      logging: ecs.LogDrivers.awsLogs({ logGroup: props.logGroup, streamPrefix: 'engine' }),
    });
    this.engineContainer.addMountPoints({
      sourceVolume: 'data',
      containerPath: ENGINE_DATA_DIR,
      readOnly: false,
    });

    const agent = this.taskDefinition.addContainer('CloudWatchAgent', {
      containerName: 'cloudwatch-agent',
      image: ecs.ContainerImage.fromRegistry(config.cloudwatchAgentImage),
      // A failed agent loses metrics, not telemetry, so it never stops the task.
      essential: false,
      environment: {
        PROMETHEUS_CONFIG_CONTENT: prometheusScrapeConfig(config, family, ENGINE_PORT),
        CW_CONFIG_CONTENT: cloudWatchAgentConfig(config, family, props.metricsLogGroupName),
      },
      logging: ecs.LogDrivers.awsLogs({ logGroup: props.logGroup, streamPrefix: 'cloudwatch-agent' }),
    });
    agent.addContainerDependencies({
      container: this.engineContainer,
      condition: ecs.ContainerDependencyCondition.START,
    });
  }
}
