// Tests of the dashboard modules that need no browser: the fleet filter and the desired
// values' confirmation. They import the files the engine serves, from web/.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  ALL_FARMS,
  NO_FARM,
  compareFarmKeys,
  countByStatus,
  farmKey,
  matchesFilter,
} from '../fleet-filter.js';
import { applyDesired, desiredState, parseDesiredInput, recomputeDelta } from '../shadow.js';

function device(id, fields = {}) {
  return { id, type: 'feed_bin', name: null, farm: null, online: true, ...fields };
}

describe('fleet filter', () => {
  const bin = device('feedbin-001', { farm: 'odrc' });
  const machine = device('machine-01', { type: 'machine', farm: 'nab', online: false });
  const loose = device('e2e-valve-01', { type: 'default', name: 'North valve' });
  const statusOf = (d) => ({ online: d.online, alarmCount: d.id === 'feedbin-001' ? 1 : 0 });
  const all = { text: '', status: 'all', farm: ALL_FARMS };

  test('devices without a farm group last', () => {
    assert.equal(farmKey(loose), NO_FARM);
    const keys = [NO_FARM, 'odrc', 'nab'].sort(compareFarmKeys);
    assert.deepEqual(keys, ['nab', 'odrc', NO_FARM]);
  });

  test('search matches name, id, type and farm', () => {
    const matches = (d, text) => matchesFilter(d, statusOf(d), { ...all, text });
    assert.equal(matches(loose, 'north'), true, 'name');
    assert.equal(matches(bin, 'bin-001'), true, 'id');
    assert.equal(matches(machine, 'machine'), true, 'type');
    assert.equal(matches(machine, 'nab'), true, 'farm');
    assert.equal(matches(bin, 'nab'), false, 'another farm');
  });

  test('farm filter keeps one farm or none', () => {
    assert.equal(matchesFilter(bin, statusOf(bin), { ...all, farm: 'odrc' }), true);
    assert.equal(matchesFilter(machine, statusOf(machine), { ...all, farm: 'odrc' }), false);
    assert.equal(matchesFilter(loose, statusOf(loose), { ...all, farm: NO_FARM }), true);
    assert.equal(matchesFilter(bin, statusOf(bin), { ...all, farm: NO_FARM }), false);
  });

  test('counts follow search and farm', () => {
    const devices = [bin, machine, loose];
    assert.deepEqual(countByStatus(devices, all, statusOf), {
      total: 3,
      online: 2,
      offline: 1,
      alarm: 1,
    });
    // The status filter leaves the counts alone, because each count is for one status.
    const offline = { ...all, status: 'offline' };
    assert.equal(countByStatus(devices, offline, statusOf).total, 3);
    const farm = { ...all, farm: 'odrc' };
    assert.deepEqual(countByStatus(devices, farm, statusOf), {
      total: 1,
      online: 1,
      offline: 0,
      alarm: 1,
    });
  });
});

describe('desired values', () => {
  function shadowDevice() {
    return {
      reported: { setpoint_c: { value: 20, ts: 1000 } },
      desired: {},
      delta: {},
      confirmedAt: {},
    };
  }

  test('input parses numbers, booleans and text', () => {
    assert.equal(parseDesiredInput(' 22.5 '), 22.5);
    assert.equal(parseDesiredInput('-3e2'), -300);
    assert.equal(parseDesiredInput('true'), true);
    assert.equal(parseDesiredInput('false'), false);
    assert.equal(parseDesiredInput(' auto '), 'auto');
    assert.equal(parseDesiredInput('12abc'), '12abc');
    assert.equal(parseDesiredInput('   '), null);
  });

  test('pending until the device reports it', () => {
    const d = shadowDevice();
    applyDesired(d, { setpoint_c: { value: 22.5, ts: 5000 } }, { setpoint_c: 22.5 }, 5000);
    assert.equal(desiredState(d, 'setpoint_c'), 'pending');

    d.reported.setpoint_c = { value: 21, ts: 6000 };
    recomputeDelta(d, 6000);
    assert.equal(desiredState(d, 'setpoint_c'), 'pending', 'after another value');

    d.reported.setpoint_c = { value: 22.5, ts: 7000 };
    recomputeDelta(d, 7100);
    assert.equal(desiredState(d, 'setpoint_c'), 'confirmed');
    assert.equal(d.confirmedAt.setpoint_c, 7100, 'engine time of the confirmation');
  });

  test('confirmation lost when the value drifts', () => {
    const d = shadowDevice();
    applyDesired(d, { setpoint_c: { value: 20, ts: 5000 } }, {}, 5000);
    assert.equal(desiredState(d, 'setpoint_c'), 'confirmed');
    assert.equal(d.confirmedAt.setpoint_c, undefined, 'no time for a key never seen pending');

    d.reported.setpoint_c = { value: 19, ts: 6000 };
    recomputeDelta(d, 6000);
    assert.equal(desiredState(d, 'setpoint_c'), 'pending');
    assert.deepEqual(d.delta, { setpoint_c: 20 });
  });

  test('bare desired values are accepted', () => {
    const d = shadowDevice();
    applyDesired(d, { mode: 'auto', setpoint_c: null }, { mode: 'auto' }, 1);
    assert.deepEqual(d.desired, { mode: { value: 'auto', ts: null } });
    assert.equal(desiredState(d, 'mode'), 'pending');
    assert.equal(desiredState(d, 'setpoint_c'), null);
  });
});
