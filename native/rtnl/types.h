// Plain C++ descriptions of rtnetlink requests and of what the kernel reports back. No Napi, no
// sockets: encode.cc turns requests into bytes, decode.cc turns bytes into these structs, exec.cc
// runs them, rtnl.cc converts to and from JS.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace nm {
namespace rtnl {

template <class T>
using Opt = std::optional<T>;

// An IPv4 or IPv6 address in network byte order.
struct IpAddr {
  uint8_t family = 0;  // AF_INET or AF_INET6
  uint8_t b[16] = {};
  size_t len() const { return family == 2 /* AF_INET */ ? 4 : 16; }
  bool operator==(const IpAddr& o) const;
};
// inet_pton / inet_ntop wrappers.
bool ParseIp(const std::string& s, IpAddr* out);
std::string FormatIp(uint8_t family, const uint8_t* p, size_t len);

using Bytes = std::vector<uint8_t>;
// "aa:bb:cc:dd:ee:ff" (any number of colon-separated hex octets, 1..32) <-> bytes.
bool ParseHw(const std::string& s, Bytes* out);
std::string FormatHw(const uint8_t* p, size_t len);

// A link named by ifindex (index > 0) or by name.
struct LinkRef {
  uint32_t index = 0;
  std::string name;
  bool empty() const { return index == 0 && name.empty(); }
};

// Which namespace a link is moved to or created in: an fd (IFLA_NET_NS_FD) or a process id whose
// namespace is meant (IFLA_NET_NS_PID, used for "the process's own namespace").
struct NsTarget {
  enum Kind : uint8_t { kNone, kFd, kPid } kind = kNone;
  uint32_t value = 0;
  bool set() const { return kind != kNone; }
};

struct VethPeer {
  std::string name;
  NsTarget ns;
  Opt<Bytes> mac;
  Opt<uint32_t> mtu;
  Opt<uint32_t> queues;  // IFLA_NUM_TX_QUEUES and IFLA_NUM_RX_QUEUES
  bool up = false;
};

struct BridgeOpts {
  Opt<bool> stp;
  Opt<uint32_t> forward_delay;  // centiseconds (clock_t), as `ip link ... forward_delay`
  Opt<bool> vlan_filtering;
  Opt<uint32_t> ageing_time;    // centiseconds
};

// Bridge-port flags (IFLA_BRPORT_*).
struct PortOpts {
  Opt<bool> hairpin, isolated, learning, locked, unicast_flood, mcast_flood, bcast_flood;
  Opt<uint8_t> state;  // BR_STATE_* (IFLA_BRPORT_STATE)
  bool flush = false;  // IFLA_BRPORT_FLUSH: forget the MAC addresses learned on the port
  bool any() const {
    return hairpin || isolated || learning || locked || unicast_flood || mcast_flood || bcast_flood || state || flush;
  }
};

struct LinkAddReq {
  std::string name, kind;
  Opt<uint32_t> mtu, group, txqlen;
  Opt<uint32_t> queues;  // IFLA_NUM_TX_QUEUES and IFLA_NUM_RX_QUEUES
  Opt<Bytes> mac;
  Opt<std::string> alias;
  bool up = false;
  LinkRef master;
  NsTarget netns;
  bool no_ipv6 = false;
  bool disable_ipv6 = false;  // net.ipv6.conf.NAME.disable_ipv6 = 1 right after the create
  Opt<VethPeer> peer;
  Opt<BridgeOpts> bridge;
};

struct LinkSetReq {
  LinkRef link;
  Opt<bool> up;
  Opt<uint32_t> mtu, group;
  bool set_master = false;
  LinkRef master;  // empty with set_master: nomaster
  Opt<std::string> name, alias;
  Opt<Bytes> mac;
  NsTarget netns;
  PortOpts port;
};

struct AddrReq {
  LinkRef link;
  IpAddr address;
  uint8_t prefix = 0;
  Opt<IpAddr> broadcast;
  Opt<uint8_t> scope;
  bool no_dad = false;
  bool no_prefix_route = false;
  Opt<std::string> label;
};

struct RouteReq {
  uint8_t family = 0;
  Opt<IpAddr> dst;  // none: default route
  uint8_t dst_len = 0;
  Opt<IpAddr> gateway, src;
  LinkRef oif;
  Opt<uint32_t> table, metric;
  Opt<uint8_t> scope, protocol, type;
  bool onlink = false;
};

struct NeighReq {
  LinkRef link;
  IpAddr address;
  Opt<Bytes> lladdr;
  bool permanent = true;
  // fdbAdd/fdbDel: a bridge forwarding entry (AF_BRIDGE, NTF_MASTER, static) for `lladdr` on
  // port `link`; `address` is unused.
  bool fdb = false;
};

enum class OpKind : uint8_t {
  kLinkAdd, kLinkDel, kLinkSet, kLinkGet, kLinkDelGroup,
  kAddrAdd, kAddrDel, kRouteAdd, kRouteReplace, kRouteDel, kNeighAdd, kNeighDel, kFdbAdd, kFdbDel,
};
const char* OpKindName(OpKind k);
bool OpKindFromName(const std::string& s, OpKind* out);

// One operation of rtnlExec. Exactly the member matching `kind` is meaningful.
struct Op {
  OpKind kind = OpKind::kLinkGet;
  LinkAddReq link_add;
  LinkSetReq link_set;
  LinkRef link;       // linkDel, linkGet
  uint32_t group = 0; // linkDelGroup
  AddrReq addr;
  RouteReq route;
  NeighReq neigh;
};

// ---- What the kernel reports (and what rtnlDecode reads back out of requests) ----

struct LinkMsg {
  uint8_t family = 0;
  uint16_t type = 0;  // ARPHRD_*
  int32_t index = 0;
  uint32_t flags = 0, change = 0;
  Opt<std::string> name, kind, slave_kind, alias;
  Opt<uint32_t> mtu, master, group, link, txqlen, net_ns_fd, net_ns_pid, ext_mask;
  Opt<int32_t> link_netnsid;
  Opt<uint8_t> operstate, addr_gen_mode;
  Opt<Bytes> mac, broadcast;
  std::vector<LinkMsg> peer;  // VETH_INFO_PEER (zero or one)
  Opt<BridgeOpts> bridge;
  Opt<PortOpts> port;
};

struct AddrMsg {
  uint8_t family = 0, prefix = 0, scope = 0;
  uint32_t flags = 0;  // IFA_FLAGS when present, else ifa_flags
  uint32_t index = 0;
  Opt<IpAddr> address, local, broadcast;
  Opt<std::string> label;
};

struct RouteMsg {
  uint8_t family = 0, dst_len = 0, src_len = 0, tos = 0, protocol = 0, scope = 0, type = 0;
  uint32_t table = 0, flags = 0;
  Opt<IpAddr> dst, src, gateway, prefsrc;
  Opt<uint32_t> oif, metric;
};

struct NeighMsg {
  uint8_t family = 0, flags = 0, type = 0;
  uint16_t state = 0;
  uint32_t index = 0;
  Opt<IpAddr> dst;
  Opt<Bytes> lladdr;
};

// Any message as rtnlDecode sees it.
struct AnyMsg {
  uint16_t type = 0, flags = 0;
  uint32_t seq = 0;
  enum Body : uint8_t { kNone, kLink, kAddr, kRoute, kNeigh, kError } body = kNone;
  LinkMsg link;
  AddrMsg addr;
  RouteMsg route;
  NeighMsg neigh;
  int error = 0;  // positive errno for NLMSG_ERROR (0 = ack)
  std::string extack;
};

enum class DumpKind : uint8_t { kLink, kAddr, kRoute, kNeigh };

struct DumpFilter {
  uint8_t family = 0;          // addr/route/neigh: AF_INET, AF_INET6 or 0 for both
  uint32_t index = 0;          // addr: ifa_index; route: RTA_OIF; neigh: NDA_IFINDEX
  uint32_t master = 0;         // link, neigh: IFLA_MASTER / NDA_MASTER
  std::string kind;            // link: IFLA_INFO_KIND
  uint32_t table = 0;          // route: RTA_TABLE
  uint8_t protocol = 0, type = 0;  // route
};

}  // namespace rtnl
}  // namespace nm
