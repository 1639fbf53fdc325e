import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { App } from 'aws-cdk-lib';

import { addEnvironments } from '../lib/app';
import { ENVIRONMENT_NAMES } from '../lib/config';
import { COMPONENTS, stageId } from '../lib/naming';
import { THING_NAME_VARIABLE } from '../lib/topics';
import {
  VERSION,
  allResources,
  cdkJsonContext,
  environments,
  onlyResource,
  resourcesOfType,
} from './support';

/**
 * Resource types without a CloudFormation `Tags` property. Any other type must carry the four
 * tags; a new untaggable type has to be added here on purpose.
 */
const UNTAGGABLE_TYPES = new Set([
  'AWS::ApplicationAutoScaling::ScalingPolicy',
  'AWS::Cognito::UserPoolClient',
  'AWS::Cognito::UserPoolGroup',
  'AWS::EC2::Route',
  'AWS::EC2::SecurityGroupEgress',
  'AWS::EC2::SecurityGroupIngress',
  'AWS::EC2::SubnetRouteTableAssociation',
  'AWS::EC2::VPCGatewayAttachment',
  'AWS::ECS::ClusterCapacityProviderAssociations',
  'AWS::IAM::Policy',
  'AWS::S3::BucketPolicy',
  'AWS::SecretsManager::SecretTargetAttachment',
  'AWS::SNS::TopicPolicy',
]);

/** Tag properties of the types that do not call theirs `Tags`. */
const TAG_PROPERTIES: Record<string, string> = {
  'AWS::Cognito::UserPool': 'UserPoolTags',
};

describe('environments', () => {
  test('three stages from context', () => {
    const settings = cdkJsonContext().valmetal as any;
    const envs = environments();
    assert.deepEqual(
      envs.map((env) => env.name),
      ['development', 'staging', 'production'],
    );
    for (const env of envs) {
      const expected = { ...settings.defaults, ...settings.environments[env.name] };
      assert.equal(env.stage.node.id, stageId(env.name));
      for (const stack of [env.stage.registry, env.stage.data, env.stage.iot, env.stage.auth, env.stage.engine]) {
        assert.equal(stack.account, expected.account, `${env.name}: ${stack.stackName}`);
        assert.equal(stack.region, expected.region, `${env.name}: ${stack.stackName}`);
        assert.match(stack.stackName, new RegExp(`^valmetal-${env.name}-`));
      }
    }
    const accounts = new Set(envs.map((env) => env.config.account));
    assert.equal(accounts.size, 3, 'each environment has an account of its own in cdk.json');
  });

  test('context overrides one setting', () => {
    const app = new App({
      context: {
        ...cdkJsonContext(),
        version: VERSION,
        'valmetal:production:account': '444444444444',
        'valmetal:production:ingressCidrs': '198.51.100.0/24, 192.0.2.0/24',
      },
    });
    const stages = addEnvironments(app);
    assert.equal(stages.production.engine.account, '444444444444');
    assert.deepEqual(stages.production.config.ingressCidrs, ['198.51.100.0/24', '192.0.2.0/24']);
    assert.equal(stages.staging.engine.account, environments()[1].config.account);
  });

  test('synth needs no lookups', () => {
    const app = new App({ context: { ...cdkJsonContext(), version: VERSION } });
    addEnvironments(app);
    const assembly = app.synth();
    for (const name of ENVIRONMENT_NAMES) {
      const nested = assembly.getNestedAssembly(`assembly-${stageId(name)}`);
      assert.deepEqual(nested.manifest.missing ?? [], [], `${name}: synth would call AWS for context`);
      assert.equal(nested.stacks.length, 5, name);
    }
    for (const env of environments()) {
      // The VPC is created, not looked up.
      assert.equal(Object.keys(resourcesOfType(env.engine, 'AWS::EC2::VPC')).length, 1, env.name);
    }
  });

  test('every resource tagged', () => {
    for (const env of environments()) {
      const byComponent: [string, typeof env.engine][] = [
        [COMPONENTS.registry, env.registry],
        [COMPONENTS.data, env.data],
        [COMPONENTS.iot, env.iot],
        [COMPONENTS.auth, env.auth],
        [COMPONENTS.engine, env.engine],
      ];
      for (const [component, template] of byComponent) {
        for (const [id, resource] of Object.entries(allResources(template))) {
          if (UNTAGGABLE_TYPES.has(resource.Type)) {
            continue;
          }
          const tags = resource.Properties?.[TAG_PROPERTIES[resource.Type] ?? 'Tags'];
          assert.ok(tags !== undefined, `${env.name}: ${resource.Type} ${id} has no tags`);
          // Most types take a list of {Key, Value}; a few take a map.
          const values: Record<string, string> = Array.isArray(tags)
            ? Object.fromEntries(tags.map((tag: { Key: string; Value: string }) => [tag.Key, tag.Value]))
            : tags;
          const where = `${env.name}: ${resource.Type} ${id}`;
          assert.equal(values.Application, 'valmetal', where);
          assert.equal(values.Environment, env.name, where);
          assert.equal(values.Component, component, where);
          assert.equal(values.Version, VERSION, where);
        }
      }
    }
  });
});

describe('registry', () => {
  test('scan on push and immutable tags', () => {
    for (const env of environments()) {
      const repositories = env.templates.flatMap((t) => Object.values(resourcesOfType(t, 'AWS::ECR::Repository')));
      assert.equal(repositories.length, 1, `${env.name}: one repository for the one family`);
      const properties = repositories[0].Properties!;
      assert.deepEqual(properties.ImageScanningConfiguration, { ScanOnPush: true }, env.name);
      assert.equal(properties.ImageTagMutability, 'IMMUTABLE', env.name);
      assert.equal(properties.RepositoryName, `valmetal-${env.name}-engine`, env.name);
    }
  });
});

describe('data', () => {
  test('device table on demand with recovery', () => {
    for (const env of environments()) {
      const table = onlyResource(env.data, 'AWS::DynamoDB::Table');
      const properties = table.Properties!;
      assert.equal(properties.BillingMode, 'PAY_PER_REQUEST', env.name);
      assert.equal(properties.ProvisionedThroughput, undefined, env.name);
      assert.deepEqual(
        properties.PointInTimeRecoverySpecification,
        { PointInTimeRecoveryEnabled: true },
        env.name,
      );
      assert.deepEqual(properties.KeySchema, [{ AttributeName: 'device_id', KeyType: 'HASH' }], env.name);
      assert.equal(properties.DeletionProtectionEnabled, env.config.retainData, env.name);
      assert.equal(table.DeletionPolicy, env.config.retainData ? 'Retain' : 'Delete', env.name);
    }
  });

  test('timestream tables with retention', () => {
    for (const env of environments()) {
      assert.equal(env.config.timestreamLiveAnalytics, true, `${env.name}: cdk.json turns Timestream off`);
      const database = onlyResource(env.data, 'AWS::Timestream::Database').Properties!;
      const table = onlyResource(env.data, 'AWS::Timestream::Table').Properties!;
      assert.equal(table.DatabaseName, database.DatabaseName, env.name);
      assert.deepEqual(
        table.RetentionProperties,
        {
          MemoryStoreRetentionPeriodInHours: String(env.config.timestreamMemoryRetentionHours),
          MagneticStoreRetentionPeriodInDays: String(env.config.timestreamMagneticRetentionDays),
        },
        env.name,
      );
      assert.deepEqual(table.MagneticStoreWriteProperties, { EnableMagneticStoreWrites: true }, env.name);
    }
  });
});

describe('iot', () => {
  function devicePolicy(env: ReturnType<typeof environments>[number]): any {
    return onlyResource(env.iot, 'AWS::IoT::Policy').Properties!.PolicyDocument;
  }

  test('thing group exists', () => {
    for (const env of environments()) {
      const group = onlyResource(env.iot, 'AWS::IoT::ThingGroup').Properties!;
      assert.equal(group.ThingGroupName, `valmetal-${env.name}-equipment`, env.name);
    }
  });

  test('device connects only as itself', () => {
    for (const env of environments()) {
      const connect = devicePolicy(env).Statement.filter((s: any) => [s.Action].flat().includes('iot:Connect'));
      assert.equal(connect.length, 1, env.name);
      assert.equal(
        connect[0].Resource,
        `arn:aws:iot:${env.config.region}:${env.config.account}:client/${THING_NAME_VARIABLE}`,
        env.name,
      );
      assert.deepEqual(connect[0].Condition, { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } }, env.name);
    }
  });

  test('device uses only own topics', () => {
    for (const env of environments()) {
      const statements = devicePolicy(env).Statement;
      const actions = statements.flatMap((s: any) => [s.Action].flat()).sort();
      assert.deepEqual(actions, ['iot:Connect', 'iot:Publish', 'iot:Receive', 'iot:Subscribe'], env.name);
      const ownPrefix = `${env.config.topicPrefix}/${THING_NAME_VARIABLE}/`;
      for (const statement of statements) {
        assert.equal(statement.Effect, 'Allow', env.name);
        for (const resource of [statement.Resource].flat() as string[]) {
          const name = resource.split(':').slice(5).join(':').replace(/^[a-z]+\//, '');
          assert.ok(!/[*+#?]/.test(name), `${env.name}: wildcard in ${resource}`);
          if (statement.Action !== 'iot:Connect') {
            assert.ok(name.startsWith(ownPrefix), `${env.name}: ${resource} is not under the device's own id`);
          }
        }
      }
      const published = statements
        .find((s: any) => s.Action === 'iot:Publish')
        .Resource.map((r: string) => r.slice(r.indexOf(ownPrefix) + ownPrefix.length))
        .sort();
      assert.deepEqual(published, ['shadow/get', 'shadow/update', 'status', 'telemetry'], env.name);
    }
  });
});
