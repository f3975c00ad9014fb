#include "exec.h"

#include <errno.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cstring>
#include <map>
#include <string>
#include <unordered_map>

#include "../nl/attr.h"
#include "decode.h"

namespace nm {
namespace rtnl {

namespace {

// Messages per sendmsg in pipelined mode. Every reply (an ack, or an echoed RTM_NEWLINK of
// about 1.5 KB) is charged to the receive buffer at its skb's true size, which is larger: 256
// stays far below the 4 MB the socket asks for, so replies are never dropped (ENOBUFS), while
// one more sendmsg per 256 messages costs next to nothing.
constexpr size_t kMaxGroup = 256;

uint16_t MsgType(const Bytes& b) {
  nlmsghdr h;
  std::memcpy(&h, b.data(), sizeof h);
  return h.nlmsg_type;
}

NlError MakeError(int err, uint16_t type, const std::string& extack = "", const std::string& message = "") {
  NlError e;
  e.err = err;
  e.op = NlOpName(NETLINK_ROUTE, type);
  e.extack = extack;
  e.message = message;
  return e;
}

class Runner {
 public:
  Runner(std::vector<BoundOp>& ops, bool pipelined) : ops_(ops), pipelined_(pipelined), results_(ops.size()) {}

  std::vector<OpResult> Run(const BeforeOp& before) {
    for (size_t i = 0;; i++) {
      if (before) {
        Flush();
        if (!before(i)) break;  // (called at the end too: it may append ops)
      }
      if (i >= ops_.size()) break;
      if (results_.size() < ops_.size()) results_.resize(ops_.size());
      RunOp(i);
      if (!pipelined_ && results_[i].failed) break;
    }
    Flush();
    results_.resize(ops_.size());  // (ops appended by `before` and left unattempted)
    return std::move(results_);
  }

 private:
  struct Pending {
    size_t op, msg;
  };

  void RunOp(size_t i) {
    BoundOp& op = ops_[i];
    results_[i].attempted = true;
    // A closed handle's fd stays open until the baton lets go of it, but the caller gave it up:
    // refuse, as a new socket in it would be refused.
    for (const auto& ns : op.ns) {
      if (ns && ns->closed()) {
        NlError e;
        e.err = EBADF;
        e.op = "netns";
        e.message = "namespace handle is closed";
        Fail(i, e);
        return;
      }
    }
    // Invalidate at queue time, so a later lookup of an affected name misses the cache and
    // flushes the pending group first.
    if (op.enc.invalidate_all) cache_.clear();
    if (!op.enc.prime_name.empty()) Cache(op.ns[int(Role::kLink)]).erase(op.enc.prime_name);
    if (!op.enc.prime_peer.empty()) Cache(op.ns[int(Role::kPeer)]).erase(op.enc.prime_peer);
    for (size_t j = 0; j < op.enc.msgs.size(); j++) {
      Msg& m = op.enc.msgs[j];
      const std::shared_ptr<NsState>& ns = op.ns[int(m.role)];
      bool same_op_pending = !pending_.empty() && pending_.back().op == i;
      if (!pending_.empty() && (pending_ns_ != ns || (m.barrier && same_op_pending))) Flush();
      if (results_[i].failed) return;
      try {
        for (const Patch& p : m.patches) {
          uint32_t idx = Lookup(op.ns[int(p.role)], p.name);
          std::memcpy(m.bytes.data() + p.offset, &idx, sizeof idx);
        }
      } catch (const NlError& e) {
        Fail(i, e);
        return;
      }
      if (results_[i].failed) return;  // a lookup flushed the group and this op had failed
      if (!pending_.empty() && (pending_ns_ != ns || pending_.size() >= kMaxGroup)) Flush();
      pending_ns_ = ns;
      pending_.push_back(Pending{i, j});
      buf_.insert(buf_.end(), m.bytes.begin(), m.bytes.end());
      if (!pipelined_) Flush();
      if (results_[i].failed) return;
      if (j == 0 && !op.enc.after_create_sysctl.empty()) {
        // The create must be acknowledged first: the sysctl names the new link.
        Flush();
        if (results_[i].failed) return;
        try {
          SysctlSet(*op.ns[int(Role::kLink)], op.enc.after_create_sysctl, "1");
        } catch (const NlError& e) {
          if (e.err != ENOENT) {
            Fail(i, e);
            return;
          }
        }
      }
    }
  }

  void Fail(size_t i, NlError e) {
    OpResult& r = results_[i];
    if (r.failed) return;
    r.failed = true;
    e.index = static_cast<int>(i);
    r.err = std::move(e);
  }

  std::unordered_map<std::string, uint32_t>& Cache(const std::shared_ptr<NsState>& ns) { return cache_[ns.get()]; }

  NlSocket& Sock(const std::shared_ptr<NsState>& ns) {
    auto it = leases_.find(ns.get());
    if (it == leases_.end()) it = leases_.emplace(ns.get(), ns->Acquire(NETLINK_ROUTE)).first;
    return *it->second;
  }

  // After a transport error the socket may still hold replies meant for this run: drop it.
  void DropSocket(const std::shared_ptr<NsState>& ns) {
    auto it = leases_.find(ns.get());
    if (it == leases_.end()) return;
    it->second.Discard();
    leases_.erase(it);
  }

  void Flush() {
    if (pending_.empty()) return;
    std::vector<Pending> pend;
    pend.swap(pending_);
    Bytes buf;
    buf.swap(buf_);
    std::shared_ptr<NsState> ns = std::move(pending_ns_);
    pending_ns_.reset();

    auto type_of = [&](const Pending& p) { return MsgType(ops_[p.op].enc.msgs[p.msg].bytes); };
    NlSocket* s;
    try {
      s = &Sock(ns);
    } catch (const NlError& e) {
      for (const Pending& p : pend) Fail(p.op, e);
      return;
    }
    const uint32_t n = static_cast<uint32_t>(pend.size());
    const uint32_t first = s->ReserveSeq(n);
    for (size_t off = 0, k = 0; k < n; k++) {
      auto* h = reinterpret_cast<nlmsghdr*>(buf.data() + off);
      h->nlmsg_seq = first + static_cast<uint32_t>(k);
      off += NlAlign(h->nlmsg_len);
    }
    std::vector<NlAck> acks;
    try {
      s->Transact(buf, first, n, &acks, [&](const nlmsghdr* h) { OnReply(pend[h->nlmsg_seq - first], h); });
    } catch (NlError& e) {
      DropSocket(ns);
      for (const Pending& p : pend) {
        NlError pe = e;
        if (pe.op == "sendmsg" || pe.op == "recvmsg") pe.message = pe.op + (pe.message.empty() ? "" : ": " + pe.message);
        pe.op = NlOpName(NETLINK_ROUTE, type_of(p));
        Fail(p.op, pe);
      }
      return;
    }
    for (uint32_t k = 0; k < n; k++) {
      if (acks[k].err)
        Fail(pend[k].op, MakeError(acks[k].err, type_of(pend[k]), acks[k].extack));
      else if (!acks[k].answered)
        Fail(pend[k].op, MakeError(EPROTO, type_of(pend[k]), "", "no acknowledgement from the kernel"));
    }
  }

  void OnReply(const Pending& p, const nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWLINK) return;
    LinkMsg link;
    if (!DecodeLink(h, &link)) return;
    BoundOp& op = ops_[p.op];
    if (p.msg == 0 && !op.enc.prime_name.empty() && link.index > 0) {
      Cache(op.ns[int(Role::kLink)])[op.enc.prime_name] = static_cast<uint32_t>(link.index);
      if (!op.enc.prime_peer.empty() && link.link && *link.link > 0)
        Cache(op.ns[int(Role::kPeer)])[op.enc.prime_peer] = *link.link;
    }
    results_[p.op].link = std::move(link);
  }

  // ifindex of `name` in `ns`: from the cache, else (after sending what is pending, which may
  // create it) from an RTM_GETLINK. Throws NlError (ENODEV when there is no such link).
  uint32_t Lookup(const std::shared_ptr<NsState>& ns, const std::string& name) {
    for (int attempt = 0; attempt < 2; attempt++) {
      auto& c = Cache(ns);
      auto it = c.find(name);
      if (it != c.end()) return it->second;
      if (attempt == 0) Flush();
    }
    NlBuilder b;
    size_t off = b.BeginMsg(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK, 0);
    b.PutStruct(ifinfomsg{});
    b.PutStr(IFLA_IFNAME, name);
    b.PutU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    b.EndMsg(off);
    NlSocket& s = Sock(ns);
    uint32_t seq = s.ReserveSeq(1);
    b.Hdr(off)->nlmsg_seq = seq;
    std::vector<NlAck> acks;
    int32_t index = 0;
    try {
      s.Transact(b.Bytes(), seq, 1, &acks, [&](const nlmsghdr* h) {
        ifinfomsg m;
        if (h->nlmsg_type == RTM_NEWLINK && h->nlmsg_len >= NLMSG_LENGTH(sizeof m)) {
          std::memcpy(&m, NLMSG_DATA(h), sizeof m);
          index = m.ifi_index;
        }
      });
    } catch (...) {
      DropSocket(ns);
      throw;
    }
    if (acks[0].err) throw MakeError(acks[0].err, RTM_GETLINK, acks[0].extack, "looking up link " + name);
    if (index <= 0) throw MakeError(ENODEV, RTM_GETLINK, "", "looking up link " + name);
    Cache(ns)[name] = static_cast<uint32_t>(index);
    return static_cast<uint32_t>(index);
  }

  std::vector<BoundOp>& ops_;
  const bool pipelined_;
  std::vector<OpResult> results_;
  std::map<NsState*, NsState::Lease> leases_;
  std::map<NsState*, std::unordered_map<std::string, uint32_t>> cache_;
  std::shared_ptr<NsState> pending_ns_;
  std::vector<Pending> pending_;
  Bytes buf_;
};

bool IpFamily(uint8_t f) { return f == AF_INET || f == AF_INET6; }

}  // namespace

std::vector<OpResult> RunOps(std::vector<BoundOp>& ops, bool pipelined, const BeforeOp& before) {
  return Runner(ops, pipelined).Run(before);
}

DumpResult RunDump(const std::shared_ptr<NsState>& ns, DumpKind kind, const DumpFilter& f) {
  static const uint16_t kReplyType[] = {RTM_NEWLINK, RTM_NEWADDR, RTM_NEWROUTE, RTM_NEWNEIGH};
  static const char* const kOp[] = {"RTM_GETLINK", "RTM_GETADDR", "RTM_GETROUTE", "RTM_GETNEIGH"};
  const uint16_t want = kReplyType[int(kind)];
  DumpResult r;
  NsState::Lease lease = ns->Acquire(NETLINK_ROUTE);
  try {
    lease->Dump(
        EncodeDump(kind, f),
        [&](const nlmsghdr* h) {
          if (h->nlmsg_type != want) return;
          switch (kind) {
            case DumpKind::kLink: {
              LinkMsg m;
              if (DecodeLink(h, &m)) r.links.push_back(std::move(m));
              break;
            }
            case DumpKind::kAddr: {
              AddrMsg m;
              if (DecodeAddr(h, &m) && IpFamily(m.family)) r.addrs.push_back(std::move(m));
              break;
            }
            case DumpKind::kRoute: {
              RouteMsg m;
              if (DecodeRoute(h, &m) && IpFamily(m.family)) r.routes.push_back(std::move(m));
              break;
            }
            case DumpKind::kNeigh: {
              NeighMsg m;
              if (DecodeNeigh(h, &m) && IpFamily(m.family)) r.neighs.push_back(std::move(m));
              break;
            }
          }
        },
        [&] {
          int restarts = r.restarts + 1;
          r = DumpResult{};
          r.restarts = restarts;
        },
        kOp[int(kind)]);
  } catch (...) {
    // A kernel error ends the dump cleanly, but a transport error may leave replies queued;
    // errors are rare, so do not tell them apart: never reuse the socket after one.
    lease.Discard();
    throw;
  }
  return r;
}

}  // namespace rtnl
}  // namespace nm
