import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isHearthError } from '@hearth/core';
import { MEDIA_TYPES, RegistryClient, parseWwwAuthenticate, sha256Digest } from '@hearth/oci';

/**
 * A tiny registry on 127.0.0.1 that wants auth the way Docker Hub and Harbor do:
 * /v2/ endpoints answer 401 with a Bearer challenge; /token hands out a token only with
 * the right basic credentials. Everything it saw is recorded for the assertions.
 */
async function startServer(handler: (req: IncomingMessage, res: ServerResponse, base: string) => void): Promise<{ server: Server; base: string; host: string }> {
  let base = '';
  const server = createServer((req, res) => handler(req, res, base));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const host = `127.0.0.1:${(server.address() as { port: number }).port}`;
  base = `http://${host}`;
  return { server, base, host };
}

const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: { mediaType: MEDIA_TYPES.ociConfig, digest: sha256Digest('{}'), size: 2 }, layers: [] }));
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
const servers: Server[] = [];
after(() => Promise.all(servers.map((s) => new Promise((r) => s.close(r)))));

test('parseWwwAuthenticate reads quoted parameters with commas', () => {
  assert.deepEqual(parseWwwAuthenticate('Bearer realm="http://a/token",service="reg",scope="repository:x/y:pull,push"'), {
    scheme: 'bearer',
    params: { realm: 'http://a/token', service: 'reg', scope: 'repository:x/y:pull,push' },
  });
  assert.deepEqual(parseWwwAuthenticate('Basic realm="Registry Realm"'), { scheme: 'basic', params: { realm: 'Registry Realm' } });
});

test('Bearer token flow: challenge, token with basic auth, token sent and cached per scope', async () => {
  const tokenRequests: { auth?: string; scope: string[]; service: string | null }[] = [];
  const registryAuth: (string | undefined)[] = [];
  const { server, host } = await startServer((req, res, base) => {
    const url = new URL(req.url ?? '/', base);
    if (url.pathname === '/token') {
      tokenRequests.push({ auth: req.headers.authorization, scope: url.searchParams.getAll('scope'), service: url.searchParams.get('service') });
      if (req.headers.authorization !== basic('alice', 's3cret')) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"incorrect username or password"}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `tok-${url.searchParams.getAll('scope').join('+')}`, expires_in: 300 }));
      return;
    }
    registryAuth.push(req.headers.authorization);
    const scope = url.pathname.startsWith('/v2/team/app/') ? 'repository:team/app:pull' : '';
    if (req.headers.authorization !== `Bearer tok-${scope}`) {
      res.writeHead(401, {
        'www-authenticate': `Bearer realm="${base}/token",service="test-registry"${scope ? `,scope="${scope}"` : ''}`,
        'content-type': 'application/json',
      });
      res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
      return;
    }
    res.writeHead(200, { 'content-type': MEDIA_TYPES.ociManifest }).end(manifest);
  });
  servers.push(server);

  const client = new RegistryClient({ registry: host, insecure: true, username: 'alice', password: 's3cret' });
  const got = await client.getManifest('team/app', 'v1');
  assert.equal(got.digest, sha256Digest(manifest));
  assert.equal(tokenRequests.length, 1);
  assert.deepEqual(tokenRequests[0], { auth: basic('alice', 's3cret'), scope: ['repository:team/app:pull'], service: 'test-registry' });
  // First try without credentials, then with the token.
  assert.deepEqual(registryAuth, [undefined, 'Bearer tok-repository:team/app:pull']);

  // The token is cached for this scope: no second token request, sent straight away.
  await client.getManifest('team/app', 'v2');
  assert.equal(tokenRequests.length, 1);
  assert.equal(registryAuth.at(-1), 'Bearer tok-repository:team/app:pull');
  assert.equal(registryAuth.length, 3);

  // A wrong password: the token service refuses, and the error says so.
  const wrong = new RegistryClient({ registry: host, insecure: true, username: 'alice', password: 'nope' });
  await assert.rejects(wrong.getManifest('team/app', 'v1'), (err) => {
    assert.ok(isHearthError(err, 'UNAUTHENTICATED'));
    assert.match(err.message, /rejected the username or password for user "alice"/);
    assert.match(err.message, new RegExp(host.replace(/\./g, '\\.')));
    return true;
  });

  // No credentials at all against a token service that wants them.
  const anonymous = new RegistryClient({ registry: host, insecure: true });
  await assert.rejects(anonymous.getManifest('team/app', 'v1'), (err) => isHearthError(err, 'UNAUTHENTICATED') && /requires a username and password/.test(err.message));
});

test('Basic auth: credentials sent after the challenge; a wrong password is UNAUTHENTICATED', async () => {
  const seen: (string | undefined)[] = [];
  const { server, host } = await startServer((req, res) => {
    seen.push(req.headers.authorization);
    if (req.headers.authorization !== basic('bob', 'hunter2')) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="Registry Realm"' }).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  servers.push(server);

  const client = new RegistryClient({ registry: host, insecure: true, username: 'bob', password: 'hunter2' });
  await client.ping();
  await client.ping();
  assert.deepEqual(seen, [undefined, basic('bob', 'hunter2'), basic('bob', 'hunter2')]);

  const wrong = new RegistryClient({ registry: host, insecure: true, username: 'bob', password: 'bad' });
  await assert.rejects(wrong.ping(), (err) => isHearthError(err, 'UNAUTHENTICATED') && err.message.includes(host));

  const none = new RegistryClient({ registry: host, insecure: true });
  await assert.rejects(none.ping(), (err) => isHearthError(err, 'UNAUTHENTICATED') && /requires a username and password/.test(err.message));
});
