// seq(steps) -> Promise<outcome[]>: steps of different protocols (state-store file operations, an
// nf_tables transaction, rtnetlink requests) in order, in one trip to the thread pool, stopping
// after the first step that does not succeed. One outcome per step: { status: 'fulfilled', value }
// or { status: 'rejected', reason } as the step's own call would have resolved or rejected, or
// { status: 'skipped' } for the steps after a failure. The trips saved are the point: each costs
// a pool thread's and the event loop's wake-up.
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "js_util.h"
#include "modules.h"
#include "stage.h"
#include "worker.h"

namespace nm {
namespace {

struct SeqResult {
  size_t ran = 0;  // steps that ran (the last one may have failed)
};

Napi::Value JsSeq(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) ThrowType(env, "seq(steps: object[])");
  Napi::Array arr = info[0].As<Napi::Array>();
  auto stages = std::make_shared<std::vector<std::unique_ptr<Stage>>>();
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsObject()) ThrowType(env, "seq: steps[" + std::to_string(i) + "] must be an object");
    Napi::Object spec = v.As<Napi::Object>();
    std::string kind = GetStr(spec, "kind");
    try {
      if (kind == "fs") stages->push_back(MakeFsStage(env, spec));
      else if (kind == "nft") stages->push_back(MakeNftStage(env, spec));
      else if (kind == "rtnl") stages->push_back(MakeRtnlStage(env, spec));
      else ThrowType(env, "unknown kind " + kind);
    } catch (const Napi::Error& e) {
      ThrowType(env, "seq: steps[" + std::to_string(i) + "]: " + e.Message());
    }
  }
  return PromiseWorker<SeqResult>::Run(
      env,
      [stages] {
        SeqResult r;
        for (auto& s : *stages) {
          r.ran++;
          if (!s->Run()) break;
        }
        return r;
      },
      [stages](Napi::Env env, SeqResult& r) -> Napi::Value {
        Napi::Array out = Napi::Array::New(env, stages->size());
        for (size_t i = 0; i < stages->size(); i++) {
          if (i < r.ran) {
            out.Set(static_cast<uint32_t>(i), (*stages)[i]->ToJs(env));
          } else {
            Napi::Object o = Napi::Object::New(env);
            o.Set("status", "skipped");
            out.Set(static_cast<uint32_t>(i), o);
          }
        }
        return out;
      });
}

}  // namespace

void InitSeq(Napi::Env env, Napi::Object exports) { exports.Set("seq", Napi::Function::New(env, JsSeq)); }

}  // namespace nm
