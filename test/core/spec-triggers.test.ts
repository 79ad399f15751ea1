/**
 * hearth.yaml queue triggers: `batchSize` bounds, and errors that name the trigger field at fault.
 * Run: cd /work/main && node --import tsx --test test/core/spec-triggers.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isHearthError, parseFunctionSpecYaml, queueTriggers } from '@hearth/core';

const firstQueueTrigger = (yaml: string) => queueTriggers(parseFunctionSpecYaml(yaml))[0]!;
const withTrigger = (fields: string) => `name: fn\nruntime: node\nhandler: index.js\ntriggers:\n  - queue: orders\n${fields}`;

function rejects(yaml: string, message: RegExp): void {
  assert.throws(() => parseFunctionSpecYaml(yaml), (err: unknown) => {
    assert.ok(isHearthError(err, 'INVALID_ARGUMENT'), String(err));
    assert.match((err as Error).message, message);
    return true;
  });
}

test('batchSize is optional (one job per call) and takes whole numbers from 1 to 100', () => {
  assert.equal(firstQueueTrigger(withTrigger('')).batchSize, undefined);
  const t = firstQueueTrigger(withTrigger('    batchSize: 10\n    concurrency: 2\n'));
  assert.deepEqual(t, { queue: 'orders', attempts: 1, batchSize: 10, concurrency: 2 });
  assert.equal(firstQueueTrigger(withTrigger('    batchSize: 100\n')).batchSize, 100);
});

test('a bad trigger field is named, not just "triggers.0: Invalid input"', () => {
  rejects(withTrigger('    batchSize: 0\n'), /^hearth\.yaml: triggers\.0\.batchSize: Too small/);
  rejects(withTrigger('    batchSize: 101\n'), /^hearth\.yaml: triggers\.0\.batchSize: Too big/);
  rejects(withTrigger('    batchSize: 2.5\n'), /^hearth\.yaml: triggers\.0\.batchSize: .*expected int/);
  rejects(withTrigger('    concurrency: many\n'), /^hearth\.yaml: triggers\.0\.concurrency: .*expected number/);
  rejects('name: fn\nruntime: node\nhandler: index.js\ntriggers:\n  - cron: "*/5 * * *"\n', /^hearth\.yaml: triggers\.0\.cron: must have 5 fields/);
});
