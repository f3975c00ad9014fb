// Network namespaces: create/open/delete like `ip netns`, and sockets opened inside a namespace by
// a dedicated thread that enters it and comes back (never a libuv pool thread), then pooled per
// namespace handle.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "nl/socket.h"

namespace nm {

// One open namespace. fd == -1 stands for the namespace this process runs in.
class NsState : public std::enable_shared_from_this<NsState> {
 public:
  NsState(int fd, uint64_t dev, uint64_t ino) : fd_(fd), dev_(dev), ino_(ino) {}
  ~NsState();
  int fd() const { return fd_; }
  uint64_t ino() const { return ino_; }
  uint64_t dev() const { return dev_; }

  // A socket on loan: returned to the pool when the lease ends (dropped instead if the
  // namespace handle was closed meanwhile, or if the lease saw a transport error).
  class Lease {
   public:
    Lease(std::shared_ptr<NsState> ns, std::unique_ptr<NlSocket> s) : ns_(std::move(ns)), s_(std::move(s)) {}
    Lease(Lease&&) = default;
    ~Lease();
    NlSocket* operator->() { return s_.get(); }
    NlSocket& operator*() { return *s_; }
    void Discard() { s_.reset(); }

   private:
    std::shared_ptr<NsState> ns_;
    std::unique_ptr<NlSocket> s_;
  };
  // Throws NlError.
  Lease Acquire(int protocol);
  // Runs fn on the namespace-entry thread while it is inside this namespace (it returns to its own
  // namespace afterwards).
  // For the process's own namespace, runs fn on the calling thread. Throws NlError.
  void RunInside(const std::function<void()>& fn);
  // Starts making a socket of `protocol` inside, on the namespace-entry thread, while the caller
  // does other work; it joins the pool. AwaitPrefetch() waits for it (its error is dropped:
  // Acquire makes one again, and reports it); so does the next Acquire. One at a time; not for
  // the process's own namespace.
  void Prefetch(int protocol);
  void AwaitPrefetch();
  // Closes pooled sockets and refuses use from now on (EBADF); in-flight leases finish and are
  // dropped. The namespace fd goes with the last reference (a handle's close() lets its own go).
  void Close();
  // What a closed handle holds instead: the same dev and inode, no fd, closed.
  static std::shared_ptr<NsState> ClosedStub(uint64_t dev, uint64_t ino);
  bool closed() const { return closed_; }

 private:
  void Return(std::unique_ptr<NlSocket> s);
  std::mutex mu_;
  std::vector<std::unique_ptr<NlSocket>> idle_;
  int fd_;
  uint64_t dev_, ino_;
  bool closed_ = false;
  std::shared_ptr<void> prefetch_;  // the entry thread's job (netns.cc)
};

std::shared_ptr<NsState> CurrentNs();
// Opens a namespace file (`/run/netns/X`, `/proc/PID/ns/net`) and checks it is a network one.
std::shared_ptr<NsState> OpenNsPath(const std::string& path);
// `ip netns add NAME`: bind-mounts a new namespace at dir/NAME (dir is normally /run/netns).
// Reclaims a name left half-made (a file with no namespace on it, whose creator is gone); EEXIST
// for a namespace, a name being made by another process, or anything else. `fault`: a test-only
// fault point (see FaultPoint in netns.cc), empty otherwise.
std::shared_ptr<NsState> CreateNamedNs(const std::string& dir, const std::string& name, const std::string& fault = "");
// `ip netns del NAME`: lazy unmount and unlink; also removes a half-made name. ENOENT when there
// is nothing, EBUSY for a name another process is making right now.
void DeleteNamedNs(const std::string& path);
// Removes every half-made name under dir whose creator is gone; returns their names.
std::vector<std::string> ReapStaleNs(const std::string& dir);

// Reads or writes a file under /proc/sys/net/ as seen from inside the namespace.
std::string SysctlGet(NsState& ns, const std::string& key);
void SysctlSet(NsState& ns, const std::string& key, const std::string& value);

}  // namespace nm
