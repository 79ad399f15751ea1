import type { Command } from 'commander';
import { loadConfig, type HearthConfig } from '@hearth/core';
import { GatewayClient } from './api-client.ts';

/** Global options every command accepts; they win over the environment. */
export interface GlobalOptions {
  gateway?: string;
  registry?: string;
}

/**
 * The settings a command runs with: loadConfig() from the environment, with --gateway and
 * --registry applied the way the env variables would be, so defaults derive the same way
 * (a loopback --registry is spoken to over plain HTTP, like HEARTH_REGISTRY).
 */
export function commandConfig(command: Command): HearthConfig {
  const opts = command.optsWithGlobals<GlobalOptions>();
  return loadConfig({
    ...process.env,
    ...(opts.gateway ? { HEARTH_GATEWAY: opts.gateway } : {}),
    ...(opts.registry ? { HEARTH_REGISTRY: opts.registry } : {}),
  });
}

export function gatewayClient(config: HearthConfig): GatewayClient {
  return new GatewayClient(config.gatewayUrl);
}
