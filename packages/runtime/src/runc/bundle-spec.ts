/**
 * Builds the OCI runtime config (config.json) of a Hearth container. Starts from what
 * `runc spec` 1.1.5 generates and tightens it: no capabilities, read-only root, tmpfs /tmp,
 * new net namespace (loopback only, or a prepared one for egress), cgroup limits and a seccomp profile.
 */
import { HearthError } from '@hearth/core';
import type { SandboxImageConfig, SandboxLimits } from '../sandbox.ts';
import { seccompProfile } from './seccomp.ts';
import { SECRETS_DIR } from '../secrets.ts';

/** Where the bootstrap listens, inside the sandbox. */
export const SOCKET_DIR = '/run/hearth';
export const SOCKET_PATH = `${SOCKET_DIR}/invoke.sock`;

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const CPU_PERIOD_US = 100_000;

export interface BundleSpecInput {
  id: string;
  imageConfig: SandboxImageConfig;
  limits: SandboxLimits;
  env?: Record<string, string> | undefined;
  /** Host folder bind-mounted at /run/hearth. */
  runDir: string;
  /** Resolved `imageConfig.User`. */
  user: { uid: number; gid: number };
  /** Host folder bound read-only at /run/secrets (none when undefined). */
  secretsDir?: string;
  /**
   * Stem cells: a host folder that is a shared mount point, bound at /function as a slave,
   * so the function code mounted there later shows inside.
   */
  functionDir?: string;
  /** linux.cgroupsPath; default /hearth/<id>. */
  cgroupsPath?: string;
  /** A network namespace to join (/var/run/netns/<name>, made for egress); default a new one, loopback only. */
  netnsPath?: string;
}

/** Image Env, then the function's env (wins), then HEARTH_SOCKET (always ours). Order kept. */
export function mergeEnv(imageEnv: string[] = [], env: Record<string, string> = {}): string[] {
  const merged = new Map<string, string>();
  for (const entry of imageEnv) {
    const eq = entry.indexOf('=');
    if (eq > 0) merged.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  if (!merged.has('PATH')) merged.set('PATH', DEFAULT_PATH.slice(5));
  for (const [k, v] of Object.entries(env)) merged.set(k, v);
  merged.set('HEARTH_SOCKET', SOCKET_PATH);
  return [...merged].map(([k, v]) => `${k}=${v}`);
}

/** CFS quota (µs per CPU_PERIOD_US) for `cores`. */
export function cpuQuota(cores: number): number {
  return Math.max(1000, Math.round(cores * CPU_PERIOD_US));
}

export function startupCpu(limits: SandboxLimits): number {
  return limits.startupCpu ?? Math.max(limits.cpu, 1);
}

export function buildBundleSpec(input: BundleSpecInput): Record<string, unknown> {
  const { imageConfig, limits } = input;
  const args = [...(imageConfig.Entrypoint ?? []), ...(imageConfig.Cmd ?? [])];
  if (args.length === 0) {
    throw new HearthError('INVALID_ARGUMENT', 'the image has neither Entrypoint nor Cmd: nothing to run');
  }
  if (!(limits.memoryMb > 0) || !(limits.cpu > 0)) {
    throw new HearthError('INVALID_ARGUMENT', `limits must be positive (memoryMb ${limits.memoryMb}, cpu ${limits.cpu})`);
  }
  const memory = Math.round(limits.memoryMb * 1024 * 1024);
  const noCaps = { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] };

  return {
    ociVersion: '1.0.2-dev',
    process: {
      terminal: false,
      user: input.user,
      args,
      env: mergeEnv(imageConfig.Env, input.env),
      cwd: imageConfig.WorkingDir || '/',
      capabilities: noCaps,
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 4096, soft: 4096 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: input.id.slice(0, 63),
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
      },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: SOCKET_DIR, type: 'bind', source: input.runDir, options: ['rbind', 'nosuid', 'nodev', 'noexec'] },
      ...(input.secretsDir
        ? [{ destination: SECRETS_DIR, type: 'bind', source: input.secretsDir, options: ['bind', 'ro', 'nosuid', 'nodev', 'noexec'] }]
        : []),
      ...(input.functionDir
        ? [{ destination: '/function', type: 'bind', source: input.functionDir, options: ['rbind', 'rslave', 'ro', 'nosuid', 'nodev'] }]
        : []),
    ],
    linux: {
      cgroupsPath: input.cgroupsPath ?? `/hearth/${input.id}`,
      resources: {
        devices: [{ allow: false, access: 'rwm' }],
        // swap = memory: the limit covers memory+swap, so there is no swap to spill into
        memory: { limit: memory, swap: memory },
        // start-up runs with startupCpu; the sandbox lowers the quota to `cpu` once ready
        cpu: { quota: cpuQuota(startupCpu(limits)), period: CPU_PERIOD_US },
        pids: { limit: limits.pids ?? 128 },
      },
      namespaces: [{ type: 'pid' }, input.netnsPath ? { type: 'network', path: input.netnsPath } : { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'cgroup' }],
      seccomp: seccompProfile(),
      maskedPaths: [
        '/proc/acpi',
        '/proc/asound',
        '/proc/kcore',
        '/proc/keys',
        '/proc/latency_stats',
        '/proc/timer_list',
        '/proc/timer_stats',
        '/proc/sched_debug',
        '/sys/firmware',
        '/proc/scsi',
        '/sys/devices/virtual/powercap',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}
