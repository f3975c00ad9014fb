// Conversions from JS values to plain C++ values, with TypeErrors naming the field. The TypeScript
// layer validates first; these checks only keep malformed input from ever reaching an encoder.
#pragma once
#include <napi.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "netns.h"

namespace nm {

[[noreturn]] inline void ThrowType(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }

template <class O>
inline bool Has(const O& o, const char* k) {
  if (!o.Has(k)) return false;
  Napi::Value v = o.Get(k);
  return !v.IsUndefined() && !v.IsNull();
}
template <class O>
inline std::string GetStr(const O& o, const char* k) {
  Napi::Value v = o.Get(k);
  if (!v.IsString()) ThrowType(o.Env(), std::string(k) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}
template <class O>
inline std::string GetStrOr(const O& o, const char* k, const std::string& d) {
  return Has(o, k) ? GetStr(o, k) : d;
}
template <class O>
inline int64_t GetInt(const O& o, const char* k) {
  Napi::Value v = o.Get(k);
  if (!v.IsNumber()) ThrowType(o.Env(), std::string(k) + " must be a number");
  return v.As<Napi::Number>().Int64Value();
}
template <class O>
inline int64_t GetIntOr(const O& o, const char* k, int64_t d) { return Has(o, k) ? GetInt(o, k) : d; }
template <class O>
inline uint32_t GetU32(const O& o, const char* k, uint32_t max = UINT32_MAX) {
  int64_t v = GetInt(o, k);
  if (v < 0 || v > static_cast<int64_t>(max)) ThrowType(o.Env(), std::string(k) + " out of range");
  return static_cast<uint32_t>(v);
}
template <class O>
inline bool GetBoolOr(const O& o, const char* k, bool d) {
  if (!Has(o, k)) return d;
  return o.Get(k).ToBoolean().Value();
}
template <class O>
inline std::vector<uint8_t> GetBuf(const O& o, const char* k) {
  Napi::Value v = o.Get(k);
  if (!v.IsBuffer()) ThrowType(o.Env(), std::string(k) + " must be a Buffer");
  auto b = v.As<Napi::Buffer<uint8_t>>();
  return std::vector<uint8_t>(b.Data(), b.Data() + b.Length());
}
template <class O>
inline Napi::Object GetObj(const O& o, const char* k) {
  Napi::Value v = o.Get(k);
  if (!v.IsObject()) ThrowType(o.Env(), std::string(k) + " must be an object");
  return v.As<Napi::Object>();
}
template <class O>
inline Napi::Array GetArr(const O& o, const char* k) {
  Napi::Value v = o.Get(k);
  if (!v.IsArray()) ThrowType(o.Env(), std::string(k) + " must be an array");
  return v.As<Napi::Array>();
}
inline Napi::Buffer<uint8_t> ToBuf(Napi::Env env, const std::vector<uint8_t>& v) {
  return Napi::Buffer<uint8_t>::Copy(env, v.data(), v.size());
}

// An object's properties as a parser asks for them: each key looked up once (napi_get_named_property,
// whose key string is the one V8 already interned: nothing allocated on the JS heap), and kept, so
// that the usual Has(k) then Get(k) costs one lookup. (Reading every own key up front took
// napi_get_all_property_names, which allocates a key array per object: ~5 KB of garbage per
// connect.) A missing key reads as undefined, as does one set to undefined.
class Props {
 public:
  explicit Props(const Napi::Object& o) : obj_(o) {}
  Napi::Env Env() const { return obj_.Env(); }
  bool Has(const char* k) const { return !Get(k).IsUndefined(); }
  Napi::Value Get(const char* k) const {
    for (size_t i = 0; i < n_; i++)
      if (seen_[i].key == k || std::strcmp(seen_[i].key, k) == 0) return Napi::Value(obj_.Env(), seen_[i].val);
    napi_value v;
    if (napi_get_named_property(obj_.Env(), obj_, k, &v) != napi_ok) throw Napi::Error::New(obj_.Env());
    if (n_ < kSeen) seen_[n_++] = Seen{k, v};
    return Napi::Value(obj_.Env(), v);
  }

 private:
  static constexpr size_t kSeen = 24;
  struct Seen {
    const char* key;
    napi_value val;
  };
  Napi::Object obj_;
  mutable Seen seen_[kSeen];
  mutable size_t n_ = 0;
};

// The namespace a request targets: an NsHandle object, or undefined/null for the process's own.
std::shared_ptr<NsState> NsArg(Napi::Value v);

}  // namespace nm
