/**
 * The worker's side of the invoke protocol: HTTP/1.1 over the instance's Unix socket, with
 * undici keeping the connection alive between calls. Errors come back as HearthError:
 * TIMEOUT when the deadline passed, UNAVAILABLE when the sandbox is gone.
 */
import { Agent, errors as undiciErrors, type Dispatcher } from 'undici';
import { HearthError } from '@hearth/core';
import type { InvokeOptions, SandboxRequest, SandboxResponse } from './sandbox.ts';

/** Connection-level headers belong to one hop; undici sets its own (and refuses some). */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer',
  'expect', 'host', 'content-length',
]);

/** Lambda's limit for a synchronous response. */
export const DEFAULT_MAX_RESPONSE_BYTES = 6 * 1024 * 1024;

const CONNECTION_LOST = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOENT', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);

export class InvokeClient {
  readonly socketPath: string;
  /** Largest response body accepted; a larger one is TOO_LARGE (and its connection dropped). */
  readonly maxResponseBytes: number;
  private readonly agent: Agent;

  /**
   * `connections: 1` for a peer that serves one client at a time (qemu's virtio-serial
   * socket); unset, undici may dial again for a request that follows another's end.
   */
  constructor(socketPath: string, opts: { maxResponseBytes?: number; connections?: number } = {}) {
    this.socketPath = socketPath;
    this.maxResponseBytes = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    // One connection at a time per in-flight call; kept alive for the next call.
    this.agent = new Agent({ connect: { socketPath }, keepAliveTimeout: 30_000, pipelining: 1, ...(opts.connections ? { connections: opts.connections } : {}) });
  }

  /**
   * Sends one request. Throws HearthError TIMEOUT after opts.timeoutMs, UNAVAILABLE with
   * "connection lost: ..." when the socket refuses or drops the call (`details.notDelivered`
   * when nothing listened, so the function never saw it), TOO_LARGE when the
   * response body passes maxResponseBytes (the instance stays usable).
   */
  async invoke(req: SandboxRequest, opts: InvokeOptions): Promise<SandboxResponse> {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (!HOP_BY_HOP.has(name.toLowerCase())) headers[name.toLowerCase()] = value;
    }
    if (opts.traceparent) headers.traceparent = opts.traceparent;
    const hasBody = req.body.length > 0 || !['GET', 'HEAD'].includes(req.method.toUpperCase());

    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, opts.timeoutMs);
    try {
      const res = await this.agent.request({
        origin: 'http://function',
        method: req.method.toUpperCase() as Dispatcher.HttpMethod,
        path: req.path + (req.query ? `?${req.query}` : ''),
        headers,
        ...(hasBody ? { body: req.body } : {}),
        signal: controller.signal,
        headersTimeout: 0,
        bodyTimeout: 0,
      });
      const body = await this.readBody(res.body, res.headers['content-length']);
      const out: Record<string, string> = {};
      for (const [name, value] of Object.entries(res.headers)) {
        if (value === undefined || name === 'connection' || name === 'keep-alive' || name === 'transfer-encoding') continue;
        out[name] = Array.isArray(value) ? value.join(', ') : value;
      }
      return { status: res.statusCode, headers: out, body };
    } catch (err) {
      if (err instanceof HearthError) throw err;
      if (timedOut) {
        throw new HearthError('TIMEOUT', `function did not answer within ${opts.timeoutMs} ms`, { cause: err });
      }
      if (err instanceof undiciErrors.InvalidArgumentError) {
        throw new HearthError('INVALID_ARGUMENT', `request not sendable to the function: ${err.message}`, { cause: err });
      }
      const code = (err as { code?: string }).code ?? '';
      if (err instanceof undiciErrors.HTTPParserError || code.startsWith('HPE_')) {
        throw new HearthError('BAD_GATEWAY', `the function's bootstrap sent an invalid HTTP response: ${(err as Error).message}`, { cause: err });
      }
      const reason = CONNECTION_LOST.has(code) ? 'connection lost' : 'invoke failed';
      // Nothing listened: the request never reached the function, so sending it elsewhere is safe.
      const notDelivered = code === 'ECONNREFUSED' || code === 'ENOENT';
      throw new HearthError('UNAVAILABLE', `${reason}: ${(err as Error).message}`, { cause: err, ...(notDelivered ? { details: { notDelivered: true } } : {}) });
    } finally {
      clearTimeout(timer);
    }
  }

  /** The whole body, or TOO_LARGE as soon as it passes the limit (announced or counted). */
  private async readBody(stream: Dispatcher.ResponseData['body'], contentLength: string | string[] | undefined): Promise<Buffer> {
    const max = this.maxResponseBytes;
    const tooLarge = (size: string) => {
      // dropping the stream closes this connection; the next call opens a new one. undici
      // reports the drop as an 'error' on the stream, which nobody else is listening to.
      stream.on('error', () => undefined);
      stream.destroy();
      return new HearthError('TOO_LARGE', `the function's response is larger than the limit of ${formatBytes(max)} (${size})`, {
        details: { limitBytes: max },
      });
    };
    const announced = Number(Array.isArray(contentLength) ? contentLength[0] : contentLength);
    if (Number.isFinite(announced) && announced > max) throw tooLarge(`${announced} bytes`);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of stream) {
      size += (chunk as Buffer).length;
      if (size > max) throw tooLarge(`more than ${size} bytes`);
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks, size);
  }

  async close(): Promise<void> {
    await this.agent.destroy().catch(() => undefined);
  }
}

function formatBytes(n: number): string {
  if (n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MB`;
  if (n % 1024 === 0) return `${n / 1024} KB`;
  return `${n} bytes`;
}
