// Conversions from JS values to plain C++ values, with TypeErrors naming the field. The TypeScript
// layer validates first; these checks only keep malformed input from ever reaching an encoder.
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "netns.h"

namespace nm {

[[noreturn]] inline void ThrowType(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }

inline bool Has(const Napi::Object& o, const char* k) {
  if (!o.Has(k)) return false;
  Napi::Value v = o.Get(k);
  return !v.IsUndefined() && !v.IsNull();
}
inline std::string GetStr(const Napi::Object& o, const char* k) {
  Napi::Value v = o.Get(k);
  if (!v.IsString()) ThrowType(o.Env(), std::string(k) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}
inline std::string GetStrOr(const Napi::Object& o, const char* k, const std::string& d) {
  return Has(o, k) ? GetStr(o, k) : d;
}
inline int64_t GetInt(const Napi::Object& o, const char* k) {
  Napi::Value v = o.Get(k);
  if (!v.IsNumber()) ThrowType(o.Env(), std::string(k) + " must be a number");
  return v.As<Napi::Number>().Int64Value();
}
inline int64_t GetIntOr(const Napi::Object& o, const char* k, int64_t d) { return Has(o, k) ? GetInt(o, k) : d; }
inline uint32_t GetU32(const Napi::Object& o, const char* k, uint32_t max = UINT32_MAX) {
  int64_t v = GetInt(o, k);
  if (v < 0 || v > static_cast<int64_t>(max)) ThrowType(o.Env(), std::string(k) + " out of range");
  return static_cast<uint32_t>(v);
}
inline bool GetBoolOr(const Napi::Object& o, const char* k, bool d) {
  if (!Has(o, k)) return d;
  return o.Get(k).ToBoolean().Value();
}
inline std::vector<uint8_t> GetBuf(const Napi::Object& o, const char* k) {
  Napi::Value v = o.Get(k);
  if (!v.IsBuffer()) ThrowType(o.Env(), std::string(k) + " must be a Buffer");
  auto b = v.As<Napi::Buffer<uint8_t>>();
  return std::vector<uint8_t>(b.Data(), b.Data() + b.Length());
}
inline Napi::Object GetObj(const Napi::Object& o, const char* k) {
  Napi::Value v = o.Get(k);
  if (!v.IsObject()) ThrowType(o.Env(), std::string(k) + " must be an object");
  return v.As<Napi::Object>();
}
inline Napi::Array GetArr(const Napi::Object& o, const char* k) {
  Napi::Value v = o.Get(k);
  if (!v.IsArray()) ThrowType(o.Env(), std::string(k) + " must be an array");
  return v.As<Napi::Array>();
}
inline Napi::Buffer<uint8_t> ToBuf(Napi::Env env, const std::vector<uint8_t>& v) {
  return Napi::Buffer<uint8_t>::Copy(env, v.data(), v.size());
}

// The namespace a request targets: an NsHandle object, or undefined/null for the process's own.
std::shared_ptr<NsState> NsArg(Napi::Value v);

}  // namespace nm
