// The nf_tables module's pieces other modules build on (native/chain.cc): one transaction from JS
// values, run inside their own worker call.
#pragma once
#include <napi.h>

#include <string>

#include "nft.h"

namespace nm {
namespace nft {

// nftTransact's operations from JS (main thread; throws TypeError).
Value OpsFromJs(Napi::Value msgs);
// Encodes and sends them as nftTransact does (any thread): "" and the results in *out, or the
// encoding error's message (nothing sent). Throws NlError for the kernel's refusal.
std::string EncodeAndTransact(NsState& ns, const Value& msgs, const BatchOptions& opts, Value* out);
// A result (or any Value) as JS.
Napi::Value ValueToJs(Napi::Env env, const Value& v);

}  // namespace nft
}  // namespace nm
