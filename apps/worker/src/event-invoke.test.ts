import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { InvokeResult } from '@hearth/core';
import { batchAnswers, eventAnswer } from './event-invoke.ts';

const answered = (status: number, body: unknown, contentType = 'application/json'): InvokeResult => ({
  status,
  headers: { 'content-type': contentType },
  bodyBase64: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)).toString('base64'),
  cold: false,
  start: 'warm',
  durationMs: 3,
});
const ids = ['1', '2', '3'];

test('one event: a 2xx body is the return value (JSON parsed), anything else a failed attempt naming the status', () => {
  assert.deepEqual(eventAnswer('f', answered(200, { ok: 1 })), { ok: true, returnValue: { ok: 1 }, httpStatus: 200, durationMs: 3 });
  const failed = eventAnswer('f', answered(503, { error: 'db down' }));
  assert.equal(failed.ok, false);
  assert.equal(!failed.ok && failed.message, 'function "f" answered 503: db down');
});

test('a batch answered with one entry per event gives each event its entry', () => {
  const answers = batchAnswers('f', answered(200, [{ n: 1 }, 'two', null]), ids);
  assert.deepEqual(answers.map((a) => a.ok && a.returnValue), [{ n: 1 }, 'two', null]);
});

test('batchItemFailures fails the events it names, with their message, and completes the rest', () => {
  const answers = batchAnswers('f', answered(200, { batchItemFailures: [{ itemIdentifier: '2', message: 'card declined' }, { itemIdentifier: '3' }] }), ids);
  assert.deepEqual(answers.map((a) => (a.ok ? ['ok', a.returnValue] : ['failed', a.message])), [
    ['ok', null],
    ['failed', 'card declined'],
    ['failed', 'function "f" reported event 3 as failed'],
  ]);
});

test('an answer that does not fit the batch fails every event, saying what was expected', () => {
  const short = batchAnswers('f', answered(200, [1, 2]), ids);
  assert.ok(short.every((a) => !a.ok && /answered a batch of 3 events with an array of 2 results: return one result per event/.test(a.message)));
  const stranger = batchAnswers('f', answered(200, { batchItemFailures: [{ itemIdentifier: '9' }] }), ids);
  assert.ok(stranger.every((a) => !a.ok && /a failure of "9", which is not an event id of its batch/.test(a.message)));
  const noId = batchAnswers('f', answered(200, { batchItemFailures: [{}] }), ids);
  assert.ok(noId.every((a) => !a.ok && /a failure of null/.test(a.message)));
});

test('a failed call fails every event of its batch; any other 2xx body is every event\'s return value', () => {
  const crashed = batchAnswers('f', answered(500, { error: 'boom' }), ids);
  assert.deepEqual(crashed.map((a) => !a.ok && a.message), Array(3).fill('function "f" answered 500: boom'));
  const plain = batchAnswers('f', answered(200, 'all stored', 'text/plain'), ids);
  assert.deepEqual(plain.map((a) => a.ok && a.returnValue), Array(3).fill('all stored'));
});
