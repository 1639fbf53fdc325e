import { App } from 'aws-cdk-lib';

import { ENVIRONMENT_NAMES, EnvironmentName, VERSION_CONTEXT_KEY, readEnvironmentConfig, validateVersion } from './config';
import { stageId } from './naming';
import { ValmetalStage } from './stage';

/**
 * Adds one stage per environment to the app, from the app's context.
 *
 * @throws Error when the version or any environment's settings are invalid.
 */
export function addEnvironments(app: App): Record<EnvironmentName, ValmetalStage> {
  const version = validateVersion(app.node.tryGetContext(VERSION_CONTEXT_KEY));
  const read = (key: string) => app.node.tryGetContext(key);
  const stages = {} as Record<EnvironmentName, ValmetalStage>;
  for (const name of ENVIRONMENT_NAMES) {
    stages[name] = new ValmetalStage(app, stageId(name), {
      config: readEnvironmentConfig(name, read),
      version,
    });
  }
  return stages;
}
