// Each protocol module adds its functions to the addon's exports.
#pragma once
#include <napi.h>

namespace nm {
void InitRtnl(Napi::Env env, Napi::Object exports);  // native/rtnl/
void InitNft(Napi::Env env, Napi::Object exports);   // native/nft/
void InitFs(Napi::Env env, Napi::Object exports);    // native/fs/ (the state store's file I/O)
void InitChain(Napi::Env env, Napi::Object exports); // native/chain.cc (several modules' work in one call)
}  // namespace nm
