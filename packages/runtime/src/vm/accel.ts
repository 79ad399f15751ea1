/**
 * Which accelerator a microVM gets. KVM only when a probe guest really reaches user space
 * under it within a deadline (on some hosts /dev/kvm exists but guests hang); else TCG.
 * The answer is kept for the life of the process.
 */
import { spawn } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ensureGuestInit } from './guest-init.ts';
import { ensureInitramfs } from './initramfs.ts';
import type { VmKernel } from './kernel.ts';
import { QEMU, qemuArgs, type VmAccel } from './qemu.ts';

const MARKER = 'HEARTH-PROBE-OK';
let probed: Promise<VmAccel> | undefined;

/**
 * 'kvm' when /dev/kvm opens and a tiny guest prints its marker under `-accel kvm` within
 * timeoutMs (default 3 s), else 'tcg'. Cached per process (pass force to probe again).
 */
export function probeAccel(opts: { home: string; kernel: VmKernel; timeoutMs?: number; force?: boolean }): Promise<VmAccel> {
  if (!probed || opts.force) probed = runProbe(opts).catch(() => 'tcg' as const);
  return probed;
}

async function runProbe(opts: { home: string; kernel: VmKernel; timeoutMs?: number }): Promise<VmAccel> {
  if (!(await fs.access('/dev/kvm', fsConstants.R_OK | fsConstants.W_OK).then(() => true, () => false))) return 'tcg';
  const init = await ensureGuestInit(opts.home);
  // the probe guest is the init alone (an empty layer); it powers off at once
  const empty = path.join(path.resolve(opts.home), 'vm', 'probe-layer');
  await fs.mkdir(empty, { recursive: true });
  const initrd = await ensureInitramfs({ home: opts.home, layers: [empty], init, kernel: { ...opts.kernel, modules: [] } });
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'hearth-kvm-probe-'));
  try {
    const args = qemuArgs({
      accel: 'kvm',
      kernel: opts.kernel.vmlinuz,
      initrd: initrd.path,
      memoryMb: 128,
      cpus: 1,
      socketPath: path.join(scratch, 's'),
      consolePath: path.join(scratch, 'console'),
      append: ['hearth.probe'],
    });
    const qemu = spawn(QEMU, args, { stdio: 'ignore' });
    const deadline = Date.now() + (opts.timeoutMs ?? 3000);
    const gone = new Promise((r) => qemu.once('close', r));
    let exited = false;
    void gone.then(() => (exited = true));
    qemu.on('error', () => (exited = true));
    try {
      while (Date.now() < deadline) {
        const text = await fs.readFile(path.join(scratch, 'console'), 'utf8').catch(() => '');
        if (text.includes(MARKER)) return 'kvm';
        if (exited) return 'tcg';
        await new Promise((r) => setTimeout(r, 20));
      }
      return 'tcg';
    } finally {
      if (!exited && qemu.pid) {
        qemu.kill('SIGKILL');
        await gone;
      }
    }
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
}
