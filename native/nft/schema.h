// Table-driven nf_tables attribute codec. Every object (table, chain, set, element, rule) and every
// expression (payload, meta, cmp, ...) is described once as a list of fields: JS key, netlink
// attribute type and wire kind. The same description drives the encoder (Value -> attributes) and
// the decoder (attributes -> Value), so what we send and what we read back cannot drift apart —
// libnftnl's expr_ops idea, with the per-field code replaced by data.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "nl/attr.h"
#include "value.h"

namespace nm {
namespace nft {

// Malformed input caught while encoding (the TypeScript layer validates first; this only keeps
// bad input from ever reaching the kernel). Surfaces in JS as a TypeError.
struct EncodeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Name {
  int64_t v;
  const char* name;
};
struct Names {
  const Name* p;
  size_t n;
  const char* Find(int64_t v) const;
  bool Lookup(const std::string& s, int64_t* v) const;
};

enum class Kind : uint8_t {
  kStr,      // NUL-terminated string
  kU8,       // u8
  kBe16,     // unsigned 16-bit, network byte order
  kBe32,     // unsigned 32-bit, network byte order
  kBe64,     // unsigned 64-bit, network byte order (handles, counters, timeouts)
  kS32,      // signed 32-bit, network byte order (chain priority)
  kEnum32,   // be32 named by `names`; unknown values decode as numbers
  kEnum8,    // u8 named by `names`
  kFlags32,  // be32 bit set named by `names` <-> array of names (unknown bits as numbers)
  kBytes,    // raw bytes
  kData,     // struct nft_data nest: NFTA_DATA_VALUE bytes, or NFTA_DATA_VERDICT {verdict, chain}
  kNest,     // nest of `sub` fields <-> object
  kList,     // nest of NFTA_LIST_ELEM nests of `sub` fields <-> array of objects
  kExprs,    // nest of NFTA_LIST_ELEM expressions <-> array of {type, ...fields}
  kUdata,    // libnftnl TLV userdata; the `sub` fields (kUdStr/kUdU32, attr = TLV type) are
             // flattened into the parent object; a raw Buffer under `key` is sent as is
  kUdStr,    // inside kUdata: NUL-terminated string TLV
  kUdU32,    // inside kUdata: host-endian u32 TLV
};

struct Schema;
struct Field {
  const char* key;
  uint16_t attr;
  Kind kind;
  const Names* names = nullptr;
  const Schema* sub = nullptr;
  // Decoding leaves the field out when it is 0 / empty. Used where the kernel always dumps an
  // attribute that userspace (nft) leaves out when it has its default value, so that a rule we
  // send and the rule we read back compare equal.
  bool omit_zero = false;
};

struct Schema {
  const char* name;
  std::vector<Field> fields;
};

// Appends the attributes of `obj` described by `s`. Keys of `obj` that are neither in `s` nor in
// `skip` are an error (catches typos such as `{ type: 'payload', bsae: ... }`). Throws EncodeError.
void EncodeAttrs(const Schema& s, const Value& obj, NlBuilder& b, const char* const* skip = nullptr);
// Decodes an attribute run into the fields of `obj` (an object); never throws, never reads out of
// bounds, skips what it cannot parse.
void DecodeAttrsInto(const Schema& s, const uint8_t* p, size_t len, Value* obj);
inline Value DecodeAttrs(const Schema& s, const uint8_t* p, size_t len) {
  Value out = Value::Obj();
  DecodeAttrsInto(s, p, len, &out);
  return out;
}
inline Value DecodeAttrs(const Schema& s, const NlAttr& nest) { return DecodeAttrs(s, nest.data, nest.len); }

// Names the attribute that the kernel blamed (NLMSGERR_ATTR_OFFS): `target` is its offset from
// `base` (the message's nlmsghdr); [p, p + len) is the attribute run described by `s`. Returns a
// path of schema keys such as "exprs[2] (immediate).data.chain" or "elements[17].key", or "" when
// no attribute starts there. `list_base` is added to the indexes of the outermost list (the
// first element of a split element message). Bounds-checked like the decoder.
std::string AttrPath(const Schema& s, const uint8_t* base, const uint8_t* p, size_t len, size_t target,
                     size_t list_base = 0);

// Closes a nest, refusing one longer than a netlink attribute can describe (nla_len is 16 bits).
void EndNestChecked(NlBuilder& b, size_t off, const char* what);

// Expressions (expr.cc): schema by kernel name ("payload", "cmp", ...), nullptr when unknown.
const Schema* FindExpr(const std::string& name);
// Encodes one expression as an NFTA_LIST_ELEM nest. Unknown names need a `raw` Buffer holding the
// NFTA_EXPR_DATA payload; decoding an unknown expression yields exactly that.
void EncodeExpr(const Value& e, NlBuilder& b);
Value DecodeExpr(const NlAttr& list_elem);

// Verdict names shared by expressions and set elements.
extern const Names kVerdictNames;

}  // namespace nft
}  // namespace nm
