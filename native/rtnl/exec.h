// Runs encoded rtnetlink operations on pooled namespace sockets. Called on a libuv pool thread:
// socket I/O only (plus filling in ifindexes looked up by name).
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "../netns.h"
#include "encode.h"

namespace nm {
namespace rtnl {

struct BoundOp {
  OpKind kind = OpKind::kLinkGet;
  Encoded enc;
  std::shared_ptr<NsState> ns[kRoles];  // indexed by Role
  // Built for a chain (native/chain.cc) whose namespace is opened on the worker: the roles that
  // are that namespace (bit per Role), and, when a message names it by fd (a veth peer's
  // IFLA_NET_NS_FD), the op itself, encoded again once the fd is known (BindTarget).
  uint8_t target_roles = 0;
  std::shared_ptr<Op> reencode;
};

struct OpResult {
  bool attempted = false;
  bool failed = false;
  NlError err;
  Opt<LinkMsg> link;  // linkGet's reply, or linkAdd's NLM_F_ECHO
};

// Runs ops in order.
//  - pipelined == false: every message is sent and acknowledged before the next; the run stops
//    at the first failing op (later ops are left unattempted).
//  - pipelined == true: the messages of consecutive ops for the same namespace go out in one
//    sendmsg(). rtnetlink handles each message of a datagram on its own and carries on after a
//    failure, so every op is attempted and each gets its own result. Ordering still holds: a
//    group is flushed (and acknowledged) before a message for another namespace, before a
//    follow-up that needs its op's earlier messages to have succeeded, and before a name lookup.
// Names are resolved with RTM_GETLINK on the op's namespace socket and cached for the run; the
// cache is primed from linkAdd's echo and dropped by ops that delete, rename or move links.
// `before(i)`, when given, is called before op i is sent (everything before it flushed and
// acknowledged), and once more with i == ops.size() after the last; false stops the run there
// (op i and the rest are left unattempted). It may append ops to `ops` (a chain fed its rest
// while it runs, native/chain.cc): they run next, with the names the run has learned.
using BeforeOp = std::function<bool(size_t)>;
std::vector<OpResult> RunOps(std::vector<BoundOp>& ops, bool pipelined, const BeforeOp& before = nullptr);

struct DumpResult {
  int restarts = 0;  // dumps started over after NLM_F_DUMP_INTR
  std::vector<LinkMsg> links;
  std::vector<AddrMsg> addrs;
  std::vector<RouteMsg> routes;
  std::vector<NeighMsg> neighs;
};

// One dump on a pooled socket of `ns`, restarted from scratch if the kernel flags it as
// interrupted (NLM_F_DUMP_INTR). Addresses, routes and neighbours of other families than IPv4
// and IPv6 (bridge fdb, ipmr, mpls) are left out. Throws NlError.
DumpResult RunDump(const std::shared_ptr<NsState>& ns, DumpKind kind, const DumpFilter& f);

}  // namespace rtnl
}  // namespace nm
