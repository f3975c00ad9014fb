#include "decode.h"

#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sys/socket.h>

#include <cstring>

#include "../nl/attr.h"

namespace nm {
namespace rtnl {

namespace {

// Reads the fixed family header that follows nlmsghdr; false when the message is too short.
template <class T>
bool Header(const nlmsghdr* h, T* out, const uint8_t** attrs, size_t* attrs_len) {
  if (!NlPayload(h, sizeof(T), attrs, attrs_len)) return false;
  std::memcpy(out, NLMSG_DATA(h), sizeof(T));
  return true;
}

// An address attribute of the given family; anything of another length is ignored.
Opt<IpAddr> Ip(const NlAttr& a, uint8_t family) {
  IpAddr ip;
  ip.family = family;
  if (!a.ok() || (family != AF_INET && family != AF_INET6) || a.len != ip.len()) return std::nullopt;
  std::memcpy(ip.b, a.data, ip.len());
  return ip;
}

Opt<Bytes> Hw(const NlAttr& a) {
  if (!a.ok()) return std::nullopt;
  return a.Bytes();
}

Opt<uint32_t> U32(const NlAttr& a) {
  if (!a.ok() || a.len < 4) return std::nullopt;
  return a.U32();
}

Opt<std::string> Str(const NlAttr& a) {
  if (!a.ok()) return std::nullopt;
  return a.Str();
}

// ifinfomsg + attributes, for a whole message or for a veth's VETH_INFO_PEER payload. The peer
// is read one level deep only.
bool LinkBody(const uint8_t* p, size_t len, LinkMsg* out, bool read_peer) {
  if (len < sizeof(ifinfomsg)) return false;
  ifinfomsg m;
  std::memcpy(&m, p, sizeof m);
  out->family = m.ifi_family;
  out->type = m.ifi_type;
  out->index = m.ifi_index;
  out->flags = m.ifi_flags;
  out->change = m.ifi_change;
  size_t off = NlAlign(sizeof(ifinfomsg));
  if (off > len) return true;
  NlAttrTable<IFLA_MAX> tb(p + off, len - off);
  out->name = Str(tb[IFLA_IFNAME]);
  out->alias = Str(tb[IFLA_IFALIAS]);
  out->mtu = U32(tb[IFLA_MTU]);
  out->master = U32(tb[IFLA_MASTER]);
  out->group = U32(tb[IFLA_GROUP]);
  out->link = U32(tb[IFLA_LINK]);
  out->txqlen = U32(tb[IFLA_TXQLEN]);
  out->net_ns_fd = U32(tb[IFLA_NET_NS_FD]);
  out->net_ns_pid = U32(tb[IFLA_NET_NS_PID]);
  out->ext_mask = U32(tb[IFLA_EXT_MASK]);
  if (auto v = U32(tb[IFLA_LINK_NETNSID])) out->link_netnsid = static_cast<int32_t>(*v);
  if (tb.Has(IFLA_OPERSTATE)) out->operstate = tb[IFLA_OPERSTATE].U8();
  out->mac = Hw(tb[IFLA_ADDRESS]);
  out->broadcast = Hw(tb[IFLA_BROADCAST]);
  if (tb.Has(IFLA_AF_SPEC)) {
    NlAttrTable<AF_MAX> af(tb[IFLA_AF_SPEC]);
    if (af.Has(AF_INET6)) {
      NlAttrTable<IFLA_INET6_MAX> in6(af[AF_INET6]);
      if (in6.Has(IFLA_INET6_ADDR_GEN_MODE)) out->addr_gen_mode = in6[IFLA_INET6_ADDR_GEN_MODE].U8();
    }
  }
  if (tb.Has(IFLA_LINKINFO)) {
    NlAttrTable<IFLA_INFO_MAX> li(tb[IFLA_LINKINFO]);
    out->kind = Str(li[IFLA_INFO_KIND]);
    out->slave_kind = Str(li[IFLA_INFO_SLAVE_KIND]);
    if (li.Has(IFLA_INFO_DATA) && out->kind) {
      if (*out->kind == "veth" && read_peer) {
        NlAttrTable<VETH_INFO_MAX> vd(li[IFLA_INFO_DATA]);
        if (vd.Has(VETH_INFO_PEER)) {
          LinkMsg peer;
          if (LinkBody(vd[VETH_INFO_PEER].data, vd[VETH_INFO_PEER].len, &peer, false)) out->peer.push_back(std::move(peer));
        }
      } else if (*out->kind == "bridge") {
        NlAttrTable<IFLA_BR_MAX> br(li[IFLA_INFO_DATA]);
        BridgeOpts o;
        if (auto v = U32(br[IFLA_BR_STP_STATE])) o.stp = *v != 0;
        o.forward_delay = U32(br[IFLA_BR_FORWARD_DELAY]);
        o.ageing_time = U32(br[IFLA_BR_AGEING_TIME]);
        if (br.Has(IFLA_BR_VLAN_FILTERING)) o.vlan_filtering = br[IFLA_BR_VLAN_FILTERING].U8() != 0;
        out->bridge = o;
      }
    }
    // Bridge ports report (and linkSet sends) their flags here; bond slaves etc. use other
    // attribute numbers, so read them only for bridge ports or for requests (no slave kind).
    if (li.Has(IFLA_INFO_SLAVE_DATA) && (!out->slave_kind || *out->slave_kind == "bridge")) {
      NlAttrTable<IFLA_BRPORT_MAX> sd(li[IFLA_INFO_SLAVE_DATA]);
      PortOpts po;
      if (sd.Has(IFLA_BRPORT_MODE)) po.hairpin = sd[IFLA_BRPORT_MODE].U8() != 0;
      if (sd.Has(IFLA_BRPORT_LEARNING)) po.learning = sd[IFLA_BRPORT_LEARNING].U8() != 0;
      if (sd.Has(IFLA_BRPORT_ISOLATED)) po.isolated = sd[IFLA_BRPORT_ISOLATED].U8() != 0;
      if (sd.Has(IFLA_BRPORT_LOCKED)) po.locked = sd[IFLA_BRPORT_LOCKED].U8() != 0;
      if (sd.Has(IFLA_BRPORT_UNICAST_FLOOD)) po.unicast_flood = sd[IFLA_BRPORT_UNICAST_FLOOD].U8() != 0;
      if (sd.Has(IFLA_BRPORT_MCAST_FLOOD)) po.mcast_flood = sd[IFLA_BRPORT_MCAST_FLOOD].U8() != 0;
      if (sd.Has(IFLA_BRPORT_BCAST_FLOOD)) po.bcast_flood = sd[IFLA_BRPORT_BCAST_FLOOD].U8() != 0;
      if (sd.Has(IFLA_BRPORT_STATE)) po.state = sd[IFLA_BRPORT_STATE].U8();
      out->port = po;
    }
  }
  return true;
}

std::vector<std::string> BitNames(uint32_t v, const std::pair<uint32_t, const char*>* table, size_t n) {
  std::vector<std::string> out;
  for (size_t i = 0; i < n; i++)
    if (v & table[i].first) out.emplace_back(table[i].second), v &= ~table[i].first;
  for (int bit = 0; bit < 32; bit++)
    if (v & (1u << bit)) out.push_back(std::to_string(1u << bit));
  return out;
}

std::string EnumName(uint32_t v, const std::pair<uint32_t, const char*>* table, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (table[i].first == v) return table[i].second;
  return std::to_string(v);
}

template <size_t N>
constexpr size_t Len(const std::pair<uint32_t, const char*> (&)[N]) { return N; }

}  // namespace

bool DecodeLink(const nlmsghdr* h, LinkMsg* out) {
  const uint8_t* p = nullptr;
  size_t len = 0;
  if (!NlPayload(h, 0, &p, &len)) return false;
  return LinkBody(p, len, out, true);
}

bool DecodeAddr(const nlmsghdr* h, AddrMsg* out) {
  ifaddrmsg m;
  const uint8_t* p;
  size_t len;
  if (!Header(h, &m, &p, &len)) return false;
  out->family = m.ifa_family;
  out->prefix = m.ifa_prefixlen;
  out->scope = m.ifa_scope;
  out->flags = m.ifa_flags;
  out->index = m.ifa_index;
  NlAttrTable<IFA_MAX> tb(p, len);
  out->address = Ip(tb[IFA_ADDRESS], m.ifa_family);
  out->local = Ip(tb[IFA_LOCAL], m.ifa_family);
  out->broadcast = Ip(tb[IFA_BROADCAST], m.ifa_family);
  out->label = Str(tb[IFA_LABEL]);
  if (auto f = U32(tb[IFA_FLAGS])) out->flags = *f;
  return true;
}

bool DecodeRoute(const nlmsghdr* h, RouteMsg* out) {
  rtmsg m;
  const uint8_t* p;
  size_t len;
  if (!Header(h, &m, &p, &len)) return false;
  out->family = m.rtm_family;
  out->dst_len = m.rtm_dst_len;
  out->src_len = m.rtm_src_len;
  out->tos = m.rtm_tos;
  out->protocol = m.rtm_protocol;
  out->scope = m.rtm_scope;
  out->type = m.rtm_type;
  out->flags = m.rtm_flags;
  out->table = m.rtm_table;
  NlAttrTable<RTA_MAX> tb(p, len);
  if (auto t = U32(tb[RTA_TABLE])) out->table = *t;
  out->dst = Ip(tb[RTA_DST], m.rtm_family);
  out->src = Ip(tb[RTA_SRC], m.rtm_family);
  out->prefsrc = Ip(tb[RTA_PREFSRC], m.rtm_family);
  out->gateway = Ip(tb[RTA_GATEWAY], m.rtm_family);
  if (!out->gateway && tb.Has(RTA_VIA) && tb[RTA_VIA].len >= sizeof(rtvia)) {
    // IPv4 route with an IPv6 next hop: struct rtvia { family; addr[] }.
    const NlAttr& v = tb[RTA_VIA];
    uint16_t fam = v.U16();
    NlAttr inner{RTA_VIA, v.data + sizeof(rtvia), v.len - sizeof(rtvia)};
    out->gateway = Ip(inner, static_cast<uint8_t>(fam));
  }
  out->oif = U32(tb[RTA_OIF]);
  out->metric = U32(tb[RTA_PRIORITY]);
  return true;
}

bool DecodeNeigh(const nlmsghdr* h, NeighMsg* out) {
  ndmsg m;
  const uint8_t* p;
  size_t len;
  if (!Header(h, &m, &p, &len)) return false;
  out->family = m.ndm_family;
  out->index = static_cast<uint32_t>(m.ndm_ifindex);
  out->state = m.ndm_state;
  out->flags = m.ndm_flags;
  out->type = m.ndm_type;
  NlAttrTable<NDA_MAX> tb(p, len);
  out->dst = Ip(tb[NDA_DST], m.ndm_family);
  out->lladdr = Hw(tb[NDA_LLADDR]);
  return true;
}

std::vector<AnyMsg> DecodeAll(const uint8_t* p, size_t len) {
  std::vector<AnyMsg> out;
  // NLMSG_OK/NLMSG_NEXT need an aligned, writable-typed pointer; copy to be safe about alignment.
  std::vector<uint8_t> copy(p, p + len);
  size_t left = copy.size();
  for (auto* h = reinterpret_cast<const nlmsghdr*>(copy.data()); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
    AnyMsg m;
    m.type = h->nlmsg_type;
    m.flags = h->nlmsg_flags;
    m.seq = h->nlmsg_seq;
    bool ok = true;
    switch (h->nlmsg_type) {
      case RTM_NEWLINK: case RTM_DELLINK: case RTM_GETLINK: case RTM_SETLINK:
        m.body = AnyMsg::kLink, ok = DecodeLink(h, &m.link);
        break;
      case RTM_NEWADDR: case RTM_DELADDR: case RTM_GETADDR:
        m.body = AnyMsg::kAddr, ok = DecodeAddr(h, &m.addr);
        break;
      case RTM_NEWROUTE: case RTM_DELROUTE: case RTM_GETROUTE:
        m.body = AnyMsg::kRoute, ok = DecodeRoute(h, &m.route);
        break;
      case RTM_NEWNEIGH: case RTM_DELNEIGH: case RTM_GETNEIGH:
        m.body = AnyMsg::kNeigh, ok = DecodeNeigh(h, &m.neigh);
        break;
      case NLMSG_ERROR:
        m.body = AnyMsg::kError;
        if (h->nlmsg_len >= NLMSG_HDRLEN + sizeof(nlmsgerr)) {
          nlmsgerr e;
          std::memcpy(&e, NLMSG_DATA(h), sizeof e);
          m.error = -e.error;
        } else {
          ok = false;
        }
        break;
      default:
        break;
    }
    if (!ok) m.body = AnyMsg::kNone;
    out.push_back(std::move(m));
  }
  return out;
}

// ---- names ----

static const std::pair<uint32_t, const char*> kLinkFlags[] = {
    {IFF_UP, "UP"}, {IFF_BROADCAST, "BROADCAST"}, {IFF_DEBUG, "DEBUG"}, {IFF_LOOPBACK, "LOOPBACK"},
    {IFF_POINTOPOINT, "POINTOPOINT"}, {IFF_NOTRAILERS, "NOTRAILERS"}, {IFF_RUNNING, "RUNNING"},
    {IFF_NOARP, "NOARP"}, {IFF_PROMISC, "PROMISC"}, {IFF_ALLMULTI, "ALLMULTI"}, {IFF_MASTER, "MASTER"},
    {IFF_SLAVE, "SLAVE"}, {IFF_MULTICAST, "MULTICAST"}, {IFF_PORTSEL, "PORTSEL"},
    {IFF_AUTOMEDIA, "AUTOMEDIA"}, {IFF_DYNAMIC, "DYNAMIC"}, {IFF_LOWER_UP, "LOWER_UP"},
    {IFF_DORMANT, "DORMANT"}, {IFF_ECHO, "ECHO"}};
static const std::pair<uint32_t, const char*> kAddrFlags[] = {
    {IFA_F_SECONDARY, "SECONDARY"}, {IFA_F_NODAD, "NODAD"}, {IFA_F_OPTIMISTIC, "OPTIMISTIC"},
    {IFA_F_DADFAILED, "DADFAILED"}, {IFA_F_HOMEADDRESS, "HOMEADDRESS"}, {IFA_F_DEPRECATED, "DEPRECATED"},
    {IFA_F_TENTATIVE, "TENTATIVE"}, {IFA_F_PERMANENT, "PERMANENT"}, {IFA_F_MANAGETEMPADDR, "MANAGETEMPADDR"},
    {IFA_F_NOPREFIXROUTE, "NOPREFIXROUTE"}, {IFA_F_MCAUTOJOIN, "MCAUTOJOIN"},
    {IFA_F_STABLE_PRIVACY, "STABLE_PRIVACY"}};
static const std::pair<uint32_t, const char*> kNud[] = {
    {NUD_INCOMPLETE, "INCOMPLETE"}, {NUD_REACHABLE, "REACHABLE"}, {NUD_STALE, "STALE"}, {NUD_DELAY, "DELAY"},
    {NUD_PROBE, "PROBE"}, {NUD_FAILED, "FAILED"}, {NUD_NOARP, "NOARP"}, {NUD_PERMANENT, "PERMANENT"}};
static const std::pair<uint32_t, const char*> kRouteFlags[] = {
    {RTNH_F_DEAD, "DEAD"}, {RTNH_F_PERVASIVE, "PERVASIVE"}, {RTNH_F_ONLINK, "ONLINK"},
    {RTNH_F_OFFLOAD, "OFFLOAD"}, {RTNH_F_LINKDOWN, "LINKDOWN"}, {RTNH_F_UNRESOLVED, "UNRESOLVED"},
    {RTNH_F_TRAP, "TRAP"}, {RTM_F_NOTIFY, "NOTIFY"}, {RTM_F_CLONED, "CLONED"}, {RTM_F_EQUALIZE, "EQUALIZE"},
    {RTM_F_PREFIX, "PREFIX"}, {RTM_F_LOOKUP_TABLE, "LOOKUP_TABLE"}, {RTM_F_FIB_MATCH, "FIB_MATCH"},
    {RTM_F_OFFLOAD, "OFFLOAD"}, {RTM_F_TRAP, "TRAP"}};
static const std::pair<uint32_t, const char*> kOperstates[] = {
    {IF_OPER_UNKNOWN, "UNKNOWN"}, {IF_OPER_NOTPRESENT, "NOTPRESENT"}, {IF_OPER_DOWN, "DOWN"},
    {IF_OPER_LOWERLAYERDOWN, "LOWERLAYERDOWN"}, {IF_OPER_TESTING, "TESTING"}, {IF_OPER_DORMANT, "DORMANT"},
    {IF_OPER_UP, "UP"}};
static const std::pair<uint32_t, const char*> kAddrGenModes[] = {
    {IN6_ADDR_GEN_MODE_EUI64, "eui64"}, {IN6_ADDR_GEN_MODE_NONE, "none"},
    {IN6_ADDR_GEN_MODE_STABLE_PRIVACY, "stable_secret"}, {IN6_ADDR_GEN_MODE_RANDOM, "random"}};
static const std::pair<uint32_t, const char*> kPortStates[] = {
    {BR_STATE_DISABLED, "disabled"}, {BR_STATE_LISTENING, "listening"}, {BR_STATE_LEARNING, "learning"},
    {BR_STATE_FORWARDING, "forwarding"}, {BR_STATE_BLOCKING, "blocking"}};
static const std::pair<uint32_t, const char*> kScopes[] = {
    {RT_SCOPE_UNIVERSE, "universe"}, {RT_SCOPE_SITE, "site"}, {RT_SCOPE_LINK, "link"},
    {RT_SCOPE_HOST, "host"}, {RT_SCOPE_NOWHERE, "nowhere"}};
static const std::pair<uint32_t, const char*> kProtocols[] = {
    {RTPROT_UNSPEC, "unspec"}, {RTPROT_REDIRECT, "redirect"}, {RTPROT_KERNEL, "kernel"},
    {RTPROT_BOOT, "boot"}, {RTPROT_STATIC, "static"}, {RTPROT_RA, "ra"}, {RTPROT_DHCP, "dhcp"},
    {RTPROT_BGP, "bgp"}, {RTPROT_OSPF, "ospf"}};
static const std::pair<uint32_t, const char*> kRouteTypes[] = {
    {RTN_UNSPEC, "unspec"}, {RTN_UNICAST, "unicast"}, {RTN_LOCAL, "local"}, {RTN_BROADCAST, "broadcast"},
    {RTN_ANYCAST, "anycast"}, {RTN_MULTICAST, "multicast"}, {RTN_BLACKHOLE, "blackhole"},
    {RTN_UNREACHABLE, "unreachable"}, {RTN_PROHIBIT, "prohibit"}, {RTN_THROW, "throw"}, {RTN_NAT, "nat"}};

std::vector<std::string> LinkFlagNames(uint32_t f) { return BitNames(f, kLinkFlags, Len(kLinkFlags)); }
std::vector<std::string> AddrFlagNames(uint32_t f) { return BitNames(f, kAddrFlags, Len(kAddrFlags)); }
std::vector<std::string> NudStateNames(uint16_t s) { return BitNames(s, kNud, Len(kNud)); }
std::vector<std::string> RouteFlagNames(uint32_t f) { return BitNames(f, kRouteFlags, Len(kRouteFlags)); }
std::string OperstateName(uint8_t v) { return EnumName(v, kOperstates, Len(kOperstates)); }
std::string AddrGenModeName(uint8_t v) { return EnumName(v, kAddrGenModes, Len(kAddrGenModes)); }
std::string ScopeName(uint8_t v) { return EnumName(v, kScopes, Len(kScopes)); }
std::string ProtocolName(uint8_t v) { return EnumName(v, kProtocols, Len(kProtocols)); }
std::string RouteTypeName(uint8_t v) { return EnumName(v, kRouteTypes, Len(kRouteTypes)); }
std::string PortStateName(uint8_t v) { return EnumName(v, kPortStates, Len(kPortStates)); }

}  // namespace rtnl
}  // namespace nm
