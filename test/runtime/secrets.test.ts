/**
 * Sandbox secrets: files under /run/secrets that only the function can read, that it
 * cannot change, given at creation or at specialize(), and gone with the instance.
 * Needs root, runc and the registry. Run: cd /work/main && node --import tsx --test test/runtime/secrets.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createRuncSandbox, instancePaths, type SandboxOptions } from '@hearth/runtime';
import { isHearthError } from '@hearth/core';
import { get, leftovers } from './fixtures.ts';
import { useNodeFunction } from './node-function-kit.ts';

const HANDLER = `
import fs from 'node:fs';
export default async (request) => {
  const key = new URL(request.url).searchParams.get('key');
  const file = '/run/secrets/' + key;
  const attempt = (fn) => { try { return fn(); } catch (err) { return err.code; } };
  const st = attempt(() => fs.statSync(file));
  return {
    value: attempt(() => fs.readFileSync(file, 'utf8')),
    mode: typeof st === 'string' ? st : (st.mode & 0o777).toString(8),
    ownedByMe: typeof st === 'string' ? st : st.uid === process.getuid(),
    overwrite: attempt(() => { fs.writeFileSync(file, 'changed'); return 'ok'; }),
    create: attempt(() => { fs.writeFileSync('/run/secrets/new', 'x'); return 'ok'; }),
    remove: attempt(() => { fs.unlinkSync(file); return 'ok'; }),
    list: attempt(() => fs.readdirSync('/run/secrets').sort()),
  };
};
`;

const fn = useNodeFunction({ name: 'rt-secret', handler: HANDLER });
const options = (over: Partial<SandboxOptions> = {}) => fn.options(over);

test('the handler reads /run/secrets/KEY, cannot change the folder, and the files go with the instance', async () => {
  const s = fn.sandbox({ secrets: { DB_PASSWORD: 's3cret-value', 'tls.key': Buffer.from('-----BEGIN KEY-----\n') } });
  await s.start();
  const res = await s.invoke(get('/', 'key=DB_PASSWORD'), { timeoutMs: 5000 });
  assert.deepEqual(JSON.parse(res.body.toString()), {
    value: 's3cret-value',
    mode: '400',
    ownedByMe: true,
    overwrite: 'EROFS',
    create: 'EROFS',
    remove: 'EROFS',
    list: ['DB_PASSWORD', 'tls.key'],
  });
  assert.equal(JSON.parse((await s.invoke(get('/', 'key=tls.key'), { timeoutMs: 5000 })).body.toString()).value, '-----BEGIN KEY-----\n');
  const hostFile = path.join(instancePaths(fn.home, s.id).secrets, 'DB_PASSWORD');
  assert.equal(await fs.readFile(hostFile, 'utf8'), 's3cret-value');
  await s.stop();
  await assert.rejects(fs.access(hostFile), { code: 'ENOENT' });
  assert.deepEqual(await leftovers(fn.home, s.id), []);
});

test('without secrets /run/secrets is an empty folder', async () => {
  const s = fn.sandbox();
  await s.start();
  const body = JSON.parse((await s.invoke(get('/', 'key=NONE'), { timeoutMs: 5000 })).body.toString());
  assert.equal(body.value, 'ENOENT');
  assert.deepEqual(body.list, []);
  await s.stop();
});

test('a secret name that is not a safe file name is refused, naming the key', () => {
  for (const key of ['../etc/passwd', 'a/b', '.hidden', '', 'x'.repeat(200), 'new\nline']) {
    assert.throws(
      () => createRuncSandbox(options({ secrets: { [key]: 'v' } })),
      (err) => isHearthError(err, 'INVALID_ARGUMENT') && err.message.includes(`"${key}"`),
      `key ${JSON.stringify(key)}`,
    );
  }
});

test('secrets given to specialize() appear in a running stem cell', async () => {
  const s = fn.sandbox({ layers: fn.base.layers, env: {}, stemCell: true });
  await s.start();
  await assert.rejects(
    s.specialize({ functionLayers: [fn.code], env: { HEARTH_HANDLER: '/function/index.js' }, secrets: { 'bad/name': 'x' } }),
    (err) => isHearthError(err, 'INVALID_ARGUMENT') && err.message.includes('"bad/name"'),
  );
  await s.specialize({ functionLayers: [fn.code], env: { HEARTH_HANDLER: '/function/index.js' }, secrets: { API_TOKEN: 'tok-123' } });
  const body = JSON.parse((await s.invoke(get('/', 'key=API_TOKEN'), { timeoutMs: 5000 })).body.toString());
  assert.equal(body.value, 'tok-123');
  assert.equal(body.mode, '400');
  assert.equal(body.overwrite, 'EROFS');
  await s.stop();
  assert.deepEqual(await leftovers(fn.home, s.id), []);
});
