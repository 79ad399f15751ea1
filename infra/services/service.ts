/** One local service (Redis, Postgres or the registry), either started here or reused. */
export interface LocalService {
  name: 'redis' | 'postgres' | 'registry';
  /** True when this call started the server, so stop() stops it; false when one was already running. */
  started: boolean;
  /** Pid of the server when started here. */
  pid?: number;
  /** Where clients find it, e.g. { REDIS_URL: 'redis://127.0.0.1:6379' }. */
  env: Record<string, string>;
  /** Stops the server if this call started it; a no-op otherwise. May be called twice. */
  stop(): Promise<void>;
}

export interface ServiceOptions {
  /** HEARTH_HOME: each service keeps its data in a folder below it. */
  home: string;
  env: NodeJS.ProcessEnv;
  log: (line: string) => void;
}

/** Wraps a stop function so that a second call returns the first call's promise. */
export function once(stop: () => Promise<void>): () => Promise<void> {
  let stopping: Promise<void> | undefined;
  return () => (stopping ??= stop());
}
