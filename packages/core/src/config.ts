import path from 'node:path';
import os from 'node:os';

/**
 * Every setting Hearth reads from the environment, with its default, in one place.
 * Apps call loadConfig() once at start and pass the result down.
 */
export interface HearthConfig {
  /** State on disk: content store, unpacked layers, instances, logs, local services' data. */
  home: string;
  redisUrl: string;
  databaseUrl: string;
  /** host:port of the OCI registry that functions are pushed to and pulled from. */
  registry: string;
  /** Talk plain HTTP to the registry (true for loopback registries unless HEARTH_REGISTRY_TLS=1). */
  registryInsecure: boolean;
  registryUsername?: string;
  registryPassword?: string;
  gatewayHost: string;
  gatewayPort: number;
  /** Base URL the CLI talks to. */
  gatewayUrl: string;
  /** Largest request body the gateway accepts. */
  bodyLimitBytes: number;
  /** A client must send all its headers within this (slowloris), else 408 and close. */
  headersTimeoutMs: number;
  /** A client must send its whole request, body included, within this; the response may take longer. */
  requestTimeoutMs: number;
  /** Larger request headers get 431. */
  maxHeaderBytes: number;
  /** BullMQ key prefix, so tests and several stacks can share one Redis. */
  queuePrefix: string;
  /** Prefix of runc container ids and instance folders; lets a worker find what it left. */
  instancePrefix: string;
  workerConcurrency: number;
  /** How long an idle instance is kept for the next call of the same version (plain keep-alive). */
  idleTtlSec: number;
  /** Names this worker in Redis (warm-instance adverts, its own queue, `hearth ps`). */
  workerId: string;
  /** The memory the worker's instances may hold together (their memoryMb summed). */
  workerMemoryMb: number;
  /** Generic instances per runtime that wait to be specialized (0 turns stem cells off). */
  stemCellsPerRuntime: number;
  /** An idle instance is frozen (cgroup freezer) this long after its last call; 0 never. */
  pauseAfterMs: number;
  /** API key the CLI sends (else it reads its config file). */
  apiKey?: string;
  /** Where the guest kernel for `isolation: vm` is (`<vmHome>/vm/kernel`); HEARTH_VM_HOME, else home. */
  vmHome: string;
  /** An instance's log on the host is cut back past this many MB (the newest 1 MB kept in `.log.1`). */
  logMaxMb: number;
  /** Spans older than this many days are deleted from the span store. */
  traceRetentionDays: number;
  /** Where spans also go over OTLP/HTTP, as OpenTelemetry's own variable names it. */
  otlpEndpoint?: string;
}

const int = (value: string | undefined, fallback: number): number => {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new Error(`expected a number, got ${JSON.stringify(value)}`);
  return n;
};

export function loadConfig(env: NodeJS.ProcessEnv = process.env): HearthConfig {
  const gatewayHost = env.HEARTH_HOST ?? '127.0.0.1';
  const gatewayPort = int(env.HEARTH_PORT, 8080);
  const registry = env.HEARTH_REGISTRY ?? '127.0.0.1:5000';
  const registryIsLoopback = /^(localhost|127\.|\[::1\])/.test(registry);
  return {
    home: path.resolve(env.HEARTH_HOME ?? path.join(process.cwd(), '.hearth')),
    redisUrl: env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    databaseUrl: env.DATABASE_URL ?? 'postgres://hearth:hearth@127.0.0.1:5432/hearth',
    registry,
    registryInsecure: env.HEARTH_REGISTRY_TLS ? env.HEARTH_REGISTRY_TLS !== '1' : registryIsLoopback,
    ...(env.HEARTH_REGISTRY_USERNAME ? { registryUsername: env.HEARTH_REGISTRY_USERNAME } : {}),
    ...(env.HEARTH_REGISTRY_PASSWORD ? { registryPassword: env.HEARTH_REGISTRY_PASSWORD } : {}),
    gatewayHost,
    gatewayPort,
    gatewayUrl: env.HEARTH_GATEWAY ?? env.HEARTH_URL ?? `http://${gatewayHost}:${gatewayPort}`,
    bodyLimitBytes: int(env.HEARTH_BODY_LIMIT, 6 * 1024 * 1024),
    headersTimeoutMs: int(env.HEARTH_HEADERS_TIMEOUT_MS, 10_000),
    requestTimeoutMs: int(env.HEARTH_REQUEST_TIMEOUT_MS, 60_000),
    maxHeaderBytes: int(env.HEARTH_MAX_HEADER_BYTES, 16 * 1024),
    queuePrefix: env.HEARTH_QUEUE_PREFIX ?? 'hearth',
    instancePrefix: env.HEARTH_INSTANCE_PREFIX ?? 'hearth-',
    workerConcurrency: int(env.HEARTH_WORKER_CONCURRENCY, Math.max(4, os.availableParallelism() * 4)),
    idleTtlSec: int(env.HEARTH_IDLE_TTL_SEC, 300),
    workerId: env.HEARTH_WORKER_ID || `${os.hostname()}-${process.pid}`,
    // Most of the machine: the rest is for the host, the services and the worker itself.
    workerMemoryMb: int(env.HEARTH_WORKER_MEMORY_MB, Math.floor((os.totalmem() / 1024 / 1024) * 0.75)),
    stemCellsPerRuntime: int(env.HEARTH_STEM_CELLS, 1),
    traceRetentionDays: int(env.HEARTH_TRACE_RETENTION_DAYS, 7),
    logMaxMb: int(env.HEARTH_LOG_MAX_MB, 10),
    vmHome: path.resolve(env.HEARTH_VM_HOME || env.HEARTH_HOME || path.join(process.cwd(), '.hearth')),
    pauseAfterMs: int(env.HEARTH_PAUSE_AFTER_MS, 2000),
    ...(env.HEARTH_API_KEY ? { apiKey: env.HEARTH_API_KEY } : {}),
    ...(env.OTEL_EXPORTER_OTLP_ENDPOINT ? { otlpEndpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT } : {}),
  };
}
