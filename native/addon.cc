// Addon entry: receives the NetlinkError class from JS, exports the namespace handle, sysctls and
// file locks, then lets each protocol module (rtnl, nft) add its functions.
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <napi.h>

#include "js_util.h"
#include "modules.h"
#include "netns.h"
#include "worker.h"

namespace nm {

namespace {
Napi::FunctionReference* g_error_class = nullptr;
Napi::FunctionReference* g_ns_class = nullptr;

std::string ErrnoName(int e) {
  const char* n = strerrorname_np(e);
  return n ? n : "E_UNKNOWN_" + std::to_string(e);
}
}  // namespace

Napi::Value MakeJsError(Napi::Env env, const NlError& e) {
  std::string code = ErrnoName(e.err);
  std::string msg = e.op + ": " + strerror(e.err) + " (" + code + ")";
  if (!e.extack.empty()) msg += ": " + e.extack;
  if (!e.message.empty()) msg += " [" + e.message + "]";
  if (e.index >= 0) msg += " (operation " + std::to_string(e.index) + ")";
  if (!g_error_class) {
    Napi::Error err = Napi::Error::New(env, msg);
    err.Set("code", code);
    return err.Value();
  }
  std::vector<napi_value> args = {
      Napi::String::New(env, msg), Napi::String::New(env, code), Napi::Number::New(env, e.err),
      Napi::String::New(env, e.op),
      e.extack.empty() ? env.Undefined() : Napi::String::New(env, e.extack),
      e.index >= 0 ? Napi::Number::New(env, e.index) : env.Undefined()};
  return g_error_class->New(args);
}

// JS-visible handle on one open namespace.
class NsHandle : public Napi::ObjectWrap<NsHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NsHandle",
                       {InstanceMethod("close", &NsHandle::Close), InstanceAccessor("ino", &NsHandle::Ino, nullptr),
                        InstanceAccessor("dev", &NsHandle::Dev, nullptr),
                        InstanceAccessor("closed", &NsHandle::Closed, nullptr)});
  }
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<NsState> s) {
    Napi::Object o = g_ns_class->New({});
    Unwrap(o)->state_ = std::move(s);
    return o;
  }
  explicit NsHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NsHandle>(info) {}
  ~NsHandle() override {
    if (state_ && state_ != CurrentNs()) state_->Close();
  }
  std::shared_ptr<NsState> state() const { return state_; }

 private:
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (state_ && state_ != CurrentNs() && !state_->closed()) {
      state_->Close();
      // The handle lets its reference go now: the fd is closed at once, or when the last call
      // still holding the namespace ends. What it keeps answers ino/dev/closed and refuses use.
      state_ = NsState::ClosedStub(state_->dev(), state_->ino());
    }
    return info.Env().Undefined();
  }
  Napi::Value Ino(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), state_ ? double(state_->ino()) : 0); }
  Napi::Value Dev(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), state_ ? double(state_->dev()) : 0); }
  Napi::Value Closed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), state_ && state_->closed()); }
  std::shared_ptr<NsState> state_;
};

std::shared_ptr<NsState> NsArg(Napi::Value v) {
  if (v.IsUndefined() || v.IsNull()) return CurrentNs();
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(g_ns_class->Value()))
    ThrowType(v.Env(), "namespace must be a native namespace handle");
  auto s = NsHandle::Unwrap(v.As<Napi::Object>())->state();
  if (!s) ThrowType(v.Env(), "namespace handle is empty");
  return s;
}

namespace {

using NsPtr = std::shared_ptr<NsState>;

Napi::Value JsInit(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) ThrowType(info.Env(), "init(NetlinkError)");
  delete g_error_class;
  g_error_class = new Napi::FunctionReference(Napi::Persistent(info[0].As<Napi::Function>()));
  return info.Env().Undefined();
}

Napi::Value JsNsCurrent(const Napi::CallbackInfo& info) { return NsHandle::Wrap(info.Env(), CurrentNs()); }

Napi::Value WrapNs(Napi::Env env, NsPtr& s) { return NsHandle::Wrap(env, s); }

// nsOpen(path, prepare?): opens the namespace; with `prepare` (a netlink protocol) it also fills
// the handle's pool with a socket of that protocol, as nsPrepare does, in the same trip (best
// effort: a socket that cannot be made now is made, or fails, at first use).
Napi::Value JsNsOpen(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int prepare = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : -1;
  return PromiseWorker<NsPtr>::Run(
      info.Env(),
      [path, prepare] {
        NsPtr ns = OpenNsPath(path);
        if (prepare >= 0) {
          try {
            ns->Acquire(prepare);
          } catch (...) {
          }
        }
        return ns;
      },
      WrapNs);
}

// nsCreate(dir, name, fault?): `fault` is a test-only fault point (NETMODES_FAULT, passed by
// lib/netns.ts so that no pool thread reads the environment while JS may write it).
Napi::Value JsNsCreate(const Napi::CallbackInfo& info) {
  std::string dir = info[0].As<Napi::String>().Utf8Value();
  std::string name = info[1].As<Napi::String>().Utf8Value();
  std::string fault = info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "";
  return PromiseWorker<NsPtr>::Run(info.Env(), [dir, name, fault] { return CreateNamedNs(dir, name, fault); }, WrapNs);
}

// nsReap(dir) -> names: removes the half-made names under dir whose creators are gone.
Napi::Value JsNsReap(const Napi::CallbackInfo& info) {
  std::string dir = info[0].As<Napi::String>().Utf8Value();
  return PromiseWorker<std::vector<std::string>>::Run(
      info.Env(), [dir] { return ReapStaleNs(dir); },
      [](Napi::Env env, std::vector<std::string>& names) -> Napi::Value {
        Napi::Array a = Napi::Array::New(env, names.size());
        for (size_t i = 0; i < names.size(); i++) a.Set(static_cast<uint32_t>(i), Napi::String::New(env, names[i]));
        return a;
      });
}

// nsPrepare(handle, protocol): makes sure the handle's pool holds a socket of that protocol, so
// that a later call in this namespace does not wait for one to be opened inside it (callers start
// it beside other work).
Napi::Value JsNsPrepare(const Napi::CallbackInfo& info) {
  NsPtr ns = NsArg(info[0]);
  int protocol = info[1].As<Napi::Number>().Int32Value();
  return PromiseWorker<Unit>::Run(
      info.Env(),
      [ns, protocol] {
        ns->Acquire(protocol);  // the lease goes back to the pool at once
        return Unit{};
      },
      Undef);
}

Napi::Value JsNsDelete(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  return PromiseWorker<Unit>::Run(info.Env(), [path] { DeleteNamedNs(path); return Unit{}; }, Undef);
}

Napi::Value JsSysctlGet(const Napi::CallbackInfo& info) {
  NsPtr ns = NsArg(info[0]);
  std::string key = info[1].As<Napi::String>().Utf8Value();
  return PromiseWorker<std::string>::Run(
      info.Env(), [ns, key] { return SysctlGet(*ns, key); },
      [](Napi::Env env, std::string& v) -> Napi::Value { return Napi::String::New(env, v); });
}

Napi::Value JsSysctlSet(const Napi::CallbackInfo& info) {
  NsPtr ns = NsArg(info[0]);
  std::string key = info[1].As<Napi::String>().Utf8Value();
  std::string value = info[2].As<Napi::String>().Utf8Value();
  return PromiseWorker<Unit>::Run(info.Env(), [ns, key, value] { SysctlSet(*ns, key, value); return Unit{}; }, Undef);
}

// mallocStats() -> { inUse, free, mapped }: the C heap of the whole process (every arena, as
// glibc's mallinfo2 sums them), in bytes. A diagnostic for the benchmarks' memory figures: RSS
// also counts pages the allocator keeps after free, and V8's heap sizing.
// Under AddressSanitizer (scripts/sanitize.sh) malloc is ASan's, which glibc's figures do not see:
// the same three figures then come from the sanitizer's allocator.
#if defined(__SANITIZE_ADDRESS__)
extern "C" size_t __sanitizer_get_current_allocated_bytes();
extern "C" size_t __sanitizer_get_free_bytes();
#endif
Napi::Value JsMallocStats(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
#if defined(__SANITIZE_ADDRESS__)
  o.Set("inUse", Napi::Number::New(info.Env(), double(__sanitizer_get_current_allocated_bytes())));
  o.Set("free", Napi::Number::New(info.Env(), double(__sanitizer_get_free_bytes())));
  o.Set("mapped", Napi::Number::New(info.Env(), 0));
#else
  struct mallinfo2 m = mallinfo2();
  o.Set("inUse", Napi::Number::New(info.Env(), double(m.uordblks + m.hblkhd)));
  o.Set("free", Napi::Number::New(info.Env(), double(m.fordblks)));
  o.Set("mapped", Napi::Number::New(info.Env(), double(m.hblkhd)));
#endif
  return o;
}

// mallocTrim() -> Promise<boolean>: hands the pages the C heap holds free (in every arena, also
// those in the middle of it) back to the kernel, off the main thread (glibc malloc_trim(0) walks
// every arena under its lock). True when any were released; false where glibc's allocator is not
// the one in use (AddressSanitizer's, or another libc).
Napi::Value JsMallocTrim(const Napi::CallbackInfo& info) {
  return PromiseWorker<bool>::Run(
      info.Env(),
      [] {
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
        return malloc_trim(0) != 0;
#else
        return false;
#endif
      },
      [](Napi::Env env, bool released) { return Napi::Boolean::New(env, released); });
}

// flock(path, exclusive) -> fd: a cross-process lock, taken off the main thread since it may wait.
Napi::Value JsLock(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  bool excl = info[1].ToBoolean().Value();
  return PromiseWorker<int>::Run(
      info.Env(),
      [path, excl] {
        int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
          NlError e;
          e.err = errno, e.op = "open", e.message = path;
          throw e;
        }
        while (flock(fd, excl ? LOCK_EX : LOCK_SH) < 0) {
          if (errno == EINTR) continue;
          NlError e;
          e.err = errno, e.op = "flock", e.message = path;
          close(fd);
          throw e;
        }
        return fd;
      },
      [](Napi::Env env, int& fd) -> Napi::Value { return Napi::Number::New(env, fd); });
}

Napi::Value JsUnlock(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd > 2) close(fd);  // closing releases the flock
  return info.Env().Undefined();
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  g_ns_class = new Napi::FunctionReference(Napi::Persistent(NsHandle::Define(env)));
  exports.Set("init", Napi::Function::New(env, JsInit));
  exports.Set("nsCurrent", Napi::Function::New(env, JsNsCurrent));
  exports.Set("nsOpen", Napi::Function::New(env, JsNsOpen));
  exports.Set("nsCreate", Napi::Function::New(env, JsNsCreate));
  exports.Set("nsDelete", Napi::Function::New(env, JsNsDelete));
  exports.Set("nsReap", Napi::Function::New(env, JsNsReap));
  exports.Set("nsPrepare", Napi::Function::New(env, JsNsPrepare));
  exports.Set("sysctlGet", Napi::Function::New(env, JsSysctlGet));
  exports.Set("sysctlSet", Napi::Function::New(env, JsSysctlSet));
  exports.Set("mallocStats", Napi::Function::New(env, JsMallocStats));
  exports.Set("mallocTrim", Napi::Function::New(env, JsMallocTrim));
  exports.Set("lock", Napi::Function::New(env, JsLock));
  exports.Set("unlock", Napi::Function::New(env, JsUnlock));
  InitRtnl(env, exports);
  InitNft(env, exports);
  InitFs(env, exports);
  InitChain(env, exports);
  return exports;
}

}  // namespace nm

static Napi::Object InitAll(Napi::Env env, Napi::Object exports) { return nm::Init(env, exports); }
NODE_API_MODULE(netmodes, InitAll)
