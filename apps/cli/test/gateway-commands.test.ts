// deploy, ls, rm, invoke and logs against apps/gateway/API.md. The gateway here is a small
// in-test HTTP server that keeps functions in a Map and records what the CLI sent, so
// these tests pin the CLI's side of the contract (request shapes, output, exit codes).
// The real gateway's deploy → invoke path is covered end to end in /test.
// Images are pushed to the real dev registry at 127.0.0.1:5000 and deleted at the end.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { RegistryClient, pushRootfsImage } from '@hearth/oci';
import { hearth } from './run-cli.ts';

const REGISTRY = '127.0.0.1:5000';
const PREFIX = `clitest-${randomBytes(4).toString('hex')}`;
const registry = new RegistryClient({ registry: REGISTRY, insecure: true });

interface Recorded {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

let tmp = '';
let gatewayUrl = '';
let server: http.Server;
let baseRef = '';
const pushed: [string, string][] = [];
const requests: Recorded[] = [];
const functions = new Map<string, { name: string; version: number; image: string; digest: string; runtime: string; spec: unknown; url: string; createdAt: string; updatedAt: string }>();

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json', ...headers });
  res.end(text);
}

const notFound = (res: http.ServerResponse, name: string) => send(res, 404, { error: `function ${name} not found`, code: 'NOT_FOUND' });

/** What API.md promises, and no more. */
function gateway(req: Recorded, res: http.ServerResponse) {
  const url = new URL(req.url, 'http://gateway');
  const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  if (url.pathname === '/healthz') return send(res, 200, { status: 'ok' });
  if (parts[0] === 'system' && parts[1] === 'functions') {
    const name = parts[2];
    if (!name && req.method === 'GET') return send(res, 200, [...functions.values()]);
    if (!name) return send(res, 405, { error: 'method not allowed', code: 'INVALID_ARGUMENT' });
    const fn = functions.get(name);
    if (parts[3] === 'logs') return fn ? send(res, 200, `line 1 of ${name}\nlast line\n`) : notFound(res, name);
    if (req.method === 'GET') return fn ? send(res, 200, { ...fn, versions: [] }) : notFound(res, name);
    if (req.method === 'DELETE') {
      if (!fn) return notFound(res, name);
      functions.delete(name);
      res.writeHead(204).end();
      return;
    }
    if (req.method === 'PUT') {
      const body = JSON.parse(req.body) as { image: string; spec: { name: string; runtime: string } };
      if (body.spec.name !== name) return send(res, 400, { error: 'spec.name must equal the name in the path', code: 'INVALID_ARGUMENT' });
      const now = new Date().toISOString();
      const info = {
        name,
        version: (fn?.version ?? 0) + 1,
        image: body.image,
        digest: body.image.split('@')[1] ?? '',
        runtime: body.spec.runtime,
        spec: body.spec,
        url: `${gatewayUrl}/function/${name}`,
        createdAt: fn?.createdAt ?? now,
        updatedAt: now,
      };
      functions.set(name, info);
      return send(res, fn ? 200 : 201, info);
    }
  }
  if (parts[0] === 'function' && parts[1]) {
    if (!functions.has(parts[1])) return notFound(res, parts[1]);
    // The "function": echoes the request; `status=NNN` in the query picks the status.
    const status = Number(url.searchParams.get('status') ?? 200);
    return send(res, status, `${req.method} ${url.pathname} x-test=${req.headers['x-test'] ?? ''} body=${req.body}`, { 'x-hearth-start': 'cold' });
  }
  return send(res, 404, { error: 'no route', code: 'NOT_FOUND' });
}

function run(args: string[], opts: { input?: string; env?: Record<string, string> } = {}) {
  return hearth(args, { cwd: tmp, ...opts, env: { HEARTH_REGISTRY: REGISTRY, HEARTH_GATEWAY: gatewayUrl, ...opts.env } });
}

function seed(name: string, version = 1) {
  const digest = `sha256:${'ab'.repeat(32)}`;
  functions.set(name, {
    name,
    version,
    image: `${REGISTRY}/fn/${name}:x@${digest}`,
    digest,
    runtime: 'node',
    spec: { name, runtime: 'node', handler: 'index.js' },
    url: `${gatewayUrl}/function/${name}`,
    createdAt: new Date(Date.now() - 3_600_000).toISOString(),
    updatedAt: new Date(Date.now() - 120_000).toISOString(),
  });
}

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), `${PREFIX}-`));
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rec = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() };
      requests.push(rec);
      gateway(rec, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  gatewayUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  // A stand-in base in a test repository, so deploy does not depend on infra's base images.
  const rootfs = path.join(tmp, 'base-rootfs');
  await fs.mkdir(path.join(rootfs, 'etc'), { recursive: true });
  await fs.writeFile(path.join(rootfs, 'etc', 'hearth-test-base'), 'stand-in\n');
  baseRef = `${REGISTRY}/${PREFIX}/base:latest`;
  const base = await pushRootfsImage({ client: registry, target: baseRef, rootfsDir: rootfs, config: {} });
  pushed.push([`${PREFIX}/base`, base.digest]);
});

after(async () => {
  server?.close();
  for (const [repo, digest] of pushed) await registry.deleteManifest(repo, digest).catch(() => {});
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

test('deploy pushes the image, PUTs { image, spec } and prints ref@digest and the URL', async () => {
  const name = `${PREFIX}-dep`;
  assert.equal((await run(['init', name])).code, 0);
  const r = await run(['deploy', name, '--base', baseRef]);
  assert.equal(r.code, 0, r.stderr);

  const [refLine, deployedLine, ...rest] = r.stdout.trim().split('\n');
  assert.deepEqual(rest, []);
  const m = /^127\.0\.0\.1:5000\/fn\/[a-z0-9-]+:[a-f0-9]+@(sha256:[a-f0-9]{64})$/.exec(refLine ?? '');
  assert.ok(m, `ref line: ${refLine}`);
  pushed.push([`fn/${name}`, m[1]!]);
  assert.equal(deployedLine, `Deployed ${name} version 1: ${gatewayUrl}/function/${name}`);

  const put = requests.find((q) => q.method === 'PUT');
  assert.ok(put);
  assert.equal(put.url, `/system/functions/${name}`);
  assert.equal(put.headers['content-type'], 'application/json');
  const body = JSON.parse(put.body) as { image: string; spec: Record<string, unknown> };
  assert.equal(body.image, refLine);
  assert.equal(body.spec.name, name);
  assert.equal(body.spec.handler, 'index.js');
  assert.equal(body.spec.memoryMb, 128);

  // Deploying again makes a new version.
  const again = await run(['deploy', name, '--base', baseRef]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, new RegExp(`Deployed ${name} version 2: `));
});

test('ls prints a table with the short digest, or JSON', async () => {
  seed(`${PREFIX}-ls`, 7);
  const r = await run(['ls']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0] ?? '', /^NAME\s+VERSION\s+RUNTIME\s+IMAGE\s+UPDATED$/);
  const row = lines.find((l) => l.startsWith(`${PREFIX}-ls `));
  assert.ok(row, r.stdout);
  assert.deepEqual(row.split(/\s{2,}/), [`${PREFIX}-ls`, '7', 'node', `sha256:${'ab'.repeat(6)}`, '2m ago']);

  const json = await run(['ls', '--json']);
  assert.equal(json.code, 0);
  const list = JSON.parse(json.stdout) as { name: string; version: number }[];
  assert.equal(list.find((f) => f.name === `${PREFIX}-ls`)?.version, 7);
});

test('rm deletes a function; an unknown one is exit 3 with its name', async () => {
  seed(`${PREFIX}-rm`);
  const ok = await run(['rm', `${PREFIX}-rm`]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, `Removed ${PREFIX}-rm\n`);
  assert.equal(functions.has(`${PREFIX}-rm`), false);

  const missing = await run(['rm', 'x']);
  assert.equal(missing.code, 3);
  assert.equal(missing.stderr, 'hearth: function "x" not found\n');
});

test('invoke sends --data, --path, --header and prints the body', async () => {
  const name = `${PREFIX}-inv`;
  seed(name);
  const r = await run(['invoke', name, '--data', 'hi', '--path', '/sub', '-H', 'X-Test: yes']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `POST /function/${name}/sub x-test=yes body=hi`);

  const file = path.join(tmp, 'payload.json');
  await fs.writeFile(file, '{"a":1}');
  const fromFile = await run(['invoke', name, '--data', `@${file}`, '-X', 'PUT']);
  assert.equal(fromFile.stdout, `PUT /function/${name} x-test= body={"a":1}`);

  const piped = await run(['invoke', name], { input: 'from stdin' });
  assert.equal(piped.stdout, `POST /function/${name} x-test= body=from stdin`);

  const none = await run(['invoke', name]);
  assert.equal(none.stdout, `GET /function/${name} x-test= body=`);
});

test('invoke of a non-2xx answer: body on stdout, status on stderr, exit 1', async () => {
  const name = `${PREFIX}-err`;
  seed(name);
  const r = await run(['invoke', name, '--path', '/?status=500', '-d', 'boom']);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, `POST /function/${name}/ x-test= body=boom`);
  assert.equal(r.stderr, `hearth: ${name} answered 500 Internal Server Error\n`);

  // A function's own 404 is its answer, not "function not found".
  const own404 = await run(['invoke', name, '--path', '/?status=404']);
  assert.equal(own404.code, 1);
  assert.match(own404.stdout, /^GET /);
});

test('invoke and logs of an unknown function: exit 3 naming it', async () => {
  const inv = await run(['invoke', 'nope', '-d', 'x']);
  assert.equal(inv.code, 3);
  assert.equal(inv.stdout, '');
  assert.equal(inv.stderr, 'hearth: function "nope" not found\n');

  const logs = await run(['logs', 'nope']);
  assert.equal(logs.code, 3);
  assert.equal(logs.stderr, 'hearth: function "nope" not found\n');
});

test('logs prints the text and passes --tail', async () => {
  const name = `${PREFIX}-logs`;
  seed(name);
  const r = await run(['logs', name, '--tail', '5']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `line 1 of ${name}\nlast line\n`);
  assert.ok(requests.some((q) => q.url === `/system/functions/${name}/logs?tail=5`));
});
