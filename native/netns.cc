#include "netns.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
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

  void Run(int fd, const std::function<void()>& fn) {
    Job job;
    job.fd = fd;
    job.fn = &fn;
    {
      std::lock_guard<std::mutex> g(mu_);
      queue_.push_back(&job);
      if (!running_) {
        running_ = true;
        std::thread(&NsEntryThread::Loop, this).detach();
      }
    }
    cv_.notify_one();
    std::unique_lock<std::mutex> g(job.mu);
    job.cv.wait(g, [&] { return job.done; });
    if (job.have_err) throw job.err;
  }

 private:
  struct Job {
    int fd = -1;
    const std::function<void()>* fn = nullptr;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false, have_err = false;
    NlError err;
  };

  void Loop() {
    int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    for (;;) {
      Job* j;
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
          (*j->fn)();
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
  std::deque<Job*> queue_;
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
  try {
    NsEntryThread::Get().Run(fd, fn);
  } catch (...) {
    close(fd);
    throw;
  }
  close(fd);
}

void NsState::Close() {
  std::vector<std::unique_ptr<NlSocket>> drop;
  std::lock_guard<std::mutex> g(mu_);
  closed_ = true;
  drop.swap(idle_);
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

std::shared_ptr<NsState> CreateNamedNs(const std::string& dir, const std::string& name) {
  if (mkdir(dir.c_str(), 0755) < 0 && errno != EEXIST) Fail(errno, "mkdir", dir);
  // Make the directory a shared mount point, as `ip netns add` does, so that namespaces mounted
  // later propagate to every mount namespace that shares it.
  if (mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) < 0) {
    if (errno != EINVAL) Fail(errno, "mount", dir);
    if (mount(dir.c_str(), dir.c_str(), "none", MS_BIND | MS_REC, nullptr) < 0) Fail(errno, "mount", dir);
    if (mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) < 0) Fail(errno, "mount", dir);
  }
  std::string path = dir + "/" + name;
  int fd = open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) Fail(errno, "create", path);
  close(fd);
  try {
    // unshare() on a dedicated thread: only that thread moves into the new namespace, and it
    // exits right after the bind mount pins the namespace.
    bool have_err = false;
    NlError err;
    std::thread t([&] {
      if (unshare(CLONE_NEWNET) < 0) {
        err.err = errno, err.op = "unshare", have_err = true;
        return;
      }
      if (mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) < 0)
        err.err = errno, err.op = "mount", err.message = path, have_err = true;
    });
    t.join();
    if (have_err) throw err;
    return OpenNsPath(path);
  } catch (...) {
    umount2(path.c_str(), MNT_DETACH);
    unlink(path.c_str());
    throw;
  }
}

void DeleteNamedNs(const std::string& path) {
  if (umount2(path.c_str(), MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) Fail(errno, "umount", path);
  if (unlink(path.c_str()) < 0) Fail(errno, "unlink", path);
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
