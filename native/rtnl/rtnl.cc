// JS entry points of the rtnetlink module: rtnlExec, rtnlDump, rtnlEncode, rtnlDecode.
// JS values become plain structs (types.h) and are encoded on the main thread; the worker only
// does socket I/O (exec.cc); results become JS objects back on the main thread.
#include <linux/if.h>
#include <linux/if_bridge.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <napi.h>

#include "../js_util.h"
#include "../modules.h"
#include "../worker.h"
#include "decode.h"
#include "encode.h"
#include "exec.h"
#include "rtnl.h"

namespace nm {
namespace rtnl {

namespace {

// ---- JS -> structs ----

// Namespace arguments. For rtnlExec every namespace is a native handle (kept alive in the baton,
// so its fd stays valid until the worker is done). For rtnlEncode a plain number stands for an
// fd, so encodings can be checked without any namespace.
struct NsCtx {
  bool encode_only = false;
  // A chain's ops (BuildTargetOps): the string TARGET stands for the namespace the chain opens.
  bool allow_target = false;

  bool IsTarget(const Napi::Value& v) const { return allow_target && v.IsString() && v.As<Napi::String>().Utf8Value() == kTargetNs; }

  NsTarget Target(const Napi::Value& v, std::shared_ptr<NsState>* state) const {
    if (v.IsUndefined() || v.IsNull()) return {};
    if (IsTarget(v)) return NsTarget{NsTarget::kFd, 0};  // the fd is filled in by BindTarget
    if (encode_only && v.IsNumber()) {
      int64_t n = v.As<Napi::Number>().Int64Value();
      if (n < 0 || n > INT32_MAX) ThrowType(v.Env(), "namespace fd out of range");
      return NsTarget{NsTarget::kFd, static_cast<uint32_t>(n)};
    }
    std::shared_ptr<NsState> s = NsArg(v);
    if (state) *state = s;
    // A closed handle has no fd (it must not stand for this process's namespace): the kernel
    // is given an fd that cannot be open, and refuses it (EBADF), as calls on the handle fail.
    if (s->closed()) return NsTarget{NsTarget::kFd, static_cast<uint32_t>(-1)};
    // The process's own namespace has no fd of ours: name it by our pid (the main thread never
    // leaves it).
    if (s->fd() < 0) return NsTarget{NsTarget::kPid, static_cast<uint32_t>(getpid())};
    return NsTarget{NsTarget::kFd, static_cast<uint32_t>(s->fd())};
  }
};

template <class O>
LinkRef GetLink(const O& o, const char* k) {
  Napi::Value v = o.Get(k);
  LinkRef r;
  if (v.IsNumber()) {
    int64_t n = v.As<Napi::Number>().Int64Value();
    if (n <= 0 || n > INT32_MAX) ThrowType(o.Env(), std::string(k) + ": ifindex out of range");
    r.index = static_cast<uint32_t>(n);
  } else if (v.IsString()) {
    r.name = v.As<Napi::String>().Utf8Value();
    if (r.name.empty() || r.name.size() >= IFNAMSIZ) ThrowType(o.Env(), std::string(k) + ": bad link name");
  } else {
    ThrowType(o.Env(), std::string(k) + " must be a link name or ifindex");
  }
  return r;
}

template <class O>
Opt<uint32_t> OptU32(const O& o, const char* k, uint32_t max = UINT32_MAX) {
  if (!Has(o, k)) return std::nullopt;
  return GetU32(o, k, max);
}
template <class O>
Opt<bool> OptBool(const O& o, const char* k) {
  if (!Has(o, k)) return std::nullopt;
  return o.Get(k).ToBoolean().Value();
}
template <class O>
Opt<std::string> OptStr(const O& o, const char* k) {
  if (!Has(o, k)) return std::nullopt;
  return GetStr(o, k);
}
template <class O>
Opt<Bytes> OptHw(const O& o, const char* k) {
  if (!Has(o, k)) return std::nullopt;
  Bytes b;
  if (!ParseHw(GetStr(o, k), &b)) ThrowType(o.Env(), std::string(k) + ": bad hardware address");
  return b;
}
template <class O>
IpAddr GetIp(const O& o, const char* k) {
  IpAddr ip;
  if (!ParseIp(GetStr(o, k), &ip)) ThrowType(o.Env(), std::string(k) + ": bad IP address");
  return ip;
}
template <class O>
Opt<IpAddr> OptIp(const O& o, const char* k) {
  if (!Has(o, k)) return std::nullopt;
  return GetIp(o, k);
}

// A u8 given as a number or as the name ScopeName/ProtocolName/RouteTypeName prints.
template <class O>
Opt<uint8_t> OptNamedU8(const O& o, const char* k, std::string (*name)(uint8_t)) {
  if (!Has(o, k)) return std::nullopt;
  Napi::Value v = o.Get(k);
  if (v.IsNumber()) return static_cast<uint8_t>(GetU32(o, k, 255));
  std::string s = GetStr(o, k);
  for (int i = 0; i < 256; i++)
    if (name(static_cast<uint8_t>(i)) == s) return static_cast<uint8_t>(i);
  ThrowType(o.Env(), std::string(k) + ": unknown name " + s);
}

LinkAddReq ParseLinkAdd(const Props& o, const NsCtx& ctx, BoundOp* b) {
  LinkAddReq r;
  r.name = GetStr(o, "name");
  r.kind = GetStr(o, "kind");
  r.mtu = OptU32(o, "mtu");
  r.mac = OptHw(o, "mac");
  r.up = GetBoolOr(o, "up", false);
  if (Has(o, "master")) r.master = GetLink(o, "master");
  r.alias = OptStr(o, "alias");
  r.group = OptU32(o, "group");
  r.txqlen = OptU32(o, "txqlen");
  r.queues = OptU32(o, "queues");
  r.no_ipv6 = GetBoolOr(o, "noIpv6", false);
  r.disable_ipv6 = GetBoolOr(o, "disableIpv6", false);
  if (ctx.IsTarget(o.Get("netns"))) ThrowType(o.Env(), "netns: a chain's namespace is only for ns and peer.ns");
  r.netns = ctx.Target(o.Get("netns"), &b->ns[int(Role::kLink)]);
  if (Has(o, "peer")) {
    Props p(GetObj(o, "peer"));
    VethPeer peer;
    peer.name = GetStr(p, "name");
    peer.ns = ctx.Target(p.Get("ns"), &b->ns[int(Role::kPeer)]);
    if (ctx.IsTarget(p.Get("ns"))) b->target_roles |= 1 << int(Role::kPeer);
    peer.mac = OptHw(p, "mac");
    peer.mtu = OptU32(p, "mtu");
    peer.queues = OptU32(p, "queues");
    peer.up = GetBoolOr(p, "up", false);
    r.peer = peer;
  }
  if (Has(o, "bridge")) {
    Props p(GetObj(o, "bridge"));
    BridgeOpts br;
    br.stp = OptBool(p, "stp");
    br.forward_delay = OptU32(p, "forwardDelay");
    br.vlan_filtering = OptBool(p, "vlanFiltering");
    br.ageing_time = OptU32(p, "ageingTime");
    r.bridge = br;
  }
  return r;
}

LinkSetReq ParseLinkSet(const Props& o, const NsCtx& ctx, BoundOp* b) {
  LinkSetReq r;
  r.link = GetLink(o, "link");
  r.up = OptBool(o, "up");
  r.mtu = OptU32(o, "mtu");
  if (o.Has("master") && !o.Get("master").IsUndefined()) {
    r.set_master = true;
    if (!o.Get("master").IsNull()) r.master = GetLink(o, "master");
  }
  r.name = OptStr(o, "name");
  r.mac = OptHw(o, "mac");
  r.alias = OptStr(o, "alias");
  r.netns = ctx.Target(o.Get("netns"), &b->ns[int(Role::kLink)]);
  r.group = OptU32(o, "group");
  if (ctx.IsTarget(o.Get("netns"))) ThrowType(o.Env(), "netns: a chain's namespace is only for ns and peer.ns");
  r.port.hairpin = OptBool(o, "hairpin");
  r.port.isolated = OptBool(o, "isolated");
  r.port.learning = OptBool(o, "learning");
  r.port.locked = OptBool(o, "locked");
  r.port.unicast_flood = OptBool(o, "unicastFlood");
  r.port.mcast_flood = OptBool(o, "mcastFlood");
  r.port.bcast_flood = OptBool(o, "bcastFlood");
  r.port.state = OptNamedU8(o, "portState", PortStateName);
  r.port.flush = GetBoolOr(o, "fdbFlush", false);
  if (r.port.state && *r.port.state > BR_STATE_BLOCKING) ThrowType(o.Env(), "portState out of range");
  return r;
}

AddrReq ParseAddr(const Props& o) {
  AddrReq r;
  r.link = GetLink(o, "link");
  r.address = GetIp(o, "address");
  r.prefix = static_cast<uint8_t>(GetU32(o, "prefix", r.address.family == AF_INET ? 32 : 128));
  r.broadcast = OptIp(o, "broadcast");
  r.scope = OptNamedU8(o, "scope", ScopeName);
  r.no_dad = GetBoolOr(o, "noDad", false);
  r.no_prefix_route = GetBoolOr(o, "noPrefixRoute", false);
  r.label = OptStr(o, "label");
  if (r.broadcast && r.broadcast->family != r.address.family) ThrowType(o.Env(), "broadcast: address family mismatch");
  return r;
}

RouteReq ParseRoute(const Props& o) {
  RouteReq r;
  r.gateway = OptIp(o, "gateway");
  r.src = OptIp(o, "src");
  if (Has(o, "dst")) {
    std::string d = GetStr(o, "dst");
    if (d != "default") {
      size_t slash = d.find('/');
      IpAddr ip;
      if (!ParseIp(d.substr(0, slash), &ip)) ThrowType(o.Env(), "dst: bad address");
      unsigned max = ip.family == AF_INET ? 32 : 128, len = max;
      if (slash != std::string::npos) {
        std::string p = d.substr(slash + 1);
        if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string::npos) ThrowType(o.Env(), "dst: bad prefix");
        len = static_cast<unsigned>(std::stoul(p));
        if (len > max) ThrowType(o.Env(), "dst: bad prefix");
      }
      r.dst = ip;
      r.dst_len = static_cast<uint8_t>(len);
    }
  }
  uint8_t fam = 0;
  if (Has(o, "family")) fam = GetU32(o, "family", 6) == 6 ? AF_INET6 : AF_INET;
  for (const Opt<IpAddr>* a : {&r.dst, &r.gateway, &r.src}) {
    if (!*a) continue;
    if (fam && (*a)->family != fam) ThrowType(o.Env(), "route: address family mismatch");
    fam = (*a)->family;
  }
  r.family = fam ? fam : AF_INET;
  if (Has(o, "link")) r.oif = GetLink(o, "link");
  r.table = OptU32(o, "table");
  r.metric = OptU32(o, "metric");
  r.scope = OptNamedU8(o, "scope", ScopeName);
  r.protocol = OptNamedU8(o, "protocol", ProtocolName);
  r.type = OptNamedU8(o, "type", RouteTypeName);
  r.onlink = GetBoolOr(o, "onlink", false);
  return r;
}

NeighReq ParseNeigh(const Props& o) {
  NeighReq r;
  r.link = GetLink(o, "link");
  r.address = GetIp(o, "address");
  r.lladdr = OptHw(o, "lladdr");
  r.permanent = GetBoolOr(o, "permanent", true);
  return r;
}

NeighReq ParseFdb(const Props& o) {
  NeighReq r;
  r.link = GetLink(o, "link");
  r.lladdr = OptHw(o, "lladdr");
  if (!r.lladdr) ThrowType(o.Env(), "an fdb entry needs lladdr");
  r.fdb = true;
  return r;
}

Op ParseOp(const Props& o, const NsCtx& ctx, BoundOp* b) {
  Op op;
  std::string name = GetStr(o, "op");
  if (!OpKindFromName(name, &op.kind)) ThrowType(o.Env(), "unknown op " + name);
  switch (op.kind) {
    case OpKind::kLinkAdd: op.link_add = ParseLinkAdd(o, ctx, b); break;
    case OpKind::kLinkSet: op.link_set = ParseLinkSet(o, ctx, b); break;
    case OpKind::kLinkDel:
    case OpKind::kLinkGet: op.link = GetLink(o, "link"); break;
    case OpKind::kLinkDelGroup: op.group = GetU32(o, "group"); break;
    case OpKind::kAddrAdd:
    case OpKind::kAddrDel: op.addr = ParseAddr(o); break;
    case OpKind::kRouteAdd:
    case OpKind::kRouteReplace:
    case OpKind::kRouteDel: op.route = ParseRoute(o); break;
    case OpKind::kNeighAdd:
    case OpKind::kNeighDel: op.neigh = ParseNeigh(o); break;
    case OpKind::kFdbAdd:
    case OpKind::kFdbDel: op.neigh = ParseFdb(o); break;
  }
  return op;
}

// Converts and encodes every op; ns roles default to the op's namespace.
std::vector<BoundOp> BuildOps(const Napi::Array& arr, const NsCtx& ctx) {
  std::vector<BoundOp> ops(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsObject()) ThrowType(arr.Env(), "ops[" + std::to_string(i) + "] must be an object");
    Props o(v.As<Napi::Object>());
    BoundOp& b = ops[i];
    if (ctx.IsTarget(o.Get("ns"))) b.target_roles |= 1 << int(Role::kOp);
    else if (!ctx.encode_only) b.ns[int(Role::kOp)] = NsArg(o.Get("ns"));
    try {
      Op op = ParseOp(o, ctx, &b);
      b.kind = op.kind;
      b.enc = EncodeOp(op);
      if (b.target_roles & (1 << int(Role::kPeer))) b.reencode = std::make_shared<Op>(std::move(op));
    } catch (const Napi::Error& e) {
      ThrowType(arr.Env(), "ops[" + std::to_string(i) + "]: " + e.Message());
    }
    for (int r = 1; r < kRoles; r++)
      if (!b.ns[r] && !(b.target_roles & (1 << r))) {
        b.ns[r] = b.ns[int(Role::kOp)];
        if (b.target_roles & 1) b.target_roles |= 1 << r;  // defaults to the op's: the target
      }
  }
  return ops;
}

// ---- structs -> JS ----

Napi::Array StrArray(Napi::Env env, const std::vector<std::string>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); i++) a.Set(static_cast<uint32_t>(i), v[i]);
  return a;
}

void SetIp(Napi::Object& o, const char* k, const Opt<IpAddr>& ip) {
  if (ip) o.Set(k, FormatIp(ip->family, ip->b, ip->len()));
}
void SetHw(Napi::Object& o, const char* k, const Opt<Bytes>& b) {
  if (b) o.Set(k, FormatHw(b->data(), b->size()));
}
template <class T>
void SetNum(Napi::Object& o, const char* k, const Opt<T>& v) {
  if (v) o.Set(k, Napi::Number::New(o.Env(), static_cast<double>(*v)));
}
void SetStr(Napi::Object& o, const char* k, const Opt<std::string>& v) {
  if (v) o.Set(k, *v);
}
void SetBool(Napi::Object& o, const char* k, const Opt<bool>& v) {
  if (v) o.Set(k, Napi::Boolean::New(o.Env(), *v));
}
int FamilyNum(uint8_t f) { return f == AF_INET ? 4 : f == AF_INET6 ? 6 : f; }

Napi::Object LinkToJs(Napi::Env env, const LinkMsg& m) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("index", m.index);
  SetStr(o, "name", m.name);
  SetStr(o, "kind", m.kind);
  o.Set("flags", StrArray(env, LinkFlagNames(m.flags)));
  o.Set("up", Napi::Boolean::New(env, (m.flags & IFF_UP) != 0));
  SetNum(o, "mtu", m.mtu);
  SetHw(o, "mac", m.mac);
  if (m.master && *m.master) SetNum(o, "master", m.master);
  SetStr(o, "alias", m.alias);
  if (m.operstate) o.Set("operstate", OperstateName(*m.operstate));
  SetNum(o, "group", m.group);
  SetNum(o, "link", m.link);
  SetNum(o, "linkNetnsid", m.link_netnsid);
  SetNum(o, "txqlen", m.txqlen);
  if (m.addr_gen_mode) o.Set("addrGenMode", AddrGenModeName(*m.addr_gen_mode));
  SetStr(o, "slaveKind", m.slave_kind);
  if (m.port) {
    SetBool(o, "hairpin", m.port->hairpin);
    SetBool(o, "isolated", m.port->isolated);
    SetBool(o, "learning", m.port->learning);
    SetBool(o, "locked", m.port->locked);
    SetBool(o, "unicastFlood", m.port->unicast_flood);
    SetBool(o, "mcastFlood", m.port->mcast_flood);
    SetBool(o, "bcastFlood", m.port->bcast_flood);
    if (m.port->state) o.Set("portState", PortStateName(*m.port->state));
  }
  if (m.bridge) {
    Napi::Object br = Napi::Object::New(env);
    SetBool(br, "stp", m.bridge->stp);
    SetNum(br, "forwardDelay", m.bridge->forward_delay);
    SetBool(br, "vlanFiltering", m.bridge->vlan_filtering);
    SetNum(br, "ageingTime", m.bridge->ageing_time);
    o.Set("bridge", br);
  }
  // Request-side fields, seen by rtnlDecode.
  if (m.change) o.Set("change", StrArray(env, LinkFlagNames(m.change)));
  SetNum(o, "netnsFd", m.net_ns_fd);
  SetNum(o, "netnsPid", m.net_ns_pid);
  if (!m.peer.empty()) o.Set("peer", LinkToJs(env, m.peer[0]));
  return o;
}

Napi::Object AddrToJs(Napi::Env env, const AddrMsg& m) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("index", m.index);
  o.Set("family", FamilyNum(m.family));
  // IFA_LOCAL is the interface's own address; IFA_ADDRESS differs only on point-to-point links.
  const Opt<IpAddr>& own = m.local ? m.local : m.address;
  SetIp(o, "address", own);
  if (m.local && m.address && !(*m.local == *m.address)) SetIp(o, "peer", m.address);
  o.Set("prefix", m.prefix);
  o.Set("scope", ScopeName(m.scope));
  o.Set("flags", StrArray(env, AddrFlagNames(m.flags)));
  SetStr(o, "label", m.label);
  SetIp(o, "broadcast", m.broadcast);
  return o;
}

Napi::Object RouteToJs(Napi::Env env, const RouteMsg& m) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("family", FamilyNum(m.family));
  if (m.dst)
    SetIp(o, "dst", m.dst);
  else if (m.dst_len == 0)
    o.Set("dst", "default");
  o.Set("prefix", m.dst_len);
  SetIp(o, "gateway", m.gateway);
  SetNum(o, "oif", m.oif);
  o.Set("table", m.table);
  SetNum(o, "metric", m.metric);
  o.Set("scope", ScopeName(m.scope));
  o.Set("protocol", ProtocolName(m.protocol));
  o.Set("type", RouteTypeName(m.type));
  o.Set("flags", StrArray(env, RouteFlagNames(m.flags)));
  SetIp(o, "src", m.prefsrc);
  return o;
}

Napi::Object NeighToJs(Napi::Env env, const NeighMsg& m) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("index", m.index);
  o.Set("family", FamilyNum(m.family));
  SetIp(o, "address", m.dst);
  SetHw(o, "lladdr", m.lladdr);
  o.Set("state", StrArray(env, NudStateNames(m.state)));
  return o;
}

Napi::Value OpResultToJs(Napi::Env env, const BoundOp& op, const OpResult& r) {
  if (op.kind == OpKind::kLinkGet && r.link) return LinkToJs(env, *r.link);
  if (op.kind == OpKind::kLinkAdd) {
    Napi::Object o = Napi::Object::New(env);
    if (r.link) {
      o.Set("index", r.link->index);
      if (!op.enc.prime_peer.empty()) SetNum(o, "peerIndex", r.link->link);
    }
    return o;
  }
  return env.Undefined();
}

std::string MsgTypeName(uint16_t t) {
  if (t == NLMSG_ERROR) return "NLMSG_ERROR";
  if (t == NLMSG_DONE) return "NLMSG_DONE";
  if (t == NLMSG_NOOP) return "NLMSG_NOOP";
  return NlOpName(NETLINK_ROUTE, t);
}

}  // namespace

// rtnlExec's results (see JsExec); stop-at-first-failure throws the failing op's error.
Napi::Value ResultsToJs(Napi::Env env, const std::vector<BoundOp>& ops, std::vector<OpResult>& res, bool pipelined, bool single) {
  Napi::Array out = Napi::Array::New(env, res.size());
  for (size_t i = 0; i < res.size(); i++) {
    const OpResult& r = res[i];
    if (!pipelined && r.failed) {
      // Stop-at-first-failure: reject with the failing op's error, carrying the results of
      // the ops before it.
      NlError e = r.err;
      if (single) e.index = -1;
      Napi::Object err = MakeJsError(env, e).As<Napi::Object>();
      Napi::Array partial = Napi::Array::New(env, i);
      for (uint32_t j = 0; j < i; j++) partial.Set(j, out.Get(j));
      err.Set("results", partial);
      throw Napi::Error(env, err);
    }
    if (!pipelined) {
      out.Set(static_cast<uint32_t>(i), OpResultToJs(env, ops[i], r));
      continue;
    }
    Napi::Object settled = Napi::Object::New(env);
    if (r.failed) {
      settled.Set("status", "rejected");
      settled.Set("reason", MakeJsError(env, r.err));
    } else {
      settled.Set("status", "fulfilled");
      settled.Set("value", OpResultToJs(env, ops[i], r));
    }
    out.Set(static_cast<uint32_t>(i), settled);
  }
  return out;
}

std::vector<BoundOp> BuildTargetOps(const Napi::Array& arr) {
  NsCtx ctx;
  ctx.allow_target = true;
  return BuildOps(arr, ctx);
}

void BindTarget(std::vector<BoundOp>& ops, const std::shared_ptr<NsState>& ns) {
  for (BoundOp& b : ops) {
    for (int r = 0; r < kRoles; r++)
      if (b.target_roles & (1 << r)) b.ns[r] = ns;
    if (b.reencode) {
      b.reencode->link_add.peer->ns = NsTarget{NsTarget::kFd, static_cast<uint32_t>(ns->fd())};
      b.enc = EncodeOp(*b.reencode);
    }
  }
}

namespace {

// ---- entry points ----

struct ExecBaton {
  std::vector<BoundOp> ops;
};

// rtnlExec(ops, { pipelined?, single? }) -> Promise<results>
Napi::Value JsExec(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) ThrowType(env, "rtnlExec(ops: object[], opts?)");
  bool pipelined = false, single = false;
  if (info[1].IsObject()) {
    Napi::Object opts = info[1].As<Napi::Object>();
    pipelined = GetBoolOr(opts, "pipelined", false);
    single = GetBoolOr(opts, "single", false);
  }
  auto baton = std::make_shared<ExecBaton>();
  Napi::Array arr = info[0].As<Napi::Array>();
  baton->ops = BuildOps(arr, NsCtx{});
  return PromiseWorker<std::vector<OpResult>>::Run(
      env, [baton, pipelined] { return RunOps(baton->ops, pipelined); },
      [baton, pipelined, single](Napi::Env env, std::vector<OpResult>& res) -> Napi::Value {
        return ResultsToJs(env, baton->ops, res, pipelined, single);
      });
}

// rtnlEncode(ops, seq = 1) -> Buffer with every message every op would send, numbered from seq.
Napi::Value JsEncode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) ThrowType(env, "rtnlEncode(ops: object[], seq?)");
  uint32_t seq = 1;
  if (info[1].IsNumber()) seq = info[1].As<Napi::Number>().Uint32Value();
  NsCtx ctx;
  ctx.encode_only = true;
  std::vector<BoundOp> ops = BuildOps(info[0].As<Napi::Array>(), ctx);
  Bytes out;
  for (size_t i = 0; i < ops.size(); i++) {
    for (Msg& m : ops[i].enc.msgs) {
      if (!m.patches.empty())
        ThrowType(env, "ops[" + std::to_string(i) + "]: link " + m.patches[0].name +
                           " needs a lookup; rtnlEncode takes ifindexes for it");
      reinterpret_cast<nlmsghdr*>(m.bytes.data())->nlmsg_seq = seq++;
      out.insert(out.end(), m.bytes.begin(), m.bytes.end());
    }
  }
  return ToBuf(env, out);
}

// rtnlDecode(buf) -> [{ type, flags, seq, link | addr | route | neigh | error }]
Napi::Value JsDecode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsBuffer()) ThrowType(env, "rtnlDecode(buf: Buffer)");
  auto buf = info[0].As<Napi::Buffer<uint8_t>>();
  std::vector<AnyMsg> msgs = DecodeAll(buf.Data(), buf.Length());
  Napi::Array out = Napi::Array::New(env, msgs.size());
  for (size_t i = 0; i < msgs.size(); i++) {
    const AnyMsg& m = msgs[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("type", MsgTypeName(m.type));
    o.Set("flags", m.flags);
    o.Set("seq", m.seq);
    switch (m.body) {
      case AnyMsg::kLink: o.Set("link", LinkToJs(env, m.link)); break;
      case AnyMsg::kAddr: o.Set("addr", AddrToJs(env, m.addr)); break;
      case AnyMsg::kRoute: o.Set("route", RouteToJs(env, m.route)); break;
      case AnyMsg::kNeigh: o.Set("neigh", NeighToJs(env, m.neigh)); break;
      case AnyMsg::kError: o.Set("error", m.error); break;
      case AnyMsg::kNone: break;
    }
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

// rtnlDump(ns, kind, filter?) -> Promise<object[]>
Napi::Value JsDump(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<NsState> ns = NsArg(info[0]);
  if (!info[1].IsString()) ThrowType(env, "rtnlDump(ns, kind: 'link'|'addr'|'route'|'neigh', filter?)");
  std::string k = info[1].As<Napi::String>().Utf8Value();
  DumpKind kind;
  if (k == "link") kind = DumpKind::kLink;
  else if (k == "addr") kind = DumpKind::kAddr;
  else if (k == "route") kind = DumpKind::kRoute;
  else if (k == "neigh") kind = DumpKind::kNeigh;
  else ThrowType(env, "rtnlDump: unknown kind " + k);
  DumpFilter f;
  if (info[2].IsObject()) {
    Napi::Object o = info[2].As<Napi::Object>();
    if (Has(o, "family")) f.family = GetU32(o, "family", 6) == 6 ? AF_INET6 : AF_INET;
    f.index = OptU32(o, "index").value_or(0);
    f.master = OptU32(o, "master").value_or(0);
    f.kind = GetStrOr(o, "kind", "");
    f.table = OptU32(o, "table").value_or(0);
    f.protocol = OptNamedU8(o, "protocol", ProtocolName).value_or(0);
    f.type = OptNamedU8(o, "type", RouteTypeName).value_or(0);
  }
  return PromiseWorker<DumpResult>::Run(
      env, [ns, kind, f] { return RunDump(ns, kind, f); },
      [kind](Napi::Env env, DumpResult& r) -> Napi::Value {
        auto conv = [&](const auto& v, auto fn) {
          Napi::Array a = Napi::Array::New(env, v.size());
          for (size_t i = 0; i < v.size(); i++) a.Set(static_cast<uint32_t>(i), fn(env, v[i]));
          // How often the kernel flagged the dump as interrupted and it was started over.
          a.DefineProperty(Napi::PropertyDescriptor::Value("restarts", Napi::Number::New(env, r.restarts), napi_default));
          return a;
        };
        switch (kind) {
          case DumpKind::kLink: return conv(r.links, LinkToJs);
          case DumpKind::kAddr: return conv(r.addrs, AddrToJs);
          case DumpKind::kRoute: return conv(r.routes, RouteToJs);
          case DumpKind::kNeigh: return conv(r.neighs, NeighToJs);
        }
        return env.Undefined();
      });
}

}  // namespace
}  // namespace rtnl

void InitRtnl(Napi::Env env, Napi::Object exports) {
  exports.Set("rtnlExec", Napi::Function::New(env, rtnl::JsExec));
  exports.Set("rtnlDump", Napi::Function::New(env, rtnl::JsDump));
  exports.Set("rtnlEncode", Napi::Function::New(env, rtnl::JsEncode));
  exports.Set("rtnlDecode", Napi::Function::New(env, rtnl::JsDecode));
}

}  // namespace nm
