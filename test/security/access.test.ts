// Access control against the real gateway, worker, Postgres and registry: API keys on the
// management API, the local admin key the CLI finds by itself, private functions, and
// secrets that are stored sealed and never shown.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { eq } from 'drizzle-orm';
import { RegistryClient, parseReference } from '@hearth/oci';
import { schema } from '@hearth/core/db';
import { SecretBox, loadSecretBox, secretContext, isHearthError } from '@hearth/core';
import { readSecrets } from '../../apps/worker/src/secret-reader.ts';
import { createTestDatabase, testEnv, uniquePrefix, type TestDatabase } from '../helpers/services.ts';
import { REPO_ROOT, runCli, startStack, type TestStack } from '../helpers/stack.ts';

const prefix = uniquePrefix('access');
const fnName = `${prefix}-pub`;
const privateName = `${prefix}-priv`;
const SECRET_TEXT = `s3cr3t-${crypto.randomBytes(12).toString('hex')}`;
const SECRET_FILE_BYTES = Buffer.concat([Buffer.from('-----BEGIN KEY-----\n'), crypto.randomBytes(64), Buffer.from('\n')]);

let db: TestDatabase;
let stack: TestStack;
let workdir: string;
let pushedRef: string | undefined;

before(async () => {
  db = await createTestDatabase(prefix.replaceAll('-', '_'));
  stack = await startStack({ prefix, databaseUrl: db.url });
  workdir = await fs.mkdtemp(path.join(os.tmpdir(), `${prefix}-src-`));
  const dir = path.join(workdir, fnName);
  await fs.cp(path.join(REPO_ROOT, 'test/fixtures/functions/echo'), dir, { recursive: true });
  const yaml = await fs.readFile(path.join(dir, 'hearth.yaml'), 'utf8');
  await fs.writeFile(path.join(dir, 'hearth.yaml'), yaml.replace('name: echo', `name: ${fnName}`));
});

after(async () => {
  if (process.env.HEARTH_TEST_DEBUG) console.log(stack?.gateway.output(), stack?.worker.output());
  await stack?.stopApps();
  if (pushedRef) {
    const ref = parseReference(pushedRef);
    await new RegistryClient({ registry: ref.registry, insecure: true }).deleteManifest(ref.repository, ref.digest!).catch(() => {});
  }
  await db?.drop();
  if (stack) await fs.rm(stack.home, { recursive: true, force: true });
  if (workdir) await fs.rm(workdir, { recursive: true, force: true });
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const jsonOf = (res: Response): Promise<any> => res.json();
/** A gateway request with the admin key, another key, or (null) none. */
const api = (p: string, init: RequestInit = {}, key: string | null = stack.apiKey) =>
  fetch(`${stack.gatewayUrl}${p}`, { ...init, headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(init.headers as Record<string, string> | undefined) } });
/** The CLI as a user on this machine runs it: no flags, no login, the stack's HEARTH_HOME. */
const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(args, { cwd: workdir, env: { ...stack.env, HEARTH_REGISTRY: testEnv().registry, ...env } });

test('the management API answers 401 without a key, with a hint; the local admin key gets in; /healthz stays open', async () => {
  const none = await api('/system/functions', {}, null);
  assert.equal(none.status, 401);
  assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
  const body = await jsonOf(none);
  assert.equal(body.code, 'UNAUTHENTICATED');
  assert.match(body.error, /Authorization: Bearer/);
  assert.match(body.error, /hearth keys create/);
  assert.ok(body.error.includes(path.join(stack.home, 'admin.key')), body.error);

  for (const [p, init] of [['/calls', {}], ['/calls/nope', {}], ['/queues/q', { method: 'POST', body: '{}' }], ['/system/keys', {}]] as const) {
    assert.equal((await api(p, init, null)).status, 401, `${p} without a key`);
  }

  const wrong = await api('/system/functions', {}, `hk_000000000000_${'A'.repeat(43)}`);
  assert.equal(wrong.status, 401);
  assert.match((await jsonOf(wrong)).error, /invalid API key/);
  assert.equal((await api('/system/functions', {}, 'not-even-a-key')).status, 401);

  const ok = await api('/system/functions');
  assert.equal(ok.status, 200);
  assert.deepEqual(await jsonOf(ok), []);
  assert.equal((await fetch(`${stack.gatewayUrl}/healthz`)).status, 200);
  assert.notEqual((await fetch(`${stack.gatewayUrl}/metrics`)).status, 401, '/metrics is open to a scraper on loopback');

  const mode = (await fs.stat(path.join(stack.home, 'admin.key'))).mode & 0o777;
  assert.equal(mode, 0o600);
  const [row] = await db.db.select().from(schema.apiKeys);
  assert.ok(row && !JSON.stringify(row).includes(stack.apiKey), 'the plain key is not stored');
});

test('the CLI works with no flags on the same HEARTH_HOME (deploy, ls); elsewhere it exits 5 with a hint', async () => {
  const deploy = await cli(['deploy', fnName]);
  assert.equal(deploy.code, 0, deploy.stderr);
  pushedRef = deploy.stdout.split('\n').map((l) => l.trim()).find((l) => /@sha256:[a-f0-9]{64}$/.test(l));
  assert.ok(pushedRef, deploy.stdout);
  const ls = await cli(['ls']);
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, new RegExp(fnName));

  const otherHome = await fs.mkdtemp(path.join(os.tmpdir(), `${prefix}-nokey-`));
  try {
    const denied = await cli(['ls'], { HEARTH_HOME: otherHome });
    assert.equal(denied.code, 5, denied.stderr);
    assert.match(denied.stderr, /missing API key/);
    assert.match(denied.stderr, /hearth login/);
  } finally {
    await fs.rm(otherHome, { recursive: true, force: true });
  }
});

test('`hearth keys create` makes a key that works; `keys ls` never shows it; `keys revoke` makes it 401', async () => {
  const created = await cli(['keys', 'create', '--name', `${prefix}-ci`]);
  assert.equal(created.code, 0, created.stderr);
  const key = created.stdout.trim();
  assert.match(key, /^hk_[a-f0-9]{12}_[A-Za-z0-9_-]{43}$/);
  assert.equal((await api('/system/functions', {}, key)).status, 200);
  const who = await jsonOf(await api('/system/whoami', {}, key));
  assert.equal(who.name, `${prefix}-ci`);

  const ls = await cli(['keys', 'ls']);
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, new RegExp(`${who.id}.*${prefix}-ci.*active`));
  assert.ok(!ls.stdout.includes(key) && !ls.stdout.includes(stack.apiKey), 'keys ls shows no key');
  const listed = await jsonOf(await api('/system/keys'));
  assert.ok(!JSON.stringify(listed).includes(key));

  // `hearth login` saves it for a CLI that has no admin key at hand.
  const otherHome = await fs.mkdtemp(path.join(os.tmpdir(), `${prefix}-login-`));
  const configFile = path.join(otherHome, 'config.json');
  try {
    const env = { HEARTH_HOME: otherHome, HEARTH_CONFIG: configFile };
    const badLogin = await cli(['login', '--key', `hk_000000000000_${'B'.repeat(43)}`], env);
    assert.equal(badLogin.code, 5, badLogin.stderr);
    await assert.rejects(fs.stat(configFile), 'a refused key is not saved');
    const login = await cli(['login', '--key', key], env);
    assert.equal(login.code, 0, login.stderr);
    assert.equal((await fs.stat(configFile)).mode & 0o777, 0o600);
    const ls2 = await cli(['ls'], env);
    assert.equal(ls2.code, 0, ls2.stderr);
    assert.match(ls2.stdout, new RegExp(fnName));

    const revoke = await cli(['keys', 'revoke', who.id]);
    assert.equal(revoke.code, 0, revoke.stderr);
    const after = await api('/system/functions', {}, key);
    assert.equal(after.status, 401);
    assert.match((await jsonOf(after)).error, /invalid API key/);
    const ls3 = await cli(['ls'], env);
    assert.equal(ls3.code, 5);
    assert.match(ls3.stderr, /invalid API key.*config file/);
  } finally {
    await fs.rm(otherHome, { recursive: true, force: true });
  }
  assert.equal((await api('/system/functions')).status, 200, 'the admin key still works');
});

test('a function with `auth: key` needs a key on /function and /async-function (which the handler never sees); a public one needs none', async () => {
  assert.ok(pushedRef, 'deployed by the CLI test');
  const spec = { name: privateName, runtime: 'node', handler: 'index.js', memoryMb: 128, timeoutMs: 5000, auth: 'key' };
  const put = await api(`/system/functions/${privateName}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: pushedRef, spec }) });
  assert.equal(put.status, 201, await put.clone().text());

  const anonymous = await fetch(`${stack.gatewayUrl}/function/${privateName}/x`);
  assert.equal(anonymous.status, 401);
  assert.match((await jsonOf(anonymous)).error, /missing API key/);
  assert.equal((await fetch(`${stack.gatewayUrl}/async-function/${privateName}`, { method: 'POST' })).status, 401);
  assert.equal((await api(`/function/${privateName}`, {}, `hk_000000000000_${'C'.repeat(43)}`)).status, 401);

  const keyed = await api(`/function/${privateName}/x`, { method: 'POST', body: 'hi' });
  assert.equal(keyed.status, 200);
  const seen = await jsonOf(keyed);
  assert.equal(seen.body, 'hi');
  assert.equal(seen.headers.authorization, undefined, 'the key is taken off before the handler');

  const viaCli = await cli(['invoke', privateName, '--data', 'from-cli']);
  assert.equal(viaCli.code, 0, viaCli.stderr);
  assert.equal(JSON.parse(viaCli.stdout).body, 'from-cli');
  assert.equal(JSON.parse(viaCli.stdout).headers.authorization, undefined);

  const pub = await fetch(`${stack.gatewayUrl}/function/${fnName}`, { headers: { authorization: 'Bearer the-functions-own-token' } });
  assert.equal(pub.status, 200);
  assert.equal((await jsonOf(pub)).headers.authorization, 'Bearer the-functions-own-token', "a public function gets the caller's header");
  const pubCli = await cli(['invoke', fnName]);
  assert.equal(pubCli.code, 0, pubCli.stderr);
  assert.equal(JSON.parse(pubCli.stdout).headers.authorization, undefined, 'the CLI does not send its key to a public function');
});

test('secrets: set and ls never show values (API, CLI, logs), Postgres holds them sealed, the worker reads them back, rm and function delete remove them', async () => {
  const secretFile = path.join(workdir, 'tls.key');
  await fs.writeFile(secretFile, SECRET_FILE_BYTES);
  const set = await cli(['secrets', 'set', fnName, `API_TOKEN=${SECRET_TEXT}`, `tls.key=@${secretFile}`]);
  assert.equal(set.code, 0, set.stderr);
  assert.match(set.stdout, /API_TOKEN/);
  const ls = await cli(['secrets', 'ls', fnName]);
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, /API_TOKEN/);
  assert.match(ls.stdout, /tls\.key/);

  const listed = await api(`/system/functions/${fnName}/secrets`);
  assert.equal(listed.status, 200);
  const listedText = await listed.text();
  assert.deepEqual(JSON.parse(listedText).map((s: { key: string }) => s.key), ['API_TOKEN', 'tls.key']);
  const shown = [set.stdout, set.stderr, ls.stdout, ls.stderr, listedText, JSON.stringify(await jsonOf(await api(`/system/functions/${fnName}`)))].join('\n');
  assert.ok(!shown.includes(SECRET_TEXT), 'no value in what the API and CLI show');

  // Bad input is refused naming the key, never echoing the value.
  const badName = await api(`/system/functions/${fnName}/secrets`, { method: 'PUT', body: JSON.stringify({ '../etc': SECRET_TEXT }) });
  assert.equal(badName.status, 400);
  const tooBig = await api(`/system/functions/${fnName}/secrets`, { method: 'PUT', body: JSON.stringify({ BIG: SECRET_TEXT + 'x'.repeat(64 * 1024) }) });
  assert.equal(tooBig.status, 413);
  const errors = `${await badName.text()}${await tooBig.text()}`;
  assert.match(errors, /BIG/);
  assert.ok(!errors.includes(SECRET_TEXT));
  assert.equal((await api(`/system/functions/${fnName}/secrets`, { method: 'PUT', body: JSON.stringify({ A: SECRET_TEXT }) }, null)).status, 401);

  const rows = await db.db.select().from(schema.secrets).where(eq(schema.secrets.functionName, fnName));
  assert.equal(rows.length, 2);
  for (const row of rows) {
    const raw = Buffer.from(row.sealed, 'base64');
    assert.ok(!row.sealed.includes(SECRET_TEXT) && !raw.includes(Buffer.from(SECRET_TEXT)) && !raw.includes(SECRET_FILE_BYTES.subarray(20, 84)), `${row.key} is sealed`);
  }

  // What the worker mounts at /run/secrets, with the key the gateway made in the shared home.
  const opened = await readSecrets(db.db, fnName, await loadSecretBox(stack.home, {}));
  assert.deepEqual(Object.keys(opened).sort(), ['API_TOKEN', 'tls.key']);
  assert.equal(opened.API_TOKEN!.toString('utf8'), SECRET_TEXT);
  assert.deepEqual(opened['tls.key'], SECRET_FILE_BYTES);
  assert.equal((await fs.stat(path.join(stack.home, 'secrets.key'))).mode & 0o777, 0o600);

  // A sealed value moved to another function's row does not open there.
  await db.db.insert(schema.secrets).values({ functionName: privateName, key: 'API_TOKEN', sealed: rows.find((r) => r.key === 'API_TOKEN')!.sealed });
  await assert.rejects(readSecrets(db.db, privateName, await loadSecretBox(stack.home, {})), /API_TOKEN.*cannot be opened/);

  const rm = await cli(['secrets', 'rm', fnName, 'tls.key']);
  assert.equal(rm.code, 0, rm.stderr);
  assert.deepEqual((await jsonOf(await api(`/system/functions/${fnName}/secrets`))).map((s: { key: string }) => s.key), ['API_TOKEN']);
  assert.equal((await api(`/system/functions/${fnName}/secrets/tls.key`, { method: 'DELETE' })).status, 404);

  assert.equal((await api(`/system/functions/${privateName}`, { method: 'DELETE' })).status, 204);
  assert.equal((await db.db.select().from(schema.secrets).where(eq(schema.secrets.functionName, privateName))).length, 0, 'rm deletes its secrets');

  assert.ok(!stack.gateway.output().includes(SECRET_TEXT) && !stack.worker.output().includes(SECRET_TEXT), 'no value in the logs');
  assert.ok(!stack.gateway.output().includes(stack.apiKey), 'no key in the logs');
});

test('SecretBox round-trips, refuses tampered or re-homed ciphertext, and keeps one key file per home', async () => {
  const box = new SecretBox(crypto.randomBytes(32));
  const ctx = secretContext('fn', 'K');
  const sealed = box.seal(SECRET_TEXT, ctx);
  assert.equal(box.open(sealed, ctx).toString('utf8'), SECRET_TEXT);
  assert.notEqual(box.seal(SECRET_TEXT, ctx), sealed, 'a fresh IV each time');

  const raw = Buffer.from(sealed, 'base64');
  for (const at of [0, 12, 28, raw.length - 1]) {
    const bad = Buffer.from(raw);
    bad[at]! ^= 1;
    assert.throws(() => box.open(bad.toString('base64'), ctx), (err) => isHearthError(err, 'INTERNAL'), `a flipped bit at ${at}`);
  }
  assert.throws(() => box.open(sealed, secretContext('other', 'K')));
  assert.throws(() => new SecretBox(crypto.randomBytes(32)).open(sealed, ctx));
  assert.throws(() => box.open(raw.subarray(0, 20).toString('base64'), ctx));

  const home = await fs.mkdtemp(path.join(os.tmpdir(), `${prefix}-box-`));
  try {
    const [a, b] = await Promise.all([loadSecretBox(home, {}), loadSecretBox(home, {})]);
    assert.equal(b.open(a.seal('x', ctx), ctx).toString(), 'x', 'two processes starting together end up with one key');
    assert.equal((await fs.stat(path.join(home, 'secrets.key'))).mode & 0o777, 0o600);
    const fromEnv = await loadSecretBox(home, { HEARTH_SECRETS_KEY: crypto.randomBytes(32).toString('base64') });
    assert.throws(() => fromEnv.open(a.seal('x', ctx), ctx), 'HEARTH_SECRETS_KEY wins over the file');
    await assert.rejects(loadSecretBox(home, { HEARTH_SECRETS_KEY: 'c2hvcnQ=' }), /32 bytes/);
  } finally {
    await fs.rm(home, { recursive: true, force: true });
  }
});
