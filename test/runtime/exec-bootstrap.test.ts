/**
 * The exec base image (busybox + hearth-exec, no node) in a real runc container: the program
 * gets the body on stdin and the request in HTTP_* variables; stdout is the answer.
 * Run: cd /work/main && node --import tsx --test test/runtime/exec-bootstrap.test.ts
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createRuncSandbox, cleanupInstances, type Sandbox } from '@hearth/runtime';
import { baseRootfs, functionImageConfig, functionLayer, leftovers, post, scratchHome, testPrefix } from './fixtures.ts';

let home: string;
let prefix: string;
let sandbox: Sandbox;

const HANDLER = `#!/bin/sh
case "$HTTP_PATH" in
  /fail) echo "bad input: $HTTP_QUERY" >&2; exit 3 ;;
  /unshare) unshare -U true && echo "unshare worked" ;;
  /env) echo "$HTTP_METHOD $HTTP_PATH $HTTP_QUERY $HTTP_CONTENT_TYPE" ;;
  *) tr a-z A-Z ;;
esac
`;

before(async () => {
  home = await scratchHome();
  prefix = testPrefix();
  const layers = [await baseRootfs('exec'), await functionLayer(home, 'fn', { 'handler.sh': HANDLER }, 0o755)];
  sandbox = createRuncSandbox({
    home,
    id: `${prefix}exec`,
    layers,
    imageConfig: functionImageConfig('exec', 'handler.sh'),
    limits: { memoryMb: 32, cpu: 0.5 },
    logPath: path.join(home, 'logs', 'exec.log'),
  });
  await sandbox.start();
});

after(async () => {
  await sandbox?.stop();
  await cleanupInstances(home, prefix);
  await fs.rm(home, { recursive: true, force: true });
});


test('a #!/bin/sh handler running `tr a-z A-Z` echoes the body uppercased', async () => {
  const res = await sandbox.invoke(post('/', 'hello, exec world'), { timeoutMs: 5000 });
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], 'text/plain');
  assert.equal(res.body.toString(), 'HELLO, EXEC WORLD');
});

test('a body larger than a pipe buffer goes through intact', async () => {
  const body = 'abcdefghij\n'.repeat(200_000); // 2.2 MB
  const res = await sandbox.invoke(post('/', body), { timeoutMs: 10_000 });
  assert.equal(res.status, 200);
  assert.equal(res.body.length, body.length);
  assert.equal(res.body.toString(), body.toUpperCase());
});

test('the request arrives in HTTP_METHOD, HTTP_PATH, HTTP_QUERY, HTTP_CONTENT_TYPE', async () => {
  const res = await sandbox.invoke(post('/env', '', 'a=1&b=2'), { timeoutMs: 5000 });
  assert.equal(res.body.toString(), 'POST /env a=1&b=2 text/plain\n');
});

test('a non-zero exit answers 500 with the tail of stderr', async () => {
  const res = await sandbox.invoke(post('/fail', 'x', 'id=7'), { timeoutMs: 5000 });
  assert.equal(res.status, 500);
  assert.match(res.body.toString(), /exited with status 3\nbad input: id=7/);
});

test('seccomp refuses namespace calls even where no capability is needed (user namespaces)', async () => {
  const res = await sandbox.invoke(post('/unshare', ''), { timeoutMs: 5000 });
  assert.equal(res.status, 500, res.body.toString());
  assert.match(res.body.toString(), /Operation not permitted/);
});

test('stop() leaves nothing behind', async () => {
  await sandbox.stop();
  assert.deepEqual(await leftovers(home, `${prefix}exec`), []);
});
