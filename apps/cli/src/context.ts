import type { Command } from 'commander';
import { loadConfig, type HearthConfig } from '@hearth/core';
import { GatewayClient } from './api-client.ts';
import { CallsApi } from './calls-api.ts';
import { readCliConfig, resolveApiKey, type ResolvedKey } from './credentials.ts';

/** Global options every command accepts; they win over the environment. */
export interface GlobalOptions {
  gateway?: string;
  registry?: string;
  apiKey?: string;
}

/**
 * The settings a command runs with: loadConfig() from the environment, with --gateway,
 * --registry and --api-key applied the way the env variables would be, so defaults derive
 * the same way (a loopback --registry is spoken to over plain HTTP, like HEARTH_REGISTRY).
 * With no gateway given at all, the one `hearth login` saved is used.
 */
export function commandConfig(command: Command): HearthConfig {
  const opts = command.optsWithGlobals<GlobalOptions>();
  const explicitGateway = opts.gateway || process.env.HEARTH_GATEWAY || process.env.HEARTH_URL;
  const saved = explicitGateway ? undefined : readCliConfig().gateway;
  return loadConfig({
    ...process.env,
    ...(opts.gateway ? { HEARTH_GATEWAY: opts.gateway } : saved ? { HEARTH_GATEWAY: saved } : {}),
    ...(opts.registry ? { HEARTH_REGISTRY: opts.registry } : {}),
    ...(opts.apiKey ? { HEARTH_API_KEY: opts.apiKey } : {}),
  });
}

/** The API key for the config's gateway (see resolveApiKey for the order), if there is one. */
export function apiKeyFor(config: HearthConfig): ResolvedKey | undefined {
  return resolveApiKey({ gatewayUrl: config.gatewayUrl, home: config.home, ...(config.apiKey ? { explicitKey: config.apiKey } : {}) });
}

export function gatewayClient(config: HearthConfig): GatewayClient {
  return new GatewayClient(config.gatewayUrl, apiKeyFor(config));
}

export function callsApi(config: HearthConfig): CallsApi {
  return new CallsApi(config.gatewayUrl, apiKeyFor(config));
}
