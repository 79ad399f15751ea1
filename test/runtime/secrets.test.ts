/**
 * Sandbox secrets: files under /run/secrets that only the function can read, that it
 * cannot change, given at creation or at specialize(), and gone with the instance.
 * Needs root, runc and the registry. Run: cd /work/main && node --import tsx --test test/runtime/secrets.test.ts
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { cleanupInstances, createRuncSandbox, instancePaths, type RuncSandbox, type SandboxOptions } from '@hearth/runtime';
import { isHearthError } from '@hearth/core';
import { uniquePrefix } from '../helpers/services.ts';
import { get, leftovers, leftoversWithPrefix, nodeCode, prefixedHome, pullBase, trackedSandbox, type PulledBase } from './fixtures.ts';

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

let home: string;
let prefix: string;
let base: PulledBase;
let code: string;
let n = 0;
const sandboxes: RuncSandbox[] = [];

function options(over: Partial<SandboxOptions> = {}): SandboxOptions {
  const id = `${prefix}-${++n}`;
  return {
    home,
    id,
    layers: [...base.layers, code],
    imageConfig: base.imageConfig,
    env: { HEARTH_HANDLER: '/function/index.js' },
    limits: { memoryMb: 128, cpu: 1 },
    logPath: path.join(home, 'logs', `${id}.log`),
    ...over,
  };
}

before(async () => {
  prefix = uniquePrefix('rt-secret');
  home = await prefixedHome(prefix);
  base = await pullBase(home, 'node');
  code = await nodeCode(home, 'fn', HANDLER);
});

after(async () => {
  await Promise.allSettled(sandboxes.map((s) => s.stop()));
  await cleanupInstances(home, `${prefix}-`);
  assert.deepEqual(await leftoversWithPrefix(home, `${prefix}-`), []);
  await fs.rm(home, { recursive: true, force: true });
});

test('the handler reads /run/secrets/KEY, cannot change the folder, and the files go with the instance', async () => {
  const s = trackedSandbox(sandboxes, options({ secrets: { DB_PASSWORD: 's3cret-value', 'tls.key': Buffer.from('-----BEGIN KEY-----\n') } }));
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
  const hostFile = path.join(instancePaths(home, s.id).secrets, 'DB_PASSWORD');
  assert.equal(await fs.readFile(hostFile, 'utf8'), 's3cret-value');
  await s.stop();
  await assert.rejects(fs.access(hostFile), { code: 'ENOENT' });
  assert.deepEqual(await leftovers(home, s.id), []);
});

test('without secrets /run/secrets is an empty folder', async () => {
  const s = trackedSandbox(sandboxes, options());
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
  const s = trackedSandbox(sandboxes, { ...options({ layers: base.layers, env: {}, stemCell: true }) });
  await s.start();
  await assert.rejects(
    s.specialize({ functionLayers: [code], env: { HEARTH_HANDLER: '/function/index.js' }, secrets: { 'bad/name': 'x' } }),
    (err) => isHearthError(err, 'INVALID_ARGUMENT') && err.message.includes('"bad/name"'),
  );
  await s.specialize({ functionLayers: [code], env: { HEARTH_HANDLER: '/function/index.js' }, secrets: { API_TOKEN: 'tok-123' } });
  const body = JSON.parse((await s.invoke(get('/', 'key=API_TOKEN'), { timeoutMs: 5000 })).body.toString());
  assert.equal(body.value, 'tok-123');
  assert.equal(body.mode, '400');
  assert.equal(body.overwrite, 'EROFS');
  await s.stop();
  assert.deepEqual(await leftovers(home, s.id), []);
});
