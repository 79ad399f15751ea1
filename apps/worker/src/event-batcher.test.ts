import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventBatcher } from './event-batcher.ts';

/** A run() whose calls the test answers by hand. */
function controlledRun() {
  const calls: { items: string[]; answer: () => void; fail: (err: Error) => void }[] = [];
  const run = (items: string[]) =>
    new Promise<string[]>((resolve, reject) => {
      calls.push({ items, answer: () => resolve(items.map((i) => `done ${i}`)), fail: reject });
    });
  return { calls, run };
}

const tick = () => new Promise((r) => setImmediate(r));

test('a lone event goes out at once; events that arrive while a call is in flight go in the next call, at most `size` per call', async () => {
  const { calls, run } = controlledRun();
  const batcher = new EventBatcher(run, () => ({ size: 3, calls: 1 }));
  const first = batcher.submit('a');
  assert.deepEqual(calls.map((c) => c.items), [['a']], 'no waiting for a fuller batch');
  const rest = ['b', 'c', 'd', 'e'].map((i) => batcher.submit(i));
  assert.equal(calls.length, 1, 'one call in flight at a time');
  calls[0]!.answer();
  assert.equal(await first, 'done a');
  await tick();
  assert.deepEqual(calls.map((c) => c.items), [['a'], ['b', 'c', 'd']]);
  calls[1]!.answer();
  await tick();
  assert.deepEqual(calls[2]!.items, ['e']);
  calls[2]!.answer();
  assert.deepEqual(await Promise.all(rest), ['done b', 'done c', 'done d', 'done e'], 'each event gets its own result');
});

test('a call that throws fails the events it carried and no others', async () => {
  const { calls, run } = controlledRun();
  const batcher = new EventBatcher(run, () => ({ size: 2, calls: 1 }));
  const a = batcher.submit('a');
  const bc = [batcher.submit('b'), batcher.submit('c')];
  calls[0]!.fail(new Error('sandbox gone'));
  await assert.rejects(a, /sandbox gone/);
  await tick();
  calls[1]!.answer();
  assert.deepEqual(await Promise.all(bc), ['done b', 'done c']);
});

test('with a call in flight, a free slot takes only a full batch; a partial one waits until the calls in flight end', async () => {
  const { calls, run } = controlledRun();
  const batcher = new EventBatcher(run, () => ({ size: 3, calls: 2 }));
  const all = ['a', 'b'].map((i) => batcher.submit(i));
  assert.deepEqual(calls.map((c) => c.items), [['a']], 'b waits for company although a slot is free');
  all.push(batcher.submit('c'), batcher.submit('d'));
  assert.deepEqual(calls.map((c) => c.items), [['a'], ['b', 'c', 'd']], 'a full batch goes beside the first call');
  all.push(batcher.submit('e'));
  calls[0]!.answer();
  await tick();
  assert.equal(calls.length, 2, 'e still waits: a call is in flight');
  calls[1]!.answer();
  await tick();
  assert.deepEqual(calls[2]!.items, ['e'], 'nothing in flight: e goes alone');
  calls[2]!.answer();
  assert.equal((await Promise.all(all)).length, 5);
});

test('limits read at each dispatch apply to the next batch', async () => {
  const { calls, run } = controlledRun();
  let limits = { size: 2, calls: 2 };
  const batcher = new EventBatcher(run, () => limits);
  const all = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((i) => batcher.submit(i));
  assert.deepEqual(calls.map((c) => c.items), [['a'], ['b', 'c']]);
  limits = { size: 5, calls: 1 };
  calls[0]!.answer();
  await tick();
  assert.equal(calls.length, 2, 'one call still in flight: the new limit of 1 holds the rest');
  calls[1]!.answer();
  await tick();
  assert.deepEqual(calls[2]!.items, ['d', 'e', 'f', 'g']);
  calls[2]!.answer();
  assert.equal((await Promise.all(all)).length, 7);
});
