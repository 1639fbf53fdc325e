import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { DEVICE_STATE_ACTIONS } from '../lib/engine/permissions';
import { engineClientIdPrefix } from '../lib/naming';
import { SHADOW_REPLIES } from '../lib/topics';
import {
  Statement,
  SynthesizedEnvironment,
  environments,
  iamStatements,
  onlyResource,
  referencedId,
  resourcesOfType,
  synthesize,
} from './support';

/** Actions whose APIs support no resource-level permissions, so AWS requires `"Resource": "*"`. */
const ACTIONS_REQUIRING_ANY_RESOURCE = new Set(['ecr:GetAuthorizationToken', 'timestream:DescribeEndpoints']);

/** Sorts ARNs, because CDK orders the resources of a statement its own way. */
function sorted(values: unknown[]): unknown[] {
  return [...values].sort();
}

function roleIds(env: SynthesizedEnvironment): { task: string; execution: string } {
  const properties = onlyResource(env.engine, 'AWS::ECS::TaskDefinition').Properties!;
  return {
    task: referencedId(properties.TaskRoleArn)!,
    execution: referencedId(properties.ExecutionRoleArn)!,
  };
}

function taskRoleStatements(env: SynthesizedEnvironment): Statement[] {
  const { task } = roleIds(env);
  return iamStatements(env.engine).filter((s) => s.roles.includes(task));
}

function statementsWithAction(env: SynthesizedEnvironment, action: string): Statement[] {
  return taskRoleStatements(env).filter((s) => s.actions.includes(action));
}

describe('task role', () => {
  test('separate from execution role', () => {
    for (const env of environments()) {
      const { task, execution } = roleIds(env);
      assert.ok(task, `${env.name}: no task role`);
      assert.ok(execution, `${env.name}: no execution role`);
      assert.notEqual(task, execution, env.name);
      const executionStatements = iamStatements(env.engine).filter((s) => s.roles.includes(execution));
      for (const statement of executionStatements) {
        for (const action of statement.actions) {
          assert.match(action, /^(ecr|logs|secretsmanager):/, `${env.name}: execution role has ${action}`);
        }
      }
      // The execution role reads the one secret that ECS injects into the engine container.
      const secretStatements = executionStatements.filter((s) => s.actions.some((a) => a.startsWith('secretsmanager:')));
      assert.equal(secretStatements.length, 1, env.name);
      assert.deepEqual(
        [...secretStatements[0].actions].sort(),
        ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'],
        env.name,
      );
      const attachment = Object.keys(resourcesOfType(env.engine, 'AWS::SecretsManager::SecretTargetAttachment'));
      assert.equal(attachment.length, 1, env.name);
      assert.deepEqual(secretStatements[0].resources, [{ Ref: attachment[0] }], env.name);
      const taskActions = taskRoleStatements(env).flatMap((s) => s.actions);
      assert.ok(!taskActions.some((a) => a.startsWith('ecr:')), `${env.name}: task role can pull images`);
      assert.ok(!taskActions.some((a) => a.startsWith('secretsmanager:')), `${env.name}: task role can read secrets`);
    }
  });

  test('one task role per family', () => {
    for (const env of environments()) {
      const roles = resourcesOfType(env.engine, 'AWS::IAM::Role');
      const taskRoles = Object.values(roles).filter((role) =>
        JSON.stringify(role.Properties!.AssumeRolePolicyDocument).includes('ecs-tasks.amazonaws.com'),
      );
      assert.equal(taskRoles.length, 2, `${env.name}: expected the task and the execution role`);
    }
  });

  test('iot connect on engine client ids', () => {
    for (const env of environments()) {
      const [statement, ...others] = statementsWithAction(env, 'iot:Connect');
      assert.equal(others.length, 0, env.name);
      assert.deepEqual(statement.actions, ['iot:Connect'], env.name);
      const { region, account } = env.config;
      assert.deepEqual(statement.resources, [
        `arn:aws:iot:${region}:${account}:client/${engineClientIdPrefix(env.name)}*`,
      ]);
    }
  });

  test('iot subscribe on two topic filters', () => {
    for (const env of environments()) {
      const [statement, ...others] = statementsWithAction(env, 'iot:Subscribe');
      assert.equal(others.length, 0, env.name);
      assert.deepEqual(statement.actions, ['iot:Subscribe'], env.name);
      const base = `arn:aws:iot:${env.config.region}:${env.config.account}:topicfilter/${env.config.topicPrefix}`;
      assert.deepEqual(sorted(statement.resources), sorted([`${base}/+/telemetry`, `${base}/+/status`]), env.name);
    }
  });

  test('iot receive on equipment topics', () => {
    for (const env of environments()) {
      const [statement, ...others] = statementsWithAction(env, 'iot:Receive');
      assert.equal(others.length, 0, env.name);
      assert.deepEqual(statement.actions, ['iot:Receive'], env.name);
      const base = `arn:aws:iot:${env.config.region}:${env.config.account}:topic/${env.config.topicPrefix}`;
      assert.deepEqual(sorted(statement.resources), sorted([`${base}/*/telemetry`, `${base}/*/status`]), env.name);
    }
  });

  test('iot publish on shadow replies', () => {
    for (const env of environments()) {
      const [statement, ...others] = statementsWithAction(env, 'iot:Publish');
      assert.equal(others.length, 0, env.name);
      assert.deepEqual(statement.actions, ['iot:Publish'], env.name);
      const base = `arn:aws:iot:${env.config.region}:${env.config.account}:topic/${env.config.topicPrefix}`;
      assert.deepEqual(
        sorted(statement.resources),
        sorted(SHADOW_REPLIES.map((reply) => `${base}/*/${reply}`)),
        env.name,
      );
      for (const resource of statement.resources as string[]) {
        assert.match(resource, /\/shadow\/(update|get)\/(accepted|rejected|delta|documents)$/, env.name);
      }
    }
  });

  test('timestream write only on table', () => {
    for (const env of environments()) {
      const [write, ...others] = statementsWithAction(env, 'timestream:WriteRecords');
      assert.equal(others.length, 0, env.name);
      assert.deepEqual(write.actions, ['timestream:WriteRecords'], env.name);
      assert.equal(write.resources.length, 1, env.name);
      assert.match(JSON.stringify(write.resources[0]), /TelemetryTable/, `${env.name}: not the telemetry table`);
      const [describe, ...moreDescribes] = statementsWithAction(env, 'timestream:DescribeEndpoints');
      assert.equal(moreDescribes.length, 0, env.name);
      assert.deepEqual(describe.actions, ['timestream:DescribeEndpoints'], env.name);
      assert.deepEqual(describe.resources, ['*'], env.name);
    }
  });

  test('no timestream grants when disabled', () => {
    const disabled = synthesize({ 'valmetal:staging:timestreamLiveAnalytics': 'false' });
    const staging = disabled.find((env) => env.name === 'staging')!;
    assert.equal(staging.config.timestreamLiveAnalytics, false);
    assert.deepEqual(Object.keys(resourcesOfType(staging.data, 'AWS::Timestream::Database')), []);
    assert.deepEqual(Object.keys(resourcesOfType(staging.data, 'AWS::Timestream::Table')), []);
    const actions = iamStatements(staging.engine).flatMap((s) => s.actions);
    assert.ok(!actions.some((a) => a.startsWith('timestream:')), 'timestream actions remain');
    const production = disabled.find((env) => env.name === 'production')!;
    assert.equal(Object.keys(resourcesOfType(production.data, 'AWS::Timestream::Table')).length, 1);
  });

  test('dynamodb shadow store actions', () => {
    for (const env of environments()) {
      const statements = taskRoleStatements(env).filter((s) => s.actions.some((a) => a.startsWith('dynamodb:')));
      assert.equal(statements.length, 1, env.name);
      const [statement] = statements;
      assert.deepEqual([...statement.actions].sort(), [...DEVICE_STATE_ACTIONS].sort(), env.name);
      assert.deepEqual(
        [...statement.actions].sort(),
        ['dynamodb:BatchWriteItem', 'dynamodb:PutItem', 'dynamodb:Scan'],
        `${env.name}: the engine writes with PutItem or BatchWriteItem and restores with Scan`,
      );
      for (const action of ['dynamodb:CreateTable', 'dynamodb:DescribeTable', 'dynamodb:DeleteTable']) {
        assert.ok(!statement.actions.includes(action), `${env.name}: ${action} is for create_tables only`);
      }
      assert.equal(statement.resources.length, 1, env.name);
      assert.match(JSON.stringify(statement.resources[0]), /DeviceStateTable/, env.name);
    }
  });
});

describe('all policies', () => {
  test('no wildcard beyond api needs', () => {
    for (const env of environments()) {
      for (const template of env.templates) {
        for (const statement of iamStatements(template)) {
          for (const action of statement.actions) {
            assert.ok(!action.includes('*'), `${env.name}: ${statement.holder} grants ${action}`);
          }
          if (statement.resources.includes('*')) {
            for (const action of statement.actions) {
              assert.ok(
                ACTIONS_REQUIRING_ANY_RESOURCE.has(action),
                `${env.name}: ${statement.holder} grants ${action} on every resource`,
              );
            }
          }
          assert.equal(statement.raw.Effect, 'Allow', env.name);
          assert.equal(statement.raw.NotAction, undefined, `${env.name}: ${statement.holder} uses NotAction`);
          assert.equal(statement.raw.NotResource, undefined, `${env.name}: ${statement.holder} uses NotResource`);
        }
        const managed = Object.values(resourcesOfType(template, 'AWS::IAM::Role')).flatMap(
          (role) => role.Properties!.ManagedPolicyArns ?? [],
        );
        assert.deepEqual(managed, [], `${env.name}: roles with AWS managed policies`);
      }
    }
  });
});
