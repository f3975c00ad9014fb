// Promise-returning async work. The baton (inputs) is built on the main thread; Execute() runs on
// a libuv pool thread and only does I/O; the JS result is built back on the main thread.
#pragma once
#include <napi.h>

#include <cerrno>
#include <functional>
#include <memory>

#include "nl/socket.h"

namespace nm {

// Builds a JS NetlinkError (class supplied by JS at init) from an NlError.
Napi::Value MakeJsError(Napi::Env env, const NlError& e);

// Runs fn on a worker thread: true when it returned; false when it threw, with what it threw in
// *err (an NlError as is, any other exception as EIO).
template <class F>
bool Catching(F&& fn, NlError* err) {
  try {
    fn();
    return true;
  } catch (const NlError& e) {
    *err = e;
  } catch (const std::exception& e) {
    err->err = EIO;
    err->op = "native";
    err->message = e.what();
  }
  return false;
}

template <class R>
class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Exec = std::function<R()>;
  using Done = std::function<Napi::Value(Napi::Env, R&)>;

  static Napi::Promise Run(Napi::Env env, Exec exec, Done done) {
    auto* w = new PromiseWorker(env, std::move(exec), std::move(done));
    auto p = w->deferred_.Promise();
    w->Queue();
    return p;
  }

 protected:
  PromiseWorker(Napi::Env env, Exec exec, Done done)
      : Napi::AsyncWorker(env, "netmodes"), deferred_(Napi::Promise::Deferred::New(env)),
        exec_(std::move(exec)), done_(std::move(done)) {}

  void Execute() override { failed_ = !Catching([&] { result_ = exec_(); }, &err_); }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (failed_) {
      deferred_.Reject(MakeJsError(env, err_));
      return;
    }
    try {
      deferred_.Resolve(done_(env, result_));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Exec exec_;
  Done done_;
  R result_{};
  NlError err_;
  bool failed_ = false;
};

struct Unit {};
inline Napi::Value Undef(Napi::Env env, Unit&) { return env.Undefined(); }

}  // namespace nm
