// The benchmark's C floor: the kernel work of attaching and detaching containers, issued from one
// process over raw netlink sockets, with no per-container overhead beyond the requests themselves.
// Plain libc and kernel uapi headers; compiled by benchmarks/peers/cfloor.js with `cc -O2`.
//
//   floor attach        OPTIONS < LINES
//   floor detach        OPTIONS < LINES    (one RTM_DELLINK per veth)
//   floor detach-group  OPTIONS < LINES    (each veth into --group, then one RTM_DELLINK for the group)
//
//   OPTIONS: --bridge pbbr0 --gateway 10.88.0.1 --prefix 16 --table pbench --map pfwd --port 80 --group 4242
//            --no-ipv6 (attach: both veth ends with IPv6 address generation off, as netmodes does)
//            --queues N (attach: N transmit and N receive queues on both veth ends, as netmodes'
//            vethQueues; default: the kernel's, one per possible CPU)
//            --disable-ipv6 (attach: net.ipv6.conf.VETH.disable_ipv6 = 1 on the host end right after
//            the create, as netmodes does for its bridge ports)
//            --ports-per-bridge L --leaf-prefix P [--mtu M] [--leaf-ns DIR] (the multi-bridge layout,
//            below; with --leaf-ns, detach needs the same three to find each veth's namespace)
//   LINES:   one container per line: "<netns path> <host veth> <ipv4> <published port>"
//
// Per container, the same kernel work as the ip/ipbatch peers (benchmarks/peers/iproute.js):
//   attach, host socket:      RTM_NEWLINK veth <veth> master <bridge> up, peer eth0 straight into the
//                             namespace (IFLA_NET_NS_FD in VETH_INFO_PEER)
//           namespace socket: RTM_GETLINK eth0 (its ifindex, for the address), RTM_NEWADDR ipv4/prefix,
//                             RTM_NEWLINK lo up, RTM_NEWLINK eth0 up, RTM_NEWROUTE default via gateway
//           nf_tables socket: one transaction adding the map element port : ipv4 . container port
//   detach:                   one transaction deleting the element, then RTM_DELLINK <veth> (its peer
//                             goes with it) or, with detach-group, RTM_NEWLINK <veth> group G; after
//                             the last container one RTM_DELLINK with IFLA_GROUP G deletes them all.
// With --no-ipv6 the veth is created down, eth0 gets addrgenmode none in its up message, and the
// host end gets addrgenmode none and then goes up (two more host requests): no fe80:: address on
// either end, so no DAD, router solicitation or MLD work. IFLA_AF_SPEC in the creating RTM_NEWLINK
// fails (EAFNOSUPPORT), and IFF_UP is applied before IFLA_AF_SPEC in one message, so the host end
// must not come up before its own addrgenmode is set (see native/rtnl/encode.cc).
// The multi-bridge layout (--ports-per-bridge L, as a netmodes network with `portsPerBridge` L, see
// lib/modes/bridge-leaves.ts): --bridge is the root and keeps the gateway. A container whose IPv4
// address is at offset o from the network address (the address masked with --prefix) goes on slot
// s = o / L: slot 0 is the root itself; slot s > 0 is the leaf bridge P"b"s, routed behind the
// gateway: a leaf is made when its slot is first used (inside that container's time), or found by
// name when an earlier run made it: bridge with the root's MAC (STP off, forward delay 0, MTU M, one
// queue pair) made down, IPv6 disabled, up; the route BLOCK/len dev LEAF scope link src GATEWAY;
// proxy_arp 1 and proxy_delay 0 on it (the root gets the same once, when the first leaf is made):
// 3 requests (and a link lookup of the root's MAC once) and 3 sysctl writes. The container's host
// veth then gets the slot's bridge as master. (netmodes also adds the leaf to its firewall's
// bridge set and marks it with an alias; the floor's table has no per-bridge rule.)
// With --leaf-ns DIR (issue 20) each leaf is a namespace of its own instead, so that the host's
// namespace holds no host end of a container's veth: every RTM_NEWLINK notification about a link
// names its peer's namespace by an id, which the kernel finds by walking all the ids the link's
// namespace has given out, one per container namespace a veth reaches (benchmarks/66.leaf-namespaces.js).
// Slot s > 0 then has:
//   DIR/P"b"s     the leaf namespace, pinned by a bind mount (found there when an earlier run made it);
//   in it, br0    a bridge (STP off, forward delay 0, the kernel's MAC, MTU M, one queue pair), IPv6
//                 disabled and addrgenmode none, up;
//   trunk         a veth: the host end P"b"s (the root's MAC, MTU M, one queue pair) and its peer
//                 `trunk`, made by the host's socket straight into the leaf (IFLA_NET_NS_FD); trunk
//                 with IPv6 disabled, on br0, up; a static fdb entry on br0 for the root's MAC on
//                 trunk (the gateway's frames are never flooded); the host end with IPv6 disabled,
//                 addrgenmode none, up, and the route and proxy ARP of a leaf bridge above;
// 8 requests, 5 sysctl writes and one mount. The container's veth is then made by a socket in the
// leaf namespace (one per leaf, kept open), its host end on br0; its IPv6 sysctl is written from
// there too. Detach moves (or deletes) each veth through the socket of its namespace, and
// detach-group deletes the group in the host's namespace and in every leaf namespace it used.
// Neither layout adds neighbour entries for the containers (the host finds them by ARP).
// Every request carries NLM_F_ACK and the program waits for that ACK before the next one (a failure
// stops the run with the kernel's error and extended-ack message, exit status 1).
// The namespace socket is opened per container: open the namespace file, setns() into it, socket(),
// setns() back (safe here: one thread). Its opening and closing are inside the container's time.
// The same thread makes a leaf namespace with unshare(CLONE_NEWNET) and goes back by setns().
//
// Output (stdout, one JSON object): {"mode", "count", "ms": [per container, in input order],
// "totalMs", "bulkDeleteMs" (detach-group only)}; CLOCK_MONOTONIC. The veth peer is brought up by a
// message of its own: IFF_UP in VETH_INFO_PEER's ifinfomsg fails with ENOTCONN (the kernel configures
// the peer before the two ends are tied together; see native/rtnl/encode.cc).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <linux/nsfs.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// --- errors and time ---------------------------------------------------------------------------------

static const char *current = "-"; // the container being worked on, for error messages

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "floor: %s: ", current);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// --- message building ----------------------------------------------------------------------------------
// A buffer holds one or more netlink messages (an nf_tables transaction is three). Attributes are
// appended to the last message; nests are closed by patching their length.

struct buf {
  char data[4096] __attribute__((aligned(NLMSG_ALIGNTO)));
  size_t len; // bytes used
  size_t msg; // offset of the message being built
};

static void *reserve(struct buf *b, size_t n) {
  size_t total = NLMSG_ALIGN(n);
  if (b->len + total > sizeof b->data) die("request too large");
  void *p = b->data + b->len;
  memset(p, 0, total);
  b->len += total;
  return p;
}

static struct nlmsghdr *last_msg(struct buf *b) { return (struct nlmsghdr *)(b->data + b->msg); }

static void msg_end(struct buf *b) {
  if (b->len) last_msg(b)->nlmsg_len = (uint32_t)(b->len - b->msg);
}

/** Starts a message: header, then the family header `fam` (copied) of `famlen` bytes. */
static void msg_begin(struct buf *b, uint16_t type, uint16_t flags, uint32_t seq, const void *fam, size_t famlen) {
  msg_end(b);
  b->msg = b->len;
  struct nlmsghdr *h = reserve(b, NLMSG_HDRLEN);
  h->nlmsg_type = type;
  h->nlmsg_flags = NLM_F_REQUEST | flags;
  h->nlmsg_seq = seq;
  memcpy(reserve(b, famlen), fam, famlen);
}

static void put(struct buf *b, uint16_t type, const void *val, size_t len) {
  struct nlattr *a = reserve(b, NLA_HDRLEN + len);
  a->nla_type = type;
  a->nla_len = (uint16_t)(NLA_HDRLEN + len);
  memcpy((char *)a + NLA_HDRLEN, val, len);
}
static void put_str(struct buf *b, uint16_t type, const char *s) { put(b, type, s, strlen(s) + 1); }
static void put_u32(struct buf *b, uint16_t type, uint32_t v) { put(b, type, &v, sizeof v); }
static void put_u8(struct buf *b, uint16_t type, uint8_t v) { put(b, type, &v, sizeof v); }

static size_t nest_begin(struct buf *b, uint16_t type) {
  size_t at = b->len;
  struct nlattr *a = reserve(b, NLA_HDRLEN);
  a->nla_type = NLA_F_NESTED | type;
  return at;
}
static void nest_end(struct buf *b, size_t at) { ((struct nlattr *)(b->data + at))->nla_len = (uint16_t)(b->len - at); }

// --- sockets -------------------------------------------------------------------------------------------

struct sock {
  int fd;
  uint32_t seq;
};

static struct sock nl_open(int proto) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, proto);
  if (fd < 0) die("socket(AF_NETLINK, %d): %s", proto, strerror(errno));
  int one = 1;
  // Short ACKs (no copy of the request) that carry the kernel's error text.
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind(netlink): %s", strerror(errno));
  return (struct sock){.fd = fd, .seq = 1};
}

/** The extended-ack error text of an NLMSG_ERROR, or "". */
static const char *ext_ack_msg(const struct nlmsghdr *h) {
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
  const struct nlmsgerr *e = NLMSG_DATA(h);
  size_t off = NLMSG_HDRLEN + sizeof *e; // NETLINK_CAP_ACK: the request's header only, no payload
  while (off + NLA_HDRLEN <= h->nlmsg_len) {
    const struct nlattr *a = (const struct nlattr *)((const char *)h + off);
    if (a->nla_len < NLA_HDRLEN || off + a->nla_len > h->nlmsg_len) break;
    if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) return (const char *)a + NLA_HDRLEN;
    off += NLA_ALIGN(a->nla_len);
  }
  return "";
}

static int tolerated_errno; // an error exchange() takes for success (0: none)

/**
 * Sends the buffer and reads replies until the ACK of sequence number `want`. Any error reply fails
 * the run. `on_reply`, when given, sees every other message of this exchange (a GETLINK's answer).
 */
static void exchange(struct sock *s, struct buf *b, uint32_t want, const char *what,
                     void (*on_reply)(const struct nlmsghdr *, void *), void *arg) {
  msg_end(b);
  if (send(s->fd, b->data, b->len, 0) != (ssize_t)b->len) die("%s: send: %s", what, strerror(errno));
  static char rx[32768] __attribute__((aligned(NLMSG_ALIGNTO)));
  for (;;) {
    ssize_t got = recv(s->fd, rx, sizeof rx, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      die("%s: recv: %s", what, strerror(errno));
    }
    int left = (int)got;
    for (struct nlmsghdr *h = (struct nlmsghdr *)rx; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *e = NLMSG_DATA(h);
        if (e->error && -e->error == tolerated_errno && h->nlmsg_seq == want) return;
        if (e->error) {
          const char *m = ext_ack_msg(h);
          die("%s: %s%s%s", what, strerror(-e->error), *m ? ": " : "", m);
        }
        if (h->nlmsg_seq == want) return;
      } else if (on_reply && h->nlmsg_seq == want) {
        on_reply(h, arg);
      }
    }
  }
}

/** A netlink socket in the network namespace `nsfd`; the thread goes back to `home` afterwards. */
static struct sock nl_open_in(int nsfd, int home, int proto) {
  if (setns(nsfd, CLONE_NEWNET) < 0) die("setns: %s", strerror(errno));
  struct sock s = nl_open(proto);
  if (setns(home, CLONE_NEWNET) < 0) die("setns back: %s", strerror(errno));
  return s;
}

// --- requests ------------------------------------------------------------------------------------------

struct opts {
  const char *bridge, *gateway, *table, *map, *leaf_prefix, *leaf_ns;
  int prefix, port, ipv6, port_no_ipv6;
  uint32_t group, queues, per_bridge, mtu;
};

struct container {
  char ns[256], veth[IFNAMSIZ], ip[INET_ADDRSTRLEN];
  int port;
};

static void link_msg(struct buf *b, struct sock *s, uint16_t type, uint16_t flags, int index, unsigned up) {
  struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_index = index, .ifi_flags = up, .ifi_change = up};
  msg_begin(b, type, NLM_F_ACK | flags, ++s->seq, &ifi, sizeof ifi);
}

/**
 * ip link add NAME [numtxqueues Q numrxqueues Q] [mtu M] [address MAC] [master BRIDGE] [up] type veth
 *   peer name PEER [Q queues] [mtu M] netns NS
 */
static void veth_add(struct sock *s, const char *name, const char *peer_name, int nsfd, int bridge, unsigned up,
                     uint32_t queues, uint32_t mtu, const unsigned char *mac) {
  struct buf b = {0};
  link_msg(&b, s, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0, up);
  put_str(&b, IFLA_IFNAME, name);
  if (queues) {
    put_u32(&b, IFLA_NUM_TX_QUEUES, queues);
    put_u32(&b, IFLA_NUM_RX_QUEUES, queues);
  }
  if (mtu) put_u32(&b, IFLA_MTU, mtu);
  if (mac) put(&b, IFLA_ADDRESS, mac, 6);
  if (bridge) put_u32(&b, IFLA_MASTER, (uint32_t)bridge);
  size_t info = nest_begin(&b, IFLA_LINKINFO);
  put_str(&b, IFLA_INFO_KIND, "veth");
  size_t data = nest_begin(&b, IFLA_INFO_DATA);
  size_t peer = nest_begin(&b, VETH_INFO_PEER);
  struct ifinfomsg pifi = {.ifi_family = AF_UNSPEC};
  memcpy(reserve(&b, sizeof pifi), &pifi, sizeof pifi);
  put_str(&b, IFLA_IFNAME, peer_name);
  if (queues) {
    put_u32(&b, IFLA_NUM_TX_QUEUES, queues);
    put_u32(&b, IFLA_NUM_RX_QUEUES, queues);
  }
  if (mtu) put_u32(&b, IFLA_MTU, mtu);
  put_u32(&b, IFLA_NET_NS_FD, (uint32_t)nsfd);
  nest_end(&b, peer);
  nest_end(&b, data);
  nest_end(&b, info);
  exchange(s, &b, s->seq, "veth add", NULL, NULL);
}

/** sysctl -w net.ipv6.conf.NAME.disable_ipv6=1 (a kernel without IPv6 has nothing to disable). */
static void disable_ipv6(const char *name) {
  char path[128];
  snprintf(path, sizeof path, "/proc/sys/net/ipv6/conf/%s/disable_ipv6", name);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return;
    die("open %s: %s", path, strerror(errno));
  }
  if (write(fd, "1", 1) != 1) die("write %s: %s", path, strerror(errno));
  close(fd);
}

/** ip link set NAME up (the kernel resolves the name). */
static void link_up(struct sock *s, const char *name) {
  struct buf b = {0};
  link_msg(&b, s, RTM_NEWLINK, 0, 0, IFF_UP);
  put_str(&b, IFLA_IFNAME, name);
  exchange(s, &b, s->seq, "link up", NULL, NULL);
}

/** ip link set NAME addrgenmode none [up] */
static void no_ipv6(struct sock *s, const char *name, unsigned up) {
  struct buf b = {0};
  link_msg(&b, s, RTM_NEWLINK, 0, 0, up);
  put_str(&b, IFLA_IFNAME, name);
  size_t spec = nest_begin(&b, IFLA_AF_SPEC);
  size_t in6 = nest_begin(&b, AF_INET6);
  put_u8(&b, IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE);
  nest_end(&b, in6);
  nest_end(&b, spec);
  exchange(s, &b, s->seq, "addrgenmode none", NULL, NULL);
}

static void take_index(const struct nlmsghdr *h, void *arg) {
  if (h->nlmsg_type == RTM_NEWLINK) *(int *)arg = ((const struct ifinfomsg *)NLMSG_DATA(h))->ifi_index;
}

/** The ifindex of NAME (RTM_GETLINK, stats left out of the answer). */
static int link_index(struct sock *s, const char *name) {
  struct buf b = {0};
  link_msg(&b, s, RTM_GETLINK, 0, 0, 0);
  put_str(&b, IFLA_IFNAME, name);
  put_u32(&b, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  int index = 0;
  exchange(s, &b, s->seq, "link get", take_index, &index);
  if (index <= 0) die("link get %s: no answer", name);
  return index;
}

static struct in_addr parse_ip(const char *text) {
  struct in_addr a;
  if (inet_pton(AF_INET, text, &a) != 1) die("not an IPv4 address: %s", text);
  return a;
}

/** ip addr add IP/PREFIX dev INDEX */
static void addr_add(struct sock *s, int index, const char *ip, int prefix) {
  struct buf b = {0};
  struct ifaddrmsg ifa = {.ifa_family = AF_INET, .ifa_prefixlen = (unsigned char)prefix, .ifa_index = (unsigned)index};
  msg_begin(&b, RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, ++s->seq, &ifa, sizeof ifa);
  struct in_addr a = parse_ip(ip);
  put(&b, IFA_LOCAL, &a, sizeof a);
  put(&b, IFA_ADDRESS, &a, sizeof a);
  exchange(s, &b, s->seq, "addr add", NULL, NULL);
}

/** ip route add default via GATEWAY */
static void default_route(struct sock *s, const char *gateway) {
  struct buf b = {0};
  struct rtmsg rt = {.rtm_family = AF_INET, .rtm_table = RT_TABLE_MAIN, .rtm_protocol = RTPROT_BOOT,
                     .rtm_scope = RT_SCOPE_UNIVERSE, .rtm_type = RTN_UNICAST};
  msg_begin(&b, RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, ++s->seq, &rt, sizeof rt);
  struct in_addr gw = parse_ip(gateway);
  put(&b, RTA_GATEWAY, &gw, sizeof gw);
  exchange(s, &b, s->seq, "route add", NULL, NULL);
}

/** ip link del NAME */
static void link_del(struct sock *s, const char *name) {
  struct buf b = {0};
  link_msg(&b, s, RTM_DELLINK, 0, 0, 0);
  put_str(&b, IFLA_IFNAME, name);
  exchange(s, &b, s->seq, "link del", NULL, NULL);
}

/** ip link set NAME group G */
static void link_group(struct sock *s, const char *name, uint32_t group) {
  struct buf b = {0};
  link_msg(&b, s, RTM_NEWLINK, 0, 0, 0);
  put_str(&b, IFLA_IFNAME, name);
  put_u32(&b, IFLA_GROUP, group);
  exchange(s, &b, s->seq, "link set group", NULL, NULL);
}

/** ip link add NAME numtxqueues 1 numrxqueues 1 [mtu M] [address MAC] type bridge stp_state 0 forward_delay 0 (down) */
static void bridge_add(struct sock *s, const char *name, uint32_t mtu, const unsigned char *mac) {
  struct buf b = {0};
  link_msg(&b, s, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0, 0);
  put_str(&b, IFLA_IFNAME, name);
  put_u32(&b, IFLA_NUM_TX_QUEUES, 1);
  put_u32(&b, IFLA_NUM_RX_QUEUES, 1);
  if (mtu) put_u32(&b, IFLA_MTU, mtu);
  if (mac) put(&b, IFLA_ADDRESS, mac, 6);
  size_t info = nest_begin(&b, IFLA_LINKINFO);
  put_str(&b, IFLA_INFO_KIND, "bridge");
  size_t data = nest_begin(&b, IFLA_INFO_DATA);
  put_u32(&b, IFLA_BR_STP_STATE, 0);
  put_u32(&b, IFLA_BR_FORWARD_DELAY, 0);
  nest_end(&b, data);
  nest_end(&b, info);
  exchange(s, &b, s->seq, "bridge add", NULL, NULL);
}

/** ip link del group G: one request, one RCU grace period for every link in it. */
static void group_del(struct sock *s, uint32_t group) {
  if (!group) die("refusing to delete link group 0 (every link's default group)");
  struct buf b = {0};
  link_msg(&b, s, RTM_DELLINK, 0, 0, 0);
  put_u32(&b, IFLA_GROUP, group);
  // ENODEV: the group is empty: another floor process of a parallel run (benchmarks/peers/cfloor.js
  // runParallel) deleted what was in it, or (--leaf-ns) none of this run's veths was in this namespace.
  tolerated_errno = ENODEV;
  exchange(s, &b, s->seq, "link del group", NULL, NULL);
  tolerated_errno = 0;
}

/**
 * One nf_tables transaction on the map element of `c`: add (port : ip . container port) or delete
 * (port). BATCH_BEGIN, the element message (acknowledged), BATCH_END, in one datagram.
 */
static void element(struct sock *s, const struct opts *o, const struct container *c, int add) {
  struct buf b = {0};
  struct nfgenmsg batch = {.nfgen_family = AF_UNSPEC, .version = NFNETLINK_V0, .res_id = htons(NFNL_SUBSYS_NFTABLES)};
  msg_begin(&b, NFNL_MSG_BATCH_BEGIN, 0, ++s->seq, &batch, sizeof batch);
  struct nfgenmsg fam = {.nfgen_family = NFPROTO_INET, .version = NFNETLINK_V0};
  uint16_t type = (NFNL_SUBSYS_NFTABLES << 8) | (add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM);
  uint32_t want = ++s->seq;
  msg_begin(&b, type, NLM_F_ACK | (add ? NLM_F_CREATE : 0), want, &fam, sizeof fam);
  put_str(&b, NFTA_SET_ELEM_LIST_TABLE, o->table);
  put_str(&b, NFTA_SET_ELEM_LIST_SET, o->map);
  size_t list = nest_begin(&b, NFTA_SET_ELEM_LIST_ELEMENTS);
  size_t elem = nest_begin(&b, NFTA_LIST_ELEM);
  size_t key = nest_begin(&b, NFTA_SET_ELEM_KEY);
  uint16_t port = htons((uint16_t)c->port); // inet_service: 2 bytes, network order
  put(&b, NFTA_DATA_VALUE, &port, sizeof port);
  nest_end(&b, key);
  if (add) {
    // ipv4_addr . inet_service: each field in a 4-byte register, so the port is padded to 4.
    unsigned char value[8] = {0};
    struct in_addr a = parse_ip(c->ip);
    uint16_t cport = htons((uint16_t)o->port);
    memcpy(value, &a, 4);
    memcpy(value + 4, &cport, 2);
    size_t data = nest_begin(&b, NFTA_SET_ELEM_DATA);
    put(&b, NFTA_DATA_VALUE, value, sizeof value);
    nest_end(&b, data);
  }
  nest_end(&b, elem);
  nest_end(&b, list);
  msg_begin(&b, NFNL_MSG_BATCH_END, 0, ++s->seq, &batch, sizeof batch);
  exchange(s, &b, want, add ? "element add" : "element delete", NULL, NULL);
}

// --- the multi-bridge layout ---------------------------------------------------------------------------

/** A slot's leaf, once this run knows it. */
struct leaf {
  int index;      // the leaf bridge (--leaf-ns: br0, in the leaf namespace); 0: not known yet
  int ns;         // --leaf-ns: the leaf namespace, else -1
  struct sock rt; // --leaf-ns: a socket in it, open for the rest of the run
};

static struct leaf *leaves; // by slot; slot 0 is the root and has no entry of its own
static size_t n_leaves;     // entries in `leaves`

/** The entry of `slot` (the table grows to hold it: a pointer is good until the next call). */
static struct leaf *leaf_at(uint32_t slot) {
  if (slot >= n_leaves) {
    size_t n = (size_t)slot + 1;
    struct leaf *grown = realloc(leaves, n * sizeof *leaves);
    if (!grown) die("out of memory");
    for (size_t k = n_leaves; k < n; k++) grown[k] = (struct leaf){.index = 0, .ns = -1, .rt = {.fd = -1}};
    leaves = grown;
    n_leaves = n;
  }
  return &leaves[slot];
}

static void leaf_name(char *out, const struct opts *o, char kind, uint32_t slot) {
  if (snprintf(out, IFNAMSIZ, "%s%c%u", o->leaf_prefix, kind, slot) >= IFNAMSIZ) die("leaf name %s%c%u too long", o->leaf_prefix, kind, slot);
}

/** The slot of a container: its address's offset from the network address, over L. */
static uint32_t slot_of(const struct opts *o, const char *ip) {
  uint32_t a = ntohl(parse_ip(ip).s_addr);
  uint32_t mask = o->prefix ? ~0u << (32 - o->prefix) : 0;
  return (a & ~mask) / o->per_bridge;
}

static void take_mac(const struct nlmsghdr *h, void *arg) {
  if (h->nlmsg_type != RTM_NEWLINK) return;
  int left = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(struct ifinfomsg)));
  for (struct rtattr *a = IFLA_RTA(NLMSG_DATA(h)); RTA_OK(a, left); a = RTA_NEXT(a, left))
    if (a->rta_type == IFLA_ADDRESS && RTA_PAYLOAD(a) == 6) memcpy(arg, RTA_DATA(a), 6);
}

/** sysctl -w KEY=VALUE under /proc/sys (net.ipv4.conf.DEV.proxy_arp and the like). */
static void sysctl_write(const char *fmt, const char *dev, const char *value) {
  char path[160];
  snprintf(path, sizeof path, fmt, dev);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die("open %s: %s", path, strerror(errno));
  if (write(fd, value, strlen(value)) != (ssize_t)strlen(value)) die("write %s: %s", path, strerror(errno));
  close(fd);
}

static void proxy_arp(const char *dev) {
  sysctl_write("/proc/sys/net/ipv4/conf/%s/proxy_arp", dev, "1");
  sysctl_write("/proc/sys/net/ipv4/neigh/%s/proxy_delay", dev, "0");
}

/** ip route add BLOCK/len dev INDEX scope link src GATEWAY proto kernel */
static void block_route(struct sock *s, uint32_t block, int len, int index, const char *gateway) {
  struct buf b = {0};
  struct rtmsg rt = {.rtm_family = AF_INET, .rtm_dst_len = (unsigned char)len, .rtm_table = RT_TABLE_MAIN,
                     .rtm_protocol = RTPROT_KERNEL, .rtm_scope = RT_SCOPE_LINK, .rtm_type = RTN_UNICAST};
  msg_begin(&b, RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, ++s->seq, &rt, sizeof rt);
  uint32_t dst = htonl(block);
  put(&b, RTA_DST, &dst, sizeof dst);
  put_u32(&b, RTA_OIF, (uint32_t)index);
  struct in_addr src = parse_ip(gateway);
  put(&b, RTA_PREFSRC, &src, sizeof src);
  exchange(s, &b, s->seq, "route add", NULL, NULL);
}

/**
 * The root's MAC, the leaves' own (so the gateway's frames look the same on every bridge), and proxy
 * ARP on the root: once, when the run makes its first leaf.
 */
static const unsigned char *root_once(const struct opts *o, struct sock *host, int root) {
  static unsigned char mac[6];
  static int done;
  if (!done) {
    struct buf b = {0};
    link_msg(&b, host, RTM_GETLINK, 0, root, 0);
    put_u32(&b, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    exchange(host, &b, host->seq, "root get", take_mac, mac);
    proxy_arp(o->bridge);
    done = 1;
  }
  return mac;
}

/** The route to the block of address `ip` through host link NAME (`index`), and proxy ARP on it. */
static void leaf_route(const struct opts *o, struct sock *host, const char *ip, const char *name, int index) {
  uint32_t a = ntohl(parse_ip(ip).s_addr);
  uint32_t len = 32;
  for (uint32_t l = o->per_bridge; l > 1; l >>= 1) len--;
  block_route(host, a & ~(o->per_bridge - 1), (int)len, index, o->gateway);
  proxy_arp(name);
}

/** The leaf bridge of slot `slot` (> 0, container `c`'s) in the host's namespace, made here if missing. */
static int bridge_for(const struct opts *o, const struct container *c, uint32_t slot, struct sock *host, int root) {
  struct leaf *l = leaf_at(slot);
  if (l->index) return l->index;
  char leaf[IFNAMSIZ];
  leaf_name(leaf, o, 'b', slot);
  int index = (int)if_nametoindex(leaf); // made by an earlier run on the same root
  if (!index) {
    bridge_add(host, leaf, o->mtu, root_once(o, host, root));
    disable_ipv6(leaf);
    link_up(host, leaf);
    index = (int)if_nametoindex(leaf);
    if (!index) die("leaf %s: %s", leaf, strerror(errno));
    leaf_route(o, host, c->ip, leaf, index);
  }
  return l->index = index;
}

/** setns() into network namespace `ns`; a failure stops the run (the thread would be in the wrong one). */
static void enter(int ns) {
  if (setns(ns, CLONE_NEWNET) < 0) die("setns: %s", strerror(errno));
}

/** disable_ipv6 on NAME in namespace `ns` (-1: this one): /proc/sys/net shows the writer's namespace. */
static void disable_ipv6_in(int ns, int home, const char *name) {
  if (ns < 0) {
    disable_ipv6(name);
    return;
  }
  enter(ns);
  disable_ipv6(name);
  enter(home);
}

static void leaf_path(char *out, size_t size, const struct opts *o, const char *name) {
  if (snprintf(out, size, "%s/%s", o->leaf_ns, name) >= (int)size) die("leaf namespace path %s/%s too long", o->leaf_ns, name);
}

/**
 * --leaf-ns: slot `slot`'s leaf namespace as an earlier run left it (the file DIR/P"b"s holds a
 * network namespace), with a socket in it and br0's index; NULL when there is none. An empty file is
 * the mount point of a namespace since unmounted.
 */
static struct leaf *leaf_ns_open(const struct opts *o, uint32_t slot, int home) {
  struct leaf *l = leaf_at(slot);
  if (l->ns >= 0) return l;
  char name[IFNAMSIZ], path[512];
  leaf_name(name, o, 'b', slot);
  leaf_path(path, sizeof path, o, name);
  int ns = open(path, O_RDONLY | O_CLOEXEC);
  if (ns < 0 && errno != ENOENT) die("open %s: %s", path, strerror(errno));
  if (ns < 0) return NULL;
  if (ioctl(ns, NS_GET_NSTYPE) != CLONE_NEWNET) {
    close(ns);
    return NULL;
  }
  enter(ns);
  l->rt = nl_open(NETLINK_ROUTE);
  l->index = (int)if_nametoindex("br0");
  enter(home);
  if (!l->index) die("leaf namespace %s: no br0", path);
  l->ns = ns;
  return l;
}

/** bridge fdb add MAC dev PORT master static (NUD_NOARP: static, not the bridge's own address) */
static void fdb_static(struct sock *s, int port, const unsigned char mac[6]) {
  struct buf b = {0};
  struct ndmsg nd = {.ndm_family = AF_BRIDGE, .ndm_ifindex = port, .ndm_state = NUD_NOARP, .ndm_flags = NTF_MASTER};
  msg_begin(&b, RTM_NEWNEIGH, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, ++s->seq, &nd, sizeof nd);
  put(&b, NDA_LLADDR, mac, 6);
  exchange(s, &b, s->seq, "fdb add", NULL, NULL);
}

/** ip link set INDEX master BRIDGE up */
static void port_up(struct sock *s, int index, int bridge) {
  struct buf b = {0};
  link_msg(&b, s, RTM_NEWLINK, 0, index, IFF_UP);
  put_u32(&b, IFLA_MASTER, (uint32_t)bridge);
  exchange(s, &b, s->seq, "port up", NULL, NULL);
}

/**
 * --leaf-ns: slot `slot`'s leaf namespace (found, or made here with its br0 and its trunk to the
 * host; the layout in the comment at the top). The thread is in the leaf from unshare() until the
 * trunk's leaf end is done, for the sysctls of br0 and trunk and for their indexes.
 */
static struct leaf *leaf_ns_for(const struct opts *o, const struct container *c, uint32_t slot, struct sock *host, int root, int home) {
  struct leaf *l = leaf_ns_open(o, slot, home);
  if (l) return l;
  l = leaf_at(slot);
  const unsigned char *mac = root_once(o, host, root);
  char name[IFNAMSIZ], path[512];
  leaf_name(name, o, 'b', slot);
  leaf_path(path, sizeof path, o, name);
  if (mkdir(o->leaf_ns, 0755) < 0 && errno != EEXIST) die("mkdir %s: %s", o->leaf_ns, strerror(errno));
  int pin = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0);
  if (pin < 0) die("create %s: %s", path, strerror(errno));
  close(pin);
  if (unshare(CLONE_NEWNET) < 0) die("unshare(CLONE_NEWNET): %s", strerror(errno));
  if (mount("/proc/thread-self/ns/net", path, NULL, MS_BIND, NULL) < 0) die("mount %s: %s", path, strerror(errno));
  l->ns = open(path, O_RDONLY | O_CLOEXEC);
  if (l->ns < 0) die("open %s: %s", path, strerror(errno));
  l->rt = nl_open(NETLINK_ROUTE);
  bridge_add(&l->rt, "br0", o->mtu, NULL);
  disable_ipv6("br0");
  no_ipv6(&l->rt, "br0", IFF_UP); // IPv6 is already disabled, so coming up in the same message is quiet
  l->index = (int)if_nametoindex("br0");
  veth_add(host, name, "trunk", l->ns, 0, 0, 1, o->mtu, mac);
  disable_ipv6("trunk");
  int trunk = (int)if_nametoindex("trunk");
  if (!l->index || !trunk) die("leaf namespace %s: br0 or trunk missing", path);
  port_up(&l->rt, trunk, l->index);
  fdb_static(&l->rt, trunk, mac);
  enter(home);
  disable_ipv6(name);
  no_ipv6(host, name, 0);
  link_up(host, name);
  int index = (int)if_nametoindex(name);
  if (!index) die("trunk %s: %s", name, strerror(errno));
  leaf_route(o, host, c->ip, name, index);
  return l;
}

/** Where a container's veth is made: that namespace's socket, the bridge there, the namespace (-1: the host's). */
struct place {
  struct sock *s;
  int bridge, ns;
};

/** The place of container `c`: the root for slot 0, else the slot's leaf (made here if missing). */
static struct place place_for(const struct opts *o, const struct container *c, struct sock *host, int root, int home) {
  uint32_t slot = o->per_bridge ? slot_of(o, c->ip) : 0;
  if (!slot) return (struct place){host, root, -1};
  if (!o->leaf_ns) return (struct place){host, bridge_for(o, c, slot, host, root), -1};
  struct leaf *l = leaf_ns_for(o, c, slot, host, root, home);
  return (struct place){&l->rt, l->index, l->ns};
}

// --- per container -------------------------------------------------------------------------------------

static void attach(const struct opts *o, const struct container *c, struct sock *host, struct sock *nft,
                   int home, int bridge) {
  int nsfd = open(c->ns, O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) die("open %s: %s", c->ns, strerror(errno));
  struct place p = place_for(o, c, host, bridge, home);
  veth_add(p.s, c->veth, "eth0", nsfd, p.bridge, o->ipv6 ? IFF_UP : 0, o->queues, o->mtu, NULL);
  if (o->port_no_ipv6) disable_ipv6_in(p.ns, home, c->veth);
  struct sock in = nl_open_in(nsfd, home, NETLINK_ROUTE);
  addr_add(&in, link_index(&in, "eth0"), c->ip, o->prefix);
  link_up(&in, "lo");
  if (o->ipv6) {
    link_up(&in, "eth0");
  } else {
    no_ipv6(&in, "eth0", IFF_UP); // the host end is still down: no carrier, no fe80:: meanwhile
    no_ipv6(p.s, c->veth, 0);
    link_up(p.s, c->veth);
  }
  default_route(&in, o->gateway);
  close(in.fd);
  close(nsfd);
  element(nft, o, c, 1);
}

static void detach(const struct opts *o, const struct container *c, struct sock *host, struct sock *nft, int grouped, int home) {
  element(nft, o, c, 0);
  struct sock *s = host; // the socket of the namespace the veth's host end is in
  uint32_t slot = o->leaf_ns ? slot_of(o, c->ip) : 0;
  if (slot) {
    struct leaf *l = leaf_ns_open(o, slot, home);
    if (!l) die("%s: no leaf namespace for slot %u under %s", c->veth, slot, o->leaf_ns);
    s = &l->rt;
  }
  if (grouped) link_group(s, c->veth, o->group);
  else link_del(s, c->veth);
}

// --- main ----------------------------------------------------------------------------------------------

static void usage(void) {
  fprintf(stderr, "usage: floor attach|detach|detach-group [--bridge B] [--gateway IP] [--prefix N] [--table T] [--map M]\n"
                  "             [--port P] [--group G] [--no-ipv6] [--queues N] [--disable-ipv6]\n"
                  "             [--ports-per-bridge L --leaf-prefix P [--mtu M] [--leaf-ns DIR]]\n"
                  "             < lines of \"netns-path veth ipv4 port\"\n");
  exit(2);
}

static int read_containers(struct container **out) {
  size_t cap = 64, n = 0;
  struct container *list = malloc(cap * sizeof *list);
  char line[512];
  while (list && fgets(line, sizeof line, stdin)) {
    if (line[strspn(line, " \t\r\n")] == '\0') continue;
    if (n == cap) list = realloc(list, (cap *= 2) * sizeof *list);
    if (!list) break;
    struct container *c = &list[n];
    if (sscanf(line, "%255s %15s %15s %d", c->ns, c->veth, c->ip, &c->port) != 4 || c->port < 1 || c->port > 65535) {
      die("bad input line %zu: %s", n + 1, line);
    }
    n++;
  }
  if (!list) die("out of memory");
  *out = list;
  return (int)n;
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  const char *mode = argv[1];
  int attaching = !strcmp(mode, "attach"), grouped = !strcmp(mode, "detach-group");
  if (!attaching && !grouped && strcmp(mode, "detach")) usage();
  struct opts o = {.bridge = "pbbr0", .gateway = "10.88.0.1", .table = "pbench", .map = "pfwd", .prefix = 16, .port = 80, .group = 4242, .ipv6 = 1};
  for (int k = 2; k < argc; k++) {
    if (!strcmp(argv[k], "--no-ipv6")) {
      o.ipv6 = 0;
      continue;
    }
    if (!strcmp(argv[k], "--disable-ipv6")) {
      o.port_no_ipv6 = 1;
      continue;
    }
    if (k + 1 >= argc) usage();
    const char *a = argv[k], *v = argv[++k];
    if (!strcmp(a, "--bridge")) o.bridge = v;
    else if (!strcmp(a, "--gateway")) o.gateway = v;
    else if (!strcmp(a, "--table")) o.table = v;
    else if (!strcmp(a, "--map")) o.map = v;
    else if (!strcmp(a, "--prefix")) o.prefix = atoi(v);
    else if (!strcmp(a, "--port")) o.port = atoi(v);
    else if (!strcmp(a, "--group")) o.group = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--queues")) o.queues = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--ports-per-bridge")) o.per_bridge = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--leaf-prefix")) o.leaf_prefix = v;
    else if (!strcmp(a, "--mtu")) o.mtu = (uint32_t)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--leaf-ns")) o.leaf_ns = v;
    else usage();
  }
  if (o.prefix < 0 || o.prefix > 32 || o.port < 1 || o.port > 65535) usage();
  if (o.per_bridge && (!o.leaf_prefix || !*o.leaf_prefix || (o.per_bridge & (o.per_bridge - 1)) || o.per_bridge < 2)) usage();
  if (o.leaf_ns && (!o.per_bridge || !*o.leaf_ns)) usage();

  struct container *list;
  int n = read_containers(&list);
  double *ms = calloc(n ? (size_t)n : 1, sizeof *ms);
  int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (!ms || home < 0) die("setup: %s", strerror(errno));
  int bridge = 0;
  if (attaching && !(bridge = (int)if_nametoindex(o.bridge))) die("bridge %s: %s", o.bridge, strerror(errno));
  struct sock host = nl_open(NETLINK_ROUTE), nft = nl_open(NETLINK_NETFILTER);

  double t0 = now_ms(), bulk = 0;
  for (int i = 0; i < n; i++) {
    current = list[i].ns;
    double t = now_ms();
    if (attaching) attach(&o, &list[i], &host, &nft, home, bridge);
    else detach(&o, &list[i], &host, &nft, grouped, home);
    ms[i] = now_ms() - t;
  }
  current = "-";
  if (grouped && n) {
    double t = now_ms();
    group_del(&host, o.group);
    for (size_t k = 1; k < n_leaves; k++)
      if (leaves[k].ns >= 0) group_del(&leaves[k].rt, o.group);
    bulk = now_ms() - t;
  }
  double total = now_ms() - t0;

  printf("{\"mode\":\"%s\",\"count\":%d,\"totalMs\":%.4f", mode, n, total);
  if (grouped) printf(",\"bulkDeleteMs\":%.4f", bulk);
  printf(",\"ms\":[");
  for (int i = 0; i < n; i++) printf("%s%.4f", i ? "," : "", ms[i]);
  printf("]}\n");
  return 0;
}
