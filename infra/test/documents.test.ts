import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { INCOMPLETE_UPLOAD_EXPIRATION_DAYS, NONCURRENT_VERSION_EXPIRATION_DAYS } from '../lib/data-stack';
import { DOCUMENTS_KEY_PREFIX } from '../lib/engine/documents';
import { DOCUMENT_OBJECT_ACTIONS } from '../lib/engine/permissions';
import {
  Resource,
  Statement,
  SynthesizedEnvironment,
  environments,
  iamStatements,
  onlyResource,
  referencedId,
  resourcesOfType,
} from './support';

function documentsBucket(env: SynthesizedEnvironment): { id: string; resource: Resource } {
  const buckets = Object.entries(resourcesOfType(env.data, 'AWS::S3::Bucket'));
  assert.equal(buckets.length, 1, `${env.name}: buckets in the data stack`);
  const [id, resource] = buckets[0];
  return { id, resource };
}

function bucketName(env: SynthesizedEnvironment): string {
  return documentsBucket(env).resource.Properties!.BucketName;
}

/** Returns the statements of the documents bucket's policy. */
function bucketPolicyStatements(env: SynthesizedEnvironment): Record<string, any>[] {
  const { id } = documentsBucket(env);
  const policies = Object.values(resourcesOfType(env.data, 'AWS::S3::BucketPolicy')).filter(
    (policy) => referencedId(policy.Properties!.Bucket) === id,
  );
  assert.equal(policies.length, 1, `${env.name}: policies of the documents bucket`);
  return policies[0].Properties!.PolicyDocument.Statement;
}

/**
 * Renders a value of the engine template as text. A string stays as it is, and an output of the
 * data stack becomes the documents bucket's name or ARN. Any other reference fails the test.
 */
function render(env: SynthesizedEnvironment, value: unknown): string {
  if (typeof value === 'string') {
    return value;
  }
  const record = value as Record<string, any>;
  if (record['Fn::Join'] !== undefined) {
    const [separator, parts] = record['Fn::Join'];
    return parts.map((part: unknown) => render(env, part)).join(separator);
  }
  const reference = record['Fn::GetStackOutput'];
  assert.ok(reference, `${env.name}: unexpected value ${JSON.stringify(value)}`);
  assert.equal(reference.StackName, env.stage.data.stackName, `${env.name}: output of another stack`);
  const output = env.data.toJSON().Outputs[reference.OutputName];
  assert.ok(output, `${env.name}: the data stack has no output ${reference.OutputName}`);
  const { id } = documentsBucket(env);
  if (output.Value.Ref === id) {
    return bucketName(env);
  }
  assert.deepEqual(output.Value, { 'Fn::GetAtt': [id, 'Arn'] }, `${env.name}: not the documents bucket`);
  return `arn:aws:s3:::${bucketName(env)}`;
}

function taskRoleId(env: SynthesizedEnvironment): string {
  const properties = onlyResource(env.engine, 'AWS::ECS::TaskDefinition').Properties!;
  return referencedId(properties.TaskRoleArn)!;
}

function taskRoleStatements(env: SynthesizedEnvironment): Statement[] {
  return iamStatements(env.engine).filter((s) => s.roles.includes(taskRoleId(env)));
}

/** Returns the engine container's plain environment variables by name. */
function engineVariables(env: SynthesizedEnvironment): Record<string, any> {
  const definitions = onlyResource(env.engine, 'AWS::ECS::TaskDefinition').Properties!.ContainerDefinitions;
  const engine = definitions.find((definition: any) => definition.Name === 'engine');
  return Object.fromEntries(engine.Environment.map((v: { Name: string; Value: unknown }) => [v.Name, v.Value]));
}

describe('documents bucket', () => {
  test('name unique per account and region', () => {
    for (const env of environments()) {
      const { account, region } = env.config;
      assert.equal(bucketName(env), `valmetal-${env.name}-documents-${account}-${region}`, env.name);
    }
  });

  test('encrypted with s3 managed keys', () => {
    for (const env of environments()) {
      const encryption = documentsBucket(env).resource.Properties!.BucketEncryption;
      assert.deepEqual(
        encryption,
        { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
        env.name,
      );
    }
  });

  test('versioned with expiring old versions', () => {
    for (const env of environments()) {
      const properties = documentsBucket(env).resource.Properties!;
      assert.deepEqual(properties.VersioningConfiguration, { Status: 'Enabled' }, env.name);
      const rules = properties.LifecycleConfiguration.Rules;
      assert.equal(rules.length, 1, env.name);
      const [rule] = rules;
      assert.equal(rule.Status, 'Enabled', env.name);
      assert.equal(rule.Prefix, undefined, `${env.name}: the rule must cover the whole bucket`);
      assert.deepEqual(rule.NoncurrentVersionExpiration, { NoncurrentDays: NONCURRENT_VERSION_EXPIRATION_DAYS }, env.name);
      assert.deepEqual(
        rule.AbortIncompleteMultipartUpload,
        { DaysAfterInitiation: INCOMPLETE_UPLOAD_EXPIRATION_DAYS },
        env.name,
      );
      assert.equal(rule.ExpiredObjectDeleteMarker, true, env.name);
      assert.equal(rule.ExpirationInDays, undefined, `${env.name}: current documents must not expire`);
    }
  });

  test('public access blocked', () => {
    for (const env of environments()) {
      const properties = documentsBucket(env).resource.Properties!;
      assert.deepEqual(
        properties.PublicAccessBlockConfiguration,
        { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
        env.name,
      );
      assert.deepEqual(properties.OwnershipControls, { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] }, env.name);
      assert.equal(properties.WebsiteConfiguration, undefined, env.name);
    }
  });

  test('ssl and tls 1.2 only', () => {
    for (const env of environments()) {
      const { id } = documentsBucket(env);
      const statements = bucketPolicyStatements(env);
      const bucketAndObjects = [
        { 'Fn::GetAtt': [id, 'Arn'] },
        { 'Fn::Join': ['', [{ 'Fn::GetAtt': [id, 'Arn'] }, '/*']] },
      ];
      const withoutTls = statements.filter((s) => s.Condition?.Bool?.['aws:SecureTransport'] === 'false');
      assert.equal(withoutTls.length, 1, `${env.name}: statements denying plain HTTP`);
      const oldTls = statements.filter((s) => s.Condition?.NumericLessThan?.['s3:TlsVersion'] !== undefined);
      assert.equal(oldTls.length, 1, `${env.name}: statements denying old TLS versions`);
      assert.equal(oldTls[0].Condition.NumericLessThan['s3:TlsVersion'], 1.2, env.name);
      for (const statement of [withoutTls[0], oldTls[0]]) {
        assert.equal(statement.Effect, 'Deny', env.name);
        assert.equal(statement.Action, 's3:*', env.name);
        assert.deepEqual(statement.Principal, { AWS: '*' }, env.name);
        assert.deepEqual(statement.Resource, bucketAndObjects, env.name);
      }
      for (const statement of statements) {
        assert.equal(statement.Effect, 'Deny', `${env.name}: the bucket policy grants access`);
      }
    }
  });

  test('cors for dashboard origin only', () => {
    for (const env of environments()) {
      const rules = documentsBucket(env).resource.Properties!.CorsConfiguration.CorsRules;
      assert.equal(rules.length, 1, env.name);
      const [rule] = rules;
      assert.deepEqual(rule.AllowedOrigins, [`https://${env.config.dashboardDomain}`], env.name);
      assert.deepEqual([...rule.AllowedMethods].sort(), ['GET', 'PUT'], env.name);
      assert.ok(rule.AllowedHeaders.includes('content-type'), `${env.name}: uploads send Content-Type`);
      assert.ok(!rule.AllowedHeaders.includes('*'), `${env.name}: every request header allowed`);
    }
  });

  test('retained with retainData', () => {
    for (const env of environments()) {
      const { resource } = documentsBucket(env);
      const policy = env.config.retainData ? 'Retain' : 'Delete';
      assert.equal(resource.DeletionPolicy, policy, env.name);
      assert.equal(resource.UpdateReplacePolicy, policy, env.name);
    }
  });
});

describe('engine documents access', () => {
  test('object actions only under prefix', () => {
    for (const env of environments()) {
      const statements = taskRoleStatements(env).filter((s) => s.actions.includes('s3:PutObject'));
      assert.equal(statements.length, 1, env.name);
      const [statement] = statements;
      assert.deepEqual([...statement.actions].sort(), [...DOCUMENT_OBJECT_ACTIONS].sort(), env.name);
      assert.deepEqual(
        [...statement.actions].sort(),
        ['s3:DeleteObject', 's3:GetObject', 's3:PutObject'],
        `${env.name}: the engine presigns PUT and GET, and deletes`,
      );
      assert.deepEqual(
        statement.resources.map((resource) => render(env, resource)),
        [`arn:aws:s3:::${bucketName(env)}/${DOCUMENTS_KEY_PREFIX}*`],
        env.name,
      );
      assert.equal(statement.raw.Condition, undefined, env.name);
    }
  });

  test('list bucket limited to prefix', () => {
    for (const env of environments()) {
      const statements = taskRoleStatements(env).filter((s) => s.actions.includes('s3:ListBucket'));
      assert.equal(statements.length, 1, env.name);
      const [statement] = statements;
      assert.deepEqual(statement.actions, ['s3:ListBucket'], env.name);
      assert.deepEqual(
        statement.resources.map((resource) => render(env, resource)),
        [`arn:aws:s3:::${bucketName(env)}`],
        env.name,
      );
      assert.deepEqual(statement.raw.Condition, { StringLike: { 's3:prefix': [`${DOCUMENTS_KEY_PREFIX}*`] } }, env.name);
    }
  });

  test('no other s3 rights', () => {
    for (const env of environments()) {
      const granted = taskRoleStatements(env)
        .flatMap((s) => s.actions)
        .filter((action) => action.startsWith('s3:'))
        .sort();
      assert.deepEqual(granted, ['s3:DeleteObject', 's3:GetObject', 's3:ListBucket', 's3:PutObject'], env.name);
      const others = env.templates
        .flatMap((template) => iamStatements(template))
        .filter((s) => !s.roles.includes(taskRoleId(env)))
        .filter((s) => s.actions.some((action) => action.startsWith('s3:')));
      assert.deepEqual(
        others.map((s) => s.holder),
        [],
        `${env.name}: roles other than the engine's task role with S3 rights`,
      );
    }
  });

  test('engine stores documents in bucket', () => {
    for (const env of environments()) {
      const variables = engineVariables(env);
      assert.equal(variables.VALMETAL_EQUIPMENT__DOCUMENTS__BACKEND, 's3', env.name);
      assert.equal(render(env, variables.VALMETAL_EQUIPMENT__DOCUMENTS__BUCKET), bucketName(env), env.name);
      assert.equal(variables.VALMETAL_EQUIPMENT__DOCUMENTS__KEY_PREFIX, DOCUMENTS_KEY_PREFIX, env.name);
      assert.equal(variables.VALMETAL_EQUIPMENT__DOCUMENTS__S3__REGION, env.config.region, env.name);
      assert.equal(
        variables.VALMETAL_EQUIPMENT__DOCUMENTS__S3__ENDPOINT_URL,
        undefined,
        `${env.name}: an endpoint would switch the engine to emulator credentials`,
      );
    }
  });
});
