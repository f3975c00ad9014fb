#include "schema.h"

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include <cmath>
#include <cstring>

namespace nm {
namespace nft {

namespace {

const Name kVerdicts[] = {
    {NF_DROP, "drop"},         {NF_ACCEPT, "accept"}, {NF_QUEUE, "queue"},   {NFT_CONTINUE, "continue"},
    {NFT_BREAK, "break"},      {NFT_JUMP, "jump"},    {NFT_GOTO, "goto"},    {NFT_RETURN, "return"},
};

[[noreturn]] void Bad(const Schema& s, const Field& f, const std::string& why) {
  throw EncodeError(std::string(s.name) + "." + f.key + ": " + why);
}

// Integer from a JS number (or u64), checked against [lo, hi].
int64_t Int(const Schema& s, const Field& f, const Value& v, int64_t lo, int64_t hi) {
  if (v.kind() == Value::kU64) {
    if (v.AsU64() > static_cast<uint64_t>(hi)) Bad(s, f, "out of range");
    return static_cast<int64_t>(v.AsU64());
  }
  if (!v.IsNum()) Bad(s, f, "must be a number");
  double d = v.AsDouble();
  if (!std::isfinite(d) || std::floor(d) != d) Bad(s, f, "must be an integer");
  if (d < static_cast<double>(lo) || d > static_cast<double>(hi)) Bad(s, f, "out of range");
  return static_cast<int64_t>(d);
}

uint64_t U64Of(const Schema& s, const Field& f, const Value& v) {
  if (v.kind() == Value::kU64) return v.AsU64();
  return static_cast<uint64_t>(Int(s, f, v, 0, int64_t(1) << 53));
}

int64_t EnumOf(const Schema& s, const Field& f, const Value& v, int64_t lo, int64_t hi) {
  if (v.IsStr()) {
    int64_t n;
    if (!f.names || !f.names->Lookup(v.AsStr(), &n)) Bad(s, f, "unknown name \"" + v.AsStr() + "\"");
    return n;
  }
  return Int(s, f, v, lo, hi);
}

uint32_t FlagsOf(const Schema& s, const Field& f, const Value& v) {
  if (v.IsNum()) return static_cast<uint32_t>(Int(s, f, v, 0, UINT32_MAX));
  if (!v.IsArr()) Bad(s, f, "must be an array of flag names");
  uint32_t bits = 0;
  for (auto& x : v.Items()) bits |= static_cast<uint32_t>(EnumOf(s, f, x, 0, UINT32_MAX));
  return bits;
}

void PutChecked(NlBuilder& b, const Schema& s, const Field& f, uint16_t attr, const void* p, size_t n) {
  if (n > 0xffff - NLA_HDRLEN) Bad(s, f, "too long for a netlink attribute");
  b.Put(attr, p, n);
}

void EncodeData(const Schema& s, const Field& f, const Value& v, NlBuilder& b) {
  size_t nest = b.BeginNest(f.attr);
  if (v.IsBytes()) {
    PutChecked(b, s, f, NFTA_DATA_VALUE, v.AsBytes().data(), v.AsBytes().size());
  } else if (v.IsObj() && v.Get("verdict")) {
    for (auto& kv : v.Fields())
      if (kv.first != "verdict" && kv.first != "chain") Bad(s, f, "unknown verdict field " + kv.first);
    static const Field kCode{"verdict", 0, Kind::kEnum32, &kVerdictNames};
    size_t vn = b.BeginNest(NFTA_DATA_VERDICT);
    int32_t code = static_cast<int32_t>(EnumOf(s, kCode, *v.Get("verdict"), INT32_MIN, INT32_MAX));
    b.PutBe32(NFTA_VERDICT_CODE, static_cast<uint32_t>(code));
    if (const Value* c = v.Get("chain")) {
      if (!c->IsStr()) Bad(s, f, "verdict chain must be a string");
      b.PutStr(NFTA_VERDICT_CHAIN, c->AsStr());
    } else if (code == NFT_JUMP || code == NFT_GOTO) {
      Bad(s, f, "jump and goto need a chain");
    }
    EndNestChecked(b, vn, f.key);
  } else {
    Bad(s, f, "must be a Buffer or a verdict {verdict, chain?}");
  }
  EndNestChecked(b, nest, f.key);
}

void EncodeUdata(const Schema& s, const Field& f, const Value& obj, NlBuilder& b) {
  std::vector<uint8_t> tlv;
  if (const Value* raw = obj.Get(f.key)) {
    if (!raw->IsBytes()) Bad(s, f, "must be a Buffer");
    tlv = raw->AsBytes();
  } else {
    for (auto& u : f.sub->fields) {
      const Value* v = obj.Get(u.key);
      if (!v) continue;
      std::vector<uint8_t> val;
      if (u.kind == Kind::kUdStr) {
        if (!v->IsStr()) Bad(s, u, "must be a string");
        if (v->AsStr().find('\0') != std::string::npos) Bad(s, u, "must not contain NUL");
        val.assign(v->AsStr().begin(), v->AsStr().end());
        val.push_back(0);  // libnftnl stores comments with their terminating NUL
      } else {
        uint32_t x = static_cast<uint32_t>(Int(s, u, *v, 0, UINT32_MAX));
        val.resize(4);
        std::memcpy(val.data(), &x, 4);  // host byte order, as nftnl_udata_put_u32 does
      }
      if (val.size() > 255) Bad(s, u, "longer than 255 bytes");
      tlv.push_back(static_cast<uint8_t>(u.attr));
      tlv.push_back(static_cast<uint8_t>(val.size()));
      tlv.insert(tlv.end(), val.begin(), val.end());
    }
  }
  if (!tlv.empty()) PutChecked(b, s, f, f.attr, tlv.data(), tlv.size());
}

bool IsUdataKey(const Field& f, const std::string& k) {
  if (k == f.key) return true;
  for (auto& u : f.sub->fields)
    if (k == u.key) return true;
  return false;
}

void EncodeField(const Schema& s, const Field& f, const Value& v, NlBuilder& b) {
  switch (f.kind) {
    case Kind::kStr:
      if (!v.IsStr()) Bad(s, f, "must be a string");
      if (v.AsStr().find('\0') != std::string::npos) Bad(s, f, "must not contain NUL");
      PutChecked(b, s, f, f.attr, v.AsStr().c_str(), v.AsStr().size() + 1);
      break;
    case Kind::kU8: b.PutU8(f.attr, static_cast<uint8_t>(Int(s, f, v, 0, 255))); break;
    case Kind::kEnum8: b.PutU8(f.attr, static_cast<uint8_t>(EnumOf(s, f, v, 0, 255))); break;
    case Kind::kBe16: b.PutBe16(f.attr, static_cast<uint16_t>(Int(s, f, v, 0, 65535))); break;
    case Kind::kBe32: b.PutBe32(f.attr, static_cast<uint32_t>(Int(s, f, v, 0, UINT32_MAX))); break;
    case Kind::kS32:
      b.PutBe32(f.attr, static_cast<uint32_t>(static_cast<int32_t>(Int(s, f, v, INT32_MIN, INT32_MAX))));
      break;
    case Kind::kEnum32:
      b.PutBe32(f.attr, static_cast<uint32_t>(EnumOf(s, f, v, INT32_MIN, UINT32_MAX)));
      break;
    case Kind::kFlags32: b.PutBe32(f.attr, FlagsOf(s, f, v)); break;
    case Kind::kBe64: b.PutBe64(f.attr, U64Of(s, f, v)); break;
    case Kind::kBytes:
      if (!v.IsBytes()) Bad(s, f, "must be a Buffer");
      PutChecked(b, s, f, f.attr, v.AsBytes().data(), v.AsBytes().size());
      break;
    case Kind::kData: EncodeData(s, f, v, b); break;
    case Kind::kNest: {
      if (!v.IsObj()) Bad(s, f, "must be an object");
      size_t n = b.BeginNest(f.attr);
      EncodeAttrs(*f.sub, v, b);
      EndNestChecked(b, n, f.key);
      break;
    }
    case Kind::kList: {
      if (!v.IsArr()) Bad(s, f, "must be an array");
      size_t n = b.BeginNest(f.attr);
      for (auto& item : v.Items()) {
        if (!item.IsObj()) Bad(s, f, "items must be objects");
        size_t e = b.BeginNest(NFTA_LIST_ELEM);
        EncodeAttrs(*f.sub, item, b);
        EndNestChecked(b, e, f.key);
      }
      EndNestChecked(b, n, f.key);
      break;
    }
    case Kind::kExprs: {
      if (!v.IsArr()) Bad(s, f, "must be an array of expressions");
      size_t n = b.BeginNest(f.attr);
      for (auto& e : v.Items()) EncodeExpr(e, b);
      EndNestChecked(b, n, f.key);
      break;
    }
    case Kind::kUdata:
    case Kind::kUdStr:
    case Kind::kUdU32:
      break;  // handled by EncodeAttrs
  }
}

Value DecodeData(const NlAttr& a) {
  NlAttrTable<NFTA_DATA_MAX> t(a);
  if (t.Has(NFTA_DATA_VALUE)) return Value::Bytes(t[NFTA_DATA_VALUE].data, t[NFTA_DATA_VALUE].len);
  if (t.Has(NFTA_DATA_VERDICT)) {
    NlAttrTable<NFTA_VERDICT_MAX> vt(t[NFTA_DATA_VERDICT]);
    Value v = Value::Obj();
    int32_t code = static_cast<int32_t>(vt[NFTA_VERDICT_CODE].Be32());
    const char* n = kVerdictNames.Find(code);
    v.Set("verdict", n ? Value::Str(n) : Value::Num(code));
    if (vt.Has(NFTA_VERDICT_CHAIN)) v.Set("chain", Value::Str(vt[NFTA_VERDICT_CHAIN].Str()));
    return v;
  }
  return Value();
}

Value Named(const Names* names, int64_t x) {
  const char* n = names ? names->Find(x) : nullptr;
  return n ? Value::Str(n) : Value::Num(static_cast<double>(x));
}

Value FlagNames(const Names* names, uint32_t bits) {
  Value out = Value::Arr();
  for (int i = 0; i < 32; i++) {
    uint32_t bit = uint32_t(1) << i;
    if (bits & bit) out.Push(Named(names, bit));
  }
  return out;
}

void DecodeUdata(const Field& f, const NlAttr& a, Value* obj) {
  size_t i = 0;
  while (i + 2 <= a.len) {
    uint8_t type = a.data[i], len = a.data[i + 1];
    if (i + 2 + len > a.len) break;  // truncated TLV: stop, never read past the attribute
    const uint8_t* val = a.data + i + 2;
    for (auto& u : f.sub->fields) {
      if (u.attr != type) continue;
      if (u.kind == Kind::kUdStr) {
        size_t n = 0;
        while (n < len && val[n]) n++;
        obj->Set(u.key, Value::Str(std::string(reinterpret_cast<const char*>(val), n)));
      } else if (u.kind == Kind::kUdU32 && len == 4) {
        uint32_t x;
        std::memcpy(&x, val, 4);
        obj->Set(u.key, Value::Num(x));
      }
    }
    i += 2 + len;
  }
}

// Smallest payload a fixed-size kind needs; shorter attributes are skipped, not read.
size_t MinLen(Kind k) {
  switch (k) {
    case Kind::kU8:
    case Kind::kEnum8: return 1;
    case Kind::kBe16: return 2;
    case Kind::kBe32:
    case Kind::kS32:
    case Kind::kEnum32:
    case Kind::kFlags32: return 4;
    case Kind::kBe64: return 8;
    default: return 0;
  }
}

bool DecodeField(const Field& f, const NlAttr& a, Value* out) {
  if (a.len < MinLen(f.kind)) return false;
  int32_t s32 = static_cast<int32_t>(a.Be32());
  switch (f.kind) {
    case Kind::kStr: *out = Value::Str(a.Str()); break;
    case Kind::kU8: *out = Value::Num(a.U8()); break;
    case Kind::kEnum8: *out = Named(f.names, a.U8()); break;
    case Kind::kBe16: *out = Value::Num(a.Be16()); break;
    case Kind::kBe32: *out = Value::Num(a.Be32()); break;
    case Kind::kS32: *out = Value::Num(s32); break;
    // Enumerations holding signed values (verdict codes) list them as negative numbers.
    case Kind::kEnum32: *out = Named(f.names, f.names && f.names->Find(s32) ? s32 : int64_t(a.Be32())); break;
    case Kind::kFlags32: *out = FlagNames(f.names, a.Be32()); break;
    case Kind::kBe64: *out = Value::U64(a.Be64()); break;
    case Kind::kBytes: *out = Value::Bytes(a.data, a.len); break;
    case Kind::kData: *out = DecodeData(a); break;
    case Kind::kNest: *out = DecodeAttrs(*f.sub, a); break;
    case Kind::kList:
    case Kind::kExprs: {
      *out = Value::Arr();
      NlAttrIter it(a);
      NlAttr e;
      while (it.Next(&e))
        if (e.type == NFTA_LIST_ELEM) out->Push(f.kind == Kind::kExprs ? DecodeExpr(e) : DecodeAttrs(*f.sub, e));
      break;
    }
    default: return false;
  }
  return !out->IsNull();
}

// A fixed-size attribute whose bytes are all zero (the kernel's default for omit_zero fields).
bool IsZero(const NlAttr& a) {
  for (size_t i = 0; i < a.len; i++)
    if (a.data[i]) return false;
  return true;
}

}  // namespace

const Names kVerdictNames{kVerdicts, sizeof kVerdicts / sizeof kVerdicts[0]};

const char* Names::Find(int64_t v) const {
  for (size_t i = 0; i < n; i++)
    if (p[i].v == v) return p[i].name;
  return nullptr;
}

bool Names::Lookup(const std::string& s, int64_t* v) const {
  for (size_t i = 0; i < n; i++)
    if (s == p[i].name) {
      *v = p[i].v;
      return true;
    }
  return false;
}

namespace {
std::string DataPath(const NlAttr& a, const uint8_t* base, size_t target) {
  NlAttrIter it(a);
  NlAttr x;
  while (it.Next(&x)) {
    size_t off = static_cast<size_t>(x.data - NLA_HDRLEN - base);
    if (x.type == NFTA_DATA_VERDICT && target > off && target < off + NLA_HDRLEN + x.len) {
      NlAttrIter vt(x);
      NlAttr v;
      while (vt.Next(&v))
        if (static_cast<size_t>(v.data - NLA_HDRLEN - base) == target) return v.type == NFTA_VERDICT_CHAIN ? ".chain" : ".verdict";
      return ".verdict";
    }
  }
  return "";
}
}  // namespace

std::string AttrPath(const Schema& s, const uint8_t* base, const uint8_t* p, size_t len, size_t target, size_t list_base) {
  NlAttrIter it(p, len);
  NlAttr a;
  while (it.Next(&a)) {
    size_t off = static_cast<size_t>(a.data - NLA_HDRLEN - base);
    size_t end = off + NLA_HDRLEN + a.len;
    if (target < off || target >= end) continue;
    const Field* f = nullptr;
    for (auto& x : s.fields)
      if (x.attr == a.type) f = &x;
    if (!f) return "";
    std::string key = f->key;
    if (target == off) return key;
    switch (f->kind) {
      case Kind::kNest: {
        std::string sub = AttrPath(*f->sub, base, a.data, a.len, target);
        return sub.empty() ? key : key + "." + sub;
      }
      case Kind::kData: return key + DataPath(a, base, target);
      case Kind::kList:
      case Kind::kExprs: {
        NlAttrIter li(a);
        NlAttr e;
        for (size_t i = 0; li.Next(&e); i++) {
          size_t eoff = static_cast<size_t>(e.data - NLA_HDRLEN - base);
          if (target < eoff || target >= eoff + NLA_HDRLEN + e.len) continue;
          std::string at = key + "[" + std::to_string(i + list_base) + "]";
          if (f->kind == Kind::kList) {
            if (target == eoff) return at;
            std::string sub = AttrPath(*f->sub, base, e.data, e.len, target);
            return sub.empty() ? at : at + "." + sub;
          }
          NlAttrTable<NFTA_EXPR_MAX> t(e);
          at += " (" + t[NFTA_EXPR_NAME].Str() + ")";
          const NlAttr& d = t[NFTA_EXPR_DATA];
          const Schema* es = FindExpr(t[NFTA_EXPR_NAME].Str());
          if (!d.ok() || !es || target <= static_cast<size_t>(d.data - NLA_HDRLEN - base)) return at;
          std::string sub = AttrPath(*es, base, d.data, d.len, target);
          return sub.empty() ? at : at + "." + sub;
        }
        return key;
      }
      default: return key;
    }
  }
  return "";
}

void EndNestChecked(NlBuilder& b, size_t off, const char* what) {
  if (b.Size() - off > 0xffff)
    throw EncodeError(std::string(what) + ": more than 65535 bytes in one netlink attribute");
  b.EndNest(off);
}

void EncodeAttrs(const Schema& s, const Value& obj, NlBuilder& b, const char* const* skip) {
  if (!obj.IsObj()) throw EncodeError(std::string(s.name) + ": must be an object");
  for (auto& kv : obj.Fields()) {
    if (kv.second.IsNull()) continue;
    bool known = false;
    for (auto& f : s.fields)
      if (f.kind == Kind::kUdata ? IsUdataKey(f, kv.first) : kv.first == f.key) known = true;
    for (const char* const* k = skip; !known && k && *k; k++) known = kv.first == *k;
    if (!known) throw EncodeError(std::string(s.name) + ": unknown field \"" + kv.first + "\"");
  }
  for (auto& f : s.fields) {
    if (f.kind == Kind::kUdata) {
      EncodeUdata(s, f, obj, b);
      continue;
    }
    if (const Value* v = obj.Get(f.key)) EncodeField(s, f, *v, b);
  }
}

void DecodeAttrsInto(const Schema& s, const uint8_t* p, size_t len, Value* obj) {
  Value& out = *obj;
  for (auto& f : s.fields) {
    NlAttrIter it(p, len);
    NlAttr a;
    while (it.Next(&a)) {
      if (a.type != f.attr) continue;
      if (f.kind == Kind::kUdata) {
        DecodeUdata(f, a, &out);
        break;
      }
      Value v;
      if (!(f.omit_zero && IsZero(a)) && DecodeField(f, a, &v)) out.Set(f.key, std::move(v));
      break;  // first occurrence wins (the kernel never repeats these)
    }
  }
}

}  // namespace nft
}  // namespace nm
