/**
 * The seccomp profile of every Hearth container: allow by default, deny what a function never
 * needs and what widens the kernel's attack surface. Denied calls fail with EPERM (ENOSYS for
 * clone3, so glibc falls back to clone, whose flags can be filtered).
 */

const DENIED = [
  // filesystems and namespaces: the sandbox's own shape must not change from inside
  'mount', 'umount2', 'pivot_root', 'chroot', 'unshare', 'setns', 'fsopen', 'fsconfig', 'fsmount',
  'fspick', 'move_mount', 'open_tree', 'mount_setattr', 'name_to_handle_at', 'open_by_handle_at',
  // kernel, modules, time, power
  'kexec_load', 'kexec_file_load', 'init_module', 'finit_module', 'delete_module', 'reboot',
  'swapon', 'swapoff', 'settimeofday', 'clock_settime', 'clock_adjtime', 'adjtimex', 'acct',
  'syslog', 'sysfs', '_sysctl', 'quotactl', 'quotactl_fd', 'lookup_dcookie', 'nfsservctl',
  'vhangup', 'iopl', 'ioperm', 'create_module', 'get_kernel_syms', 'query_module', 'uselib',
  // tracing and cross-process access
  'ptrace', 'process_vm_readv', 'process_vm_writev', 'kcmp', 'perf_event_open', 'bpf',
  'userfaultfd', 'fanotify_init',
  // keyrings
  'keyctl', 'add_key', 'request_key',
  // io_uring bypasses seccomp for the operations it submits
  'io_uring_setup', 'io_uring_enter', 'io_uring_register',
] as const;

const EPERM = 1;
// CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
const CLONE_NEW_FLAGS = [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000];

export interface SeccompProfile {
  defaultAction: string;
  architectures: string[];
  syscalls: { names: string[]; action: string; errnoRet?: number; args?: { index: number; value: number; valueTwo?: number; op: string }[] }[];
}

export function seccompProfile(): SeccompProfile {
  return {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
    syscalls: [
      { names: [...DENIED], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM },
      // clone3 passes flags in a struct that seccomp cannot read: refuse it as "not
      // implemented" so libc uses clone(), whose flags are checked below.
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 /* ENOSYS */ },
      // One rule per flag: rules for a syscall are OR'ed, and there is no "masked not-equal".
      ...CLONE_NEW_FLAGS.map((flag) => ({
        names: ['clone'],
        action: 'SCMP_ACT_ERRNO',
        errnoRet: EPERM,
        args: [{ index: 0, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }],
      })),
    ],
  };
}
