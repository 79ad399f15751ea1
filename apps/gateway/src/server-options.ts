import type { ServerOptions } from 'node:http';
import type { HearthConfig } from '@hearth/core';

/**
 * Limits on what a client may make the node server wait for or hold, so a slow or hostile
 * client cannot keep a connection forever (slowloris) or send endless headers.
 */
export function httpServerOptions(config: HearthConfig): ServerOptions {
  const { headersTimeoutMs, requestTimeoutMs, maxHeaderBytes } = config;
  for (const [name, value] of [
    ['HEARTH_HEADERS_TIMEOUT_MS', headersTimeoutMs],
    ['HEARTH_REQUEST_TIMEOUT_MS', requestTimeoutMs],
    ['HEARTH_MAX_HEADER_BYTES', maxHeaderBytes],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${name} must be a positive whole number, got ${value}`);
  }
  if (headersTimeoutMs > requestTimeoutMs) {
    throw new Error(`HEARTH_HEADERS_TIMEOUT_MS (${headersTimeoutMs}) must not be larger than HEARTH_REQUEST_TIMEOUT_MS (${requestTimeoutMs})`);
  }
  return {
    headersTimeout: headersTimeoutMs,
    requestTimeout: requestTimeoutMs,
    maxHeaderSize: maxHeaderBytes,
    // Node checks the two timeouts only this often (default 30 s, which would let a slow
    // client stay that much longer than the timeout says).
    connectionsCheckingInterval: Math.max(100, Math.min(5_000, Math.floor(headersTimeoutMs / 4))),
  };
}
