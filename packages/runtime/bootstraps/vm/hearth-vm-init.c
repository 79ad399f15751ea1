/*
 * hearth-vm-init: /init (pid 1) of a Hearth microVM.
 *
 * Boot: mount /proc /sys /dev /tmp /run and cgroup2, load the virtio modules listed in
 * /.hearth/modules, bring up lo, open the virtio-serial port named "hearth.invoke", and
 * read the instance config the host writes first on that port:
 *
 *   "HEARTH1 <n>\n" then n bytes of NUL-terminated fields:
 *   memory-limit-bytes, cwd, uid, gid, argc, argv[0..argc), env...
 *
 * Then it starts the function in its own pid and mount namespace (so it is pid 1 there),
 * in a memory cgroup with the limit, with a read-only view of the root, no capabilities,
 * no_new_privs and a seccomp filter. It answers "HEARTH1 READY\n" on the port once the
 * function listens on /run/hearth/invoke.sock, and from then on bridges the port's byte
 * stream to that socket: one host connection = one local connection (a host hang-up
 * closes the local side; a local close reconnects at the next byte from the host).
 *
 * When the function exits, init says why on the console and powers the VM off, so qemu
 * exits and the host sees the connection drop.
 *
 * With "hearth.probe" on the kernel command line it only prints HEARTH-PROBE-OK and
 * powers off (the host's KVM probe).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <fcntl.h>
#include <dirent.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#define PORT_NAME "hearth.invoke"
#define SOCKET_PATH "/run/hearth/invoke.sock"
#define NEW_ROOT "/.hearth/root"
#define CGROUP "/sys/fs/cgroup/function"

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("hearth-vm: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* "hearth.debug" on the kernel command line: say when each boot phase ends */
static int debug;

static void phase(const char *what) {
  if (!debug) return;
  char up[64] = {0};
  int fd = open("/proc/uptime", O_RDONLY);
  if (fd >= 0) {
    if (read(fd, up, sizeof up - 1) < 0) up[0] = 0;
    close(fd);
  }
  up[strcspn(up, " ")] = 0;
  say("%s at %s s", what, up);
}

static void power_off(void) {
  sync();
  reboot(RB_POWER_OFF);
  for (;;) pause();
}

static void die(const char *what) {
  say("%s: %s", what, strerror(errno));
  power_off();
}

static int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, text, strlen(text));
  close(fd);
  return n == (ssize_t)strlen(text) ? 0 : -1;
}

static void mount_basics(void) {
  mkdir("/proc", 0555);
  mkdir("/sys", 0555);
  mkdir("/dev", 0755);
  mkdir("/tmp", 01777);
  mkdir("/run", 0755);
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)) die("mount /proc");
  if (mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)) die("mount /sys");
  if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755")) die("mount /dev");
  if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=64m")) die("mount /tmp");
  if (mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=4m")) die("mount /run");
  mkdir("/run/hearth", 0755);
  mkdir("/dev/shm", 01777);
  mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=16m");
  if (mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)) die("mount cgroup2");
  int fd = open("/dev/console", O_RDWR);
  struct termios tio;
  /* the log is a file: keep "\n" as it is (the tty would write "\r\n") */
  if (fd >= 0 && tcgetattr(fd, &tio) == 0) {
    tio.c_oflag &= ~(tcflag_t)OPOST;
    tcsetattr(fd, TCSANOW, &tio);
  }
  if (fd >= 0) {
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    if (fd > 2) close(fd);
  }
}

static int cmdline_has(const char *word) {
  char buf[4096] = {0};
  int fd = open("/proc/cmdline", O_RDONLY);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  for (char *tok = strtok(buf, " \n"); tok; tok = strtok(NULL, " \n"))
    if (strcmp(tok, word) == 0) return 1;
  return 0;
}

/** /.hearth/modules lists the .ko files in load order, one path a line. */
static void load_modules(void) {
  FILE *f = fopen("/.hearth/modules", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    if (!line[0]) continue;
    int fd = open(line, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die(line);
    if (syscall(SYS_finit_module, fd, "", 0) && errno != EEXIST) die(line);
    close(fd);
  }
  fclose(f);
}

static void loopback_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return;
  struct ifreq ifr = {0};
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
    ifr.ifr_flags |= IFF_UP;
    ioctl(s, SIOCSIFFLAGS, &ifr);
  }
  close(s);
}

/** The /dev node of the virtio-serial port named PORT_NAME (udev is not there to link it). */
static int open_port(void) {
  for (int tries = 0; tries < 2000; tries++) {
    DIR *d = opendir("/sys/class/virtio-ports");
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      char path[300], name[64] = {0};
      snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
      int fd = open(path, O_RDONLY);
      if (fd < 0) continue;
      ssize_t n = read(fd, name, sizeof name - 1);
      close(fd);
      if (n > 0 && strncmp(name, PORT_NAME, strlen(PORT_NAME)) == 0) {
        snprintf(path, sizeof path, "/dev/%s", e->d_name);
        int port = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (port >= 0) {
          closedir(d);
          return port;
        }
      }
    }
    if (d) closedir(d);
    usleep(5000);
  }
  errno = ENODEV;
  die("virtio-serial port " PORT_NAME);
  return -1;
}

/**
 * Reads up to n bytes from the non-blocking port. A virtio-serial read returns 0 while
 * the host side is not connected, and poll() then reports readable at once, so waiting
 * for the host is a short sleep loop.
 */
static ssize_t port_read(int port, char *buf, size_t n, int block) {
  for (;;) {
    ssize_t r = read(port, buf, n);
    if (r > 0) return r;
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno != EAGAIN) return -1;
    if (!block) return r; /* 0: host gone; -1/EAGAIN: nothing yet */
    if (r == 0) {
      usleep(5000);
      continue;
    }
    struct pollfd p = {port, POLLIN, 0};
    poll(&p, 1, -1);
  }
}

static int write_all(int fd, const char *buf, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w > 0) {
      buf += w;
      n -= (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) {
      struct pollfd p = {fd, POLLOUT, 0};
      if (poll(&p, 1, 1000) <= 0 || (p.revents & (POLLHUP | POLLERR) && !(p.revents & POLLOUT))) return -1;
      continue;
    }
    return -1;
  }
  return 0;
}

struct config {
  char *memory, *cwd, *uid, *gid;
  char **argv, **envp;
};

static void read_config(int port, struct config *c) {
  char head[64];
  size_t got = 0;
  while (got < sizeof head - 1) {
    if (port_read(port, head + got, 1, 1) != 1) die("reading the config header");
    if (head[got++] == '\n') break;
  }
  head[got] = 0;
  size_t n;
  if (sscanf(head, "HEARTH1 %zu", &n) != 1 || n > (1 << 20)) {
    errno = EPROTO;
    die("config header");
  }
  char *buf = calloc(1, n + 1);
  for (size_t off = 0; off < n;) {
    ssize_t r = port_read(port, buf + off, n - off, 1);
    if (r <= 0) die("reading the config");
    off += (size_t)r;
  }
  size_t count = 0;
  for (size_t i = 0; i < n; i++) count += buf[i] == 0;
  char **fields = calloc(count + 1, sizeof *fields);
  for (size_t i = 0, f = 0; f < count; f++) {
    fields[f] = buf + i;
    i += strlen(buf + i) + 1;
  }
  if (count < 6) {
    errno = EPROTO;
    die("config fields");
  }
  c->memory = fields[0];
  c->cwd = fields[1];
  c->uid = fields[2];
  c->gid = fields[3];
  size_t argc = strtoul(fields[4], NULL, 10);
  if (argc < 1 || 5 + argc > count) {
    errno = EPROTO;
    die("config argv");
  }
  c->argv = fields + 5;
  c->envp = calloc(count - 5 - argc + 1, sizeof *c->envp);
  memcpy(c->envp, fields + 5 + argc, (count - 5 - argc) * sizeof *c->envp);
  c->argv[argc] = NULL; /* overwrites the first env pointer, already copied */
}

/* Calls a function never needs and that would reach past its sandbox. */
static const int DENIED[] = {
  SYS_mount, SYS_umount2, SYS_pivot_root, SYS_chroot, SYS_swapon, SYS_swapoff, SYS_reboot,
  SYS_sethostname, SYS_setdomainname, SYS_init_module, SYS_finit_module, SYS_delete_module,
  SYS_kexec_load, SYS_kexec_file_load, SYS_bpf, SYS_ptrace, SYS_process_vm_readv,
  SYS_process_vm_writev, SYS_unshare, SYS_setns, SYS_keyctl, SYS_add_key, SYS_request_key,
  SYS_perf_event_open, SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register,
  SYS_open_by_handle_at, SYS_acct, SYS_quotactl, SYS_syslog, SYS_settimeofday,
  SYS_clock_settime, SYS_adjtimex, SYS_clock_adjtime, SYS_userfaultfd, SYS_iopl, SYS_ioperm,
  SYS_fsopen, SYS_fsmount, SYS_move_mount, SYS_open_tree,
};

#define NS_FLAGS (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP)

static void install_seccomp(void) {
  size_t nden = sizeof DENIED / sizeof DENIED[0];
  struct sock_filter f[16 + 2 * (sizeof DENIED / sizeof DENIED[0])];
  size_t i = 0;
  f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
  f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
  f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
  f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
  /* x32 syscall numbers */
  f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1);
  f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
  /* clone3 passes flags in memory: ENOSYS makes libc fall back to clone */
  f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1);
  f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
  for (size_t d = 0; d < nden; d++) {
    f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)DENIED[d], 0, 1);
    f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
  }
  /* clone with a namespace flag */
  f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 3);
  f[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
  f[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NS_FLAGS, 0, 1);
  f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
  f[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  struct sock_fprog prog = {(unsigned short)i, f};
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)) die("seccomp");
}

static void drop_capabilities(void) {
  for (int cap = 0; cap <= 63; cap++) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) && errno == EINVAL) break;
  }
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {{0, 0, 0}, {0, 0, 0}};
  if (syscall(SYS_capset, &hdr, data)) die("capset");
}

/** The function's side of the fork: its own root view, no privileges, then exec. */
static void run_function(struct config *c, int go) {
  char x;
  if (read(go, &x, 1) != 1) _exit(111); /* the parent put us in the cgroup */
  close(go);
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) die("make / private");
  if (mount("/", NEW_ROOT, NULL, MS_BIND | MS_REC, NULL)) die("bind the root");
  if (mount(NULL, NEW_ROOT, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL)) die("remount the root read-only");
  /* /proc of the new pid namespace (the bind carried the old one along) */
  umount2(NEW_ROOT "/proc", MNT_DETACH);
  if (mount("proc", NEW_ROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)) die("mount the function's /proc");
  umount2(NEW_ROOT "/sys/fs/cgroup", MNT_DETACH);
  if (chdir(NEW_ROOT) || chroot(".") || chdir("/")) die("enter the function's root");
  if (c->cwd[0] && chdir(c->cwd)) die(c->cwd);
  gid_t gid = (gid_t)strtoul(c->gid, NULL, 10);
  uid_t uid = (uid_t)strtoul(c->uid, NULL, 10);
  if (gid && (setgroups(0, NULL) || setresgid(gid, gid, gid))) die("setgid");
  if (uid && setresuid(uid, uid, uid)) die("setuid");
  drop_capabilities();
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) die("no_new_privs");
  install_seccomp();
  execvpe(c->argv[0], c->argv, c->envp);
  say("cannot run %s: %s", c->argv[0], strerror(errno));
  _exit(127);
}

static pid_t start_function(struct config *c) {
  mkdir(CGROUP, 0755);
  write_file("/sys/fs/cgroup/cgroup.subtree_control", "+memory +pids");
  if (strcmp(c->memory, "0") != 0) {
    if (write_file(CGROUP "/memory.max", c->memory)) die("memory.max");
    write_file(CGROUP "/memory.swap.max", "0");
  }
  int go[2];
  if (pipe2(go, O_CLOEXEC)) die("pipe");
  pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD, NULL, NULL, NULL, 0);
  if (pid < 0) die("clone");
  if (pid == 0) {
    close(go[1]);
    run_function(c, go[0]);
  }
  close(go[0]);
  char text[32];
  snprintf(text, sizeof text, "%d", pid);
  if (write_file(CGROUP "/cgroup.procs", text)) die("join the memory cgroup");
  if (write(go[1], "g", 1) != 1) die("start the function");
  close(go[1]);
  return pid;
}

static int connect_local(void) {
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  strcpy(a.sun_path, SOCKET_PATH);
  if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) return s;
  close(s);
  return -1;
}

static long oom_kills(void) {
  char buf[512] = {0};
  int fd = open(CGROUP "/memory.events", O_RDONLY);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  char *p = n > 0 ? strstr(buf, "oom_kill ") : NULL;
  return p ? strtol(p + 9, NULL, 10) : 0;
}

static void function_exited(int status) {
  if (WIFEXITED(status)) {
    say("the function exited with status %d", WEXITSTATUS(status));
  } else {
    long ooms = oom_kills();
    say("the function was killed by signal %d%s", WTERMSIG(status), ooms ? " (out of memory)" : "");
  }
  power_off();
}

int main(void) {
  mount_basics();
  if (cmdline_has("hearth.probe")) {
    say("HEARTH-PROBE-OK");
    power_off();
  }
  debug = cmdline_has("hearth.debug");
  phase("init");
  load_modules();
  loopback_up();
  int port = open_port();
  phase("port open");
  struct config c;
  read_config(port, &c);
  phase("config read");

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sig = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  pid_t fn = start_function(&c);

  int local = -1, ready = 0, host_up = 1;
  static char buf[65536];
  for (;;) {
    struct pollfd p[3] = {{sig, POLLIN, 0}, {host_up ? port : -1, POLLIN, 0}, {local, POLLIN, 0}};
    /* until ready: poll the socket every 2 ms; while the host is away: every 5 ms */
    int timeout = !ready ? 2 : host_up ? -1 : 5;
    poll(p, 3, timeout);

    struct signalfd_siginfo si;
    while (read(sig, &si, sizeof si) == sizeof si) {
      int status;
      pid_t dead;
      while ((dead = waitpid(-1, &status, WNOHANG)) > 0)
        if (dead == fn) function_exited(status);
    }

    if (!ready) {
      int s = connect_local();
      if (s < 0) continue;
      close(s);
      ready = 1;
      phase("function listening");
      if (write_all(port, "HEARTH1 READY\n", 14)) host_up = 0;
      continue;
    }

    ssize_t n = port_read(port, buf, sizeof buf, 0);
    if (n == 0) {
      /* the host hung up: its HTTP connection is over, so is ours */
      if (local >= 0) close(local);
      local = -1;
      host_up = 0;
    } else if (n > 0) {
      host_up = 1;
      if (local < 0) local = connect_local();
      if (local < 0 || write_all(local, buf, (size_t)n)) {
        /* the function stopped listening: the host sees no answer and times out */
        say("cannot reach the function on " SOCKET_PATH);
        if (local >= 0) close(local);
        local = -1;
      }
    } else {
      host_up = 1;
    }

    if (local >= 0 && (p[2].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t m = read(local, buf, sizeof buf);
      if (m > 0) {
        write_all(port, buf, (size_t)m);
      } else if (m == 0 || (m < 0 && errno != EAGAIN && errno != EINTR)) {
        close(local);
        local = -1; /* reconnect at the host's next byte */
      }
    }
  }
}
