// The rtnetlink module's pieces other modules build on (native/chain.cc): ops whose namespace is
// opened later, on the worker, and the conversion of results to JS. N-API glue, main thread only
// (BindTarget excepted: plain structs, any thread).
#pragma once
#include <napi.h>

#include <memory>
#include <vector>

#include "exec.h"

namespace nm {
namespace rtnl {

// In a chain's ops, `ns` (or a veth's `peer.ns`) given as this string stands for the namespace
// the chain opens.
constexpr const char* kTargetNs = "$target";

// rtnlExec's conversion of ops (BuildOps), with kTargetNs allowed.
std::vector<BoundOp> BuildTargetOps(const Napi::Array& arr);
// Makes the ops' kTargetNs roles `ns` and encodes again the messages that carry its fd.
void BindTarget(std::vector<BoundOp>& ops, const std::shared_ptr<NsState>& ns);
// rtnlExec's results: an array, or (not pipelined) the first failure thrown as its NetlinkError
// with `results` (those before it) and `index`.
Napi::Value ResultsToJs(Napi::Env env, const std::vector<BoundOp>& ops, std::vector<OpResult>& res, bool pipelined, bool single);

}  // namespace rtnl
}  // namespace nm
