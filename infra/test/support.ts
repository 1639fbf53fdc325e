/**
 * Shared helpers of the assertion tests: synthesis of the app from the real `cdk.json` context,
 * and lookups in the synthesized templates.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';

import { addEnvironments } from '../lib/app';
import { ENVIRONMENT_NAMES, EnvironmentConfig, EnvironmentName } from '../lib/config';
import { ValmetalStage } from '../lib/stage';

/** Directory of the CDK app (`infra/`); the compiled tests run from `infra/dist/test`. */
export const INFRA_DIR = join(__dirname, '..', '..');
export const REPOSITORY_DIR = join(INFRA_DIR, '..');

export const VERSION = '0123456789abcdef0123456789abcdef01234567';

export interface SynthesizedEnvironment {
  readonly name: EnvironmentName;
  readonly config: EnvironmentConfig;
  readonly stage: ValmetalStage;
  readonly registry: Template;
  readonly data: Template;
  readonly iot: Template;
  readonly auth: Template;
  readonly engine: Template;
  /** All five templates, for checks that span stacks. */
  readonly templates: Template[];
}

/** Returns the context of `cdk.json`. */
export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(readFileSync(join(INFRA_DIR, 'cdk.json'), 'utf8'));
  return cdkJson.context;
}

/** Synthesizes every environment from `cdk.json`, with extra context entries on top. */
export function synthesize(extraContext: Record<string, unknown> = {}): SynthesizedEnvironment[] {
  const app = new App({ context: { ...cdkJsonContext(), version: VERSION, ...extraContext } });
  const stages = addEnvironments(app);
  return ENVIRONMENT_NAMES.map((name) => {
    const stage = stages[name];
    const registry = Template.fromStack(stage.registry);
    const data = Template.fromStack(stage.data);
    const iot = Template.fromStack(stage.iot);
    const auth = Template.fromStack(stage.auth);
    const engine = Template.fromStack(stage.engine);
    return {
      name,
      config: stage.config,
      stage,
      registry,
      data,
      iot,
      auth,
      engine,
      templates: [registry, data, iot, auth, engine],
    };
  });
}

let cached: SynthesizedEnvironment[] | undefined;

/** Synthesizes the environments of `cdk.json` once per test file and returns them. */
export function environments(): SynthesizedEnvironment[] {
  cached ??= synthesize();
  return cached;
}

export type Resource = { Type: string; Properties?: Record<string, any>; [key: string]: any };

/** Returns the resources of one type, keyed by logical id. */
export function resourcesOfType(template: Template, type: string): Record<string, Resource> {
  return template.findResources(type) as Record<string, Resource>;
}

/** Returns the one resource of a type, failing when there are none or several. */
export function onlyResource(template: Template, type: string): Resource {
  const found = Object.values(resourcesOfType(template, type));
  if (found.length !== 1) {
    throw new Error(`expected exactly one ${type}, found ${found.length}`);
  }
  return found[0];
}

/** Returns every resource of a template, keyed by logical id. */
export function allResources(template: Template): Record<string, Resource> {
  return template.toJSON().Resources as Record<string, Resource>;
}

export interface Statement {
  /** Logical id of the role or policy resource that contains the statement. */
  readonly holder: string;
  /** Logical ids of the roles the statement applies to. */
  readonly roles: string[];
  readonly actions: string[];
  readonly resources: unknown[];
  readonly raw: Record<string, any>;
}

/** Collects the IAM statements of a template: role inline policies and attached policies. */
export function iamStatements(template: Template): Statement[] {
  const statements: Statement[] = [];
  const add = (holder: string, roles: string[], document: any) => {
    for (const raw of document.Statement) {
      statements.push({
        holder,
        roles,
        actions: [raw.Action].flat(),
        resources: [raw.Resource].flat(),
        raw,
      });
    }
  };
  for (const [id, role] of Object.entries(resourcesOfType(template, 'AWS::IAM::Role'))) {
    for (const policy of role.Properties?.Policies ?? []) {
      add(id, [id], policy.PolicyDocument);
    }
  }
  for (const [id, policy] of Object.entries(resourcesOfType(template, 'AWS::IAM::Policy'))) {
    const roles = (policy.Properties?.Roles ?? []).map((role: any) => role.Ref);
    add(id, roles, policy.Properties?.PolicyDocument);
  }
  return statements;
}

/** Returns the logical id that a `{Ref}` or `{Fn::GetAtt}` value points to. */
export function referencedId(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) {
    return undefined;
  }
  const record = value as Record<string, any>;
  if (typeof record.Ref === 'string') {
    return record.Ref;
  }
  if (Array.isArray(record['Fn::GetAtt'])) {
    return record['Fn::GetAtt'][0];
  }
  return undefined;
}

/** Returns the logical ids of the VPC's subnets of one kind (`Public` or `Private`). */
export function subnetIds(template: Template, kind: 'Public' | 'Private'): string[] {
  return Object.entries(resourcesOfType(template, 'AWS::EC2::Subnet'))
    .filter(([, subnet]) =>
      (subnet.Properties?.Tags ?? []).some(
        (tag: { Key: string; Value: string }) => tag.Key === 'aws-cdk:subnet-type' && tag.Value === kind,
      ),
    )
    .map(([id]) => id)
    .sort();
}
