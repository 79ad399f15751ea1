// The `hearth` command as users run it: a child process, a temp folder as cwd, the dev
// registry at 127.0.0.1:5000 (the real one). Needs `skopeo` and `tar` on PATH.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseFunctionSpecYaml } from '@hearth/core';
import { RegistryClient, pushRootfsImage } from '@hearth/oci';
import { closedPort, hearth } from './run-cli.ts';

const REGISTRY = '127.0.0.1:5000';
const SUFFIX = randomBytes(4).toString('hex');
const PREFIX = `clitest-${SUFFIX}`;
const registry = new RegistryClient({ registry: REGISTRY, insecure: true });

let tmp = '';
/** Manifests this file pushed, deleted at the end: [repository, digest]. */
const pushed: [string, string][] = [];
/** `--base` for push tests: empty when the real node base image is in the registry. */
let baseArgs: string[] = [];
let baseRef = `${REGISTRY}/hearth/node:latest`;

function run(args: string[], opts: { env?: Record<string, string>; input?: string } = {}) {
  return hearth(args, { cwd: tmp, ...opts, env: { HEARTH_REGISTRY: REGISTRY, HEARTH_GATEWAY: 'http://127.0.0.1:8080', ...opts.env } });
}

function skopeoInspect(ref: string, ...flags: string[]): any {
  return JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', ...flags, `docker://${ref}`], { encoding: 'utf8' }));
}

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), `${PREFIX}-`));
  // The function layer must sit on the real base image. Until infra has pushed it, a small
  // stand-in base (one layer with a marker file) in a test repository plays its part.
  try {
    await registry.getManifest('hearth/node', 'latest');
  } catch {
    const rootfs = path.join(tmp, 'base-rootfs');
    await fs.mkdir(path.join(rootfs, 'etc'), { recursive: true });
    await fs.writeFile(path.join(rootfs, 'etc', 'hearth-test-base'), 'stand-in base image\n');
    const repo = `${PREFIX}/base`;
    baseRef = `${REGISTRY}/${repo}:latest`;
    const base = await pushRootfsImage({ client: registry, target: baseRef, rootfsDir: rootfs, config: { env: ['PATH=/usr/bin:/bin'] } });
    pushed.push([repo, base.digest]);
    baseArgs = ['--base', baseRef];
  }
});

after(async () => {
  for (const [repo, digest] of pushed) {
    await registry.deleteManifest(repo, digest).catch(() => {});
  }
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

test('init scaffolds a node function whose handler greets the request body', async () => {
  const name = `${PREFIX}-node`;
  const r = await run(['init', name, '--runtime', 'node']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`hearth deploy ${name}`));

  const dir = path.join(tmp, name);
  const spec = parseFunctionSpecYaml(await fs.readFile(path.join(dir, 'hearth.yaml'), 'utf8'));
  assert.deepEqual([spec.name, spec.runtime, spec.handler, spec.memoryMb, spec.timeoutMs], [name, 'node', 'index.js', 128, 10000]);

  // Load the handler the way the node bootstrap would: as an ES module with a default export.
  const mod = (await import(path.join(dir, 'index.js'))) as { default: (r: Request) => Promise<Response> };
  const withBody = await mod.default(new Request('http://fn/', { method: 'POST', body: 'hearth' }));
  assert.equal(await withBody.text(), 'Hello, hearth!\n');
  const empty = await mod.default(new Request('http://fn/'));
  assert.equal(await empty.text(), 'Hello, world!\n');

  // A folder init wrote passes the same checks as push does.
  const check = await run(['push', name], { env: { HEARTH_REGISTRY: `127.0.0.1:${await closedPort()}` } });
  assert.doesNotMatch(check.stderr, /hearth\.yaml|handler/, 'the spec and handler are valid; only the registry is missing');
});

test('init scaffolds an exec function: an executable that greets stdin', async () => {
  const name = `${PREFIX}-exec`;
  const r = await run(['init', name, '--runtime', 'exec', '--dir', 'custom-dir']);
  assert.equal(r.code, 0, r.stderr);

  const dir = path.join(tmp, 'custom-dir');
  const spec = parseFunctionSpecYaml(await fs.readFile(path.join(dir, 'hearth.yaml'), 'utf8'));
  assert.deepEqual([spec.name, spec.runtime, spec.handler], [name, 'exec', 'handler.sh']);
  const handler = path.join(dir, 'handler.sh');
  assert.equal((await fs.stat(handler)).mode & 0o777, 0o755);
  assert.equal(execFileSync(handler, { input: 'exec', encoding: 'utf8' }), 'Hello, exec!\n');
  assert.equal(execFileSync(handler, { input: '', encoding: 'utf8' }), 'Hello, world!\n');
});

test('init refuses an invalid name with exit 2 and says why', async () => {
  const r = await run(['init', 'Bad_Name']);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^hearth: invalid function name "Bad_Name": must start with a lowercase letter[^\n]*\n$/);
  await assert.rejects(fs.stat(path.join(tmp, 'Bad_Name')), { code: 'ENOENT' });
});

test('init leaves an existing non-empty folder alone', async () => {
  const dir = path.join(tmp, `${PREFIX}-taken`);
  await fs.mkdir(dir);
  await fs.writeFile(path.join(dir, 'index.js'), 'mine');
  const r = await run(['init', `${PREFIX}-taken`]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /^hearth: .*taken\/ already exists and is not empty/);
  assert.equal(await fs.readFile(path.join(dir, 'index.js'), 'utf8'), 'mine');
  assert.deepEqual(await fs.readdir(dir), ['index.js']);
});

test('push names a missing handler file and the folder it looked in', async () => {
  const dir = path.join(tmp, 'nohandler');
  await fs.mkdir(dir);
  await fs.writeFile(path.join(dir, 'hearth.yaml'), `name: ${PREFIX}-nh\nruntime: node\nhandler: index.js\n`);
  const r = await run(['push', 'nohandler']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, 'hearth: nohandler/hearth.yaml: handler "index.js" not found in nohandler/\n');
});

test('push names the bad field of an invalid hearth.yaml', async () => {
  const dir = path.join(tmp, 'badspec');
  await fs.mkdir(dir);
  await fs.writeFile(path.join(dir, 'hearth.yaml'), `name: ${PREFIX}-bad\nhandler: index.js\nmemoryMb: 4\n`);
  await fs.writeFile(path.join(dir, 'index.js'), 'export default () => "x"\n');
  const r = await run(['push', 'badspec']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^hearth: badspec\/hearth\.yaml: memoryMb: [^\n]*16[^\n]*\n$/);
});

test('deploy of a folder that does not exist says so with exit 3', async () => {
  const r = await run(['deploy', 'nowhere']);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /^hearth: no function folder "nowhere"[^\n]*\n$/);
});

test('push builds the function layer on top of the base image and prints ref@digest', async () => {
  const name = `${PREFIX}-push`;
  assert.equal((await run(['init', name])).code, 0);
  const r = await run(['push', name, ...baseArgs]);
  assert.equal(r.code, 0, r.stderr);

  const lines = r.stdout.trim().split('\n');
  const ref = lines.at(-1) ?? '';
  const m = new RegExp(`^${REGISTRY.replace(/\./g, '\\.')}/fn/${name}:([a-z0-9]+)@(sha256:[a-f0-9]{64})$`).exec(ref);
  assert.ok(m, `expected REF@sha256:DIGEST on the last stdout line, got ${JSON.stringify(r.stdout)}`);
  const digest = m[2]!;
  pushed.push([`fn/${name}`, digest]);

  // skopeo takes a tag or a digest, not both.
  const image = skopeoInspect(`${REGISTRY}/fn/${name}@${digest}`);
  assert.equal(skopeoInspect(`${REGISTRY}/fn/${name}:${m[1]}`).Digest, digest, 'the tag points at the pushed digest');
  const base = skopeoInspect(baseRef);
  assert.equal(image.Digest, digest);
  assert.equal(image.Layers.length, base.Layers.length + 1, 'one layer on top of the base');
  assert.deepEqual(image.Layers.slice(0, -1), base.Layers);
  assert.ok(image.Env.includes('HEARTH_HANDLER=/function/index.js'), `Env: ${image.Env}`);

  // The function layer holds the folder under /function.
  const top = image.Layers.at(-1) as string;
  const blob = await fetch(`http://${REGISTRY}/v2/fn/${name}/blobs/${top}`);
  assert.equal(blob.status, 200);
  const listing = execFileSync('tar', ['-tzf', '-'], { input: Buffer.from(await blob.arrayBuffer()), encoding: 'utf8' })
    .split('\n')
    .map((e) => e.replace(/^\.\//, '').replace(/\/$/, ''))
    .filter(Boolean);
  for (const file of ['function/hearth.yaml', 'function/index.js', 'function/package.json']) {
    assert.ok(listing.includes(file), `${file} in ${listing.join(', ')}`);
  }

  // Unchanged folder, same image: the tag is a content hash and the layer is reproducible.
  const again = await run(['push', name, ...baseArgs]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout.trim().split('\n').at(-1), ref);
});

test('push to an unreachable registry fails with one line naming the registry', async () => {
  const name = `${PREFIX}-noreg`;
  assert.equal((await run(['init', name])).code, 0);
  const r = await run(['push', name], { env: { HEARTH_REGISTRY: '127.0.0.1:1' } });
  assert.equal(r.code, 4);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^hearth: registry 127\.0\.0\.1:1 is unreachable[^\n]*\n$/);
});

test('push names a base image that is not in the registry', async () => {
  const name = `${PREFIX}-nobase`;
  assert.equal((await run(['init', name])).code, 0);
  const missing = `${REGISTRY}/${PREFIX}/missing:latest`;
  const r = await run(['push', name, '--base', missing]);
  assert.equal(r.code, 3);
  assert.match(r.stderr, new RegExp(`^hearth: base image ${missing.replace(/[.]/g, '\\.')} is not in the registry[^\\n]*\\n$`));
});

test('ls with the gateway down fails with one line naming the gateway', async () => {
  const url = `http://127.0.0.1:${await closedPort()}`;
  const r = await run(['ls'], { env: { HEARTH_GATEWAY: url } });
  assert.equal(r.code, 4);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, `hearth: gateway ${url} is unreachable (ECONNREFUSED); is "npm start" running?\n`);
});

test('bad usage exits 2 with a hearth: line', async () => {
  const r = await run(['invoke']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^hearth: missing required argument 'name'/);
});
