/**
 * The sandbox contract: one running instance of a function that answers the invoke protocol
 * (HTTP/1.1 over a Unix socket, DESIGN.md). Implementations: RuncSandbox (container) and,
 * later, a qemu microVM. Lifecycle: create → start() → invoke()* → stop().
 */

/** The request a function sees. `path` starts with '/', `query` has no leading '?'. */
export interface SandboxRequest {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string>;
  body: Buffer;
}

/** The function's answer. Repeated response headers are joined with ', '. */
export interface SandboxResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

export interface InvokeOptions {
  timeoutMs: number;
  /** W3C trace context, sent to the sandbox as the `traceparent` header. */
  traceparent?: string;
}

/** One instance of a function. start() resolves when the invoke socket accepts. */
export interface Sandbox {
  readonly id: string;
  readonly kind: 'container' | 'vm';
  /** Throws HearthError UNAVAILABLE (with the tail of the function log) when the instance does not become ready. */
  start(): Promise<void>;
  /** Throws HearthError TIMEOUT after timeoutMs (caller then stops the sandbox), UNAVAILABLE when the sandbox died. */
  invoke(req: SandboxRequest, opts: InvokeOptions): Promise<SandboxResponse>;
  /** Kill, delete, unmount, remove. Safe to call twice and after a failed start. Works on a paused sandbox. */
  stop(): Promise<void>;
  /** Freezes the instance (no CPU, memory kept) while it is idle; invoke() refuses until resume(). */
  pause?(): Promise<void>;
  /** Thaws a paused instance. */
  resume?(): Promise<void>;
  /** Between pause() and resume(). */
  readonly paused?: boolean;
  /**
   * Host memory the running instance can hold (MB) when that is more than its memory limit:
   * a microVM's whole guest RAM. Known once start() has resolved.
   */
  readonly footprintMb?: number;
  /** Stem cells (created with `stemCell: true`): load one function into the running instance, once. */
  specialize?(opts: SpecializeOptions): Promise<{ mountMs: number; loadMs: number }>;
}

/** What turns a stem cell into an instance of one function. */
export interface SpecializeOptions {
  /** The function image's own layers (unpacked dirs, lowest first) above the stem cell's base layers; only their /function is used. */
  functionLayers: string[];
  /** Set in the bootstrap's process.env before the handler loads; must include HEARTH_HANDLER (from the function image's Env). */
  env: Record<string, string>;
  /** New limits for the function (else the stem cell's stay). */
  limits?: SandboxLimits;
  /** Files under /run/secrets, as SandboxOptions.secrets. */
  secrets?: Record<string, string | Buffer>;
}

/** The subset of an OCI image config a sandbox needs. */
export interface SandboxImageConfig {
  Env?: string[];
  Cmd?: string[];
  Entrypoint?: string[];
  WorkingDir?: string;
  /** `uid`, `uid:gid`, or a user name from the image's /etc/passwd; empty means 65534:65534 (nobody; "0" for root, with no capabilities). */
  User?: string;
}

export interface SandboxLimits {
  memoryMb: number;
  /** Cores, enforced as a CFS quota. */
  cpu: number;
  /** Most processes and threads at once (default 128). */
  pids?: number;
  /**
   * Cores until the instance is ready (default max(cpu, 1)); `cpu` applies from then on.
   * Start-up is CPU-bound: node 18 needs ~0.3 s of CPU before it listens.
   */
  startupCpu?: number;
}

export interface SandboxOptions {
  /** Hearth's state folder; the instance lives in <home>/instances/<id>/{bundle,upper,work,run}. */
  home: string;
  /** runc container id (prefix + random): [A-Za-z0-9][A-Za-z0-9_.-]*. */
  id: string;
  /** Unpacked layer dirs, lowest first. */
  layers: string[];
  imageConfig: SandboxImageConfig;
  limits: SandboxLimits;
  /** From hearth.yaml; HEARTH_SOCKET=/run/hearth/invoke.sock is always set. */
  env?: Record<string, string>;
  /** Function stdout+stderr are appended here (outside the instance folder, so it outlives stop()). */
  logPath: string;
  /** Default 10 s. */
  readyTimeoutMs?: number;
  /**
   * A stem cell: `layers` are a base image's only, the bootstrap listens with no handler,
   * and specialize() later mounts one function's code at /function and loads it.
   */
  stemCell?: boolean;
  /**
   * Files the function reads at /run/secrets/<key> (read-only, mode 0400, owned by the uid
   * it runs as); removed with the instance. Keys must be safe file names (INVALID_ARGUMENT).
   */
  secrets?: Record<string, string | Buffer>;
  /** Largest response body accepted from the function (default 6 MB, as Lambda); TOO_LARGE past it. */
  maxResponseBytes?: number;
  /**
   * `egress: true` (containers only): the instance gets eth0 on a veth pair with a /30 out of
   * 10.213.0.0/16 and a default route via the host end. Default: loopback only.
   */
  network?: { egress: boolean };
}

/** An instance's link to the host (egress only), once started. */
export interface SandboxNetworkInfo {
  /** `ip netns` name: `hearth-<sandbox id>`. */
  netns: string;
  /** The veth end in the host's namespace, `hh<n>`. */
  hostInterface: string;
  /** The host end's address: the instance's gateway; a host service listening here is reachable from the instance. */
  hostAddress: string;
  /** The instance's eth0 address. */
  address: string;
  prefixLength: number;
}
