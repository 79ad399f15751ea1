/**
 * The qemu command line of a Hearth microVM, in one place: `-M microvm` with the legacy
 * timers, no network device, a serial console into the function's log, and the invoke
 * stream on a virtio-serial port that qemu serves as a Unix socket.
 *
 * Under TCG the guest kernel cannot calibrate its TSC against the emulated PIT on a busy
 * host ("tsc: Unable to calibrate against PIT") and then hangs before /init, so the host
 * tells it the frequency (TCG's guest TSC is the host's) with `tsc_early_khz`.
 */
import { readFileSync } from 'node:fs';

export type VmAccel = 'kvm' | 'tcg';

export const QEMU = 'qemu-system-x86_64';
/** The name the guest init looks for in /sys/class/virtio-ports/ * /name. */
export const PORT_NAME = 'hearth.invoke';

export interface QemuArgsInput {
  accel: VmAccel;
  kernel: string;
  initrd: string;
  memoryMb: number;
  cpus: number;
  /** Where qemu listens for the host's side of the invoke port. */
  socketPath: string;
  /** Serial console output (appended). */
  consolePath: string;
  /** Extra kernel command line words. */
  append?: string[];
}

let tscKhz: number | undefined;

/** The host's TSC frequency in kHz, from /proc/cpuinfo (2 GHz if it says nothing). */
export function hostTscKhz(): number {
  if (tscKhz === undefined) {
    const mhz = Number(readFileSync('/proc/cpuinfo', 'utf8').match(/^cpu MHz\s*:\s*([\d.]+)/m)?.[1] ?? 0);
    tscKhz = mhz > 0 ? Math.round(mhz * 1000) : 2_000_000;
  }
  return tscKhz;
}

export function qemuArgs(a: QemuArgsInput): string[] {
  const clock = a.accel === 'tcg' ? [`tsc_early_khz=${hostTscKhz()}`, 'no_timer_check'] : [];
  const cmdline = ['console=ttyS0', 'quiet', 'loglevel=3', 'panic=-1', 'pci=off', 'rdinit=/init',
    // ramfs: a tmpfs root would be capped at half the RAM, less than a 100 MB image
    'rootfstype=ramfs',
    // under TCG every retpoline and flush is emulated: ~20% of the boot
    'mitigations=off', ...clock, ...(a.append ?? [])];
  return [
    '-M', 'microvm,pit=on,pic=on,rtc=on',
    '-accel', a.accel,
    '-m', `${a.memoryMb}M`,
    '-smp', String(a.cpus),
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
    '-nic', 'none',
    // qemu itself may not spawn, gain privileges or use obsolete calls
    '-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
    '-kernel', a.kernel,
    '-initrd', a.initrd,
    '-append', cmdline.join(' '),
    '-chardev', `file,id=console,path=${a.consolePath},append=on`,
    '-serial', 'chardev:console',
    '-device', 'virtio-serial-device,max_ports=2',
    '-chardev', `socket,id=invoke,path=${a.socketPath},server=on,wait=off`,
    '-device', `virtserialport,chardev=invoke,name=${PORT_NAME}`,
  ];
}
