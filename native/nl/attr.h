// Netlink message and attribute writer/reader. Bytes only: no sockets, no policy.
#pragma once
#include <linux/netlink.h>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace nm {

inline size_t NlAlign(size_t n) { return (n + 3) & ~size_t(3); }

// Appends netlink messages to one buffer, so that several requests go out in one sendmsg().
class NlBuilder {
 public:
  // Starts a message and returns its offset; EndMsg() patches nlmsg_len.
  size_t BeginMsg(uint16_t type, uint16_t flags, uint32_t seq) {
    size_t off = buf_.size();
    nlmsghdr h{};
    h.nlmsg_type = type;
    h.nlmsg_flags = flags;
    h.nlmsg_seq = seq;
    Append(&h, sizeof h);
    return off;
  }
  void EndMsg(size_t off) { Hdr(off)->nlmsg_len = static_cast<uint32_t>(buf_.size() - off); }
  // Appends the family header (ifinfomsg, nfgenmsg, ...) right after nlmsghdr.
  template <class T>
  void PutStruct(const T& v) { Append(&v, sizeof v); }

  void Put(uint16_t type, const void* data, size_t len) {
    nlattr a{};
    a.nla_type = type;
    a.nla_len = static_cast<uint16_t>(NLA_HDRLEN + len);
    Append(&a, sizeof a);
    Append(data, len);
  }
  void PutFlag(uint16_t type) { Put(type, nullptr, 0); }
  void PutU8(uint16_t type, uint8_t v) { Put(type, &v, 1); }
  void PutU16(uint16_t type, uint16_t v) { Put(type, &v, 2); }
  void PutU32(uint16_t type, uint32_t v) { Put(type, &v, 4); }
  void PutU64(uint16_t type, uint64_t v) { Put(type, &v, 8); }
  void PutS32(uint16_t type, int32_t v) { Put(type, &v, 4); }
  void PutBe16(uint16_t type, uint16_t v) { v = __builtin_bswap16(v); Put(type, &v, 2); }
  void PutBe32(uint16_t type, uint32_t v) { v = __builtin_bswap32(v); Put(type, &v, 4); }
  void PutBe64(uint16_t type, uint64_t v) { v = __builtin_bswap64(v); Put(type, &v, 8); }
  // NUL-terminated string, as the kernel's NLA_STRING/NLA_NUL_STRING policies expect.
  void PutStr(uint16_t type, const std::string& s) { Put(type, s.c_str(), s.size() + 1); }
  void PutBytes(uint16_t type, const std::vector<uint8_t>& b) { Put(type, b.data(), b.size()); }

  size_t BeginNest(uint16_t type) {
    size_t off = buf_.size();
    nlattr a{};
    a.nla_type = type | NLA_F_NESTED;
    Append(&a, sizeof a);
    return off;
  }
  void EndNest(size_t off) {
    auto* a = reinterpret_cast<nlattr*>(buf_.data() + off);
    a->nla_len = static_cast<uint16_t>(buf_.size() - off);
  }

  nlmsghdr* Hdr(size_t off) { return reinterpret_cast<nlmsghdr*>(buf_.data() + off); }
  const std::vector<uint8_t>& Bytes() const { return buf_; }
  std::vector<uint8_t>& Bytes() { return buf_; }
  size_t Size() const { return buf_.size(); }
  void Clear() { buf_.clear(); }

 private:
  void Append(const void* p, size_t n) {
    size_t at = buf_.size();
    buf_.resize(at + NlAlign(n), 0);
    if (n) std::memcpy(buf_.data() + at, p, n);
  }
  std::vector<uint8_t> buf_;
};

// One attribute as read from a kernel message. All accessors are bounds-checked and return a
// default on short payloads, so a malformed reply can never make us read past the buffer.
struct NlAttr {
  uint16_t type = 0;  // NLA_TYPE_MASK applied
  const uint8_t* data = nullptr;
  size_t len = 0;

  bool ok() const { return data != nullptr; }
  uint8_t U8() const { return len >= 1 ? data[0] : 0; }
  uint16_t U16() const { uint16_t v = 0; if (len >= 2) std::memcpy(&v, data, 2); return v; }
  uint32_t U32() const { uint32_t v = 0; if (len >= 4) std::memcpy(&v, data, 4); return v; }
  uint64_t U64() const { uint64_t v = 0; if (len >= 8) std::memcpy(&v, data, 8); return v; }
  int32_t S32() const { return static_cast<int32_t>(U32()); }
  uint16_t Be16() const { return __builtin_bswap16(U16()); }
  uint32_t Be32() const { return __builtin_bswap32(U32()); }
  uint64_t Be64() const { return __builtin_bswap64(U64()); }
  std::string Str() const {
    size_t n = 0;
    while (n < len && data[n]) n++;
    return std::string(reinterpret_cast<const char*>(data), n);
  }
  std::vector<uint8_t> Bytes() const { return std::vector<uint8_t>(data, data + len); }
};

// Walks a run of attributes. Stops at the first malformed one.
class NlAttrIter {
 public:
  NlAttrIter(const uint8_t* p, size_t len) : p_(p), end_(p + len) {}
  explicit NlAttrIter(const NlAttr& nest) : p_(nest.data), end_(nest.data + nest.len) {}
  bool Next(NlAttr* out) {
    if (!p_ || static_cast<size_t>(end_ - p_) < NLA_HDRLEN) return false;
    nlattr a;
    std::memcpy(&a, p_, sizeof a);
    if (a.nla_len < NLA_HDRLEN || a.nla_len > static_cast<size_t>(end_ - p_)) return false;
    out->type = a.nla_type & NLA_TYPE_MASK;
    out->data = p_ + NLA_HDRLEN;
    out->len = a.nla_len - NLA_HDRLEN;
    size_t step = NlAlign(a.nla_len);
    p_ = step >= static_cast<size_t>(end_ - p_) ? end_ : p_ + step;
    return true;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// Attributes indexed by type (last one wins), for types up to kMax.
template <size_t kMax = 128>
struct NlAttrTable {
  NlAttr a[kMax + 1];
  NlAttrTable(const uint8_t* p, size_t len) { Fill(NlAttrIter(p, len)); }
  explicit NlAttrTable(const NlAttr& nest) { Fill(NlAttrIter(nest)); }
  const NlAttr& operator[](size_t t) const {
    static const NlAttr kEmpty{};
    return t <= kMax ? a[t] : kEmpty;
  }
  bool Has(size_t t) const { return t <= kMax && a[t].ok(); }

 private:
  void Fill(NlAttrIter it) {
    NlAttr x;
    while (it.Next(&x))
      if (x.type <= kMax) a[x.type] = x;
  }
};

// Payload of a message after its family header, as an attribute run.
inline bool NlPayload(const nlmsghdr* h, size_t family_hdr, const uint8_t** p, size_t* len) {
  size_t off = NLMSG_HDRLEN + NlAlign(family_hdr);
  if (h->nlmsg_len < off) return false;
  *p = reinterpret_cast<const uint8_t*>(h) + off;
  *len = h->nlmsg_len - off;
  return true;
}

}  // namespace nm
