/**
 * hearth.yaml fields `pids` and `egress`: defaults, bounds, and egress refused with isolation: vm.
 * Run: cd /work/main && node --import tsx --test test/core/spec-limits.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isHearthError, parseFunctionSpecYaml } from '@hearth/core';

const base = 'name: fn\nruntime: node\nhandler: index.js\n';

/** Parsing `yaml` fails with INVALID_ARGUMENT whose message matches `message`. */
function rejects(yaml: string, message: RegExp): void {
  assert.throws(() => parseFunctionSpecYaml(base + yaml), (err: unknown) => {
    assert.ok(isHearthError(err, 'INVALID_ARGUMENT'), String(err));
    assert.match((err as Error).message, message);
    return true;
  });
}

test('pids defaults to 128 and egress to false (loopback only)', () => {
  const spec = parseFunctionSpecYaml(base);
  assert.equal(spec.pids, 128);
  assert.equal(spec.egress, false);
});

test('pids takes whole numbers from 8 to 32768 and names the field otherwise', () => {
  assert.equal(parseFunctionSpecYaml(`${base}pids: 8\n`).pids, 8);
  assert.equal(parseFunctionSpecYaml(`${base}pids: 32768\n`).pids, 32768);
  rejects('pids: 7\n', /^hearth\.yaml: pids: /);
  rejects('pids: 32769\n', /^hearth\.yaml: pids: /);
  rejects('pids: 12.5\n', /^hearth\.yaml: pids: /);
  rejects('pids: lots\n', /^hearth\.yaml: pids: /);
});

test('egress: true is accepted with containers and refused with isolation: vm, naming what to use', () => {
  assert.equal(parseFunctionSpecYaml(`${base}egress: true\n`).egress, true);
  assert.equal(parseFunctionSpecYaml(`${base}egress: true\nisolation: container\n`).egress, true);
  assert.equal(parseFunctionSpecYaml(`${base}egress: false\nisolation: vm\n`).egress, false);
  rejects('egress: true\nisolation: vm\n', /^hearth\.yaml: egress: .*isolation: container/);
  rejects('egress: yes please\n', /^hearth\.yaml: egress: /);
});
