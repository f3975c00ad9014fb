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

// An object's own properties read once (one napi_get_all_property_names, then one lookup per key
// present), for parsers that ask for many optional keys: asking the object itself costs a property
// lookup (and a key string made from C) per question, present or not.
class Props {
 public:
  explicit Props(const Napi::Object& o) : obj_(o) {
    // Raw N-API calls: each key is read once into a fixed buffer (no string allocated, one call
    // instead of a length query and a copy). Keys of kKeyMax - 1 bytes or more are never asked for.
    napi_env env = o.Env();
    napi_value names;
    uint32_t n = 0;
    if (napi_get_all_property_names(env, o, napi_key_own_only, static_cast<napi_key_filter>(napi_key_enumerable | napi_key_skip_symbols),
                                     napi_key_numbers_to_strings, &names) != napi_ok || napi_get_array_length(env, names, &n) != napi_ok)
      throw Napi::Error::New(o.Env());
    keys_.resize(n);
    vals_.reserve(n);
    for (uint32_t i = 0; i < n; i++) {
      napi_value k, v;
      size_t len = 0;
      if (napi_get_element(env, names, i, &k) != napi_ok ||
          napi_get_value_string_utf8(env, k, keys_[i].data(), kKeyMax, &len) != napi_ok ||
          napi_get_property(env, o, k, &v) != napi_ok)
        throw Napi::Error::New(o.Env());
      if (len >= kKeyMax - 1) keys_[i][0] = '\0';  // too long to be one of ours (maybe cut short)
      vals_.emplace_back(env, v);
    }
  }
  Napi::Env Env() const { return obj_.Env(); }
  bool Has(const char* k) const { return Find(k) >= 0; }
  Napi::Value Get(const char* k) const {
    int i = Find(k);
    return i >= 0 ? vals_[static_cast<size_t>(i)] : Env().Undefined();
  }

 private:
  static constexpr size_t kKeyMax = 32;
  int Find(const char* k) const {
    for (size_t i = 0; i < keys_.size(); i++)
      if (std::strcmp(keys_[i].data(), k) == 0) return static_cast<int>(i);
    return -1;
  }
  Napi::Object obj_;
  std::vector<std::array<char, kKeyMax>> keys_;
  std::vector<Napi::Value> vals_;
};

// The namespace a request targets: an NsHandle object, or undefined/null for the process's own.
std::shared_ptr<NsState> NsArg(Napi::Value v);

}  // namespace nm
