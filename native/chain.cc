// chainRun(spec) -> Promise<outcome>: several modules' work in ONE worker call, in order, each step
// only when the steps before it went as the caller said they would. A bridge connect's claims in
// the state store, its nf_tables transaction and its rtnetlink requests (or a disconnect's) then
// cost one trip to the thread pool and one completion on the main thread instead of five.
// No policy: which files, messages and requests, and what to do when a step did not go as
// expected, are the caller's (lib/modes/bridge-chain.ts).
//
//   spec = {
//     ns?:     path            opened first; rtnl ops name it "$target" (ns, peer.ns)
//     fs?:     FsOp[]          fsBatch's ops (native/fs/fs.cc), e.g. a lock and claims
//     expect?: (null | string | string[])[]   per fs op: a read's exact content, or the only
//                              names a list may hold (others, or none given: anything)
//     nft?:    { ns, msgs } | [{ ns, msgs }, ...]   nf_tables transactions (nftTransact's), one
//                              per namespace, in order; the first that fails ends the step (those
//                              before it stay committed: the caller's to undo)
//     rtnl?:   { ops, pipelined?, early?, quiet? }  rtnlExec's; `quiet`: when every op succeeded, an
//                              array of as many holes instead of the results (no conversion); `early` (with a lock as the first fs op):
//                              ops before that index start once the lock is held, beside the
//                              rest of the fs step and nf_tables (on a second thread), and the
//                              ones from it on wait for both and run only if both went well
//     after?:  FsOp[]          fsBatch's ops once everything above succeeded
//   }
//   outcome = {
//     ns?: NetlinkError                       the namespace could not be opened (nothing else ran)
//     fs: results (as fsBatch's; fewer when a lock was busy), fsError?: NetlinkError
//     go: boolean             every fs op ran, every reserve got true, every expectation held
//     nft?: null | error      undefined when not run; the first transaction's error
//     rtnl?: results | error  (as rtnlExec's; undefined when not run)
//     rtnlGated?: true        the early ops ran but the rest did not (fs or nft did not go well):
//                              what the early ones made is the caller's to undo
//     after?: results | error
//     us: [ns, fs, nft, rtnl, after]   microseconds spent in each step (for the benchmarks)
//   }
// The lock fds among the fs results are the caller's to close (unlock), whatever else happened.
#include <linux/netlink.h>
#include <time.h>

#include <napi.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "fs/fs.h"
#include "js_util.h"
#include "modules.h"
#include "netns.h"
#include "nft/glue.h"
#include "rtnl/rtnl.h"
#include "worker.h"

namespace nm {
namespace {

using Expect = std::optional<std::variant<std::string, std::vector<std::string>>>;

struct Spec {
  std::string ns_path;
  std::vector<fsb::Op> fs;
  std::vector<Expect> expect;
  struct NftTx {
    std::shared_ptr<NsState> ns;
    nft::Value msgs;
  };
  std::vector<NftTx> nft;
  std::vector<rtnl::BoundOp> rtnl;
  bool has_rtnl = false, pipelined = false;
  size_t early = 0;  // see the header comment (0: everything in order)
  bool quiet = false;  // rtnl.quiet: on success, results not converted (an array of holes)
  std::vector<fsb::Op> after;
};

struct Out {
  bool ns_failed = false;
  NlError ns_err;
  fsb::Outcome fs;
  bool go = false;
  bool nft_ran = false, nft_failed = false;
  NlError nft_err;
  std::string nft_encode_error;
  bool rtnl_ran = false, rtnl_gated = false;
  std::vector<rtnl::OpResult> rtnl;
  bool after_ran = false;
  fsb::Outcome after;
  double us[5] = {0, 0, 0, 0, 0};  // time spent in each step: ns, fs, nft, rtnl, after
};

double NowUs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

// Whether the fs step went as the caller expected (see the header comment).
bool AsExpected(const Spec& s, const fsb::Outcome& o) {
  if (o.failed || o.results.size() != s.fs.size()) return false;
  for (size_t i = 0; i < s.fs.size(); i++) {
    const fsb::Result& r = o.results[i];
    if (s.fs[i].kind == fsb::Kind::Reserve && !(std::holds_alternative<bool>(r) && std::get<bool>(r))) return false;
    if (i >= s.expect.size() || !s.expect[i]) continue;
    const auto& want = *s.expect[i];
    if (std::holds_alternative<std::string>(want)) {
      if (!std::holds_alternative<std::string>(r) || std::get<std::string>(r) != std::get<std::string>(want)) return false;
    } else if (std::holds_alternative<std::vector<std::string>>(r)) {
      const auto& ok = std::get<std::vector<std::string>>(want);
      for (const std::string& n : std::get<std::vector<std::string>>(r))
        if (std::find(ok.begin(), ok.end(), n) == ok.end()) return false;
    } else {
      return false;
    }
  }
  return true;
}

bool RtnlOk(const Spec& s, const std::vector<rtnl::OpResult>& res) {
  if (res.size() != s.rtnl.size()) return false;
  for (const rtnl::OpResult& r : res)
    if (r.failed || !r.attempted) return false;
  return true;
}

// One long-lived thread for the part of a chain that runs beside its rtnetlink ops (the store's
// claims, nf_tables): short jobs, in order, never waiting on anything but the kernel.
class SideThread {
 public:
  static SideThread& Get() {
    static SideThread* t = new SideThread();  // lives as long as the process
    return *t;
  }
  struct Done {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    void Wait() {
      std::unique_lock<std::mutex> g(mu);
      cv.wait(g, [&] { return done; });
    }
    void Set() {
      {
        std::lock_guard<std::mutex> g(mu);
        done = true;
      }
      cv.notify_one();
    }
  };
  // Runs fn (which must not throw) on the thread, then sets `done`.
  void Post(std::function<void()> fn, const std::shared_ptr<Done>& done) {
    {
      std::lock_guard<std::mutex> g(mu_);
      queue_.emplace_back(std::move(fn), done);
      if (!running_) {
        running_ = true;
        std::thread(&SideThread::Loop, this).detach();
      }
    }
    cv_.notify_one();
  }

 private:
  void Loop() {
    for (;;) {
      std::pair<std::function<void()>, std::shared_ptr<Done>> j;
      {
        std::unique_lock<std::mutex> g(mu_);
        cv_.wait(g, [&] { return !queue_.empty(); });
        j = std::move(queue_.front());
        queue_.pop_front();
      }
      j.first();
      j.second->Set();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::function<void()>, std::shared_ptr<Done>>> queue_;
  bool running_ = false;
};

// Whether an op sends a message on the chain's namespace's own socket.
bool UsesTarget(const rtnl::BoundOp& b) {
  for (const auto& m : b.enc.msgs)
    if ((b.target_roles >> int(m.role)) & 1) return true;
  return false;
}

// The nf_tables step (both ways of running a chain).
void RunNft(Spec& s, Out& o) {
  if (s.nft.empty()) return;
  o.nft_ran = true;
  for (auto& tx : s.nft) {
    try {
      nft::Value ignored;
      o.nft_encode_error = nft::EncodeAndTransact(*tx.ns, tx.msgs, nft::BatchOptions{}, &ignored);
    } catch (const NlError& e) {
      o.nft_failed = true;
      o.nft_err = e;
    } catch (const std::exception& e) {
      o.nft_encode_error = e.what();
    }
    if (o.nft_failed || !o.nft_encode_error.empty()) return;
  }
}

bool NftOk(const Out& o) { return !o.nft_failed && o.nft_encode_error.empty(); }

// Side by side (rtnl.early): the lock; then on the side thread the rest of the fs step and
// nf_tables, while this one sends the early rtnetlink ops; the rest of them only once both
// went well.
void RunSideBySide(Spec& s, const std::shared_ptr<NsState>& target, Out& o, double t0) {
  o.fs = fsb::RunAll(std::vector<fsb::Op>(s.fs.begin(), s.fs.begin() + 1));
  if (o.fs.failed || o.fs.results.size() != 1 || !std::holds_alternative<int>(o.fs.results[0])) {
    o.us[1] = NowUs() - t0;
    return;  // the lock was busy (or failed): nothing else ran
  }
  auto done = std::make_shared<SideThread::Done>();
  SideThread::Get().Post(
      [&s, &o, t0] {
        fsb::Outcome rest = fsb::RunAll(std::vector<fsb::Op>(s.fs.begin() + 1, s.fs.end()));
        if (rest.failed) {
          o.fs.failed = true;
          o.fs.err = rest.err;
          if (o.fs.err.index >= 0) o.fs.err.index++;
        }
        for (auto& r : rest.results) o.fs.results.push_back(std::move(r));
        o.go = AsExpected(s, o.fs);
        double t1 = NowUs();
        o.us[1] = t1 - t0;
        if (o.go) RunNft(s, o);
        o.us[2] = NowUs() - t1;
      },
      done);
  double t = NowUs();
  o.rtnl_ran = true;
  o.rtnl = rtnl::RunOps(s.rtnl, s.pipelined, [&](size_t i) {
    if (target && UsesTarget(s.rtnl[i])) target->AwaitPrefetch();
    if (i != s.early) return true;
    done->Wait();
    if (o.go && NftOk(o)) return true;
    o.rtnl_gated = true;
    return false;
  });
  done->Wait();  // (the early ops may have failed before the gate)
  o.us[3] = NowUs() - t;
  if (!o.go || !NftOk(o) || !RtnlOk(s, o.rtnl)) return;
  if (!s.after.empty()) {
    double a = NowUs();
    o.after_ran = true;
    o.after = fsb::RunAll(s.after);
    o.us[4] = NowUs() - a;
  }
}

Out Run(Spec& s) {
  Out o;
  double t = NowUs();
  auto lap = [&](int step) {
    double n = NowUs();
    o.us[step] = n - t;
    t = n;
  };
  std::shared_ptr<NsState> target;
  if (!s.ns_path.empty()) {
    try {
      target = OpenNsPath(s.ns_path);
    } catch (const NlError& e) {
      o.ns_failed = true;
      o.ns_err = e;
      return o;
    }
    rtnl::BindTarget(s.rtnl, target);
    // Its socket is made on the namespace-entry thread while this one does the steps before rtnl.
    if (s.has_rtnl) target->Prefetch(NETLINK_ROUTE);
  }
  lap(0);
  if (s.early > 0 && s.early < s.rtnl.size() && !s.fs.empty() && s.fs[0].kind == fsb::Kind::Lock) {
    RunSideBySide(s, target, o, t);
    return o;
  }
  o.fs = fsb::RunAll(s.fs);
  o.go = AsExpected(s, o.fs);
  lap(1);
  if (!o.go) return o;
  RunNft(s, o);
  if (!NftOk(o)) return o;
  lap(2);
  if (s.has_rtnl) {
    if (target) target->AwaitPrefetch();
    o.rtnl_ran = true;
    o.rtnl = rtnl::RunOps(s.rtnl, s.pipelined);
    lap(3);
    if (!RtnlOk(s, o.rtnl)) return o;
  }
  if (!s.after.empty()) {
    o.after_ran = true;
    o.after = fsb::RunAll(s.after);
    lap(4);
  }
  return o;
}

Napi::Value FsToJs(Napi::Env env, const fsb::Outcome& o, Napi::Object* out, const char* key, const char* err_key) {
  Napi::Array res = Napi::Array::New(env, o.results.size());
  for (uint32_t i = 0; i < o.results.size(); i++) res.Set(i, fsb::ResultToJs(env, o.results[i]));
  out->Set(key, res);
  if (o.failed) out->Set(err_key, MakeJsError(env, o.err));
  return res;
}

Napi::Value JsChainRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) ThrowType(env, "chainRun(spec: object)");
  Napi::Object o = info[0].As<Napi::Object>();
  auto s = std::make_shared<Spec>();
  if (Has(o, "ns")) s->ns_path = GetStr(o, "ns");
  if (Has(o, "fs")) {
    if (!o.Get("fs").IsArray()) ThrowType(env, "chainRun: fs must be an array");
    s->fs = fsb::ParseOps(o.Get("fs").As<Napi::Array>());
  }
  if (Has(o, "expect")) {
    if (!o.Get("expect").IsArray()) ThrowType(env, "chainRun: expect must be an array");
    Napi::Array a = o.Get("expect").As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value v = a.Get(i);
      if (v.IsString()) {
        s->expect.emplace_back(v.As<Napi::String>().Utf8Value());
      } else if (v.IsArray()) {
        std::vector<std::string> names;
        Napi::Array n = v.As<Napi::Array>();
        for (uint32_t j = 0; j < n.Length(); j++) {
          if (!n.Get(j).IsString()) ThrowType(env, "chainRun: expect[" + std::to_string(i) + "] must hold names");
          names.push_back(n.Get(j).As<Napi::String>().Utf8Value());
        }
        s->expect.emplace_back(std::move(names));
      } else if (v.IsNull() || v.IsUndefined()) {
        s->expect.emplace_back(std::nullopt);
      } else {
        ThrowType(env, "chainRun: expect[" + std::to_string(i) + "] must be null, a string or names");
      }
    }
  }
  if (Has(o, "nft")) {
    Napi::Value v = o.Get("nft");
    auto one = [&](Napi::Value x) {
      if (!x.IsObject() || x.IsArray()) ThrowType(env, "chainRun: nft must be { ns, msgs } or an array of them");
      Napi::Object n = x.As<Napi::Object>();
      s->nft.push_back({NsArg(n.Get("ns")), nft::OpsFromJs(n.Get("msgs"))});
    };
    if (v.IsArray()) {
      Napi::Array a = v.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) one(a.Get(i));
    } else {
      one(v);
    }
  }
  if (Has(o, "rtnl")) {
    if (!o.Get("rtnl").IsObject() || !o.Get("rtnl").As<Napi::Object>().Get("ops").IsArray())
      ThrowType(env, "chainRun: rtnl must be { ops, pipelined? }");
    Napi::Object r = o.Get("rtnl").As<Napi::Object>();
    s->rtnl = rtnl::BuildTargetOps(r.Get("ops").As<Napi::Array>());
    s->has_rtnl = true;
    s->pipelined = GetBoolOr(r, "pipelined", false);
    s->quiet = GetBoolOr(r, "quiet", false);
    if (Has(r, "early")) {
      Napi::Value e = r.Get("early");
      if (!e.IsNumber() || e.As<Napi::Number>().DoubleValue() < 0) ThrowType(env, "chainRun: rtnl.early must be an op index");
      s->early = static_cast<size_t>(e.As<Napi::Number>().DoubleValue());
    }
    if (s->ns_path.empty())
      for (const rtnl::BoundOp& b : s->rtnl)
        if (b.target_roles) ThrowType(env, std::string("chainRun: rtnl ops name ") + rtnl::kTargetNs + " but no ns is given");
  }
  if (Has(o, "after")) {
    if (!o.Get("after").IsArray()) ThrowType(env, "chainRun: after must be an array");
    s->after = fsb::ParseOps(o.Get("after").As<Napi::Array>());
  }
  return PromiseWorker<Out>::Run(
      env, [s] { return Run(*s); },
      [s](Napi::Env env, Out& r) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        if (r.ns_failed) {
          out.Set("ns", MakeJsError(env, r.ns_err));
          out.Set("fs", Napi::Array::New(env, 0));
          out.Set("go", false);
          return out;
        }
        FsToJs(env, r.fs, &out, "fs", "fsError");
        out.Set("go", r.go);
        if (r.nft_ran) {
          if (!r.nft_encode_error.empty()) out.Set("nft", Napi::TypeError::New(env, r.nft_encode_error).Value());
          else out.Set("nft", r.nft_failed ? MakeJsError(env, r.nft_err) : env.Null());
        }
        if (r.rtnl_ran) {
          try {
            if (s->quiet && RtnlOk(*s, r.rtnl)) out.Set("rtnl", Napi::Array::New(env, r.rtnl.size()));
            else out.Set("rtnl", rtnl::ResultsToJs(env, s->rtnl, r.rtnl, s->pipelined, false));
          } catch (const Napi::Error& e) {
            out.Set("rtnl", e.Value());
          }
          if (r.rtnl_gated) out.Set("rtnlGated", true);
        }
        if (r.after_ran) FsToJs(env, r.after, &out, "after", "afterError");
        Napi::Array us = Napi::Array::New(env, 5);
        for (uint32_t i = 0; i < 5; i++) us.Set(i, Napi::Number::New(env, r.us[i]));
        out.Set("us", us);
        return out;
      });
}

}  // namespace

void InitChain(Napi::Env env, Napi::Object exports) { exports.Set("chainRun", Napi::Function::New(env, JsChainRun)); }

}  // namespace nm
