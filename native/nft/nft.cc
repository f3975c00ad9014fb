// N-API entry points of the nf_tables module:
//   nftTransact(ns, msgs, opts?) -> Promise<results[]>   one transaction (see batch.cc)
//   nftList(ns, filter?)         -> Promise<{gen, tables, chains, sets, rules}>
//   nftEncode(msgs, seqBase?, opts?) -> Buffer           the exact bytes nftTransact would send
//   nftDecode(buf)               -> object[]             any nf_tables netlink messages
// JS values become nft::Value trees on the main thread; nftTransact encodes them on the libuv
// pool with the socket I/O (nftEncode, synchronous, on the main thread).
#include <linux/netfilter/nfnetlink.h>

#include <cmath>
#include <memory>

#include "../js_util.h"
#include "../modules.h"
#include "../worker.h"
#include "nft.h"
#include "glue.h"

namespace nm {

namespace {

using nft::Value;

constexpr int kMaxDepth = 12;

// One napi_typeof per value, and own enumerable string keys only (napi_get_all_property_names
// skips the prototype walk of GetPropertyNames): this runs for every element of a bulk update.
Value FromJs(Napi::Value v, int depth = 0) {
  Napi::Env env = v.Env();
  if (depth > kMaxDepth) ThrowType(env, "nft: value nested too deeply");
  switch (v.Type()) {
    case napi_undefined:
    case napi_null: return Value();
    case napi_boolean: return Value::Bool(v.As<Napi::Boolean>().Value());
    case napi_number: return Value::Num(v.As<Napi::Number>().DoubleValue());
    case napi_bigint: {
      bool lossless = false;
      uint64_t u = v.As<Napi::BigInt>().Uint64Value(&lossless);
      if (!lossless) ThrowType(env, "nft: BigInt out of the 64-bit range");
      return Value::U64(u);
    }
    case napi_string: return Value::Str(v.As<Napi::String>().Utf8Value());
    case napi_object: break;
    default: ThrowType(env, "nft: unsupported value (functions and symbols cannot be sent)");
  }
  if (v.IsTypedArray()) {
    if (v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) ThrowType(env, "nft: byte values must be Buffers");
    auto u8 = v.As<Napi::Uint8Array>();
    return Value::Bytes(u8.Data(), u8.ByteLength());
  }
  if (v.IsArray()) {
    auto a = v.As<Napi::Array>();
    Value out = Value::Arr();
    out.Items().reserve(a.Length());
    for (uint32_t i = 0; i < a.Length(); i++) out.Push(FromJs(a.Get(i), depth + 1));
    return out;
  }
  auto o = v.As<Napi::Object>();
  napi_value names;
  NAPI_THROW_IF_FAILED(env,
                       napi_get_all_property_names(env, o, napi_key_own_only,
                                                   static_cast<napi_key_filter>(napi_key_enumerable | napi_key_skip_symbols),
                                                   napi_key_numbers_to_strings, &names),
                       Value());
  Napi::Array keys(env, names);
  Value out = Value::Obj();
  out.Reserve(keys.Length());
  for (uint32_t i = 0; i < keys.Length(); i++) {
    Napi::Value k = keys.Get(i);
    Value x = FromJs(o.Get(k), depth + 1);
    if (!x.IsNull()) out.Set(k.As<Napi::String>().Utf8Value(), std::move(x));
  }
  return out;
}

Napi::Value ToJs(Napi::Env env, const Value& v) {
  switch (v.kind()) {
    case Value::kNull: return env.Undefined();
    case Value::kBool: return Napi::Boolean::New(env, v.AsBool());
    case Value::kNum: return Napi::Number::New(env, v.AsDouble());
    case Value::kU64:
      if (v.AsU64() <= (uint64_t(1) << 53)) return Napi::Number::New(env, static_cast<double>(v.AsU64()));
      return Napi::BigInt::New(env, v.AsU64());
    case Value::kStr: return Napi::String::New(env, v.AsStr());
    case Value::kBytes: return ToBuf(env, v.AsBytes());
    case Value::kArr: {
      Napi::Array a = Napi::Array::New(env, v.Items().size());
      for (size_t i = 0; i < v.Items().size(); i++) a.Set(static_cast<uint32_t>(i), ToJs(env, v.Items()[i]));
      return a;
    }
    case Value::kObj: {
      Napi::Object o = Napi::Object::New(env);
      for (auto& kv : v.Fields()) o.Set(kv.first, ToJs(env, kv.second));
      return o;
    }
  }
  return env.Undefined();
}

nft::BatchOptions Options(Napi::Value v) {
  nft::BatchOptions o;
  if (!v.IsObject()) return o;
  auto obj = v.As<Napi::Object>();
  o.atomic = GetBoolOr(obj, "atomic", true);
  if (Has(obj, "maxBytes")) o.max_bytes = GetU32(obj, "maxBytes");
  if (Has(obj, "genid")) o.genid = GetU32(obj, "genid");
  if (o.max_bytes < 4096) ThrowType(v.Env(), "maxBytes must be at least 4096");
  return o;
}

// Encoding and framing, on whichever thread calls it. A batch too large for one transaction is a
// NetlinkError EMSGSIZE (what sendmsg would say); malformed input an EncodeError (TypeError).
struct Prepared {
  nft::EncodedOps enc;
  std::vector<nft::Batch> batches;
};
void Prepare(const Value& msgs, const nft::BatchOptions& opts, Prepared* p) {
  try {
    p->enc = nft::EncodeOps(msgs);
    p->batches = nft::FrameBatches(p->enc, opts);
  } catch (const nft::TooBig& e) {
    NlError err;
    err.err = EMSGSIZE;
    err.op = "NFNL_MSG_BATCH_BEGIN";
    err.message = e.what();
    throw err;
  }
}

Value OpsArg(Napi::Value msgs) {
  if (!msgs.IsArray()) ThrowType(msgs.Env(), "nft: operations must be an array");
  return FromJs(msgs);
}

Napi::Value JsNftEncode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Prepared p;
  try {
    Prepare(OpsArg(info[0]), Options(info[2]), &p);
  } catch (const NlError& e) {
    throw Napi::Error(env, MakeJsError(env, e));
  } catch (const nft::EncodeError& e) {
    ThrowType(env, std::string("nft: ") + e.what());
  }
  uint32_t seq = info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 0;
  std::vector<uint8_t> out;
  for (auto& b : p.batches) {
    nft::PatchSeqs(b.buf, seq);
    seq += static_cast<uint32_t>(b.msg_of_seq.size());
    out.insert(out.end(), b.buf.begin(), b.buf.end());
  }
  return ToBuf(env, out);
}

Napi::Value JsNftDecode(const Napi::CallbackInfo& info) {
  if (!info[0].IsTypedArray()) ThrowType(info.Env(), "nftDecode(buffer)");
  auto u8 = info[0].As<Napi::Uint8Array>();
  return ToJs(info.Env(), nft::DecodeBuffer(u8.Data(), u8.ByteLength()));
}

Napi::Value Resolve(Napi::Env env, Value& v) { return ToJs(env, v); }

// Only the conversion from JS runs on the main thread; encoding (bulk element updates are
// thousands of elements) and the socket I/O run on the pool. An encoding error is carried back
// and rejects the promise with a TypeError.
struct TransactResult {
  Value value;
  std::string encode_error;
};

Napi::Value JsNftTransact(const Napi::CallbackInfo& info) {
  auto ns = NsArg(info[0]);
  auto msgs = std::make_shared<Value>(OpsArg(info[1]));
  nft::BatchOptions opts = Options(info[2]);
  return PromiseWorker<TransactResult>::Run(
      info.Env(),
      [ns, msgs, opts] {
        TransactResult r;
        r.encode_error = nft::EncodeAndTransact(*ns, *msgs, opts, &r.value);
        return r;
      },
      [](Napi::Env env, TransactResult& r) -> Napi::Value {
        if (!r.encode_error.empty()) throw Napi::TypeError::New(env, r.encode_error);
        return ToJs(env, r.value);
      });
}

Napi::Value JsNftList(const Napi::CallbackInfo& info) {
  auto ns = NsArg(info[0]);
  nft::ListFilter f;
  if (info[1].IsObject()) {
    auto o = info[1].As<Napi::Object>();
    if (Has(o, "family")) {
      int64_t fam;
      if (!nft::kFamilyNames.Lookup(GetStr(o, "family"), &fam)) ThrowType(info.Env(), "nftList: unknown family");
      f.family = static_cast<int>(fam);
    }
    f.table = GetStrOr(o, "table", "");
    f.elements = GetBoolOr(o, "elements", true);
    f.rules = GetBoolOr(o, "rules", true);
  }
  return PromiseWorker<Value>::Run(info.Env(), [ns, f] { return nft::List(*ns, f); }, Resolve);
}

}  // namespace

std::string nft::EncodeAndTransact(NsState& ns, const Value& msgs, const BatchOptions& opts, Value* out) {
  Prepared p;
  try {
    Prepare(msgs, opts, &p);
  } catch (const nft::EncodeError& e) {
    return std::string("nft: ") + e.what();
  }
  *out = nft::Transact(ns, p.enc, p.batches);
  return "";
}

nft::Value nft::OpsFromJs(Napi::Value msgs) { return OpsArg(msgs); }
Napi::Value nft::ValueToJs(Napi::Env env, const Value& v) { return ToJs(env, v); }

void InitNft(Napi::Env env, Napi::Object exports) {
  exports.Set("nftTransact", Napi::Function::New(env, JsNftTransact));
  exports.Set("nftList", Napi::Function::New(env, JsNftList));
  exports.Set("nftEncode", Napi::Function::New(env, JsNftEncode));
  exports.Set("nftDecode", Napi::Function::New(env, JsNftDecode));
}

}  // namespace nm
