import { CfnOutput, Duration, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import { Construct } from 'constructs';

import { EnvironmentConfig } from './config';
import { engineFamily } from './naming';

export interface RegistryStackProps extends StackProps {
  readonly config: EnvironmentConfig;
}

/**
 * The ECR repository of the engine image. It is a stack of its own because the pipeline must
 * push the image, tagged with the commit SHA, before the service stack can deploy it.
 */
export class RegistryStack extends Stack {
  readonly repository: ecr.Repository;

  constructor(scope: Construct, id: string, props: RegistryStackProps) {
    super(scope, id, props);

    this.repository = new ecr.Repository(this, 'EngineRepository', {
      repositoryName: engineFamily(props.config.name),
      imageScanOnPush: true,
      imageTagMutability: ecr.TagMutability.IMMUTABLE,
      encryption: ecr.RepositoryEncryption.AES_256,
      // Images are the rollback targets, so the repository outlives its stack.
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [
        {
          rulePriority: 1,
          description: 'Expire untagged images, such as layers of interrupted pushes',
          tagStatus: ecr.TagStatus.UNTAGGED,
          maxImageAge: Duration.days(7),
        },
        {
          rulePriority: 2,
          description: 'Keep the newest 100 commit images as rollback targets',
          tagStatus: ecr.TagStatus.ANY,
          maxImageCount: 100,
        },
      ],
    });

    new CfnOutput(this, 'RepositoryUri', {
      description: 'Push the engine image here, tagged with the full git commit SHA',
      value: this.repository.repositoryUri,
    });
  }
}
