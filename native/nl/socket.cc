#include "socket.h"

#include <errno.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <ctime>

#include "attr.h"

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif
#ifndef NLM_F_CAPPED
#define NLM_F_CAPPED 0x100
#endif
#ifndef NLM_F_ACK_TLVS
#define NLM_F_ACK_TLVS 0x200
#endif

namespace nm {

namespace {
constexpr int kSockBuf = 4 * 1024 * 1024;
constexpr size_t kRecvBuf = 256 * 1024;
constexpr int kReplyWaitMs = 5000;

[[noreturn]] void Fail(int err, const char* op, const std::string& msg = "") { NlFail(err, op, msg); }
}  // namespace

std::unique_ptr<NlSocket> NlSocket::Open(int protocol) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
  if (fd < 0) Fail(errno, "socket");
  int one = 1, size = kSockBuf;
  // SO_*BUFFORCE needs CAP_NET_ADMIN, which every caller of this library has; fall back quietly.
  bool snd_forced = setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) == 0;
  if (!snd_forced) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  bool rcv_forced = setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) == 0;
  if (!rcv_forced) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  if (protocol == NETLINK_ROUTE) setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof one);
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    int e = errno;
    close(fd);
    Fail(e, "bind");
  }
  socklen_t sl = sizeof sa;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &sl) < 0) {
    int e = errno;
    close(fd);
    Fail(e, "getsockname");
  }
  std::unique_ptr<NlSocket> s(new NlSocket(fd, protocol, sa.nl_pid));
  // (a forced size is what the socket has; without the force, net.core.*_max may have capped it)
  if (snd_forced) s->snd_known_ = static_cast<size_t>(size);
  if (rcv_forced) s->rcv_known_ = static_cast<size_t>(size);
  return s;
}

NlSocket::NlSocket(int fd, int protocol, uint32_t portid)
    : fd_(fd), protocol_(protocol), portid_(portid), rbuf_(new uint8_t[kRecvBuf]) {
  // Start from a time-derived sequence so replies to a previous user of a recycled fd never match.
  seq_ = static_cast<uint32_t>(std::time(nullptr)) << 8;
}

NlSocket::~NlSocket() { close(fd_); }

void NlSocket::EnsureBuffers(size_t snd, size_t rcv) {
  constexpr size_t kCap = 1u << 30;
  auto raise = [this](int opt, int force, size_t want, size_t* known) {
    if (*known >= want) return;  // (no syscall: most transactions are small)
    int cur = 0;
    socklen_t l = sizeof cur;
    // getsockopt reports the doubled value the kernel keeps (it accounts skb overhead).
    if (getsockopt(fd_, SOL_SOCKET, opt, &cur, &l) == 0 && static_cast<size_t>(cur) / 2 >= want) {
      *known = static_cast<size_t>(cur) / 2;
      return;
    }
    int v = static_cast<int>(want);
    if (setsockopt(fd_, SOL_SOCKET, force, &v, sizeof v) == 0) *known = want;
    else setsockopt(fd_, SOL_SOCKET, opt, &v, sizeof v);
  };
  raise(SO_SNDBUF, SO_SNDBUFFORCE, snd < kCap ? snd : kCap, &snd_known_);
  raise(SO_RCVBUF, SO_RCVBUFFORCE, rcv < kCap ? rcv : kCap, &rcv_known_);
}

void NlSocket::Send(const std::vector<uint8_t>& buf, const char* op) {
  sockaddr_nl dst{};
  dst.nl_family = AF_NETLINK;
  iovec iov{const_cast<uint8_t*>(buf.data()), buf.size()};
  msghdr m{};
  m.msg_name = &dst;
  m.msg_namelen = sizeof dst;
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  for (;;) {
    ssize_t n = sendmsg(fd_, &m, 0);
    if (n >= 0) return;
    if (errno == EINTR) continue;
    Fail(errno, op);
  }
}

ssize_t NlSocket::Recv(bool block, const char* op) {
  for (;;) {
    sockaddr_nl src{};
    iovec iov{rbuf_.get(), kRecvBuf};
    msghdr m{};
    m.msg_name = &src;
    m.msg_namelen = sizeof src;
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    ssize_t n = recvmsg(fd_, &m, block ? 0 : MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
      Fail(errno, op, errno == ENOBUFS ? "netlink receive buffer overrun; replies were lost" : "");
    }
    if (m.msg_flags & MSG_TRUNC) Fail(EMSGSIZE, op, "netlink reply truncated");
    if (src.nl_pid != 0) continue;  // not from the kernel
    return n;
  }
}

void NlSocket::ParseError(const nlmsghdr* h, int* err, std::string* extack, uint32_t* bad_attr) {
  if (h->nlmsg_len < NLMSG_HDRLEN + sizeof(nlmsgerr)) {
    *err = EPROTO;
    return;
  }
  auto* e = reinterpret_cast<const nlmsgerr*>(NLMSG_DATA(h));
  *err = -e->error;
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return;
  size_t off = NLMSG_HDRLEN + sizeof(nlmsgerr);
  if (!(h->nlmsg_flags & NLM_F_CAPPED)) off = NLMSG_HDRLEN + NlAlign(sizeof(int) + e->msg.nlmsg_len);
  if (off > h->nlmsg_len) return;
  NlAttrIter it(reinterpret_cast<const uint8_t*>(h) + off, h->nlmsg_len - off);
  NlAttr a;
  while (it.Next(&a))
    if (a.type == 1 /* NLMSGERR_ATTR_MSG */) *extack = a.Str();
    else if (a.type == 2 /* NLMSGERR_ATTR_OFFS */ && bad_attr && a.len >= 4) *bad_attr = a.U32();
}

void NlSocket::Transact(const std::vector<uint8_t>& buf, uint32_t first_seq, uint32_t count,
                        std::vector<NlAck>* acks, const std::function<void(const nlmsghdr*)>& on_msg) {
  const char* op = "sendmsg";
  acks->assign(count, NlAck{});
  for (uint32_t i = 0; i < count; i++) (*acks)[i].seq = first_seq + i;
  // Only messages that asked for an ack (NLM_F_ACK) are waited for; nfnetlink's BATCH_BEGIN and
  // BATCH_END are not acked unless they fail.
  uint32_t pending = 0;
  {
    size_t left = buf.size();
    for (auto* h = reinterpret_cast<const nlmsghdr*>(buf.data()); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left))
      if ((h->nlmsg_flags & NLM_F_ACK) && h->nlmsg_seq >= first_seq && h->nlmsg_seq < first_seq + count) pending++;
  }
  Send(buf, op);
  bool any_error = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kReplyWaitMs);
  while (pending > 0) {
    ssize_t n = Recv(false, "recvmsg");
    if (n < 0) {
      // Nothing queued. The kernel answered synchronously; if one message failed it may have
      // skipped the rest (nf_tables aborts the batch), so stop waiting once an error is in.
      if (any_error) break;
      int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - std::chrono::steady_clock::now())
                                      .count());
      if (left <= 0) Fail(ETIMEDOUT, "recvmsg", "no reply from the kernel");
      pollfd p{fd_, POLLIN, 0};
      poll(&p, 1, left);
      continue;
    }
    size_t len = static_cast<size_t>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(rbuf_.get()); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_pid != portid_ && h->nlmsg_pid != 0) continue;
      if (h->nlmsg_seq < first_seq || h->nlmsg_seq >= first_seq + count) continue;  // stale
      NlAck& a = (*acks)[h->nlmsg_seq - first_seq];
      if (h->nlmsg_type == NLMSG_ERROR) {
        int err = 0;
        std::string ext;
        uint32_t bad_attr = 0;
        ParseError(h, &err, &ext, &bad_attr);
        if (!a.answered && pending > 0) pending--;
        a.answered = true;
        a.err = err;
        a.extack = ext;
        a.bad_attr = bad_attr;
        if (err) any_error = true;
      } else if (h->nlmsg_type != NLMSG_DONE && h->nlmsg_type != NLMSG_NOOP && on_msg) {
        on_msg(h);
      }
    }
  }
}

void NlSocket::Dump(std::vector<uint8_t> buf, const std::function<void(const nlmsghdr*)>& on_msg,
                    const std::function<void()>& on_restart, const char* op) {
  for (int attempt = 0; attempt < 10; attempt++) {
    uint32_t seq = ReserveSeq(1);
    reinterpret_cast<nlmsghdr*>(buf.data())->nlmsg_seq = seq;
    Send(buf, op);
    bool done = false, interrupted = false;
    while (!done) {
      ssize_t n = Recv(true, op);
      if (n < 0) continue;
      size_t len = static_cast<size_t>(n);
      for (auto* h = reinterpret_cast<nlmsghdr*>(rbuf_.get()); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
        if (h->nlmsg_seq != seq) continue;
        if (h->nlmsg_flags & NLM_F_DUMP_INTR) interrupted = true;
        if (h->nlmsg_type == NLMSG_DONE) {
          done = true;
          break;
        }
        if (h->nlmsg_type == NLMSG_ERROR) {
          int err = 0;
          std::string ext;
          ParseError(h, &err, &ext);
          if (err == 0) {
            done = true;
            break;
          }
          NlError e;
          e.err = err;
          e.op = op;
          e.extack = ext;
          throw e;
        }
        if (!interrupted) on_msg(h);
      }
    }
    if (!interrupted) return;
    if (on_restart) on_restart();
  }
  Fail(EINTR, op, "dump kept being interrupted by concurrent changes");
}

std::string NlOpName(int protocol, uint16_t type) {
  if (protocol == NETLINK_ROUTE) {
    switch (type) {
      case RTM_NEWLINK: return "RTM_NEWLINK";
      case RTM_DELLINK: return "RTM_DELLINK";
      case RTM_GETLINK: return "RTM_GETLINK";
      case RTM_SETLINK: return "RTM_SETLINK";
      case RTM_NEWADDR: return "RTM_NEWADDR";
      case RTM_DELADDR: return "RTM_DELADDR";
      case RTM_GETADDR: return "RTM_GETADDR";
      case RTM_NEWROUTE: return "RTM_NEWROUTE";
      case RTM_DELROUTE: return "RTM_DELROUTE";
      case RTM_GETROUTE: return "RTM_GETROUTE";
      case RTM_NEWNEIGH: return "RTM_NEWNEIGH";
      case RTM_DELNEIGH: return "RTM_DELNEIGH";
      case RTM_GETNEIGH: return "RTM_GETNEIGH";
      case RTM_NEWNSID: return "RTM_NEWNSID";
      case RTM_GETNSID: return "RTM_GETNSID";
    }
  } else if (protocol == NETLINK_NETFILTER) {
    if (type == NFNL_MSG_BATCH_BEGIN) return "NFNL_MSG_BATCH_BEGIN";
    if (type == NFNL_MSG_BATCH_END) return "NFNL_MSG_BATCH_END";
    switch (type & 0xff) {
      case NFT_MSG_NEWTABLE: return "NFT_MSG_NEWTABLE";
      case NFT_MSG_GETTABLE: return "NFT_MSG_GETTABLE";
      case NFT_MSG_DELTABLE: return "NFT_MSG_DELTABLE";
      case NFT_MSG_NEWCHAIN: return "NFT_MSG_NEWCHAIN";
      case NFT_MSG_GETCHAIN: return "NFT_MSG_GETCHAIN";
      case NFT_MSG_DELCHAIN: return "NFT_MSG_DELCHAIN";
      case NFT_MSG_NEWRULE: return "NFT_MSG_NEWRULE";
      case NFT_MSG_GETRULE: return "NFT_MSG_GETRULE";
      case NFT_MSG_DELRULE: return "NFT_MSG_DELRULE";
      case NFT_MSG_NEWSET: return "NFT_MSG_NEWSET";
      case NFT_MSG_GETSET: return "NFT_MSG_GETSET";
      case NFT_MSG_DELSET: return "NFT_MSG_DELSET";
      case NFT_MSG_NEWSETELEM: return "NFT_MSG_NEWSETELEM";
      case NFT_MSG_GETSETELEM: return "NFT_MSG_GETSETELEM";
      case NFT_MSG_DELSETELEM: return "NFT_MSG_DELSETELEM";
      case NFT_MSG_GETGEN: return "NFT_MSG_GETGEN";
    }
  }
  return "NLMSG_" + std::to_string(type);
}

}  // namespace nm
