// rtnetlink request encoders.
//
// Kernel behaviour these encoders are shaped by (measured on Linux 6.18; see test/ns/20.rtnl-link):
//  - IFLA_IFALIAS in a creating RTM_NEWLINK is ignored (neither the link nor a veth peer gets the
//    alias), so an alias is set by a follow-up message.
//  - IFF_UP in the veth peer's nested ifinfomsg makes the whole request fail with ENOTCONN: the
//    kernel configures the peer before it ties the two ends together, and veth_open() refuses a
//    device without a peer. A peer is brought up by a follow-up message in its namespace.
//  - IFLA_AF_SPEC { AF_INET6 { IFLA_INET6_ADDR_GEN_MODE } } in a creating RTM_NEWLINK fails with
//    EAFNOSUPPORT (no extack), on the link itself and inside VETH_INFO_PEER; the same attribute
//    on an existing link works. And do_setlink() applies ifi_flags (IFF_UP) before IFLA_AF_SPEC,
//    so "addrgenmode none + up" in ONE message still leaves a fe80:: address when the link has
//    carrier. So `noIpv6` creates the link down, sets addrgenmode none on the peer (it may come up
//    in that message: its other end is still down, so no carrier, so no link-local), then on the
//    link (unless `disableIpv6` took IPv6 off it first), then brings the link up in a separate
//    message.
//  - The kernel resolves a link name itself (ifi_index 0 + IFLA_IFNAME) for RTM_NEWLINK on an
//    existing link, RTM_DELLINK and RTM_GETLINK, but not for IFLA_MASTER, RTA_OIF, ifa_index or
//    ndm_ifindex: those are patched in by the executor after an RTM_GETLINK (see exec.cc).
#include "encode.h"

#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sys/socket.h>

#include <cstddef>

#include "../nl/attr.h"

namespace nm {
namespace rtnl {

namespace {

constexpr uint16_t kReq = NLM_F_REQUEST | NLM_F_ACK;

// Builds one message and records where ifindex patches go.
class MsgBuilder {
 public:
  MsgBuilder(uint16_t type, uint16_t flags, Role role = Role::kOp) {
    msg_.role = role;
    b_.Bytes().reserve(256);
    off_ = b_.BeginMsg(type, flags, 0);
  }
  NlBuilder& b() { return b_; }
  // A u32 attribute holding the ifindex of `ref` (0 when ref is empty, e.g. "nomaster").
  void PutIndexAttr(uint16_t type, const LinkRef& ref, Role role) {
    if (ref.index == 0 && !ref.name.empty())
      msg_.patches.push_back(Patch{b_.Size() + NLA_HDRLEN, role, ref.name});
    b_.PutU32(type, ref.index);
  }
  // The family header's ifindex field (at `field_off` inside the header, which must be the
  // next thing appended) for `ref`, patched when given by name.
  template <class T>
  void PutHeader(const T& hdr, size_t field_off, const LinkRef* ref, Role role) {
    if (ref && ref->index == 0 && !ref->name.empty())
      msg_.patches.push_back(Patch{b_.Size() + field_off, role, ref->name});
    b_.PutStruct(hdr);
  }
  Msg Done(bool barrier = false) {
    b_.EndMsg(off_);
    msg_.bytes = std::move(b_.Bytes());
    msg_.barrier = barrier;
    return std::move(msg_);
  }

 private:
  NlBuilder b_;
  size_t off_;
  Msg msg_;
};

void PutNs(NlBuilder& b, const NsTarget& ns) {
  if (ns.kind == NsTarget::kFd) b.PutU32(IFLA_NET_NS_FD, ns.value);
  if (ns.kind == NsTarget::kPid) b.PutU32(IFLA_NET_NS_PID, ns.value);
}

ifinfomsg IfInfo(int32_t index, bool set_up, bool up) {
  ifinfomsg m{};
  m.ifi_family = AF_UNSPEC;
  m.ifi_index = index;
  if (set_up) {
    m.ifi_change = IFF_UP;
    m.ifi_flags = up ? IFF_UP : 0;
  }
  return m;
}

void PutAddrGenModeNone(NlBuilder& b) {
  size_t spec = b.BeginNest(IFLA_AF_SPEC);
  size_t in6 = b.BeginNest(AF_INET6);
  b.PutU8(IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE);
  b.EndNest(in6);
  b.EndNest(spec);
}

// Follow-up RTM_NEWLINK on a link the same op has just created, found by name by the kernel.
Msg FollowUp(const std::string& name, Role role, bool set_up, bool up, bool addrgen_none,
             const Opt<std::string>& alias, bool barrier) {
  MsgBuilder m(RTM_NEWLINK, kReq, role);
  m.b().PutStruct(IfInfo(0, set_up, up));
  m.b().PutStr(IFLA_IFNAME, name);
  // No NUL: the kernel stores exactly nla_len bytes (as iproute2 sends it); empty clears.
  if (alias) m.b().Put(IFLA_IFALIAS, alias->data(), alias->size());
  if (addrgen_none) PutAddrGenModeNone(m.b());
  return m.Done(barrier);
}

void PutBridgeOpts(NlBuilder& b, const BridgeOpts& o) {
  if (o.forward_delay) b.PutU32(IFLA_BR_FORWARD_DELAY, *o.forward_delay);
  if (o.ageing_time) b.PutU32(IFLA_BR_AGEING_TIME, *o.ageing_time);
  if (o.stp) b.PutU32(IFLA_BR_STP_STATE, *o.stp ? 1 : 0);
  if (o.vlan_filtering) b.PutU8(IFLA_BR_VLAN_FILTERING, *o.vlan_filtering ? 1 : 0);
}

void PutPortOpts(NlBuilder& b, const PortOpts& p) {
  // IFLA_INFO_SLAVE_DATA goes to the current master's slave_changelink(); no slave kind needed.
  size_t li = b.BeginNest(IFLA_LINKINFO);
  size_t sd = b.BeginNest(IFLA_INFO_SLAVE_DATA);
  if (p.hairpin) b.PutU8(IFLA_BRPORT_MODE, *p.hairpin ? 1 : 0);
  if (p.learning) b.PutU8(IFLA_BRPORT_LEARNING, *p.learning ? 1 : 0);
  if (p.isolated) b.PutU8(IFLA_BRPORT_ISOLATED, *p.isolated ? 1 : 0);
  if (p.locked) b.PutU8(IFLA_BRPORT_LOCKED, *p.locked ? 1 : 0);
  if (p.unicast_flood) b.PutU8(IFLA_BRPORT_UNICAST_FLOOD, *p.unicast_flood ? 1 : 0);
  if (p.mcast_flood) b.PutU8(IFLA_BRPORT_MCAST_FLOOD, *p.mcast_flood ? 1 : 0);
  if (p.bcast_flood) b.PutU8(IFLA_BRPORT_BCAST_FLOOD, *p.bcast_flood ? 1 : 0);
  if (p.state) b.PutU8(IFLA_BRPORT_STATE, *p.state);
  if (p.flush) b.PutFlag(IFLA_BRPORT_FLUSH);
  b.EndNest(sd);
  b.EndNest(li);
}

Encoded LinkAdd(const LinkAddReq& r) {
  Encoded e;
  const bool veth = r.kind == "veth" && r.peer;
  // The link may come up in the creating message unless addrgenmode must be set first.
  const bool up_now = r.up && !r.no_ipv6;
  // NLM_F_ECHO returns the new link (ifindex, and IFLA_LINK = the peer's ifindex). The echo is
  // sent in the link's namespace, so only when that is the socket's own.
  const bool echo = !r.netns.set();
  MsgBuilder m(RTM_NEWLINK, kReq | NLM_F_CREATE | NLM_F_EXCL | (echo ? NLM_F_ECHO : 0));
  m.b().PutStruct(IfInfo(0, up_now, true));
  m.b().PutStr(IFLA_IFNAME, r.name);
  if (r.mtu) m.b().PutU32(IFLA_MTU, *r.mtu);
  if (r.mac) m.b().PutBytes(IFLA_ADDRESS, *r.mac);
  if (r.txqlen) m.b().PutU32(IFLA_TXQLEN, *r.txqlen);
  if (r.queues) {
    m.b().PutU32(IFLA_NUM_TX_QUEUES, *r.queues);
    m.b().PutU32(IFLA_NUM_RX_QUEUES, *r.queues);
  }
  if (r.group) m.b().PutU32(IFLA_GROUP, *r.group);
  // IFLA_MASTER is applied in the link's final namespace, after it is created there.
  if (!r.master.empty()) m.PutIndexAttr(IFLA_MASTER, r.master, Role::kLink);
  PutNs(m.b(), r.netns);
  size_t li = m.b().BeginNest(IFLA_LINKINFO);
  m.b().PutStr(IFLA_INFO_KIND, r.kind);
  if (veth) {
    const VethPeer& p = *r.peer;
    size_t data = m.b().BeginNest(IFLA_INFO_DATA);
    size_t peer = m.b().BeginNest(VETH_INFO_PEER);
    m.b().PutStruct(IfInfo(0, false, false));
    m.b().PutStr(IFLA_IFNAME, p.name);
    if (p.mtu) m.b().PutU32(IFLA_MTU, *p.mtu);
    if (p.queues) {
      m.b().PutU32(IFLA_NUM_TX_QUEUES, *p.queues);
      m.b().PutU32(IFLA_NUM_RX_QUEUES, *p.queues);
    }
    if (p.mac) m.b().PutBytes(IFLA_ADDRESS, *p.mac);
    PutNs(m.b(), p.ns);
    m.b().EndNest(peer);
    m.b().EndNest(data);
  } else if (r.kind == "bridge" && r.bridge) {
    size_t data = m.b().BeginNest(IFLA_INFO_DATA);
    PutBridgeOpts(m.b(), *r.bridge);
    m.b().EndNest(data);
  }
  m.b().EndNest(li);
  e.msgs.push_back(m.Done());
  if (echo) e.prime_name = r.name;
  if (veth) e.prime_peer = r.peer->name;
  if (r.disable_ipv6) e.after_create_sysctl = "net/ipv6/conf/" + r.name + "/disable_ipv6";

  // Follow-ups, in the order the comment at the top of this file explains. The first one waits
  // for the create's ack (barrier); the rest may share its sendmsg.
  bool first = true;
  auto barrier = [&first] {
    bool b = first;
    first = false;
    return b;
  };
  if (veth && (r.peer->up || r.no_ipv6))
    e.msgs.push_back(FollowUp(r.peer->name, Role::kPeer, r.peer->up, true, r.no_ipv6, std::nullopt, barrier()));
  // With disable_ipv6 (written right after the create, while the link is still down) the link
  // never gets IPv6 at all: addrgenmode none would be one more message for nothing (and each
  // message on a link whose peer is in another namespace makes the kernel look up that
  // namespace's id, a walk of every peer namespace's id: ~0.1 ms with 10,000 of them).
  const bool link_addrgen = r.no_ipv6 && !r.disable_ipv6;
  if (link_addrgen || r.alias)
    e.msgs.push_back(FollowUp(r.name, Role::kLink, false, false, link_addrgen, r.alias, barrier()));
  if (r.up && !up_now) e.msgs.push_back(FollowUp(r.name, Role::kLink, true, true, false, std::nullopt, barrier()));
  return e;
}

Encoded LinkSet(const LinkSetReq& r) {
  Encoded e;
  const bool rename = r.name.has_value();
  e.invalidate_all = rename || r.netns.set();
  // Port flags go to the current master; with a master change in the same call they must follow
  // it in a second message.
  const bool port_later = r.port.any() && r.set_master;
  MsgBuilder m(RTM_NEWLINK, kReq);
  // By index, or by name resolved by the kernel; a rename needs the index (IFLA_IFNAME then
  // carries the new name), so a rename of a link given by name is patched.
  m.PutHeader(IfInfo(static_cast<int32_t>(r.link.index), r.up.has_value(), r.up.value_or(false)),
              offsetof(ifinfomsg, ifi_index), rename ? &r.link : nullptr, Role::kOp);
  if (rename)
    m.b().PutStr(IFLA_IFNAME, *r.name);
  else if (r.link.index == 0)
    m.b().PutStr(IFLA_IFNAME, r.link.name);
  if (r.mtu) m.b().PutU32(IFLA_MTU, *r.mtu);
  if (r.mac) m.b().PutBytes(IFLA_ADDRESS, *r.mac);
  if (r.group) m.b().PutU32(IFLA_GROUP, *r.group);
  if (r.alias) m.b().Put(IFLA_IFALIAS, r.alias->data(), r.alias->size());
  if (r.set_master) m.PutIndexAttr(IFLA_MASTER, r.master, Role::kLink);
  PutNs(m.b(), r.netns);
  if (r.port.any() && !port_later) PutPortOpts(m.b(), r.port);
  e.msgs.push_back(m.Done());
  if (port_later) {
    MsgBuilder p(RTM_NEWLINK, kReq, Role::kLink);
    LinkRef now = r.link;
    if (rename) now = LinkRef{r.link.index, *r.name};
    p.b().PutStruct(IfInfo(static_cast<int32_t>(now.index), false, false));
    if (now.index == 0) p.b().PutStr(IFLA_IFNAME, now.name);
    PutPortOpts(p.b(), r.port);
    e.msgs.push_back(p.Done(true));
  }
  return e;
}

// RTM_DELLINK / RTM_GETLINK on one link, by index or by name (resolved by the kernel).
Encoded LinkByRef(uint16_t type, const LinkRef& ref) {
  Encoded e;
  MsgBuilder m(type, kReq);
  m.b().PutStruct(IfInfo(static_cast<int32_t>(ref.index), false, false));
  if (ref.index == 0) m.b().PutStr(IFLA_IFNAME, ref.name);
  if (type == RTM_GETLINK) m.b().PutU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  e.msgs.push_back(m.Done());
  e.invalidate_all = type == RTM_DELLINK;
  return e;
}

// One RTM_DELLINK with ifi_index 0 and IFLA_GROUP: rtnl_group_dellink() queues every link of
// the group and unregisters them together (one RCU grace period for all). ENODEV when the group
// is empty.
Encoded LinkDelGroup(uint32_t group) {
  Encoded e;
  MsgBuilder m(RTM_DELLINK, kReq);
  m.b().PutStruct(IfInfo(0, false, false));
  m.b().PutU32(IFLA_GROUP, group);
  e.msgs.push_back(m.Done());
  e.invalidate_all = true;
  return e;
}

void PutIp(NlBuilder& b, uint16_t type, const IpAddr& a) { b.Put(type, a.b, a.len()); }

Encoded Addr(bool add, const AddrReq& r) {
  Encoded e;
  MsgBuilder m(add ? RTM_NEWADDR : RTM_DELADDR, add ? kReq | NLM_F_CREATE | NLM_F_EXCL : kReq);
  ifaddrmsg h{};
  h.ifa_family = r.address.family;
  h.ifa_prefixlen = r.prefix;
  h.ifa_scope = r.scope.value_or(0);
  h.ifa_index = r.link.index;
  uint32_t flags = (r.no_dad ? IFA_F_NODAD : 0) | (r.no_prefix_route ? IFA_F_NOPREFIXROUTE : 0);
  h.ifa_flags = static_cast<uint8_t>(flags & 0xff);
  m.PutHeader(h, offsetof(ifaddrmsg, ifa_index), &r.link, Role::kOp);
  // As iproute2 does for both families: IFA_LOCAL is the address, IFA_ADDRESS the same address
  // (it would be the peer on a point-to-point link).
  PutIp(m.b(), IFA_LOCAL, r.address);
  PutIp(m.b(), IFA_ADDRESS, r.address);
  if (r.broadcast) PutIp(m.b(), IFA_BROADCAST, *r.broadcast);
  if (r.label) m.b().PutStr(IFA_LABEL, *r.label);
  if (add && flags) m.b().PutU32(IFA_FLAGS, flags);
  e.msgs.push_back(m.Done());
  return e;
}

Encoded Route(OpKind k, const RouteReq& r) {
  Encoded e;
  uint16_t type = k == OpKind::kRouteDel ? RTM_DELROUTE : RTM_NEWROUTE;
  uint16_t flags = kReq;
  if (k == OpKind::kRouteAdd) flags |= NLM_F_CREATE | NLM_F_EXCL;
  if (k == OpKind::kRouteReplace) flags |= NLM_F_CREATE | NLM_F_REPLACE;
  MsgBuilder m(type, flags);
  rtmsg h{};
  h.rtm_family = r.family;
  h.rtm_dst_len = r.dst ? r.dst_len : 0;
  uint32_t table = r.table.value_or(0);
  h.rtm_table = table < 256 ? static_cast<uint8_t>(table) : static_cast<uint8_t>(RT_TABLE_UNSPEC);
  h.rtm_protocol = r.protocol.value_or(0);
  h.rtm_scope = r.scope.value_or(0);
  h.rtm_type = r.type.value_or(0);
  h.rtm_flags = r.onlink ? RTNH_F_ONLINK : 0;
  m.b().PutStruct(h);
  if (r.table) m.b().PutU32(RTA_TABLE, table);
  if (r.dst) PutIp(m.b(), RTA_DST, *r.dst);
  if (r.gateway) PutIp(m.b(), RTA_GATEWAY, *r.gateway);
  if (!r.oif.empty()) m.PutIndexAttr(RTA_OIF, r.oif, Role::kOp);
  if (r.metric) m.b().PutU32(RTA_PRIORITY, *r.metric);
  if (r.src) PutIp(m.b(), RTA_PREFSRC, *r.src);
  e.msgs.push_back(m.Done());
  return e;
}

Encoded Neigh(bool add, const NeighReq& r) {
  Encoded e;
  MsgBuilder m(add ? RTM_NEWNEIGH : RTM_DELNEIGH, add ? kReq | NLM_F_CREATE | NLM_F_EXCL : kReq);
  ndmsg h{};
  h.ndm_family = r.fdb ? AF_BRIDGE : r.address.family;
  h.ndm_ifindex = static_cast<int32_t>(r.link.index);
  if (r.fdb) {
    // bridge fdb add|del LLADDR dev PORT master static: the bridge's own table (NTF_MASTER), an
    // entry that never ages (NUD_NOARP: "static"; NUD_PERMANENT would make it local, delivered
    // to the bridge itself instead of forwarded out the port).
    h.ndm_flags = NTF_MASTER;
    h.ndm_state = NUD_NOARP;
  } else if (add) {
    h.ndm_state = r.permanent ? NUD_PERMANENT : NUD_REACHABLE;
  }
  m.PutHeader(h, offsetof(ndmsg, ndm_ifindex), &r.link, Role::kOp);
  if (!r.fdb) PutIp(m.b(), NDA_DST, r.address);
  if ((add || r.fdb) && r.lladdr) m.b().PutBytes(NDA_LLADDR, *r.lladdr);
  e.msgs.push_back(m.Done());
  return e;
}

}  // namespace

Encoded EncodeOp(const Op& op) {
  switch (op.kind) {
    case OpKind::kLinkAdd: return LinkAdd(op.link_add);
    case OpKind::kLinkSet: return LinkSet(op.link_set);
    case OpKind::kLinkDel: return LinkByRef(RTM_DELLINK, op.link);
    case OpKind::kLinkGet: return LinkByRef(RTM_GETLINK, op.link);
    case OpKind::kLinkDelGroup: return LinkDelGroup(op.group);
    case OpKind::kAddrAdd: return Addr(true, op.addr);
    case OpKind::kAddrDel: return Addr(false, op.addr);
    case OpKind::kRouteAdd:
    case OpKind::kRouteReplace:
    case OpKind::kRouteDel: return Route(op.kind, op.route);
    case OpKind::kNeighAdd: return Neigh(true, op.neigh);
    case OpKind::kNeighDel: return Neigh(false, op.neigh);
    case OpKind::kFdbAdd: return Neigh(true, op.neigh);
    case OpKind::kFdbDel: return Neigh(false, op.neigh);
  }
  return Encoded{};
}

// With NETLINK_GET_STRICT_CHK (set on every rtnetlink socket we open) the kernel reads the full
// family header of a dump request and filters on the fields and attributes below.
Bytes EncodeDump(DumpKind kind, const DumpFilter& f) {
  NlBuilder b;
  const uint16_t flags = NLM_F_REQUEST | NLM_F_DUMP;
  size_t off = 0;
  switch (kind) {
    case DumpKind::kLink: {
      off = b.BeginMsg(RTM_GETLINK, flags, 0);
      b.PutStruct(IfInfo(0, false, false));
      b.PutU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
      if (f.master) b.PutU32(IFLA_MASTER, f.master);
      if (!f.kind.empty()) {
        size_t li = b.BeginNest(IFLA_LINKINFO);
        b.PutStr(IFLA_INFO_KIND, f.kind);
        b.EndNest(li);
      }
      break;
    }
    case DumpKind::kAddr: {
      off = b.BeginMsg(RTM_GETADDR, flags, 0);
      ifaddrmsg h{};
      h.ifa_family = f.family;
      h.ifa_index = f.index;
      b.PutStruct(h);
      break;
    }
    case DumpKind::kRoute: {
      off = b.BeginMsg(RTM_GETROUTE, flags, 0);
      rtmsg h{};
      h.rtm_family = f.family;
      h.rtm_protocol = f.protocol;
      h.rtm_type = f.type;
      b.PutStruct(h);
      if (f.table) b.PutU32(RTA_TABLE, f.table);
      if (f.index) b.PutU32(RTA_OIF, f.index);
      break;
    }
    case DumpKind::kNeigh: {
      off = b.BeginMsg(RTM_GETNEIGH, flags, 0);
      ndmsg h{};
      h.ndm_family = f.family;
      b.PutStruct(h);
      if (f.index) b.PutU32(NDA_IFINDEX, f.index);
      if (f.master) b.PutU32(NDA_MASTER, f.master);
      break;
    }
  }
  b.EndMsg(off);
  return std::move(b.Bytes());
}

}  // namespace rtnl
}  // namespace nm
