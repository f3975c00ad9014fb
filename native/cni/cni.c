/*
 * netmodes-cni: the CNI plugin executable. A runtime runs it once per operation (environment +
 * network configuration on stdin); it hands the call to the resident netmodes server of this
 * network namespace over a unix socket and prints the answer, starting the server when none runs.
 * It does no networking of its own: the verbs live in lib/cni/plugin.ts, run by the server
 * (lib/cni/server.ts) or, when no server can be reached, by a Node process of this call's own
 * (lib/cni/main.js), which this program then becomes (execv, stdin replayed from a memfd).
 *
 * Where Node and the package are: `netmodes cni install` copies this program and appends a
 * trailer, "node=PATH\0root=PATH\0" + u32 length + the 8 bytes "NMCNI\0T1", so the installed
 * plugin works from any directory. Without a trailer (the build's own copy): root is three
 * directories above the executable (build/Release/netmodes-cni), node is $NETMODES_NODE or the
 * first `node` on PATH.
 *
 * Environment it reads besides CNI_*: NETMODES_STATE_DIR (default /run/netmodes: the server's
 * socket is STATE/cni/server-INO.sock, INO = this network namespace's inode), NETMODES_CNI_MODE
 * (`process`: always run the verb in a Node process of its own; `server`: never fall back),
 * NETMODES_CNI_START_MS (how long to wait for a server it started, default 5000).
 *
 * A server that dies during a call: an idempotent verb is sent again (to a new server); an ADD is
 * first undone with a DEL of the same attachment, then sent again, so the runtime sees either a
 * whole ADD or an error (11, try again later) that leaves nothing behind.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_STDIN (8u << 20)
#define WRONG_NAMESPACE 255
/* try_call's outcomes besides a status */
#define NO_SERVER (-2)
#define LOST (-1)

static char node_path[PATH_MAX];
static char root_path[PATH_MAX];
static char state_dir[PATH_MAX];
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static char netns_ino[32];

struct buf {
  char *p;
  size_t len, cap;
};

static void put(struct buf *b, const void *data, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      perror("netmodes-cni: out of memory");
      exit(1);
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
}

static void put_u32(struct buf *b, uint32_t v) {
  unsigned char le[4] = {v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >> 24) & 0xff};
  put(b, le, 4);
}

static uint32_t get_u32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static struct buf input; /* the network configuration (stdin) */

/* The configuration's cniVersion, for error objects printed from here ("1.1.0" if none). */
static void conf_version(char *out, size_t n) {
  snprintf(out, n, "1.1.0");
  if (!input.len) return;
  const char *end = input.p + input.len;
  const char *k = memmem(input.p, input.len, "\"cniVersion\"", 12);
  if (!k) return;
  const char *q = memchr(k + 12, '"', end - (k + 12));
  if (!q) return;
  const char *e = memchr(q + 1, '"', end - (q + 1));
  if (!e || e - q - 1 <= 0 || (size_t)(e - q - 1) >= n) return;
  for (const char *c = q + 1; c < e; c++)
    if (!((*c >= '0' && *c <= '9') || *c == '.')) return;
  memcpy(out, q + 1, e - q - 1);
  out[e - q - 1] = 0;
}

/* Prints the specification's error object (msg must need no JSON escaping) and exits 1. */
static void fail(int code, const char *msg) {
  char v[32];
  conf_version(v, sizeof v);
  printf("{\"cniVersion\":\"%s\",\"code\":%d,\"msg\":\"%s\"}", v, code, msg);
  fflush(stdout);
  fprintf(stderr, "netmodes-cni: %s\n", msg);
  exit(1);
}

static int read_trailer(void) {
  int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  off_t end = lseek(fd, 0, SEEK_END);
  unsigned char tail[12];
  int ok = -1;
  if (end > 12 && pread(fd, tail, 12, end - 12) == 12 && memcmp(tail + 4, "NMCNI\0T1", 8) == 0) {
    uint32_t len = get_u32(tail);
    char *t = len > 0 && len < 16384 && (off_t)len < end - 12 ? malloc(len + 1) : NULL;
    if (t && pread(fd, t, len, end - 12 - len) == (ssize_t)len) {
      t[len] = 0;
      for (char *kv = t; kv < t + len; kv += strlen(kv) + 1) {
        if (!strncmp(kv, "node=", 5)) snprintf(node_path, sizeof node_path, "%s", kv + 5);
        if (!strncmp(kv, "root=", 5)) snprintf(root_path, sizeof root_path, "%s", kv + 5);
      }
      ok = node_path[0] && root_path[0] ? 0 : -1;
    }
    free(t);
  }
  close(fd);
  return ok;
}

static void find_paths(void) {
  if (read_trailer() == 0) return;
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) fail(999, "cannot read /proc/self/exe");
  exe[n] = 0;
  for (int up = 0; up < 3; up++) {
    char *s = strrchr(exe, '/');
    if (s) *s = 0;
  }
  snprintf(root_path, sizeof root_path, "%s", exe);
  const char *env = getenv("NETMODES_NODE");
  if (env && *env) {
    snprintf(node_path, sizeof node_path, "%s", env);
    return;
  }
  const char *path = getenv("PATH");
  if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
  for (const char *p = path; *p;) {
    const char *c = strchr(p, ':');
    size_t l = c ? (size_t)(c - p) : strlen(p);
    char cand[PATH_MAX];
    if (l && snprintf(cand, sizeof cand, "%.*s/node", (int)l, p) < (int)sizeof cand && access(cand, X_OK) == 0) {
      snprintf(node_path, sizeof node_path, "%s", cand);
      return;
    }
    p += l + (c ? 1 : 0);
  }
  snprintf(node_path, sizeof node_path, "/usr/bin/node");
}

static void read_stdin(void) {
  char chunk[65536];
  for (;;) {
    ssize_t n = read(0, chunk, sizeof chunk);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EBADF) break; /* no stdin at all */
      fail(5, "cannot read stdin");
    }
    if (input.len + n > MAX_STDIN) fail(6, "the network configuration on stdin is too large");
    put(&input, chunk, n);
  }
}

/* The request frame: "NMC1" envLen env stdinLen stdin; `command` overrides CNI_COMMAND. */
static struct buf request(const char *command) {
  struct buf env = {0}, req = {0};
  for (char **e = environ; *e; e++) {
    if (strncmp(*e, "CNI_", 4) && strncmp(*e, "NETMODES_CNI_", 13)) continue;
    if (command && !strncmp(*e, "CNI_COMMAND=", 12)) continue;
    if (!strncmp(*e, "NETMODES_CNI_NETNS_INO=", 23)) continue;
    put(&env, *e, strlen(*e) + 1);
  }
  if (command) {
    put(&env, "CNI_COMMAND=", 12);
    put(&env, command, strlen(command) + 1);
  }
  char ino[64];
  int n = snprintf(ino, sizeof ino, "NETMODES_CNI_NETNS_INO=%s", netns_ino);
  put(&env, ino, n + 1);
  put(&req, "NMC1", 4);
  put_u32(&req, env.len);
  put(&req, env.p, env.len);
  put_u32(&req, input.len);
  if (input.len) put(&req, input.p, input.len);
  free(env.p);
  return req;
}

/*
 * One call to the server: its status with its output in `out`, NO_SERVER when nothing listens,
 * LOST when the server went away before it answered.
 */
static int try_call(const struct buf *req, struct buf *out) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return NO_SERVER;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    close(fd);
    return NO_SERVER;
  }
  for (size_t off = 0; off < req->len;) {
    ssize_t n = send(fd, req->p + off, req->len - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      return LOST;
    }
    off += n;
  }
  struct buf in = {0};
  char chunk[65536];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    put(&in, chunk, n);
  }
  close(fd);
  int status = LOST;
  if (in.len >= 12 && !memcmp(in.p, "NMR1", 4)) {
    uint32_t len = get_u32((unsigned char *)in.p + 8);
    if (in.len >= 12 + (size_t)len) {
      status = (int)get_u32((unsigned char *)in.p + 4);
      out->len = 0;
      if (len) put(out, in.p + 12, len);
    }
  }
  free(in.p);
  return status;
}

static void mkdirs(const char *dir) {
  char p[PATH_MAX + 8];
  snprintf(p, sizeof p, "%s", dir);
  for (char *s = p + 1; *s; s++)
    if (*s == '/') {
      *s = 0;
      mkdir(p, 0755);
      *s = '/';
    }
  mkdir(p, 0700);
}

/* Starts a server, detached (its own session, stdio on /dev/null and its log, no fds of ours). */
static void start_server(void) {
  char script[PATH_MAX + 64], log[PATH_MAX + 128], dir[PATH_MAX + 8];
  snprintf(script, sizeof script, "%s/dist/lib/cni/server.js", root_path);
  snprintf(dir, sizeof dir, "%s/cni", state_dir);
  snprintf(log, sizeof log, "%s/server-%s.log", dir, netns_ino);
  pid_t pid = fork();
  if (pid < 0) return;
  if (pid == 0) {
    setsid();
    if (fork() != 0) _exit(0);
    mkdirs(dir);
    int devnull = open("/dev/null", O_RDWR);
    int lfd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (lfd < 0) lfd = devnull;
    dup2(devnull, 0);
    dup2(lfd, 1);
    dup2(lfd, 2);
    DIR *d = opendir("/proc/self/fd");
    if (d) {
      int keep = dirfd(d);
      struct dirent *e;
      while ((e = readdir(d)))
        if (e->d_name[0] != '.' && atoi(e->d_name) > 2 && atoi(e->d_name) != keep) close(atoi(e->d_name));
      closedir(d);
    }
    if (chdir("/") < 0) _exit(1);
    /* The server serves every container: the caller's CNI_* are not its own. */
    for (char **e = environ; *e;) {
      if (!strncmp(*e, "CNI_", 4)) {
        char name[256];
        const char *eq = strchr(*e, '=');
        size_t l = eq ? (size_t)(eq - *e) : strlen(*e);
        if (l >= sizeof name) l = sizeof name - 1;
        memcpy(name, *e, l);
        name[l] = 0;
        unsetenv(name);
      } else {
        e++;
      }
    }
    char *argv[] = {node_path, script, NULL};
    execv(node_path, argv);
    _exit(127);
  }
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* A call, starting a server when none listens; NO_SERVER when none came up in time. */
static int call(const struct buf *req, struct buf *out) {
  int r = try_call(req, out);
  if (r != NO_SERVER) return r;
  start_server();
  const char *ms = getenv("NETMODES_CNI_START_MS");
  long limit = ms && *ms ? atol(ms) : 5000;
  long start = now_ms(), wait = 2;
  for (;;) {
    r = try_call(req, out);
    if (r != NO_SERVER || now_ms() - start > limit) return r;
    sleep_ms(wait);
    if (wait < 50) wait *= 2;
  }
}

/* Runs the verb in a Node process of this call's own: this process becomes it. */
static void run_in_process(void) {
  char script[PATH_MAX + 64];
  snprintf(script, sizeof script, "%s/dist/lib/cni/main.js", root_path);
  int fd = memfd_create("netmodes-cni-stdin", 0);
  if (fd < 0) fail(999, "memfd_create failed");
  for (size_t off = 0; off < input.len;) {
    ssize_t n = write(fd, input.p + off, input.len - off);
    if (n <= 0) fail(999, "cannot replay stdin");
    off += n;
  }
  lseek(fd, 0, SEEK_SET);
  dup2(fd, 0);
  close(fd);
  char *argv[] = {node_path, script, NULL};
  execv(node_path, argv);
  fail(999, "cannot execute node (set NETMODES_NODE, or reinstall with netmodes cni install)");
}

static int finish(int status, const struct buf *out) {
  if (out->len) fwrite(out->p, 1, out->len, stdout);
  fflush(stdout);
  return status;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  find_paths();
  read_stdin();
  const char *sd = getenv("NETMODES_STATE_DIR");
  snprintf(state_dir, sizeof state_dir, "%s", sd && *sd ? sd : "/run/netmodes");
  struct stat st;
  if (stat("/proc/self/ns/net", &st) < 0) run_in_process();
  snprintf(netns_ino, sizeof netns_ino, "%lu", (unsigned long)st.st_ino);
  const char *mode = getenv("NETMODES_CNI_MODE");
  int must_serve = mode && !strcmp(mode, "server");
  if (mode && !strcmp(mode, "process")) run_in_process();
  if (snprintf(sock_path, sizeof sock_path, "%s/cni/server-%s.sock", state_dir, netns_ino) >= (int)sizeof sock_path) {
    if (must_serve) fail(11, "the server socket path is too long");
    run_in_process();
  }
  const char *cmd = getenv("CNI_COMMAND");
  struct buf req = request(NULL), out = {0};
  int r = call(&req, &out);
  if (r == LOST) {
    if (cmd && !strcmp(cmd, "ADD")) {
      /* The ADD may have been half done: undo it whole, then do it again. */
      struct buf undo = request("DEL"), dout = {0};
      int d = call(&undo, &dout);
      if (d == LOST) d = call(&undo, &dout);
      if (d != 0) fail(11, "the netmodes server went away during ADD and its cleanup did not finish: try again");
    }
    r = call(&req, &out);
    if (r == LOST) fail(11, "the netmodes server went away twice during this call: try again");
  }
  if (r == NO_SERVER || r == WRONG_NAMESPACE) {
    if (must_serve) fail(11, "no netmodes server could be reached");
    run_in_process();
  }
  return finish(r, &out);
}
