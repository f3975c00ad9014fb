// Promise-returning async work. The baton (inputs) is built on the main thread; Execute() runs on
// a libuv pool thread and only does I/O; the JS result is built back on the main thread.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>

#include "nl/socket.h"

namespace nm {

// Builds a JS NetlinkError (class supplied by JS at init) from an NlError.
Napi::Value MakeJsError(Napi::Env env, const NlError& e);

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

  void Execute() override {
    try {
      result_ = exec_();
    } catch (const NlError& e) {
      err_ = e;
      failed_ = true;
    } catch (const std::exception& e) {
      err_.err = EIO;
      err_.op = "native";
      err_.message = e.what();
      failed_ = true;
    }
  }
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
