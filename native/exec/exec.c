/*
 * netmodes-exec: runs a command inside a sandbox's network namespace, the way `ip netns exec`
 * does, but without a shell and with the sandbox's own hosts, resolv.conf and host name.
 *
 *   netmodes-exec [--netns PATH] [--hosts FILE] [--resolv FILE] [--hostname NAME]
 *                 [--uid N] [--gid N] [--argv0 NAME] -- COMMAND [ARGS...]
 *
 * Steps, in this order:
 *   1. setns(CLONE_NEWNET) into PATH (a named namespace under /run/netns, /proc/PID/ns/net, ...);
 *   2. when it entered a namespace or must mount files: a private mount namespace whose root is
 *      made rslave, so nothing mounted here propagates back to the host; then, as `ip netns exec`
 *      does, a fresh sysfs on /sys so /sys/class/net lists the namespace's own links; then FILE
 *      bind-mounted over /etc/hosts and /etc/resolv.conf;
 *   3. with --hostname: a new UTS namespace and sethostname(NAME);
 *   4. with --uid / --gid: no supplementary groups, then setgid, setuid (as libuv does for
 *      spawn's options; after the privileged steps, which need root);
 *   5. execvp(COMMAND): the process keeps its pid, stdio, environment and working directory, so a
 *      caller's ChildProcess sees the command's own exit status and signals.
 *
 * Exit status when the command never starts, as `docker run` reports it: 125 for a failure of
 * netmodes-exec itself (bad arguments, setns, mount, hostname, credentials), 126 when the command
 * cannot be executed, 127 when it is not found. A message goes to stderr in each case.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define EXIT_SETUP 125
#define EXIT_CANNOT_EXEC 126
#define EXIT_NOT_FOUND 127

static const char *prog = "netmodes-exec";

static void die(const char *what, const char *arg, int err) {
  if (arg)
    fprintf(stderr, "%s: %s %s: %s\n", prog, what, arg, strerror(err));
  else
    fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(err));
  exit(EXIT_SETUP);
}

static void usage(const char *problem) {
  fprintf(stderr,
          "%s: %s\n"
          "usage: %s [--netns PATH] [--hosts FILE] [--resolv FILE] [--hostname NAME] [--uid N] [--gid N]"
          " [--argv0 NAME] -- COMMAND [ARGS...]\n",
          prog, problem, prog);
  exit(EXIT_SETUP);
}

static long parse_id(const char *s, const char *flag) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *s == '\0' || *end != '\0' || v < 0 || v > (long)UINT_MAX - 1) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s needs a numeric id", flag);
    usage(msg);
  }
  return v;
}

static void enter_netns(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("cannot open network namespace", path, errno);
  if (setns(fd, CLONE_NEWNET) < 0) die("cannot enter network namespace", path, errno);
  close(fd);
}

/* A sysfs that describes the namespace just entered (iproute2's netns_switch does the same). */
static void remount_sys(void) {
  unsigned long flags = 0;
  struct statvfs st;
  if (umount2("/sys", MNT_DETACH) < 0 && statvfs("/sys", &st) == 0 && (st.f_flag & ST_RDONLY))
    flags = MS_RDONLY; /* a read-only /sys can only be shadowed by a read-only one */
  if (mount("sysfs", "/sys", "sysfs", flags, NULL) < 0) die("cannot mount sysfs on", "/sys", errno);
}

static void bind_file(const char *src, const char *dst) {
  if (mount(src, dst, NULL, MS_BIND, NULL) < 0) {
    int e = errno;
    fprintf(stderr, "%s: cannot bind-mount %s over %s: %s\n", prog, src, dst, strerror(e));
    exit(EXIT_SETUP);
  }
}

int main(int argc, char **argv) {
  const char *netns = NULL, *hosts = NULL, *resolv = NULL, *hostname = NULL, *argv0 = NULL;
  long uid = -1, gid = -1;
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (i + 1 >= argc) usage("missing value or command");
    const char *v = argv[++i];
    if (strcmp(a, "--netns") == 0) netns = v;
    else if (strcmp(a, "--hosts") == 0) hosts = v;
    else if (strcmp(a, "--resolv") == 0) resolv = v;
    else if (strcmp(a, "--hostname") == 0) hostname = v;
    else if (strcmp(a, "--argv0") == 0) argv0 = v;
    else if (strcmp(a, "--uid") == 0) uid = parse_id(v, a);
    else if (strcmp(a, "--gid") == 0) gid = parse_id(v, a);
    else {
      char msg[256];
      snprintf(msg, sizeof msg, "unknown option %.200s", a);
      usage(msg);
    }
  }

  if (i >= argc) usage("no command given");

  if (netns) enter_netns(netns);
  if (netns || hosts || resolv) {
    if (unshare(CLONE_NEWNS) < 0) die("cannot create a mount namespace", NULL, errno);
    /* Nothing mounted from here on may propagate back to the host's mount namespace. */
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0) die("cannot make / rslave", NULL, errno);
    if (netns) remount_sys();
    if (hosts) bind_file(hosts, "/etc/hosts");
    if (resolv) bind_file(resolv, "/etc/resolv.conf");
  }
  if (hostname) {
    if (unshare(CLONE_NEWUTS) < 0) die("cannot create a UTS namespace", NULL, errno);
    if (sethostname(hostname, strlen(hostname)) < 0) die("cannot set the host name", hostname, errno);
  }
  if (uid >= 0 || gid >= 0) {
    /* As libuv does for spawn's uid/gid options: no supplementary groups, then gid, then uid. */
    if (setgroups(0, NULL) < 0) die("setgroups", NULL, errno);
    if (gid >= 0 && setgid((gid_t)gid) < 0) die("setgid", NULL, errno);
    if (uid >= 0 && setuid((uid_t)uid) < 0) die("setuid", NULL, errno);
  }

  const char *cmd = argv[i];
  if (argv0) argv[i] = (char *)argv0;
  execvp(cmd, argv + i);
  int e = errno;
  fprintf(stderr, "%s: %s: %s\n", prog, cmd, strerror(e));
  return e == ENOENT || e == ENOTDIR ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC;
}
