#include "netns.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <thread>

namespace nm {

namespace {
[[noreturn]] void Fail(int err, const char* op, const std::string& msg = "") { NlFail(err, op, msg); }

// One long-lived thread that enters namespaces for short jobs (opening a socket, a sysctl) and
// returns to its own namespace after each: the cost of two setns() calls instead of creating and
// joining a thread per namespace. Jobs queue; the caller (a libuv pool thread, which never changes
// namespace itself) waits for its job. Should the way back ever fail, that thread ends and the
// next job starts a fresh one.
class NsEntryThread {
 public:
  static NsEntryThread& Get() {
    static NsEntryThread* t = new NsEntryThread();  // lives as long as the process
    return *t;
  }

  struct Job {
    int fd = -1;  // closed by the thread once the job is done
    std::function<void()> fn;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false, have_err = false;
    NlError err;
    // Waits for the job; throws its error.
    void Wait() {
      std::unique_lock<std::mutex> g(mu);
      cv.wait(g, [&] { return done; });
      if (have_err) throw err;
    }
  };

  // Queues fn to run inside the namespace of `fd` (which the job then owns) and returns at once.
  std::shared_ptr<Job> Post(int fd, std::function<void()> fn) {
    auto job = std::make_shared<Job>();
    job->fd = fd;
    job->fn = std::move(fn);
    {
      std::lock_guard<std::mutex> g(mu_);
      queue_.push_back(job);
      if (!running_) {
        running_ = true;
        std::thread(&NsEntryThread::Loop, this).detach();
      }
    }
    cv_.notify_one();
    return job;
  }

 private:

  void Loop() {
    int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    for (;;) {
      std::shared_ptr<Job> j;
      {
        std::unique_lock<std::mutex> g(mu_);
        cv_.wait(g, [&] { return !queue_.empty(); });
        j = queue_.front();
        queue_.pop_front();
      }
      bool home_again = true;
      bool have_err = false;
      NlError err;
      try {
        if (home < 0) Fail(EIO, "netns", "cannot open the thread's own namespace");
        if (setns(j->fd, CLONE_NEWNET) < 0) Fail(errno, "setns");
        try {
          j->fn();
        } catch (...) {
          home_again = setns(home, CLONE_NEWNET) == 0;
          throw;
        }
        home_again = setns(home, CLONE_NEWNET) == 0;
      } catch (const NlError& e) {
        err = e, have_err = true;
      } catch (const std::exception& e) {
        err.err = EIO, err.op = "thread", err.message = e.what(), have_err = true;
      }
      close(j->fd);
      {
        std::lock_guard<std::mutex> g(j->mu);
        j->err = err;
        j->have_err = have_err;
        j->done = true;
      }
      j->cv.notify_one();
      if (!home_again) {
        // Stuck in another namespace: never run another job here.
        std::lock_guard<std::mutex> g(mu_);
        running_ = !queue_.empty();
        if (running_) std::thread(&NsEntryThread::Loop, this).detach();
        if (home >= 0) close(home);
        return;
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool running_ = false;
};
}  // namespace

NsState::~NsState() {
  if (fd_ >= 0) close(fd_);
}

NsState::Lease::~Lease() {
  if (s_ && ns_) ns_->Return(std::move(s_));
}

void NsState::Return(std::unique_ptr<NlSocket> s) {
  std::lock_guard<std::mutex> g(mu_);
  if (!closed_ && idle_.size() < 8) idle_.push_back(std::move(s));
}

NsState::Lease NsState::Acquire(int protocol) {
  // A socket being made for us (Prefetch) is waited for here, at first use, rather than before
  // the caller's first request: a chain's veth create goes out on the host's socket meanwhile.
  AwaitPrefetch();
  {
    std::lock_guard<std::mutex> g(mu_);
    if (closed_) Fail(EBADF, "netns", "namespace handle is closed");
    for (size_t i = idle_.size(); i-- > 0;) {
      if (idle_[i]->protocol() == protocol) {
        auto s = std::move(idle_[i]);
        idle_.erase(idle_.begin() + static_cast<long>(i));
        return Lease(shared_from_this(), std::move(s));
      }
    }
  }
  std::unique_ptr<NlSocket> s;
  RunInside([&] { s = NlSocket::Open(protocol); });
  return Lease(shared_from_this(), std::move(s));
}

void NsState::RunInside(const std::function<void()>& fn) {
  int fd;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (closed_) Fail(EBADF, "netns", "namespace handle is closed");
    fd = fd_ >= 0 ? dup(fd_) : -1;
  }
  if (fd < 0 && fd_ >= 0) Fail(errno, "dup");
  if (fd < 0) {
    fn();
    return;
  }
  // (the function outlives the job: this thread waits for it)
  NsEntryThread::Get().Post(fd, [&fn] { fn(); })->Wait();
}

void NsState::Prefetch(int protocol) {
  int fd;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (closed_ || fd_ < 0 || prefetch_) return;
    fd = dup(fd_);
  }
  if (fd < 0) return;
  std::weak_ptr<NsState> self = shared_from_this();
  auto job = NsEntryThread::Get().Post(fd, [self, protocol] {
    auto s = NlSocket::Open(protocol);
    if (auto ns = self.lock()) ns->Return(std::move(s));
  });
  std::lock_guard<std::mutex> g(mu_);
  prefetch_ = std::move(job);
}

void NsState::AwaitPrefetch() {
  std::shared_ptr<NsEntryThread::Job> job;
  {
    std::lock_guard<std::mutex> g(mu_);
    job = std::static_pointer_cast<NsEntryThread::Job>(prefetch_);
    prefetch_.reset();
  }
  if (!job) return;
  try {
    job->Wait();
  } catch (const NlError&) {
    // Acquire makes the socket again (and reports its error then).
  }
}

void NsState::Close() {
  std::vector<std::unique_ptr<NlSocket>> drop;
  std::lock_guard<std::mutex> g(mu_);
  closed_ = true;
  drop.swap(idle_);
}

std::shared_ptr<NsState> NsState::ClosedStub(uint64_t dev, uint64_t ino) {
  auto s = std::make_shared<NsState>(-1, dev, ino);
  s->closed_ = true;
  return s;
}

std::shared_ptr<NsState> CurrentNs() {
  static std::shared_ptr<NsState> cur = [] {
    struct stat st {};
    stat("/proc/self/ns/net", &st);
    return std::make_shared<NsState>(-1, st.st_dev, st.st_ino);
  }();
  return cur;
}

std::shared_ptr<NsState> OpenNsPath(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) Fail(errno, "open", path);
  int type = ioctl(fd, NS_GET_NSTYPE);
  if (type != CLONE_NEWNET) {
    close(fd);
    Fail(EINVAL, "open", path + " is not a network namespace");
  }
  struct stat st {};
  fstat(fd, &st);
  return std::make_shared<NsState>(fd, st.st_dev, st.st_ino);
}

// Named namespaces and the files they are mounted on.
//
// A name under /run/netns is a file with the namespace bind-mounted on it. Making one takes two
// steps (the file, then the mount), so a process killed in between leaves a plain empty file that
// blocks the name. To tell such a leftover from a namespace being made right now, a creator holds
// an flock on the file from before its name appears (an O_TMPFILE file, locked, then linked to
// the name) until the mount is made or undone. Nobody removes a name without holding the lock of
// the file it names and checking, after taking it, that the name still names that file; so a
// reclaimer never removes a file that a live creator is about to mount on.
namespace {
// The mode of the files netmodes makes (`ip netns add` makes them with mode 0): a leftover of ours
// is stale as soon as its lock is free; anyone else's only once it is kForeignGraceSec old, since
// `ip netns add` takes no lock and may be between its two steps right now.
constexpr mode_t kPlaceholderMode = 0400;
constexpr time_t kForeignGraceSec = 60;

// TEST-ONLY fault points (lib/netns.ts passes NETMODES_FAULT when it names one of these):
// netns:before-link, netns:after-link, netns:after-mount kill the process there with SIGKILL;
// netns:stall-after-link announces itself on stderr and waits for one byte (or EOF) on stdin.
void FaultPoint(const std::string& fault, const char* point) {
  if (fault.empty()) return;
  if (fault == point) kill(getpid(), SIGKILL);
  if (fault.rfind("netns:stall-", 0) == 0 && fault.compare(12, std::string::npos, point + 6) == 0) {
    std::string msg = std::string("netmodes-fault: stalled at ") + point + "\n";
    ssize_t w = write(2, msg.data(), msg.size());
    (void)w;
    char c;
    while (read(0, &c, 1) < 0 && errno == EINTR) {
    }
  }
}

enum class NameKind { kAbsent, kNamespace, kBusy, kOther, kStale };

struct Inspection {
  NameKind kind;
  int fd = -1;  // kStale: the file, its lock held
};

const char* Why(NameKind k) {
  switch (k) {
    case NameKind::kNamespace: return "exists";
    case NameKind::kBusy: return "is being created by another process";
    default: return "exists and is not a network namespace";
  }
}

// What `path` (in the directory whose stat is `dirst`) holds. `any_age`: a free, empty file counts
// as stale whoever made it (for the file a namespace we just unmounted was on).
Inspection InspectName(const std::string& path, const struct stat& dirst, bool any_age = false) {
  for (int tries = 0; tries < 8; tries++) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
      if (errno == ENOENT) return {NameKind::kAbsent};
      if (errno == ELOOP) return {NameKind::kOther};  // a symlink
      Fail(errno, "open", path);
    }
    struct statfs sfs {};
    struct stat st {};
    if (fstatfs(fd, &sfs) < 0 || fstat(fd, &st) < 0) {
      int e = errno;
      close(fd);
      Fail(e, "stat", path);
    }
    if (sfs.f_type == NSFS_MAGIC) {
      close(fd);
      return {NameKind::kNamespace};
    }
    // What a creator leaves is an empty regular file on the directory's own file system.
    if (!S_ISREG(st.st_mode) || st.st_size != 0 || st.st_dev != dirst.st_dev) {
      close(fd);
      return {NameKind::kOther};
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
      int e = errno;
      close(fd);
      if (e == EWOULDBLOCK) return {NameKind::kBusy};
      Fail(e, "flock", path);
    }
    // Locked. The name must still name this file: its creator may have mounted the namespace on
    // it (and let go of the lock) since we opened it, or it may have been replaced.
    struct stat now {};
    if (stat(path.c_str(), &now) < 0) {
      int e = errno;
      close(fd);
      if (e == ENOENT) return {NameKind::kAbsent};
      Fail(e, "stat", path);
    }
    if (now.st_dev != st.st_dev || now.st_ino != st.st_ino) {
      close(fd);
      continue;
    }
    if (!any_age && (st.st_mode & 07777) != kPlaceholderMode && time(nullptr) - st.st_mtime < kForeignGraceSec) {
      close(fd);
      return {NameKind::kBusy};
    }
    return {NameKind::kStale, fd};
  }
  return {NameKind::kBusy};  // it kept changing under us: someone is at work on it
}

// Unlinks a stale name (its file locked by `fd`, which this closes). False when it cannot go: a
// mount point of something that is not a namespace (EBUSY).
bool RemoveStale(const std::string& path, int fd) {
  int r = unlink(path.c_str());
  int e = errno;
  close(fd);
  if (r < 0 && e == EBUSY) return false;
  if (r < 0 && e != ENOENT) Fail(e, "unlink", path);
  return true;
}

struct stat DirStat(const std::string& dir) {
  struct stat st {};
  if (stat(dir.c_str(), &st) < 0) Fail(errno, "stat", dir);
  return st;
}

std::string DirOf(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

// Undoes a creation that failed after the name was linked: unmounts the namespace if we mounted
// it, then unlinks the name, but only while it still names our file (locked by `own`).
void UndoCreate(const std::string& path, int own, bool mounted) {
  if (mounted) umount2(path.c_str(), MNT_DETACH);
  struct stat mine {}, now {};
  if (fstat(own, &mine) == 0 && stat(path.c_str(), &now) == 0 && now.st_dev == mine.st_dev && now.st_ino == mine.st_ino)
    unlink(path.c_str());
}
}  // namespace

std::shared_ptr<NsState> CreateNamedNs(const std::string& dir, const std::string& name, const std::string& fault) {
  if (mkdir(dir.c_str(), 0755) < 0 && errno != EEXIST) Fail(errno, "mkdir", dir);
  // Make the directory a shared mount point, as `ip netns add` does, so that namespaces mounted
  // later propagate to every mount namespace that shares it.
  if (mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) < 0) {
    if (errno != EINVAL) Fail(errno, "mount", dir);
    if (mount(dir.c_str(), dir.c_str(), "none", MS_BIND | MS_REC, nullptr) < 0) Fail(errno, "mount", dir);
    if (mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) < 0) Fail(errno, "mount", dir);
  }
  struct stat dirst = DirStat(dir);
  std::string path = dir + "/" + name;
  // The file appears under its name already locked: made unnamed (O_TMPFILE), locked, then linked.
  int fd = -1;
  for (int attempt = 0;; attempt++) {
    fd = open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, kPlaceholderMode);
    if (fd < 0) Fail(errno, "create", dir + " (O_TMPFILE)");
    if (flock(fd, LOCK_EX) < 0) {
      int e = errno;
      close(fd);
      Fail(e, "flock", path);
    }
    FaultPoint(fault, "netns:before-link");
    std::string self = "/proc/self/fd/" + std::to_string(fd);
    if (linkat(AT_FDCWD, self.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) == 0) break;
    int e = errno;
    close(fd);
    if (e != EEXIST) Fail(e, "create", path);
    // Taken: reclaim it if it is a leftover (not a namespace, and nobody holds its lock).
    Inspection in = InspectName(path, dirst);
    bool freed = in.kind == NameKind::kAbsent || (in.kind == NameKind::kStale && RemoveStale(path, in.fd));
    if (!freed || attempt >= 3) Fail(EEXIST, "create", path + " " + Why(freed ? NameKind::kBusy : in.kind));
  }
  bool mounted = false;
  try {
    FaultPoint(fault, "netns:after-link");
    // Mount on the very file we linked (through a descriptor opened by its name and checked to
    // be ours), so that a name replaced meanwhile by a tool that ignores the lock is never
    // mounted on: the kernel refuses a mount on an unlinked file.
    int named = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (named < 0) Fail(errno, "open", path);
    struct stat a {}, b {};
    fstat(fd, &a);
    fstat(named, &b);
    if (a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
      close(named);
      Fail(EEXIST, "create", path + " was replaced by another process");
    }
    std::string target = "/proc/self/fd/" + std::to_string(named);
    // unshare() on a dedicated thread: only that thread moves into the new namespace, and it
    // exits right after the bind mount pins the namespace.
    bool have_err = false;
    NlError err;
    std::thread t([&] {
      if (unshare(CLONE_NEWNET) < 0) {
        err.err = errno, err.op = "unshare", have_err = true;
        return;
      }
      if (mount("/proc/thread-self/ns/net", target.c_str(), "none", MS_BIND, nullptr) < 0)
        err.err = errno, err.op = "mount", err.message = path, have_err = true;
    });
    t.join();
    close(named);
    if (have_err) throw err;
    mounted = true;
    FaultPoint(fault, "netns:after-mount");
    auto ns = OpenNsPath(path);
    close(fd);  // the mount is made: the lock's work is done
    return ns;
  } catch (...) {
    UndoCreate(path, fd, mounted);
    close(fd);
    throw;
  }
}

void DeleteNamedNs(const std::string& path) {
  struct stat dirst = DirStat(DirOf(path));
  Inspection in = InspectName(path, dirst);
  switch (in.kind) {
    case NameKind::kAbsent:
      Fail(ENOENT, "unlink", path);
    case NameKind::kBusy:
      Fail(EBUSY, "delete", path + " is being created by another process");
    case NameKind::kStale:
      if (!RemoveStale(path, in.fd)) Fail(EBUSY, "unlink", path);
      return;
    case NameKind::kNamespace: {
      if (umount2(path.c_str(), MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) Fail(errno, "umount", path);
      // The file it was mounted on: ours to remove unless someone took the name meanwhile.
      Inspection under = InspectName(path, dirst, true);
      if (under.kind == NameKind::kStale) RemoveStale(path, under.fd);
      return;
    }
    case NameKind::kOther:
      // Not something a creator makes (a symlink, a directory, a foreign mount...): as `ip netns del`.
      if (umount2(path.c_str(), MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) Fail(errno, "umount", path);
      if (unlink(path.c_str()) < 0) Fail(errno, "unlink", path);
      return;
  }
}

std::vector<std::string> ReapStaleNs(const std::string& dir) {
  std::vector<std::string> names, reaped;
  DIR* d = opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return reaped;
    Fail(errno, "opendir", dir);
  }
  while (struct dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  closedir(d);
  struct stat dirst = DirStat(dir);
  for (const auto& n : names) {
    Inspection in = InspectName(dir + "/" + n, dirst);
    if (in.kind == NameKind::kStale && RemoveStale(dir + "/" + n, in.fd)) reaped.push_back(n);
  }
  return reaped;
}

// "net.ipv4.ip_forward" or, for names that contain dots, "net/ipv4/conf/eth0.10/forwarding".
static std::string SysctlPath(const std::string& key) {
  if (key.find('/') != std::string::npos) return "/proc/sys/" + key;
  std::string p = "/proc/sys/";
  for (char c : key) p += (c == '.') ? '/' : c;
  return p;
}

static void CheckKey(const std::string& key) {
  bool ok = key.rfind("net.", 0) == 0 || key.rfind("net/", 0) == 0;
  if (!ok || key.find("..") != std::string::npos || key.find("/.") != std::string::npos)
    Fail(EINVAL, "sysctl", "only net.* keys are per-namespace: " + key);
}

std::string SysctlGet(NsState& ns, const std::string& key) {
  CheckKey(key);
  std::string out;
  ns.RunInside([&] {
    int fd = open(SysctlPath(key).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) Fail(errno, "sysctl", key);
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    int e = errno;
    close(fd);
    if (n < 0) Fail(e, "sysctl", key);
    out.assign(buf, static_cast<size_t>(n));
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  });
  return out;
}

void SysctlSet(NsState& ns, const std::string& key, const std::string& value) {
  CheckKey(key);
  ns.RunInside([&] {
    int fd = open(SysctlPath(key).c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) Fail(errno, "sysctl", key);
    ssize_t n = write(fd, value.data(), value.size());
    int e = errno;
    close(fd);
    if (n < 0) Fail(e, "sysctl", key + "=" + value);
  });
}

}  // namespace nm
