// A small dynamic value (null, bool, number, u64, string, bytes, array, object) that carries nf_tables
// messages between JavaScript and the pure C++ codec. The N-API glue converts JS values to and from
// it on the main thread, so encoders and decoders never touch Napi types and can run on any thread.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace nm {
namespace nft {

class Value {
 public:
  enum Kind : uint8_t { kNull, kBool, kNum, kU64, kStr, kBytes, kArr, kObj };

  Value() = default;
  static Value Bool(bool b) { Value v; v.kind_ = kBool; v.b_ = b; return v; }
  static Value Num(double d) { Value v; v.kind_ = kNum; v.num_ = d; return v; }
  // 64-bit kernel values (handles, counters): JS gets a Number when exact, a BigInt otherwise.
  static Value U64(uint64_t u) { Value v; v.kind_ = kU64; v.u64_ = u; return v; }
  static Value Str(std::string s) { Value v; v.kind_ = kStr; v.str_ = std::move(s); return v; }
  static Value Bytes(std::vector<uint8_t> b) { Value v; v.kind_ = kBytes; v.bytes_ = std::move(b); return v; }
  static Value Bytes(const uint8_t* p, size_t n) { return Bytes(std::vector<uint8_t>(p, p + n)); }
  static Value Arr() { Value v; v.kind_ = kArr; return v; }
  static Value Obj() { Value v; v.kind_ = kObj; return v; }

  Kind kind() const { return kind_; }
  bool IsNull() const { return kind_ == kNull; }
  bool IsBool() const { return kind_ == kBool; }
  bool IsNum() const { return kind_ == kNum || kind_ == kU64; }
  bool IsStr() const { return kind_ == kStr; }
  bool IsBytes() const { return kind_ == kBytes; }
  bool IsArr() const { return kind_ == kArr; }
  bool IsObj() const { return kind_ == kObj; }

  bool AsBool() const { return b_; }
  double AsDouble() const { return kind_ == kU64 ? static_cast<double>(u64_) : num_; }
  uint64_t AsU64() const { return u64_; }
  const std::string& AsStr() const { return str_; }
  const std::vector<uint8_t>& AsBytes() const { return bytes_; }
  const std::vector<Value>& Items() const { return arr_; }
  std::vector<Value>& Items() { return arr_; }
  const std::vector<std::pair<std::string, Value>>& Fields() const { return obj_; }

  // Object access. Get() returns nullptr for a missing key or an explicit null/undefined.
  const Value* Get(const std::string& k) const {
    for (auto& kv : obj_)
      if (kv.first == k) return kv.second.IsNull() ? nullptr : &kv.second;
    return nullptr;
  }
  Value& Set(std::string k, Value v) {
    obj_.emplace_back(std::move(k), std::move(v));
    return obj_.back().second;
  }
  void Reserve(size_t n) { obj_.reserve(n); }
  Value& Push(Value v) {
    arr_.push_back(std::move(v));
    return arr_.back();
  }

 private:
  Kind kind_ = kNull;
  bool b_ = false;
  double num_ = 0;
  uint64_t u64_ = 0;
  std::string str_;
  std::vector<uint8_t> bytes_;
  std::vector<Value> arr_;
  std::vector<std::pair<std::string, Value>> obj_;
};

}  // namespace nft
}  // namespace nm
