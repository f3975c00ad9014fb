// The state store's file operations (fs.cc), for the modules that run them inside a larger worker
// call (native/chain.cc). Plain POSIX I/O, no policy.
#pragma once
#include <napi.h>

#include <string>
#include <variant>
#include <vector>

#include "nl/socket.h"

namespace nm {
namespace fsb {

enum class Kind { Reserve, Release, Write, Remove, Rmdir, Read, List, Lock };

struct Op {
  Kind kind;
  std::string file;  // the directory for List
  std::string data;  // content (Reserve, Write) or owner (Release)
  bool has_owner = false;
  bool sync = false;  // Write: fsync; Lock: exclusive
};

// null (absent) | bool | string | names | fd
using Result = std::variant<std::monostate, bool, std::string, std::vector<std::string>, int>;

struct Outcome {
  std::vector<Result> results;
  bool failed = false;
  NlError err;
};

// fsBatch's ops from JS (main thread; throws TypeError).
std::vector<Op> ParseOps(const Napi::Array& arr);
// Runs them in order (any thread), as fsBatch does.
Outcome RunAll(const std::vector<Op>& ops);
// One result as fsBatch resolves it.
Napi::Value ResultToJs(Napi::Env env, const Result& r);

}  // namespace fsb
}  // namespace nm
