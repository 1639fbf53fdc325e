import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { readEnvironmentConfig, validateVersion } from '../lib/config';
import { cdkJsonContext } from './support';

/** Builds a context reader from `cdk.json` with one environment's entries changed. */
function contextWith(changes: Record<string, unknown>, flags: Record<string, unknown> = {}) {
  const context = structuredClone(cdkJsonContext()) as any;
  Object.assign(context.valmetal.environments.staging, changes);
  Object.assign(context, flags);
  return (key: string) => context[key];
}

describe('settings', () => {
  test('cdk.json settings are valid', () => {
    for (const name of ['development', 'staging', 'production'] as const) {
      const config = readEnvironmentConfig(name, contextWith({}));
      assert.equal(config.name, name);
      assert.match(config.account, /^\d{12}$/);
    }
  });

  test('invalid values listed together', () => {
    const read = contextWith({
      account: '1234',
      certificateArn: 'arn:aws:acm:us-east-1:222222222222:certificate/abc',
      ingressCidrs: ['0.0.0.0/33'],
      topicPrefix: 'valmetal/+/equipment',
      minTasks: 3,
      maxTasks: 2,
      logRetentionDays: 8,
    });
    assert.throws(
      () => readEnvironmentConfig('staging', read),
      (error: Error) => {
        for (const part of [
          'staging.account must be a 12-digit AWS account id',
          'the load balancer needs one in eu-west-1',
          '"0.0.0.0/33" is not an IPv4 CIDR block',
          'contains a wildcard',
          'staging.maxTasks must be an integer of at least minTasks (3)',
          'staging.logRetentionDays must be one of',
        ]) {
          assert.ok(error.message.includes(part), `missing "${part}" in:\n${error.message}`);
        }
        return true;
      },
    );
  });

  test('missing value names the flag', () => {
    const context = structuredClone(cdkJsonContext()) as any;
    delete context.valmetal.environments.staging.certificateArn;
    assert.throws(
      () => readEnvironmentConfig('staging', (key) => context[key]),
      /staging\.certificateArn is missing; set it in cdk\.json or with -c valmetal:staging:certificateArn=VALUE/,
    );
  });

  test('flag values converted to field types', () => {
    const read = contextWith(
      {},
      {
        'valmetal:staging:maxTasks': '5',
        'valmetal:staging:retainData': 'true',
        'valmetal:staging:availabilityZones': 'eu-west-1a,eu-west-1c',
      },
    );
    const config = readEnvironmentConfig('staging', read);
    assert.equal(config.maxTasks, 5);
    assert.equal(config.retainData, true);
    assert.deepEqual(config.availabilityZones, ['eu-west-1a', 'eu-west-1c']);
    assert.throws(
      () => readEnvironmentConfig('staging', contextWith({}, { 'valmetal:staging:retainData': 'yes' })),
      /staging\.retainData must be a boolean, got "yes"/,
    );
  });

  test('latest agent image rejected', () => {
    const read = contextWith({ cloudwatchAgentImage: 'public.ecr.aws/cloudwatch-agent/cloudwatch-agent:latest' });
    assert.throws(() => readEnvironmentConfig('staging', read), /cloudwatchAgentImage must name an image/);
  });

  test('database settings checked', () => {
    const read = contextWith({
      databaseInstanceType: 'db.t4g.micro',
      databaseStorageGiB: 10,
      databaseBackupRetentionDays: 0,
    });
    assert.throws(
      () => readEnvironmentConfig('staging', read),
      (error: Error) => {
        for (const part of [
          'staging.databaseInstanceType must be given without the "db." prefix',
          'staging.databaseStorageGiB must be 20 to 65536 GiB',
          'staging.databaseBackupRetentionDays must be 1 to 35 days',
        ]) {
          assert.ok(error.message.includes(part), `missing "${part}" in:\n${error.message}`);
        }
        return true;
      },
    );
    assert.throws(
      () => readEnvironmentConfig('staging', contextWith({ databaseInstanceType: 'large' })),
      /staging\.databaseInstanceType is not an instance class such as "t4g\.micro": "large"/,
    );
    const flags = contextWith({}, { 'valmetal:staging:databaseMultiAz': 'true', 'valmetal:staging:databaseStorageGiB': '100' });
    const config = readEnvironmentConfig('staging', flags);
    assert.equal(config.databaseMultiAz, true);
    assert.equal(config.databaseStorageGiB, 100);
  });

  test('dashboard domain checked', () => {
    const config = readEnvironmentConfig('staging', contextWith({ dashboardDomain: 'dashboard.farm-7.example.com' }));
    assert.equal(config.dashboardDomain, 'dashboard.farm-7.example.com');
    for (const value of [
      '',
      'localhost',
      'https://valmetal.example.com',
      'valmetal.example.com/',
      'valmetal.example.com:443',
      'Valmetal.example.com',
      '*.example.com',
      '-valmetal.example.com',
      'valmetal..example.com',
    ]) {
      assert.throws(
        () => readEnvironmentConfig('staging', contextWith({ dashboardDomain: value })),
        /staging\.dashboardDomain is not a lowercase DNS name such as valmetal\.example\.com/,
        JSON.stringify(value),
      );
    }
  });

  test('zones must belong to region', () => {
    const read = contextWith({ availabilityZones: ['eu-west-1a', 'eu-central-1b'] });
    assert.throws(() => readEnvironmentConfig('staging', read), /"eu-central-1b" is not a zone of eu-west-1/);
  });
});

describe('version', () => {
  test('full sha accepted', () => {
    assert.equal(validateVersion('0123456789abcdef0123456789abcdef01234567'), '0123456789abcdef0123456789abcdef01234567');
  });

  test('short or missing sha rejected', () => {
    for (const value of [undefined, '', 'abc1234', 'main', '0123456789ABCDEF0123456789ABCDEF01234567']) {
      assert.throws(() => validateVersion(value), /full 40-character lowercase git commit SHA/, String(value));
    }
  });
});
