// A step of seq(): one protocol module's requests, run with the other steps in one worker call.
// Each module makes its own steps from a JS spec (fs.cc, nft/nft.cc, rtnl/rtnl.cc); seq.cc runs
// them in order on a pool thread and stops at the first step that did not succeed. No policy:
// what counts as success is the module's plain rule (no error; for an fs step marked `claims`,
// every claim made).
#pragma once
#include <napi.h>

#include <memory>

namespace nm {

class Stage {
 public:
  virtual ~Stage() = default;
  // On the worker. Never throws; true when the steps after it may run.
  virtual bool Run() = 0;
  // On the main thread, after Run(): the step's outcome as a settled result,
  // { status: 'fulfilled', value } or { status: 'rejected', reason }.
  virtual Napi::Value ToJs(Napi::Env env) = 0;
};

// spec: { kind: 'fs', ops, claims? }
std::unique_ptr<Stage> MakeFsStage(Napi::Env env, const Napi::Object& spec);
// spec: { kind: 'nft', ns, msgs, opts? }
std::unique_ptr<Stage> MakeNftStage(Napi::Env env, const Napi::Object& spec);
// spec: { kind: 'rtnl', ops, pipelined? }
std::unique_ptr<Stage> MakeRtnlStage(Napi::Env env, const Napi::Object& spec);

// Helpers for ToJs().
inline Napi::Value Fulfilled(Napi::Env env, Napi::Value v) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("status", "fulfilled");
  o.Set("value", v);
  return o;
}
inline Napi::Value Rejected(Napi::Env env, Napi::Value reason) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("status", "rejected");
  o.Set("reason", reason);
  return o;
}

}  // namespace nm
