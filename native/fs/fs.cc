// The state store's file operations, many per worker call: a connect's claims (endpoint, address,
// host ports) or a disconnect's releases cost one trip to the thread pool instead of ~5 each.
// Plain POSIX I/O with no policy: which files, what they hold and what a result means is decided
// by lib/state/store.ts.
//
// fsBatch(ops) -> Promise<results>; ops run in order, the first unexpected error stops the batch
// and rejects with it (`index` = that op, `results` = the results of the ops before it). Expected
// outcomes are results, not errors:
//   { op: 'reserve', file, data }     -> true, or false when file exists (temp file + link(): the
//                                        file appears with its content in one step, like O_EXCL)
//   { op: 'release', file, owner? }   -> true when removed; false when absent or owned by another
//   { op: 'write', file, data, sync } -> true (temp file + rename; fsync file and directory if sync)
//   { op: 'remove', file }            -> true when removed, false when absent
//   { op: 'read', file }              -> the content, or null when absent
//   { op: 'list', dir }               -> names not starting with '.', [] when dir is absent
//   { op: 'lock', file, exclusive }   -> the fd holding flock(LOCK_SH or LOCK_EX) on file (made
//                                        0600), or false when another holder is in the way: then
//                                        the batch stops there (it never waits; the caller takes the
//                                        lock the waiting way and runs the rest). A batch that fails
//                                        later closes the fds it locked (their results read null).
// Missing parent directories are made (mode 0700) for reserve and write; files are mode 0600.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <napi.h>

#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "js_util.h"
#include "modules.h"
#include "worker.h"
#include "fs/fs.h"

namespace nm {
namespace fsb {
namespace {

[[noreturn]] void Fail(int err, const char* op, const std::string& path) {
  NlError e;
  e.err = err;
  e.op = op;
  e.message = path;
  throw e;
}

std::string DirOf(const std::string& f) {
  size_t s = f.rfind('/');
  if (s == std::string::npos) return ".";
  return s == 0 ? "/" : f.substr(0, s);
}

std::string BaseOf(const std::string& f) {
  size_t s = f.rfind('/');
  return s == std::string::npos ? f : f.substr(s + 1);
}

// mkdir -p with mode 0700 for what it creates.
void MakeDirs(const std::string& dir) {
  if (dir.empty() || dir == "/" || dir == ".") return;
  if (mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST) return;
  if (errno != ENOENT) Fail(errno, "mkdir", dir);
  MakeDirs(DirOf(dir));
  if (mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST) Fail(errno, "mkdir", dir);
}

// `.NAME.XXXXXXXX.SUFFIX` next to `file` (the store's temp-file pattern, swept by reconcile).
// Its random part comes from a per-thread generator seeded once from getrandom (a syscall per
// name was most of its cost; O_EXCL, not the randomness, is what keeps two names apart).
uint32_t TempRandom() {
  thread_local uint64_t state = [] {
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != sizeof seed) seed = static_cast<uint64_t>(getpid()) << 32 ^ reinterpret_cast<uintptr_t>(&seed);
    return seed | 1;
  }();
  // xorshift64*
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return static_cast<uint32_t>((state * 2685821657736338717ULL) >> 32);
}

std::string TempName(const std::string& file, const char* suffix) {
  uint32_t r = TempRandom();
  char hex[9];
  snprintf(hex, sizeof hex, "%08x", r);
  return DirOf(file) + "/." + BaseOf(file) + "." + hex + "." + suffix;
}

void WriteAll(int fd, const std::string& data, const std::string& path) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      Fail(errno, "write", path);
    }
    off += static_cast<size_t>(n);
  }
}

// A new private temp file next to `file` with `data` in it (O_EXCL); makes the directory when
// missing. Returns its name.
std::string CreateTemp(const std::string& file, const char* suffix, const std::string& data, bool sync) {
  std::string tmp = TempName(file, suffix);
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  // A missing directory is made; another thread's rmdir (of an emptied linked/TARGET directory)
  // may take it away again before the open, so a few tries. A name taken (another process's
  // generator in the same state, e.g. after a fork) gets another.
  for (int tries = 0; fd < 0 && (errno == ENOENT || errno == EEXIST) && tries < 8; tries++) {
    if (errno == ENOENT) MakeDirs(DirOf(tmp));
    else tmp = TempName(file, suffix);
    fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  }
  if (fd < 0) Fail(errno, "open", tmp);
  try {
    WriteAll(fd, data, tmp);
    if (sync && fsync(fd) < 0) Fail(errno, "fsync", tmp);
  } catch (...) {
    close(fd);
    unlink(tmp.c_str());
    throw;
  }
  if (close(fd) < 0) {
    int e = errno;
    unlink(tmp.c_str());
    Fail(e, "close", tmp);
  }
  return tmp;
}

bool ReadFile(const std::string& file, std::string* out) {
  int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return false;
    Fail(errno, "open", file);
  }
  out->clear();
  char buf[8192];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      Fail(e, "read", file);
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return true;
}

bool Unlink(const std::string& file) {
  if (unlink(file.c_str()) == 0) return true;
  if (errno == ENOENT) return false;
  Fail(errno, "unlink", file);
}

Result RunOne(const Op& op) {
  switch (op.kind) {
    case Kind::Reserve: {
      std::string tmp = CreateTemp(op.file, "res", op.data, false);
      int rc = link(tmp.c_str(), op.file.c_str());
      int e = errno;
      unlink(tmp.c_str());
      if (rc == 0) return true;
      if (e == EEXIST) return false;
      Fail(e, "link", op.file);
    }
    case Kind::Release: {
      if (op.has_owner) {
        std::string cur;
        if (!ReadFile(op.file, &cur)) return false;
        if (!cur.empty() && cur != op.data) return false;
      }
      return Unlink(op.file);
    }
    case Kind::Write: {
      std::string tmp = CreateTemp(op.file, "tmp", op.data, op.sync);
      if (rename(tmp.c_str(), op.file.c_str()) < 0) {
        int e = errno;
        unlink(tmp.c_str());
        Fail(e, "rename", op.file);
      }
      if (op.sync) {
        int d = open(DirOf(op.file).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (d >= 0) {
          fsync(d);  // some filesystems refuse fsync on directories; the rename is atomic anyway
          close(d);
        }
      }
      return true;
    }
    case Kind::Remove:
      return Unlink(op.file);
    case Kind::Rmdir:
      // true: gone (removed now, or absent); false: not empty.
      if (rmdir(op.file.c_str()) == 0 || errno == ENOENT) return true;
      if (errno == ENOTEMPTY || errno == EEXIST) return false;
      Fail(errno, "rmdir", op.file);
    case Kind::Read: {
      std::string s;
      if (!ReadFile(op.file, &s)) return std::monostate{};
      return s;
    }
    case Kind::Lock: {
      int fd = open(op.file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
      if (fd < 0 && errno == ENOENT) {
        MakeDirs(DirOf(op.file));
        fd = open(op.file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
      }
      if (fd < 0) Fail(errno, "open", op.file);
      while (flock(fd, (op.sync ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0) {
        if (errno == EINTR) continue;
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK) return false;
        Fail(e, "flock", op.file);
      }
      return fd;
    }
    case Kind::List: {
      std::vector<std::string> names;
      DIR* d = opendir(op.file.c_str());
      if (!d) {
        if (errno == ENOENT) return names;
        Fail(errno, "opendir", op.file);
      }
      while (struct dirent* e = readdir(d))
        if (e->d_name[0] != '.') names.emplace_back(e->d_name);
      closedir(d);
      return names;
    }
  }
  return std::monostate{};
}

}  // namespace

Outcome RunAll(const std::vector<Op>& ops) {
  Outcome out;
  out.results.reserve(ops.size());
  for (size_t i = 0; i < ops.size(); i++) {
    try {
      out.results.push_back(RunOne(ops[i]));
    } catch (NlError& e) {
      e.index = static_cast<int>(i);
      out.failed = true;
      out.err = e;
      for (Result& r : out.results)
        if (std::holds_alternative<int>(r)) {
          close(std::get<int>(r));
          r = std::monostate{};
        }
      break;
    }
    if (ops[i].kind == Kind::Lock && std::holds_alternative<bool>(out.results.back())) break;  // busy
  }
  return out;
}

Napi::Value ResultToJs(Napi::Env env, const Result& r) {
  if (std::holds_alternative<bool>(r)) return Napi::Boolean::New(env, std::get<bool>(r));
  if (std::holds_alternative<std::string>(r)) return Napi::String::New(env, std::get<std::string>(r));
  if (std::holds_alternative<int>(r)) return Napi::Number::New(env, std::get<int>(r));
  if (std::holds_alternative<std::vector<std::string>>(r)) {
    const auto& v = std::get<std::vector<std::string>>(r);
    Napi::Array a = Napi::Array::New(env, v.size());
    for (uint32_t i = 0; i < v.size(); i++) a.Set(i, Napi::String::New(env, v[i]));
    return a;
  }
  return env.Null();
}

namespace {

Kind KindOf(Napi::Env env, const std::string& s) {
  if (s == "reserve") return Kind::Reserve;
  if (s == "release") return Kind::Release;
  if (s == "write") return Kind::Write;
  if (s == "remove") return Kind::Remove;
  if (s == "rmdir") return Kind::Rmdir;
  if (s == "read") return Kind::Read;
  if (s == "list") return Kind::List;
  if (s == "lock") return Kind::Lock;
  ThrowType(env, "fsBatch: unknown op " + s);
}

}  // namespace

std::vector<Op> ParseOps(const Napi::Array& arr) {
  Napi::Env env = arr.Env();
  std::vector<Op> ops;
  ops.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsObject()) ThrowType(env, "fsBatch: ops[" + std::to_string(i) + "] must be an object");
    Napi::Object o = v.As<Napi::Object>();
    Op op;
    op.kind = KindOf(env, GetStr(o, "op"));
    op.file = GetStr(o, op.kind == Kind::List || op.kind == Kind::Rmdir ? "dir" : "file");
    if (op.file.empty() || op.file.find('\0') != std::string::npos) ThrowType(env, "fsBatch: empty or invalid path");
    if (op.kind == Kind::Reserve || op.kind == Kind::Write) op.data = GetStr(o, "data");
    if (op.kind == Kind::Release && Has(o, "owner")) {
      op.data = GetStr(o, "owner");
      op.has_owner = true;
    }
    op.sync = GetBoolOr(o, op.kind == Kind::Lock ? "exclusive" : "sync", false);
    ops.push_back(std::move(op));
  }
  return ops;
}

namespace {

Napi::Value JsFsBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) ThrowType(env, "fsBatch(ops: object[])");
  auto ops = std::make_shared<std::vector<Op>>(ParseOps(info[0].As<Napi::Array>()));
  return PromiseWorker<Outcome>::Run(
      env, [ops] { return RunAll(*ops); },
      [](Napi::Env env, Outcome& out) -> Napi::Value {
        Napi::Array res = Napi::Array::New(env, out.results.size());
        for (uint32_t i = 0; i < out.results.size(); i++) res.Set(i, ResultToJs(env, out.results[i]));
        if (out.failed) {
          Napi::Object err = MakeJsError(env, out.err).As<Napi::Object>();
          err.Set("results", res);
          throw Napi::Error(env, err);
        }
        return res;
      });
}

}  // namespace
}  // namespace fsb

void InitFs(Napi::Env env, Napi::Object exports) { exports.Set("fsBatch", Napi::Function::New(env, fsb::JsFsBatch)); }

}  // namespace nm
