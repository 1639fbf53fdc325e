import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { DATABASE_NAME, DATABASE_USER, POSTGRES_PORT } from '../lib/engine/database';
import { DATABASE_PASSWORD_VARIABLE } from '../lib/engine/storage';
import {
  Resource,
  SynthesizedEnvironment,
  environments,
  onlyResource,
  referencedId,
  resourcesOfType,
  subnetIds,
  synthesize,
} from './support';

function engineContainer(env: SynthesizedEnvironment): Record<string, any> {
  const definitions = onlyResource(env.engine, 'AWS::ECS::TaskDefinition').Properties!.ContainerDefinitions;
  return definitions.find((definition: any) => definition.Name === 'engine');
}

/** Returns the engine's plain environment variables by name. */
function variables(env: SynthesizedEnvironment): Record<string, any> {
  return Object.fromEntries(
    engineContainer(env).Environment.map((v: { Name: string; Value: unknown }) => [v.Name, v.Value]),
  );
}

function databaseInstance(env: SynthesizedEnvironment): { id: string; resource: Resource } {
  const instances = Object.entries(resourcesOfType(env.engine, 'AWS::RDS::DBInstance'));
  assert.equal(instances.length, 1, `${env.name}: database instances`);
  const [id, resource] = instances[0];
  return { id, resource };
}

/** Returns the logical id of the only resource of a type. */
function onlyId(env: SynthesizedEnvironment, type: string): string {
  const ids = Object.keys(resourcesOfType(env.engine, type));
  assert.equal(ids.length, 1, `${env.name}: ${type}`);
  return ids[0];
}

describe('storage settings', () => {
  test('device documents to dynamodb', () => {
    for (const env of environments()) {
      const values = variables(env);
      assert.equal(values.VALMETAL_STORAGE__SHADOWS, 'dynamodb', env.name);
      assert.equal(values.VALMETAL_STORAGE__DYNAMODB__AWS__REGION, env.config.region, env.name);
      assert.equal(values.VALMETAL_STORAGE__DYNAMODB__WRITE, 'conditional', `${env.name}: several tasks write`);
      assert.equal(values.VALMETAL_STORAGE__JOURNAL__DURABILITY, 'process', env.name);

      // The table name is the data stack's output of the table's Ref, which is its name.
      const reference = values.VALMETAL_STORAGE__DYNAMODB__TABLE['Fn::GetStackOutput'];
      assert.ok(reference, `${env.name}: the table name is not taken from the data stack`);
      assert.equal(reference.StackName, env.stage.data.stackName, env.name);
      const output = env.data.toJSON().Outputs[reference.OutputName];
      const tableId = Object.keys(resourcesOfType(env.data, 'AWS::DynamoDB::Table'))[0];
      assert.deepEqual(output?.Value, { Ref: tableId }, env.name);
    }
  });

  test('telemetry to the timestream table', () => {
    for (const env of environments()) {
      const values = variables(env);
      assert.deepEqual(JSON.parse(values.VALMETAL_STORAGE__TIMESERIES), ['timestream'], env.name);
      const table = onlyResource(env.data, 'AWS::Timestream::Table').Properties!;
      assert.equal(values.VALMETAL_STORAGE__TIMESTREAM__DATABASE, table.DatabaseName, env.name);
      assert.equal(values.VALMETAL_STORAGE__TIMESTREAM__TABLE, table.TableName, env.name);
      assert.equal(values.VALMETAL_STORAGE__TIMESTREAM__AWS__REGION, env.config.region, env.name);
      assert.equal(
        values.VALMETAL_STORAGE__TIMESTREAM__MEMORY_STORE_RETENTION,
        `${table.RetentionProperties.MemoryStoreRetentionPeriodInHours}h`,
        env.name,
      );
      assert.equal(
        values.VALMETAL_STORAGE__TIMESTREAM__MAGNETIC_STORE_WRITES,
        String(table.MagneticStoreWriteProperties.EnableMagneticStoreWrites),
        env.name,
      );
    }
  });

  test('telemetry to sql without timestream', () => {
    const disabled = synthesize({ 'valmetal:staging:timestreamLiveAnalytics': 'false' });
    const staging = disabled.find((env) => env.name === 'staging')!;
    const values = variables(staging);
    assert.deepEqual(JSON.parse(values.VALMETAL_STORAGE__TIMESERIES), ['sql']);
    const timestream = Object.keys(values).filter((name) => name.startsWith('VALMETAL_STORAGE__TIMESTREAM__'));
    assert.deepEqual(timestream, []);
    assert.equal(values.VALMETAL_STORAGE__SHADOWS, 'dynamodb');
  });

  test('database url names the instance', () => {
    for (const env of environments()) {
      const { id, resource } = databaseInstance(env);
      const url = variables(env).VALMETAL_STORAGE__DATABASE_URL;
      assert.deepEqual(
        url,
        {
          'Fn::Join': [
            '',
            [
              `postgres://${DATABASE_USER}@`,
              { 'Fn::GetAtt': [id, 'Endpoint.Address'] },
              ':',
              { 'Fn::GetAtt': [id, 'Endpoint.Port'] },
              `/${DATABASE_NAME}?sslmode=require`,
            ],
          ],
        },
        env.name,
      );
      assert.equal(resource.Properties!.DBName, DATABASE_NAME, env.name);
      assert.equal(resource.Properties!.MasterUsername, DATABASE_USER, env.name);
      assert.equal(resource.Properties!.Port, String(POSTGRES_PORT), env.name);
    }
  });

  test('password injected from secret', () => {
    for (const env of environments()) {
      const engine = engineContainer(env);
      assert.ok(
        !engine.Environment.some((v: { Name: string }) => /PASSWORD/.test(v.Name)),
        `${env.name}: a password is in the plain environment`,
      );
      const attachmentId = onlyId(env, 'AWS::SecretsManager::SecretTargetAttachment');
      assert.deepEqual(
        engine.Secrets,
        [
          {
            Name: DATABASE_PASSWORD_VARIABLE,
            ValueFrom: { 'Fn::Join': ['', [{ Ref: attachmentId }, ':password::']] },
          },
        ],
        env.name,
      );
      const attachment = resourcesOfType(env.engine, 'AWS::SecretsManager::SecretTargetAttachment')[attachmentId];
      assert.deepEqual(attachment.Properties!.TargetId, { Ref: databaseInstance(env).id }, env.name);
      const secretId = referencedId(attachment.Properties!.SecretId)!;
      const secret = resourcesOfType(env.engine, 'AWS::SecretsManager::Secret')[secretId];
      assert.equal(secret.Properties!.GenerateSecretString.GenerateStringKey, 'password', env.name);
    }
  });

  test('password safe for engine config', () => {
    // The engine reads VALMETAL_ variables with figment 0.10, which parses a value starting with
    // `[`, `{`, `"` or `'` as a list, map or quoted string, and trims spaces.
    for (const env of environments()) {
      const secret = onlyResource(env.engine, 'AWS::SecretsManager::Secret').Properties!;
      const excluded: string = secret.GenerateSecretString.ExcludeCharacters;
      for (const character of ['[', ']', '{', '}', '"', "'", ' ']) {
        assert.ok(excluded.includes(character), `${env.name}: the password may contain ${JSON.stringify(character)}`);
      }
    }
  });
});

describe('database', () => {
  test('private subnets, not public', () => {
    for (const env of environments()) {
      const properties = databaseInstance(env).resource.Properties!;
      assert.equal(properties.PubliclyAccessible, false, env.name);
      const subnetGroupId = referencedId(properties.DBSubnetGroupName)!;
      const subnetGroup = resourcesOfType(env.engine, 'AWS::RDS::DBSubnetGroup')[subnetGroupId].Properties!;
      assert.deepEqual(subnetGroup.SubnetIds.map(referencedId).sort(), subnetIds(env.engine, 'Private'), env.name);
    }
  });

  test('postgres only from the service', () => {
    for (const env of environments()) {
      const properties = databaseInstance(env).resource.Properties!;
      assert.equal(properties.VPCSecurityGroups.length, 1, env.name);
      const groupId = referencedId(properties.VPCSecurityGroups[0])!;
      const group = resourcesOfType(env.engine, 'AWS::EC2::SecurityGroup')[groupId].Properties!;
      const separate = Object.values(resourcesOfType(env.engine, 'AWS::EC2::SecurityGroupIngress'))
        .map((rule) => rule.Properties!)
        .filter((rule) => referencedId(rule.GroupId) === groupId);
      const rules = [...(group.SecurityGroupIngress ?? []), ...separate];
      assert.equal(rules.length, 1, `${env.name}: database ingress rules`);
      const [rule] = rules;
      assert.equal(rule.IpProtocol, 'tcp', env.name);
      assert.equal(rule.FromPort, POSTGRES_PORT, env.name);
      assert.equal(rule.ToPort, POSTGRES_PORT, env.name);
      assert.equal(rule.CidrIp, undefined, `${env.name}: ingress from an address range`);
      const serviceGroups = onlyResource(env.engine, 'AWS::ECS::Service').Properties!.NetworkConfiguration
        .AwsvpcConfiguration.SecurityGroups;
      assert.equal(serviceGroups.length, 1, env.name);
      assert.equal(referencedId(rule.SourceSecurityGroupId), referencedId(serviceGroups[0]), env.name);
    }
  });

  test('sized and backed up per environment', () => {
    for (const env of environments()) {
      const properties = databaseInstance(env).resource.Properties!;
      assert.equal(properties.Engine, 'postgres', env.name);
      assert.equal(properties.DBInstanceClass, `db.${env.config.databaseInstanceType}`, env.name);
      assert.equal(properties.AllocatedStorage, String(env.config.databaseStorageGiB), env.name);
      assert.equal(properties.StorageType, 'gp3', env.name);
      assert.equal(properties.StorageEncrypted, true, env.name);
      assert.equal(properties.MultiAZ, env.config.databaseMultiAz, env.name);
      assert.equal(properties.BackupRetentionPeriod, env.config.databaseBackupRetentionDays, env.name);
      assert.ok(properties.BackupRetentionPeriod >= 1, `${env.name}: automated backups are off`);
    }
  });

  test('retained with retainData', () => {
    for (const env of environments()) {
      const { resource } = databaseInstance(env);
      const policy = env.config.retainData ? 'Retain' : 'Delete';
      assert.equal(resource.Properties!.DeletionProtection, env.config.retainData, env.name);
      assert.equal(resource.DeletionPolicy, policy, env.name);
      const secret = onlyResource(env.engine, 'AWS::SecretsManager::Secret');
      assert.equal(secret.DeletionPolicy, policy, `${env.name}: the secret outlives or dies with the database`);
    }
  });
});
