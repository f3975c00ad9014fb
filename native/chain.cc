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
//                              (run as a fed chain whose rest is given at once)
//     after?:  FsOp[]          fsBatch's ops once everything above succeeded
//     feed?:   chainFeedNew()'s token: the rest of the spec comes later (below)
//   }
// A fed chain (spec.feed) starts before its caller has built all of it: `fs` is the lock alone
// and `rtnl.ops` the first requests (a veth's create). chainFeed(token, rest) gives the rest, with
// rest = { fs?, expect?, nft?, rtnl?: { ops, early? }, after? }: `fs` the ops after the lock,
// `expect` for the whole fs list (the lock's included), `rtnl.ops` appended to the start's ops,
// `early` an index in the whole list. The side thread runs the rest of the fs step and nf_tables
// once both the lock is held and the rest is given; the worker, once the start's ops are done,
// waits for the rest (chainFeed(token, null), the token's garbage collection, or 10 s without
// it: abandoned, and the run ends as gated). So the caller's encoding of the rest runs beside the
// kernel's work on the first requests. The caller must feed (or abandon) at once, without
// waiting for anything: until then a pool thread may wait.
// chainPrepare(spec) converts a spec now and returns a token that chainRun(token) runs later, once
// (a disconnect's spec built while its connect's kernel work runs).
// chainTiming(on) (off by default; the benchmarks turn it on): whether outcomes carry `us`.
//   outcome.us [0-4] as below; [5] and [6]: when the worker started and ended; for a fed chain [7]
//   and [8]: when its worker asked for the rest and when the rest was given ([8] > [7]: the
//   worker waited for the caller); [9] and [10]: when the main thread began converting the
//   outcome and when it was done (CLOCK_MONOTONIC, µs; 0 when not so).
// What the outcome's conversion does not need (the claims, the messages, a quiet run's ops) is
// freed on the worker, so the main thread does not spend the connect's time freeing it.
//   outcome = {
//     ns?: NetlinkError                       the namespace could not be opened (nothing else ran)
//     fs: results (as fsBatch's; fewer when a lock was busy), fsError?: NetlinkError
//     go: boolean             every fs op ran, every reserve got true, every expectation held
//     nft?: null | error      undefined when not run; the first transaction's error
//     rtnl?: results | error  (as rtnlExec's; undefined when not run)
//     rtnlGated?: true        the early ops ran but the rest did not (fs or nft did not go well):
//                              what the early ones made is the caller's to undo
//     after?: results | error
//     us?: [ns, fs, nft, rtnl, after, ...]   microseconds spent in each step (chainTiming)
//   }
// The lock fds among the fs results are the caller's to close (unlock), whatever else happened.
#include <linux/netlink.h>
#include <time.h>

#include <napi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
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
  std::shared_ptr<struct Feed> feed;
};

double NowUs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

std::atomic<bool> g_timing{false};

// A fed chain's rest (see the header comment).
struct Rest {
  std::vector<fsb::Op> fs;
  std::vector<Expect> expect;
  std::vector<Spec::NftTx> nft;
  std::vector<rtnl::BoundOp> rtnl;
  std::optional<size_t> early;
  std::vector<fsb::Op> after;
};

// Between a fed chain's caller (main thread) and its worker. `post` (the side thread's part) is
// set by the worker once it holds the lock; whichever of the two comes second (the rest given,
// the lock held) posts it, so the side thread never waits for the caller.
struct Feed {
  enum State { kWaiting, kSupplied, kAbandoned };
  std::mutex mu;
  std::condition_variable cv;
  State state = kWaiting;
  std::unique_ptr<Rest> rest;
  std::function<void()> post;
  bool posted = false;
  double t_given = 0;
  // Gives the rest (or abandons the chain: rest == nullptr). False when it was too late (abandoned
  // already, or given twice).
  bool Give(std::unique_ptr<Rest> r) {
    std::function<void()> p;
    {
      std::lock_guard<std::mutex> g(mu);
      if (state != kWaiting) return false;
      state = r ? kSupplied : kAbandoned;
      rest = std::move(r);
      t_given = NowUs();
      if (state == kSupplied && post && !posted) {
        posted = true;
        p = post;
      }
    }
    cv.notify_all();
    if (p) p();
    return true;
  }
  // The worker: waits for the rest (abandoning the chain after `limit`); true when it was given.
  bool Await(std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> g(mu);
    if (!cv.wait_for(g, limit, [&] { return state != kWaiting; })) state = kAbandoned;
    return state == kSupplied;
  }
};

struct Out {
  bool ns_failed = false;
  NlError ns_err;
  fsb::Outcome fs;
  bool go = false;
  bool nft_ran = false, nft_failed = false;
  NlError nft_err;
  std::string nft_encode_error;
  bool rtnl_ran = false, rtnl_gated = false, rtnl_ok = false;
  std::vector<rtnl::OpResult> rtnl;
  bool after_ran = false;
  fsb::Outcome after;
  double us[5] = {0, 0, 0, 0, 0};  // time spent in each step: ns, fs, nft, rtnl, after
  double t_start = 0, t_end = 0;    // when the worker started and ended
  double t_asked = 0, t_given = 0;
};


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

// The side thread's part of a chain: the rest of the fs step (after the lock), then nf_tables.
void SideWork(Spec& s, Out& o, double t0, const std::vector<fsb::Op>& rest_fs) {
  fsb::Outcome rest = fsb::RunAll(rest_fs);
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
}

// A fed chain (spec.feed): the lock; then on the side thread the rest of the fs step and
// nf_tables (once the rest is given), while this one sends the start's rtnetlink ops; the ops
// from `early` on only once both went well. A spec with `early` given all at once runs the same
// way, its rest given before it starts (AsFed).
void RunFed(Spec& s, const std::shared_ptr<NsState>& target, Out& o, double t0) {
  Feed& feed = *s.feed;
  o.fs = fsb::RunAll(s.fs);  // the lock
  if (o.fs.failed || o.fs.results.size() != 1 || !std::holds_alternative<int>(o.fs.results[0])) {
    o.us[1] = NowUs() - t0;
    return;  // the lock was busy (or failed): nothing else ran (the rest, when given, is dropped)
  }
  auto done = std::make_shared<SideThread::Done>();
  std::vector<fsb::Op> rest_fs;
  // Runs on the side thread once the rest is given (`feed.rest` is then the caller's no more).
  auto side = [&s, &o, t0, &feed, &rest_fs] {
    Rest& r = *feed.rest;
    rest_fs = std::move(r.fs);
    s.fs.insert(s.fs.end(), rest_fs.begin(), rest_fs.end());
    s.expect = std::move(r.expect);
    s.nft = std::move(r.nft);
    s.after = std::move(r.after);
    SideWork(s, o, t0, rest_fs);
  };
  bool post_now = false;
  {
    std::lock_guard<std::mutex> g(feed.mu);
    feed.post = [side, done] { SideThread::Get().Post(side, done); };
    if (feed.state == Feed::kSupplied && !feed.posted) post_now = feed.posted = true;
  }
  if (post_now) feed.post();
  const size_t start_ops = s.rtnl.size();
  bool given = false, asked = false;
  double t = NowUs();
  o.rtnl_ran = true;
  o.rtnl = rtnl::RunOps(s.rtnl, s.pipelined, [&](size_t i) {
    if (i == start_ops && !asked) {
      asked = true;
      o.t_asked = NowUs();
      given = feed.Await(std::chrono::seconds(10));
      o.t_given = feed.t_given;
      if (!given) {
        o.rtnl_gated = true;
        return false;
      }
      std::vector<rtnl::BoundOp> more = std::move(feed.rest->rtnl);
      if (target) rtnl::BindTarget(more, target);
      for (auto& b : more) s.rtnl.push_back(std::move(b));
      s.early = std::max(start_ops, feed.rest->early.value_or(s.rtnl.size()));
    }
    if (i != s.early || i < start_ops) return true;
    done->Wait();
    if (o.go && NftOk(o)) return true;
    o.rtnl_gated = true;
    return false;
  });
  // (the start's ops may have failed before the rest was asked for)
  if (!asked) given = feed.Await(std::chrono::seconds(10));
  if (given) done->Wait();
  {
    std::lock_guard<std::mutex> g(feed.mu);
    feed.post = nullptr;  // (it names this frame: nobody may post it from now on)
    feed.posted = true;
  }
  o.us[3] = NowUs() - t;
  if (!given || !o.go || !NftOk(o) || !RtnlOk(s, o.rtnl)) return;
  if (!s.after.empty()) {
    double a = NowUs();
    o.after_ran = true;
    o.after = fsb::RunAll(s.after);
    o.us[4] = NowUs() - a;
  }
}

// A spec with rtnl.early, all of it given at once, as a fed chain whose rest is given already:
// the lock and the ops before `early` start it, the rest is its rest.
void AsFed(Spec& s) {
  auto r = std::make_unique<Rest>();
  r->fs.assign(std::make_move_iterator(s.fs.begin() + 1), std::make_move_iterator(s.fs.end()));
  s.fs.resize(1);
  r->expect = std::move(s.expect);
  r->nft = std::move(s.nft);
  r->after = std::move(s.after);
  r->rtnl.assign(std::make_move_iterator(s.rtnl.begin() + s.early), std::make_move_iterator(s.rtnl.end()));
  s.rtnl.resize(s.early);
  r->early = s.early;
  s.early = 0;
  s.feed = std::make_shared<Feed>();
  s.feed->Give(std::move(r));
}

Out RunSteps(Spec& s);
// A chain, timed from the worker's start to its end (outcome.us[5], [6]).
Out Run(Spec& s) {
  double a = NowUs();
  Out o = RunSteps(s);
  o.t_start = a;
  // What the outcome's conversion does not read is freed here, not on the main thread.
  o.rtnl_ok = o.rtnl_ran && RtnlOk(s, o.rtnl);
  std::vector<fsb::Op>().swap(s.fs);
  std::vector<Expect>().swap(s.expect);
  std::vector<Spec::NftTx>().swap(s.nft);
  std::vector<fsb::Op>().swap(s.after);
  if (s.feed) {
    std::lock_guard<std::mutex> g(s.feed->mu);
    s.feed->rest.reset();
  }
  if (s.quiet && o.rtnl_ok) std::vector<rtnl::BoundOp>().swap(s.rtnl);
  o.t_end = NowUs();
  return o;
}

Out RunSteps(Spec& s) {
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
    // Its socket is made on the namespace-entry thread while this one does the steps before rtnl
    // (and the requests on other sockets): the first request on it waits for it (NsState::Acquire).
    if (s.has_rtnl) target->Prefetch(NETLINK_ROUTE);
  }
  lap(0);
  if (s.feed) {
    RunFed(s, target, o, t);
    return o;
  }
  if (s.early > 0 && s.early < s.rtnl.size() && !s.fs.empty() && s.fs[0].kind == fsb::Kind::Lock) {
    AsFed(s);
    RunFed(s, target, o, t);
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

std::vector<Expect> ParseExpect(Napi::Env env, Napi::Value v) {
  if (!v.IsArray()) ThrowType(env, "chainRun: expect must be an array");
  std::vector<Expect> out;
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value x = a.Get(i);
    if (x.IsString()) {
      out.emplace_back(x.As<Napi::String>().Utf8Value());
    } else if (x.IsArray()) {
      std::vector<std::string> names;
      Napi::Array n = x.As<Napi::Array>();
      for (uint32_t j = 0; j < n.Length(); j++) {
        if (!n.Get(j).IsString()) ThrowType(env, "chainRun: expect[" + std::to_string(i) + "] must hold names");
        names.push_back(n.Get(j).As<Napi::String>().Utf8Value());
      }
      out.emplace_back(std::move(names));
    } else if (x.IsNull() || x.IsUndefined()) {
      out.emplace_back(std::nullopt);
    } else {
      ThrowType(env, "chainRun: expect[" + std::to_string(i) + "] must be null, a string or names");
    }
  }
  return out;
}

std::vector<Spec::NftTx> ParseNft(Napi::Env env, Napi::Value v) {
  std::vector<Spec::NftTx> out;
  auto one = [&](Napi::Value x) {
    if (!x.IsObject() || x.IsArray()) ThrowType(env, "chainRun: nft must be { ns, msgs } or an array of them");
    Napi::Object n = x.As<Napi::Object>();
    out.push_back({NsArg(n.Get("ns")), nft::OpsFromJs(n.Get("msgs"))});
  };
  if (v.IsArray()) {
    Napi::Array a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) one(a.Get(i));
  } else {
    one(v);
  }
  return out;
}

std::vector<fsb::Op> ParseFs(Napi::Env env, Napi::Value v, const char* what) {
  if (!v.IsArray()) ThrowType(env, std::string("chainRun: ") + what + " must be an array");
  return fsb::ParseOps(v.As<Napi::Array>());
}

// Type tags of chainFeedNew's and chainPrepare's tokens (random, fixed).
const napi_type_tag kFeedTag = {0x6e6d636861696e66ULL, 0x6565643a746f6b65ULL};
const napi_type_tag kPreparedTag = {0x6e6d636861696e70ULL, 0x7265703a746f6b65ULL};

struct FeedBox {
  std::shared_ptr<Feed> feed;
  bool used = false;    // named by a chain already
  bool has_ns = false;  // that chain opens a namespace (fed ops may name it)
};
struct PreparedBox {
  std::shared_ptr<Spec> spec;
};

template <class T>
T* Token(Napi::Value v, const napi_type_tag* tag, const char* what) {
  if (!v.IsExternal() || !v.As<Napi::External<T>>().CheckTypeTag(tag)) ThrowType(v.Env(), std::string(what) + " must be a token from chainFeedNew/chainPrepare");
  return v.As<Napi::External<T>>().Data();
}

std::shared_ptr<Spec> ParseSpec(Napi::Env env, Napi::Value arg) {
  if (!arg.IsObject()) ThrowType(env, "chainRun(spec: object)");
  Napi::Object o = arg.As<Napi::Object>();
  auto s = std::make_shared<Spec>();
  if (Has(o, "ns")) s->ns_path = GetStr(o, "ns");
  if (Has(o, "fs")) s->fs = ParseFs(env, o.Get("fs"), "fs");
  if (Has(o, "expect")) s->expect = ParseExpect(env, o.Get("expect"));
  if (Has(o, "nft")) s->nft = ParseNft(env, o.Get("nft"));
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
  if (Has(o, "after")) s->after = ParseFs(env, o.Get("after"), "after");
  if (Has(o, "feed")) {
    FeedBox* box = Token<FeedBox>(o.Get("feed"), &kFeedTag, "chainRun: feed");
    if (box->used) ThrowType(env, "chainRun: a feed token serves one chain");
    if (s->fs.size() != 1 || s->fs[0].kind != fsb::Kind::Lock || !s->has_rtnl || s->rtnl.empty() || s->early || !s->expect.empty() ||
        !s->nft.empty() || !s->after.empty())
      ThrowType(env, "chainRun: a fed chain starts with fs = [the lock] and its first rtnl ops, the rest fed");
    box->used = true;
    box->has_ns = !s->ns_path.empty();
    s->feed = box->feed;
  }
  return s;
}

Napi::Value Launch(Napi::Env env, std::shared_ptr<Spec> s) {
  return PromiseWorker<Out>::Run(
      env, [s] { return Run(*s); },
      [s](Napi::Env env, Out& r) -> Napi::Value {
        double t_cb = NowUs();
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
            if (s->quiet && r.rtnl_ok) out.Set("rtnl", Napi::Array::New(env, r.rtnl.size()));
            else out.Set("rtnl", rtnl::ResultsToJs(env, s->rtnl, r.rtnl, s->pipelined, false));
          } catch (const Napi::Error& e) {
            out.Set("rtnl", e.Value());
          }
          if (r.rtnl_gated) out.Set("rtnlGated", true);
        }
        if (r.after_ran) FsToJs(env, r.after, &out, "after", "afterError");
        if (!g_timing) return out;
        Napi::Array us = Napi::Array::New(env, 11);
        us.Set(9u, Napi::Number::New(env, t_cb));
        us.Set(7u, Napi::Number::New(env, r.t_asked));
        us.Set(8u, Napi::Number::New(env, r.t_given));
        for (uint32_t i = 0; i < 5; i++) us.Set(i, Napi::Number::New(env, r.us[i]));
        us.Set(5u, Napi::Number::New(env, r.t_start));
        us.Set(6u, Napi::Number::New(env, r.t_end));
        us.Set(10u, Napi::Number::New(env, NowUs()));
        out.Set("us", us);
        return out;
      });
}

// chainRun(spec | chainPrepare's token) -> Promise<outcome>
Napi::Value JsChainRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info[0].IsExternal()) {
    PreparedBox* box = Token<PreparedBox>(info[0], &kPreparedTag, "chainRun: spec");
    if (!box->spec) ThrowType(env, "chainRun: a prepared spec runs once");
    return Launch(env, std::move(box->spec));
  }
  return Launch(env, ParseSpec(env, info[0]));
}

// chainPrepare(spec) -> token: the spec converted now, for one chainRun(token) later.
Napi::Value JsChainPrepare(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<Spec> s = ParseSpec(env, info[0]);
  if (s->feed) ThrowType(env, "chainPrepare: a fed chain runs at once");
  auto ext = Napi::External<PreparedBox>::New(env, new PreparedBox{std::move(s)}, [](Napi::Env, PreparedBox* b) { delete b; });
  ext.TypeTag(&kPreparedTag);
  return ext;
}

// chainFeedNew() -> token for one fed chain (spec.feed). Garbage-collected unfed: abandoned.
Napi::Value JsChainFeedNew(const Napi::CallbackInfo& info) {
  auto ext = Napi::External<FeedBox>::New(info.Env(), new FeedBox{std::make_shared<Feed>()}, [](Napi::Env, FeedBox* b) {
    b->feed->Give(nullptr);
    delete b;
  });
  ext.TypeTag(&kFeedTag);
  return ext;
}

// chainFeed(token, rest | null) -> boolean: the rest of a fed chain (null: abandon it); false
// when the chain had been abandoned already (it waited too long) or was fed before.
Napi::Value JsChainFeed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FeedBox* box = Token<FeedBox>(info[0], &kFeedTag, "chainFeed: token");
  if (!box->used) ThrowType(env, "chainFeed: the token names no chain yet");
  if (info[1].IsNull() || info[1].IsUndefined()) return Napi::Boolean::New(env, box->feed->Give(nullptr));
  if (!info[1].IsObject()) ThrowType(env, "chainFeed(token, rest: object | null)");
  Napi::Object o = info[1].As<Napi::Object>();
  std::unique_ptr<Rest> r;
  try {
    r = std::make_unique<Rest>();
    if (Has(o, "fs")) r->fs = ParseFs(env, o.Get("fs"), "fs");
    if (Has(o, "expect")) r->expect = ParseExpect(env, o.Get("expect"));
    if (Has(o, "nft")) r->nft = ParseNft(env, o.Get("nft"));
    if (Has(o, "rtnl")) {
      Napi::Value rv = o.Get("rtnl");
      if (!rv.IsObject() || !rv.As<Napi::Object>().Get("ops").IsArray()) ThrowType(env, "chainFeed: rtnl must be { ops, early? }");
      Napi::Object ro = rv.As<Napi::Object>();
      r->rtnl = rtnl::BuildTargetOps(ro.Get("ops").As<Napi::Array>());
      if (!box->has_ns)
        for (const rtnl::BoundOp& b : r->rtnl)
          if (b.target_roles) ThrowType(env, std::string("chainFeed: rtnl ops name ") + rtnl::kTargetNs + " but the chain opens no namespace");
      if (Has(ro, "early")) {
        Napi::Value e = ro.Get("early");
        if (!e.IsNumber() || e.As<Napi::Number>().DoubleValue() < 0) ThrowType(env, "chainFeed: rtnl.early must be an op index");
        r->early = static_cast<size_t>(e.As<Napi::Number>().DoubleValue());
      }
    }
    if (Has(o, "after")) r->after = ParseFs(env, o.Get("after"), "after");
  } catch (...) {
    box->feed->Give(nullptr);  // a rest that cannot be converted: the chain is abandoned, not left waiting
    throw;
  }
  return Napi::Boolean::New(env, box->feed->Give(std::move(r)));
}

// chainTiming(on): whether outcomes carry `us` (off by default: the benchmarks turn it on).
Napi::Value JsChainTiming(const Napi::CallbackInfo& info) {
  g_timing = info[0].ToBoolean().Value();
  return info.Env().Undefined();
}

}  // namespace

void InitChain(Napi::Env env, Napi::Object exports) {
  exports.Set("chainTiming", Napi::Function::New(env, JsChainTiming));
  exports.Set("chainRun", Napi::Function::New(env, JsChainRun));
  exports.Set("chainPrepare", Napi::Function::New(env, JsChainPrepare));
  exports.Set("chainFeedNew", Napi::Function::New(env, JsChainFeedNew));
  exports.Set("chainFeed", Napi::Function::New(env, JsChainFeed));
}

}  // namespace nm
