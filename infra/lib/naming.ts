import { APPLICATION_NAME, EnvironmentName } from './config';

/** Prefix of physical resource names in one environment, such as `valmetal-staging`. */
export function resourcePrefix(environment: EnvironmentName): string {
  return `${APPLICATION_NAME}-${environment}`;
}

/** Construct id of an environment's stage, such as `Staging`; CLI patterns select it (`Staging/*`). */
export function stageId(environment: EnvironmentName): string {
  return environment.charAt(0).toUpperCase() + environment.slice(1);
}

/** Name of the one task definition family, ECS service and ECR repository of the engine. */
export function engineFamily(environment: EnvironmentName): string {
  return `${resourcePrefix(environment)}-engine`;
}

/**
 * Prefix of the engine's MQTT client ids. Each task appends a random UUID at start, because
 * MQTT brokers disconnect a client when another connects with the same id.
 */
export function engineClientIdPrefix(environment: EnvironmentName): string {
  return `${engineFamily(environment)}-`;
}

/** Values of the Component tag, one per stack. */
export const COMPONENTS = {
  registry: 'registry',
  data: 'data',
  iot: 'iot',
  auth: 'auth',
  engine: 'engine',
} as const;
