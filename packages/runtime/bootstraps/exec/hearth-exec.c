/*
 * hearth-exec: the bootstrap of Hearth's exec base image (busybox + this, no node).
 *
 * Serves the invoke protocol (HTTP/1.1 on the Unix socket $HEARTH_SOCKET). For each request
 * it runs $HEARTH_HANDLER with the body on stdin and HTTP_METHOD, HTTP_PATH, HTTP_QUERY,
 * HTTP_CONTENT_TYPE in the environment. Exit 0: 200 with its stdout (Content-Type from
 * $HEARTH_CONTENT_TYPE or text/plain). Non-zero: 500 with the tail of its stderr.
 * One connection per request (Connection: close); each connection is served in a child.
 *
 * Build: gcc -static -O2 -Wall -Wextra -o hearth-exec hearth-exec.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_HEAD (32 * 1024)          /* request line + headers */
#define MAX_BODY (64L * 1024 * 1024)  /* request body and handler stdout */
#define ERR_TAIL 4096                 /* stderr bytes kept for a 500 */

typedef struct { char *data; size_t len, cap; } buf_t;

static int buf_add(buf_t *b, const char *p, size_t n, size_t limit) {
  if (b->len + n > limit) return -1;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) return -1;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static void respond(int fd, int status, const char *type, const char *body, size_t len) {
  const char *reason = status == 200 ? "OK" : status == 400 ? "Bad Request"
                     : status == 413 ? "Payload Too Large" : "Internal Server Error";
  char head[512];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                   status, reason, type, len);
  if (write_all(fd, head, (size_t)n) == 0 && len > 0) write_all(fd, body, len);
}

static void fail(int fd, int status, const char *msg) {
  respond(fd, status, "text/plain", msg, strlen(msg));
}

/* Case-insensitive header lookup in the NUL-terminated header block; copies the value. */
static int header(const char *head, const char *name, char *out, size_t outlen) {
  size_t nl = strlen(name);
  for (const char *line = strstr(head, "\r\n"); line; line = strstr(line, "\r\n")) {
    line += 2;
    if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
      const char *v = line + nl + 1;
      while (*v == ' ' || *v == '\t') v++;
      size_t n = strcspn(v, "\r\n");
      if (n >= outlen) n = outlen - 1;
      memcpy(out, v, n);
      out[n] = '\0';
      return 1;
    }
  }
  return 0;
}

/* Runs the handler: feeds `in` to stdin, collects stdout and the tail of stderr. */
static int run_handler(const char *prog, const buf_t *in, buf_t *out, buf_t *err) {
  int pin[2], pout[2], perr[2];
  if (pipe(pin) || pipe(pout) || pipe(perr)) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    signal(SIGPIPE, SIG_DFL); /* ignored dispositions survive execv */
    dup2(pin[0], 0); dup2(pout[1], 1); dup2(perr[1], 2);
    close(pin[0]); close(pin[1]); close(pout[0]); close(pout[1]); close(perr[0]); close(perr[1]);
    char *const argv[] = { (char *)prog, NULL };
    execv(prog, argv);
    fprintf(stderr, "hearth-exec: cannot run %s: %s\n", prog, strerror(errno));
    _exit(127);
  }
  close(pin[0]); close(pout[1]); close(perr[1]);
  size_t sent = 0;
  int fin = in->len > 0 ? pin[1] : -1, fout = pout[0], ferr = perr[0];
  if (fin < 0) close(pin[1]);
  else fcntl(fin, F_SETFL, O_NONBLOCK); /* a blocking write would wait for the whole body */
  char chunk[16384];
  /* poll all three pipes so a handler that writes before reading all input cannot deadlock */
  while (fout >= 0 || ferr >= 0) {
    struct pollfd p[3] = { { fin, POLLOUT, 0 }, { fout, POLLIN, 0 }, { ferr, POLLIN, 0 } };
    if (poll(p, 3, -1) < 0) { if (errno == EINTR) continue; break; }
    if (fin >= 0 && p[0].revents) {
      ssize_t w = write(fin, in->data + sent, in->len - sent);
      if (w > 0) sent += (size_t)w;
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || sent == in->len) { close(fin); fin = -1; }
    }
    for (int i = 1; i <= 2; i++) {
      int *fd = i == 1 ? &fout : &ferr;
      if (*fd < 0 || !p[i].revents) continue;
      ssize_t r = read(*fd, chunk, sizeof chunk);
      if (r <= 0) { close(*fd); *fd = -1; continue; }
      if (i == 1) {
        if (buf_add(out, chunk, (size_t)r, MAX_BODY) < 0) { kill(pid, SIGKILL); close(fout); fout = -1; }
      } else {
        write_all(2, chunk, (size_t)r); /* the function log */
        const char *p = chunk;
        size_t n = (size_t)r;
        if (n > ERR_TAIL) { p += n - ERR_TAIL; n = ERR_TAIL; }
        if (err->len + n > ERR_TAIL) { /* keep the tail: drop the oldest bytes */
          size_t drop = err->len + n - ERR_TAIL;
          memmove(err->data, err->data + drop, err->len - drop);
          err->len -= drop;
        }
        buf_add(err, p, n, ERR_TAIL);
      }
    }
  }
  if (fin >= 0) close(fin);
  int status;
  while (waitpid(pid, &status, 0) < 0) if (errno != EINTR) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void serve(int fd, const char *prog) {
  buf_t req = {0}, out = {0}, err = {0};
  char *end = NULL;
  char chunk[16384];
  while (!(end = req.data ? strstr(req.data, "\r\n\r\n") : NULL)) {
    ssize_t r = read(fd, chunk, sizeof chunk);
    if (r <= 0) return;
    if (buf_add(&req, chunk, (size_t)r, MAX_HEAD + sizeof chunk) < 0) { fail(fd, 413, "headers too large\n"); return; }
  }
  *end = '\0';
  size_t head_len = (size_t)(end - req.data) + 4;
  char method[16], target[8192], value[256];
  if (sscanf(req.data, "%15s %8191s", method, target) != 2) { fail(fd, 400, "bad request line\n"); return; }
  if (header(req.data, "Transfer-Encoding", value, sizeof value)) { fail(fd, 400, "chunked bodies are not supported; send Content-Length\n"); return; }
  long clen = header(req.data, "Content-Length", value, sizeof value) ? strtol(value, NULL, 10) : 0;
  if (clen < 0 || clen > MAX_BODY) { fail(fd, 413, "body too large\n"); return; }
  if (header(req.data, "Expect", value, sizeof value) && strcasecmp(value, "100-continue") == 0)
    write_all(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
  char ctype[256] = "";
  header(req.data, "Content-Type", ctype, sizeof ctype);

  /* body: what came with the headers, then the rest */
  buf_t body = {0};
  size_t have = req.len - head_len;
  if (have > (size_t)clen) have = (size_t)clen;
  if (buf_add(&body, req.data + head_len, have, MAX_BODY) < 0) { fail(fd, 413, "body too large\n"); return; }
  while (body.len < (size_t)clen) {
    size_t want = (size_t)clen - body.len;
    ssize_t r = read(fd, chunk, want < sizeof chunk ? want : sizeof chunk);
    if (r <= 0) return;
    buf_add(&body, chunk, (size_t)r, MAX_BODY);
  }

  char *query = strchr(target, '?');
  if (query) *query++ = '\0';
  setenv("HTTP_METHOD", method, 1);
  setenv("HTTP_PATH", target, 1);
  setenv("HTTP_QUERY", query ? query : "", 1);
  setenv("HTTP_CONTENT_TYPE", ctype, 1);

  int code = run_handler(prog, &body, &out, &err);
  if (code == 0) {
    const char *type = getenv("HEARTH_CONTENT_TYPE");
    respond(fd, 200, type && *type ? type : "text/plain", out.data ? out.data : "", out.len);
  } else {
    char msg[ERR_TAIL + 128];
    int n = snprintf(msg, sizeof msg, "%s exited with status %d\n%.*s", prog, code, (int)err.len, err.data ? err.data : "");
    respond(fd, 500, "text/plain", msg, n < 0 ? 0 : (size_t)n >= sizeof msg ? sizeof msg - 1 : (size_t)n);
  }
}

int main(void) {
  const char *sock = getenv("HEARTH_SOCKET");
  const char *prog = getenv("HEARTH_HANDLER");
  if (!sock || !*sock) sock = "/run/hearth/invoke.sock";
  if (!prog || !*prog) { fprintf(stderr, "hearth-exec: HEARTH_HANDLER is not set\n"); return 1; }
  if (access(prog, X_OK) != 0) { fprintf(stderr, "hearth-exec: %s is not executable: %s\n", prog, strerror(errno)); return 1; }

  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if (strlen(sock) >= sizeof addr.sun_path) { fprintf(stderr, "hearth-exec: socket path too long\n"); return 1; }
  strcpy(addr.sun_path, sock);
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  unlink(sock);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 64) < 0) {
    fprintf(stderr, "hearth-exec: cannot listen on %s: %s\n", sock, strerror(errno));
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGCHLD, SIG_IGN); /* we may be pid 1: let the kernel reap connection children */
  for (;;) {
    int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (cfd < 0) { if (errno == EINTR || errno == ECONNABORTED) continue; perror("hearth-exec: accept"); return 1; }
    pid_t pid = fork();
    if (pid == 0) {
      close(lfd);
      signal(SIGCHLD, SIG_DFL); /* waitpid needs the handler's status */
      serve(cfd, prog);
      shutdown(cfd, SHUT_WR);
      close(cfd);
      _exit(0);
    }
    if (pid < 0) fail(cfd, 500, "hearth-exec: fork failed\n");
    close(cfd);
  }
}
