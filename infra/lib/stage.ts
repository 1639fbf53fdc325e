import { Stage, StageProps, Tags } from 'aws-cdk-lib';
import { Construct } from 'constructs';

import { AuthStack } from './auth-stack';
import { APPLICATION_NAME, EnvironmentConfig } from './config';
import { DataStack } from './data-stack';
import { EngineStack } from './engine-stack';
import { IotStack } from './iot-stack';
import { COMPONENTS, resourcePrefix } from './naming';
import { RegistryStack } from './registry-stack';

export interface ValmetalStageProps extends StageProps {
  readonly config: EnvironmentConfig;
  /** Git commit SHA of the deployed image; also the Version tag. */
  readonly version: string;
}

/** The stacks of one environment, deployed to the account and region of its settings. */
export class ValmetalStage extends Stage {
  readonly config: EnvironmentConfig;
  readonly registry: RegistryStack;
  readonly data: DataStack;
  readonly iot: IotStack;
  readonly auth: AuthStack;
  readonly engine: EngineStack;

  constructor(scope: Construct, id: string, props: ValmetalStageProps) {
    const { config, version } = props;
    super(scope, id, { ...props, env: { account: config.account, region: config.region } });
    this.config = config;
    const prefix = resourcePrefix(config.name);
    const stackName = (part: string) => `${prefix}-${part}`;
    const terminationProtection = config.retainData;

    this.registry = new RegistryStack(this, 'Registry', {
      stackName: stackName('registry'),
      description: `valmetal ${config.name}: ECR repository of the engine image`,
      terminationProtection,
      config,
    });
    this.data = new DataStack(this, 'Data', {
      stackName: stackName('data'),
      description: `valmetal ${config.name}: device state table, telemetry database and equipment documents bucket`,
      terminationProtection,
      config,
    });
    this.iot = new IotStack(this, 'Iot', {
      stackName: stackName('iot'),
      description: `valmetal ${config.name}: AWS IoT thing group and device policy`,
      terminationProtection,
      config,
    });
    this.auth = new AuthStack(this, 'Auth', {
      stackName: stackName('auth'),
      description: `valmetal ${config.name}: Cognito user pool and dashboard app client for sign-in to the API and /ws`,
      terminationProtection,
      config,
    });
    this.engine = new EngineStack(this, 'Engine', {
      stackName: stackName('engine'),
      description: `valmetal ${config.name}: engine service on ECS Fargate behind a load balancer, and its PostgreSQL database`,
      terminationProtection,
      config,
      version,
      repository: this.registry.repository,
      deviceStateTableArn: this.data.deviceStateTable.tableArn,
      deviceStateTableName: this.data.deviceStateTable.tableName,
      telemetryTable: this.data.telemetryTable,
      userPoolId: this.auth.userPool.userPoolId,
      userPoolClientId: this.auth.dashboardClient.userPoolClientId,
      documentsBucketName: this.data.documentsBucket.bucketName,
      documentsBucketArn: this.data.documentsBucket.bucketArn,
    });

    const components: [RegistryStack | DataStack | IotStack | AuthStack | EngineStack, string][] = [
      [this.registry, COMPONENTS.registry],
      [this.data, COMPONENTS.data],
      [this.iot, COMPONENTS.iot],
      [this.auth, COMPONENTS.auth],
      [this.engine, COMPONENTS.engine],
    ];
    for (const [stack, component] of components) {
      const tags = Tags.of(stack);
      tags.add('Application', APPLICATION_NAME);
      tags.add('Environment', config.name);
      tags.add('Component', component);
      tags.add('Version', version);
    }
  }
}
