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

const CONNECTION_LOST = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOENT', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);

export class InvokeClient {
  readonly socketPath: string;
  private readonly agent: Agent;

  constructor(socketPath: string) {
    this.socketPath = socketPath;
    // One connection at a time per in-flight call; kept alive for the next call.
    this.agent = new Agent({ connect: { socketPath }, keepAliveTimeout: 30_000, pipelining: 1 });
  }

  /**
   * Sends one request. Throws HearthError TIMEOUT after opts.timeoutMs, UNAVAILABLE with
   * "connection lost: ..." when the socket refuses or drops the call.
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
      const body = Buffer.from(await res.body.arrayBuffer());
      const out: Record<string, string> = {};
      for (const [name, value] of Object.entries(res.headers)) {
        if (value === undefined || name === 'connection' || name === 'keep-alive' || name === 'transfer-encoding') continue;
        out[name] = Array.isArray(value) ? value.join(', ') : value;
      }
      return { status: res.statusCode, headers: out, body };
    } catch (err) {
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
      throw new HearthError('UNAVAILABLE', `${reason}: ${(err as Error).message}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    await this.agent.destroy().catch(() => undefined);
  }
}
