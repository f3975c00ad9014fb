// The dense benchmark's reachability prober (benchmarks/60.dense.js): many addresses checked from one
// process, without a `ping` or a client process per address. Plain libc; compiled with `cc -O2`.
//
//   probe ping  [--window W] [--timeout-ms T] [--rounds R] < one IPv4 address per line
//       One ICMP echo request per address from a raw socket in this process's network namespace (the
//       sandbox's host, which holds the gateway), at most W unanswered at once (default 64); a request
//       unanswered after T ms (default 1000) counts as lost in its round. Each round sends to the
//       addresses not answered yet (R rounds, default 3), so a round's loss is told apart from an
//       address that never answers. Replies are matched by the echo id and sequence number (the
//       line's index) and by the source address.
//   probe pairs [--timeout-ms T] [--tries N] < lines "NETNS_A IPV4_A NETNS_B IPV4_B"
//       For each pair: a UDP socket bound to IPV4_B:7007 opened inside NETNS_B and one bound to IPV4_A
//       inside NETNS_A (setns in, socket, setns back: the sockets stay in their namespaces); A sends a
//       datagram to B, B echoes it back to where it came from, A must receive it. Up to N tries
//       (default 3) of T ms (default 2000) each: the first datagram to a new neighbour waits for ARP.
//
// Output (stdout, one JSON object):
//   ping:  {"mode","count","answered","rounds":[{"sent","answered","ms"}],"ms","rttP50Ms","missing":[first 20]}
//   pairs: {"mode","count","ok","tries":[per pair, 0 = failed],"rttMs":[per pair],"ms","failed":[first 20 "A->B: why"]}
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

// From linux/icmp.h, which cannot be included beside netinet/ip_icmp.h (both define struct icmphdr).
#ifndef ICMP_FILTER
#define ICMP_FILTER 1
struct icmp_filter {
  uint32_t data;
};
#endif

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *what) {
  fprintf(stderr, "probe: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static uint16_t checksum(const void *data, size_t len) {
  const uint16_t *p = data;
  uint32_t sum = 0;
  for (; len > 1; len -= 2) sum += *p++;
  if (len) sum += *(const uint8_t *)p;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

// --- ping ----------------------------------------------------------------------------------------------

struct target {
  struct in_addr addr;
  char text[INET_ADDRSTRLEN];
  double sent;  // when the request of this round went out (0: not in flight)
  double rtt;   // > 0 once answered
};

static int read_targets(struct target **out) {
  size_t cap = 1024, n = 0;
  struct target *t = calloc(cap, sizeof *t);
  char line[128];
  while (t && fgets(line, sizeof line, stdin)) {
    char text[64];
    if (sscanf(line, "%63s", text) != 1) continue;
    if (n == cap) {
      struct target *g = realloc(t, (cap *= 2) * sizeof *t);
      if (!g) break;
      t = g;
    }
    memset(&t[n], 0, sizeof t[n]);
    if (inet_pton(AF_INET, text, &t[n].addr) != 1) {
      fprintf(stderr, "probe: not an IPv4 address: %s\n", text);
      exit(2);
    }
    inet_ntop(AF_INET, &t[n].addr, t[n].text, sizeof t[n].text);
    n++;
  }
  if (!t) die("out of memory");
  if (n > 65535) {
    fprintf(stderr, "probe: at most 65535 addresses (16-bit sequence numbers)\n");
    exit(2);
  }
  *out = t;
  return (int)n;
}

/** Reads every echo reply waiting on `fd`; returns how many answered a request in flight. */
static int take_replies(int fd, uint16_t id, struct target *t, int n, int wait_ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int got = 0;
  if (poll(&p, 1, wait_ms) <= 0) return 0;
  for (;;) {
    char buf[1500];
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t len = recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
    if (len < 0) {
      if (errno == EINTR) continue;
      break;
    }
    const struct iphdr *ip = (const struct iphdr *)buf;
    size_t hl = (size_t)ip->ihl * 4;
    if ((size_t)len < hl + sizeof(struct icmphdr)) continue;
    const struct icmphdr *ic = (const struct icmphdr *)(buf + hl);
    if (ic->type != ICMP_ECHOREPLY || ntohs(ic->un.echo.id) != id) continue;
    int k = ntohs(ic->un.echo.sequence);
    if (k >= n || t[k].addr.s_addr != from.sin_addr.s_addr || !t[k].sent) continue;
    t[k].rtt = now_ms() - t[k].sent;
    t[k].sent = 0;
    got++;
  }
  return got;
}

static int ping_mode(int window, int timeout_ms, int rounds) {
  struct target *t;
  int n = read_targets(&t);
  int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
  if (fd < 0) die("socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)");
  struct icmp_filter filter = {.data = ~(1u << ICMP_ECHOREPLY)}; // only echo replies reach this socket
  setsockopt(fd, SOL_RAW, ICMP_FILTER, &filter, sizeof filter);
  int rcvbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  uint16_t id = (uint16_t)getpid();
  double t0 = now_ms();
  int answered = 0;
  printf("{\"mode\":\"ping\",\"count\":%d,\"rounds\":[", n);
  for (int r = 0; r < rounds && answered < n; r++) {
    double r0 = now_ms();
    int sent = 0, before = answered, inflight = 0, next = 0;
    while (next < n || inflight > 0) {
      // Expire the requests of this round that waited too long.
      double now = now_ms();
      inflight = 0;
      for (int k = 0; k < next; k++) {
        if (!t[k].sent) continue;
        if (now - t[k].sent > timeout_ms) t[k].sent = 0;
        else inflight++;
      }
      while (next < n && inflight < window) {
        int k = next++;
        if (t[k].rtt > 0) continue;
        struct {
          struct icmphdr h;
          uint32_t index;
        } req = {.h = {.type = ICMP_ECHO, .un.echo = {.id = htons(id), .sequence = htons((uint16_t)k)}}, .index = (uint32_t)k};
        req.h.checksum = checksum(&req, sizeof req);
        struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr = t[k].addr};
        t[k].sent = now_ms();
        if (sendto(fd, &req, sizeof req, 0, (struct sockaddr *)&to, sizeof to) < 0) t[k].sent = 0; // counted as lost
        else inflight++;
        sent++;
      }
      int got = take_replies(fd, id, t, n, inflight ? 5 : 0);
      answered += got;
      inflight -= got;
    }
    printf("%s{\"sent\":%d,\"answered\":%d,\"ms\":%.3f}", r ? "," : "", sent, answered - before, now_ms() - r0);
  }
  double *rtt = malloc((answered ? answered : 1) * sizeof *rtt);
  int m = 0;
  for (int k = 0; k < n; k++)
    if (t[k].rtt > 0) rtt[m++] = t[k].rtt;
  qsort(rtt, m, sizeof *rtt, cmp_double);
  printf("],\"answered\":%d,\"ms\":%.3f,\"rttP50Ms\":%.4f,\"missing\":[", answered, now_ms() - t0, m ? rtt[m / 2] : 0.0);
  for (int k = 0, shown = 0; k < n && shown < 20; k++)
    if (!(t[k].rtt > 0)) printf("%s\"%s\"", shown++ ? "," : "", t[k].text);
  printf("]}\n");
  return 0;
}

// --- pairs ---------------------------------------------------------------------------------------------

/** A UDP socket bound to IP:PORT inside the namespace at `path`; -1 and `why` set on failure. */
static int udp_in(const char *path, const char *ip, int port, int home, const char **why) {
  int ns = open(path, O_RDONLY | O_CLOEXEC);
  if (ns < 0) return *why = "open netns", -1;
  if (setns(ns, CLONE_NEWNET) < 0) {
    close(ns);
    return *why = "setns", -1;
  }
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (setns(home, CLONE_NEWNET) < 0) die("setns back");
  close(ns);
  if (fd < 0) return *why = "socket", -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return *why = "bind", -1;
  }
  return fd;
}

static int wait_in(int fd, int ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, ms) > 0;
}

/** One try of A -> B -> A; returns 1 when A got its datagram back. */
static int pair_try(int a, int b, const char *ip_b, int k, int timeout_ms, const char **why) {
  char msg[32], buf[64];
  int len = snprintf(msg, sizeof msg, "pair %d", k);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(7007)};
  inet_pton(AF_INET, ip_b, &to.sin_addr);
  if (sendto(a, msg, (size_t)len, 0, (struct sockaddr *)&to, sizeof to) < 0) return *why = strerror(errno), 0;
  if (!wait_in(b, timeout_ms)) return *why = "B got nothing", 0;
  struct sockaddr_in from;
  socklen_t fl = sizeof from;
  ssize_t got = recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
  if (got != len || memcmp(buf, msg, (size_t)len)) return *why = "B got something else", 0;
  if (sendto(b, buf, (size_t)got, 0, (struct sockaddr *)&from, fl) < 0) return *why = strerror(errno), 0;
  if (!wait_in(a, timeout_ms)) return *why = "A got no echo", 0;
  got = recv(a, buf, sizeof buf, 0);
  if (got != len || memcmp(buf, msg, (size_t)len)) return *why = "A got something else", 0;
  return 1;
}

static int pairs_mode(int timeout_ms, int tries) {
  int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) die("open /proc/self/ns/net");
  char line[768], ns_a[256], ip_a[64], ns_b[256], ip_b[64];
  int n = 0, ok = 0, failed_shown = 0;
  static int used[4096];
  static double rtt[4096];
  char failed[20][160];
  double t0 = now_ms();
  while (fgets(line, sizeof line, stdin) && n < 4096) {
    if (sscanf(line, "%255s %63s %255s %63s", ns_a, ip_a, ns_b, ip_b) != 4) continue;
    const char *why = "";
    int b = udp_in(ns_b, ip_b, 7007, home, &why);
    int a = b < 0 ? -1 : udp_in(ns_a, ip_a, 0, home, &why);
    used[n] = 0;
    double s = now_ms();
    for (int k = 1; a >= 0 && k <= tries && !used[n]; k++)
      if (pair_try(a, b, ip_b, n, timeout_ms, &why)) used[n] = k;
    rtt[n] = used[n] ? now_ms() - s : 0;
    if (used[n]) ok++;
    else if (failed_shown < 20) snprintf(failed[failed_shown++], sizeof failed[0], "%s->%s: %s", ip_a, ip_b, why);
    if (a >= 0) close(a);
    if (b >= 0) close(b);
    n++;
  }
  printf("{\"mode\":\"pairs\",\"count\":%d,\"ok\":%d,\"ms\":%.3f,\"tries\":[", n, ok, now_ms() - t0);
  for (int k = 0; k < n; k++) printf("%s%d", k ? "," : "", used[k]);
  printf("],\"rttMs\":[");
  for (int k = 0; k < n; k++) printf("%s%.4f", k ? "," : "", rtt[k]);
  printf("],\"failed\":[");
  for (int k = 0; k < failed_shown; k++) printf("%s\"%s\"", k ? "," : "", failed[k]);
  printf("]}\n");
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2 || (strcmp(argv[1], "ping") && strcmp(argv[1], "pairs"))) {
    fprintf(stderr, "usage: probe ping [--window W] [--timeout-ms T] [--rounds R] < addresses\n"
                    "       probe pairs [--timeout-ms T] [--tries N] < lines \"netns-a ip-a netns-b ip-b\"\n");
    return 2;
  }
  int window = 64, timeout_ms = -1, rounds = 3, tries = 3;
  for (int k = 2; k + 1 < argc; k += 2) {
    int v = atoi(argv[k + 1]);
    if (!strcmp(argv[k], "--window") && v > 0) window = v;
    else if (!strcmp(argv[k], "--timeout-ms") && v > 0) timeout_ms = v;
    else if (!strcmp(argv[k], "--rounds") && v > 0) rounds = v;
    else if (!strcmp(argv[k], "--tries") && v > 0) tries = v;
    else {
      fprintf(stderr, "probe: bad option %s %s\n", argv[k], argv[k + 1]);
      return 2;
    }
  }
  if (!strcmp(argv[1], "ping")) return ping_mode(window, timeout_ms > 0 ? timeout_ms : 1000, rounds);
  return pairs_mode(timeout_ms > 0 ? timeout_ms : 2000, tries);
}
