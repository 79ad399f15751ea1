// Hearth node bootstrap: runs as the sandbox's main process (Debian's nodejs 18, plain JS).
// Loads the handler module named by $HEARTH_HANDLER, then serves the invoke protocol
// (HTTP/1.1) on the Unix socket $HEARTH_SOCKET. The socket appears only after the module
// has loaded, so a connectable socket means "ready".
//
// Stem-cell mode ($HEARTH_STEM_CELL=1): listens at once with no handler; the worker mounts
// a function's code at /function and sends POST /_hearth/specialize {"env": {...}}. The
// bootstrap sets that env, loads $HEARTH_HANDLER and answers 204 (500 {"error"} when the
// module does not load); from then on it serves the function. Before that, any other
// request gets 503. A stem cell first sends a few requests through its own serving code
// with a no-op handler (warmUp), so the function's first call is as fast as the next ones.
import http from 'node:http';
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';

const socketPath = process.env.HEARTH_SOCKET || '/run/hearth/invoke.sock';
const stemCell = process.env.HEARTH_STEM_CELL === '1';
const SPECIALIZE_PATH = '/_hearth/specialize';

function fail(message) {
  process.stderr.write(`hearth bootstrap: ${message}\n`);
  process.exit(1);
}

/** An Error whose message is the one line a failed start reports. */
class LoadError extends Error {}

/** Imports $HEARTH_HANDLER and returns its handler function; throws LoadError. */
async function loadHandler() {
  const handlerPath = process.env.HEARTH_HANDLER;
  if (!handlerPath) throw new LoadError('HEARTH_HANDLER is not set (expected e.g. /function/index.js)');
  let mod;
  try {
    mod = await import(pathToFileURL(handlerPath).href);
  } catch (err) {
    // the stack first (with the source excerpt), then one line that sums it up: the log's tail
    // is what a failed start reports
    if (err && err.stack) process.stderr.write(`${err.stack}\n`);
    const esmInCjs = /Unexpected token 'export'|Cannot use import statement outside a module/.test(String(err && err.message));
    const hint = esmInCjs ? ' (ES module syntax in a CommonJS file: set "type": "module" in package.json or name it .mjs)' : '';
    throw new LoadError(`cannot load ${handlerPath}: ${err && err.name ? `${err.name}: ${err.message}` : err}${hint}`);
  }
  const handler = pickHandler(mod);
  if (!handler) throw new LoadError(`${handlerPath} exports no function: export default async (request, ctx) => Response`);
  return handler;
}

// ESM: `export default fn` or `export function handler`. CommonJS: `module.exports = fn`
// arrives as `default`, `module.exports = { handler }` as `default.handler`.
function pickHandler(m) {
  const candidates = [m.default, m.handler, m.default && m.default.default, m.default && m.default.handler];
  return candidates.find((c) => typeof c === 'function');
}

let handler;
if (!stemCell) {
  try {
    handler = await loadHandler();
  } catch (err) {
    fail(err instanceof LoadError ? err.message : String(err));
  }
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function toRequest(req, body) {
  const pairs = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) pairs.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
  let headers;
  try {
    headers = new Headers(pairs);
  } catch {
    headers = new Headers();
    for (const [name, value] of pairs) {
      try {
        headers.append(name, value);
      } catch {
        // a header value undici rejects is dropped rather than failing the call
      }
    }
  }
  const init = { method: req.method, headers };
  if (req.method !== 'GET' && req.method !== 'HEAD') init.body = body;
  return new Request(`http://function${req.url}`, init);
}

async function writeResponse(res, response) {
  const headers = {};
  response.headers.forEach((value, name) => {
    if (name === 'content-length' || name === 'transfer-encoding' || name === 'connection') return;
    if (name === 'set-cookie') return;
    headers[name] = value;
  });
  const cookies = typeof response.headers.getSetCookie === 'function' ? response.headers.getSetCookie() : [];
  if (cookies.length > 0) headers['set-cookie'] = cookies;
  const body = response.body ? Buffer.from(await response.arrayBuffer()) : Buffer.alloc(0);
  headers['content-length'] = String(body.length);
  res.writeHead(response.status, response.statusText || undefined, headers);
  res.end(body);
}

// A handler's plain value (DESIGN.md, handler contract: a string, bytes, JSON, or nothing)
// is written straight to the socket: a Response built only to be read back costs ~0.1 ms
// of CPU per call here (Node 18's fetch classes), about a tenth of the whole call.
function writePlain(res, result) {
  let body;
  let type;
  if (result === undefined || result === null) {
    res.writeHead(204, { 'content-length': '0' });
    res.end();
    return;
  }
  if (typeof result === 'string') [body, type] = [Buffer.from(result), 'text/plain; charset=utf-8'];
  else if (result instanceof Uint8Array) [body, type] = [result, 'application/octet-stream'];
  else if (result instanceof ArrayBuffer) [body, type] = [Buffer.from(result), 'application/octet-stream'];
  else [body, type] = [Buffer.from(JSON.stringify(result) ?? ''), 'application/json'];
  res.writeHead(200, { 'content-type': type, 'content-length': String(body.length) });
  res.end(body);
}

function sendError(res, status, message) {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: message });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

// Node 18 loads its fetch implementation on first use (~100 ms here); pay for that before
// the socket appears, not in the first call.
await new Response(new Request('http://function/', { method: 'POST', body: 'x' }).body).arrayBuffer();

/** Stem cell: `undefined` until specialized, then the handler; `specializing` while loading. */
let specializing = false;

async function specialize(req, res) {
  if (handler || specializing) {
    sendError(res, 409, 'this instance is already specialized');
    return;
  }
  specializing = true;
  try {
    const body = JSON.parse((await readBody(req)).toString('utf8') || '{}');
    for (const [name, value] of Object.entries(body.env || {})) process.env[name] = String(value);
    // the cwd still points at the folder that was mounted over: look /function up again
    process.chdir(process.cwd());
    handler = await loadHandler();
  } catch (err) {
    specializing = false;
    const message = err instanceof LoadError ? err.message : `specialization failed: ${err && err.message ? err.message : err}`;
    process.stderr.write(`hearth bootstrap: ${message}\n`);
    sendError(res, 500, message);
    return;
  }
  specializing = false;
  res.writeHead(204);
  res.end();
}

/** One call of `fn`: the invoke protocol's request in, the handler's answer out. */
async function serve(req, res, fn) {
  let response;
  try {
    const body = await readBody(req);
    const request = toRequest(req, body);
    const ctx = {
      functionName: process.env.HEARTH_FUNCTION || '',
      invocationId: req.headers['x-call-id'] || '',
      env: process.env,
      traceparent: req.headers.traceparent,
    };
    const result = await fn(request, ctx);
    if (!(result instanceof Response)) {
      writePlain(res, result);
      return;
    }
    response = result;
  } catch (err) {
    process.stderr.write(`${err && err.stack ? err.stack : String(err)}\n`);
    sendError(res, 500, err && err.message ? err.message : String(err));
    return;
  }
  try {
    await writeResponse(res, response);
  } catch (err) {
    process.stderr.write(`hearth bootstrap: cannot send the response: ${err && err.stack ? err.stack : err}\n`);
    sendError(res, 500, `invalid response from handler: ${err && err.message ? err.message : err}`);
  }
}

async function onRequest(req, res) {
  if (stemCell && !handler) {
    if (req.method === 'POST' && req.url === SPECIALIZE_PATH) {
      await specialize(req, res);
    } else {
      req.resume();
      sendError(res, 503, 'this stem cell is not specialized yet: POST /_hearth/specialize first');
    }
    return;
  }
  await serve(req, res, handler);
}

function createServer(listener) {
  const s = http.createServer(listener);
  // The worker enforces deadlines; node's own request timeouts would cut long calls short.
  s.requestTimeout = 0;
  s.headersTimeout = 0;
  s.keepAliveTimeout = 60_000;
  return s;
}

// What a warm-up request's path makes the no-op handler answer: the shapes handlers return.
const WARM_ANSWERS = {
  '/response': async (request) => new Response(`ok ${await request.text()}`, { headers: { 'content-type': 'text/plain; charset=utf-8' } }),
  '/json': async (request) => ({ ok: true, method: request.method, url: request.url, length: (await request.arrayBuffer()).byteLength }),
  '/text': (request) => `ok ${request.headers.get('traceparent') || ''}`,
};

async function warmHandler(request) {
  const answer = WARM_ANSWERS[new URL(request.url).pathname];
  return answer ? answer(request) : undefined;
}

/**
 * Stem cells: V8 compiles lazily, so the first request through node's HTTP server and the
 * serving code above costs several times a later one (~5-30 ms here, more under a low CPU
 * quota). Before the socket appears, send a few requests like the worker's through a
 * server with the same code on a private abstract socket, with a no-op handler: no
 * function code runs, and the function's first call finds the path compiled. The dynamic
 * import the specialization does is warmed the same way. Best effort: a failure here only
 * costs speed.
 */
async function warmUp() {
  const address = `\0hearth-warmup-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const warm = createServer((req, res) => serve(req, res, warmHandler));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    await new Promise((resolve, reject) => {
      warm.once('error', reject);
      warm.listen(address, resolve);
    });
    const send = (path, method, body) =>
      new Promise((resolve, reject) => {
        const headers = { 'content-type': 'text/plain', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'x-call-id': 'warm-up' };
        const req = http.request({ socketPath: address, agent, method, path: `${path}?q=1`, headers }, (res) => {
          res.on('data', () => {});
          res.on('end', resolve);
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(body);
      });
    const requests = async () => {
      for (let round = 0; round < 2; round++) {
        for (const path of Object.keys(WARM_ANSWERS)) await send(path, 'POST', `warm-up ${round}`);
        await send('/text', 'GET');
      }
      await import('data:text/javascript,export default () => undefined;');
    };
    let timer;
    const tooLong = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('it took over 3 s')), 3000);
    });
    await Promise.race([requests(), tooLong]).finally(() => clearTimeout(timer));
  } catch (err) {
    process.stderr.write(`hearth bootstrap: warm-up skipped: ${err && err.message ? err.message : err}\n`);
  } finally {
    agent.destroy();
    warm.close();
    if (typeof warm.closeAllConnections === 'function') warm.closeAllConnections();
  }
}

if (stemCell) await warmUp();

const server = createServer(onRequest);

try {
  fs.unlinkSync(socketPath);
} catch (err) {
  if (err.code !== 'ENOENT') fail(`cannot remove stale socket ${socketPath}: ${err.message}`);
}
server.on('error', (err) => fail(`cannot listen on ${socketPath}: ${err.message}`));
server.listen(socketPath);

// As pid 1 node gets no default SIGTERM handling; exit promptly so a stop is quick.
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
