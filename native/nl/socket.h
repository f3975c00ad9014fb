// A netlink socket: sequence numbers, port id checks, acks, multipart dumps and extended acks.
#pragma once
#include <linux/netlink.h>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace nm {

// Thrown inside worker threads; turned into a JS NetlinkError on the main thread.
struct NlError {
  int err = 0;           // positive errno
  std::string op;        // e.g. "RTM_NEWLINK"
  std::string extack;    // kernel's extended-ack message, if any
  int index = -1;        // failing operation within a batch
  std::string message;   // optional extra context
};

// Throws an NlError (for worker threads).
[[noreturn]] inline void NlFail(int err, const char* op, const std::string& msg = "") {
  NlError e;
  e.err = err;
  e.op = op;
  e.message = msg;
  throw e;
}

// Result of one request message: 0 or a positive errno, plus the kernel's message.
struct NlAck {
  uint32_t seq = 0;
  int err = 0;
  bool answered = false;
  std::string extack;
  // NLMSGERR_ATTR_OFFS: where in the request the kernel found the bad attribute (bytes from the
  // start of its nlmsghdr), 0 when it did not say.
  uint32_t bad_attr = 0;
};

class NlSocket {
 public:
  // Opens a socket in the calling thread's network namespace. Throws NlError.
  static std::unique_ptr<NlSocket> Open(int protocol);
  ~NlSocket();
  NlSocket(const NlSocket&) = delete;
  NlSocket& operator=(const NlSocket&) = delete;

  int protocol() const { return protocol_; }
  uint32_t portid() const { return portid_; }
  // Reserves `n` consecutive sequence numbers and returns the first.
  uint32_t ReserveSeq(uint32_t n) { uint32_t s = seq_; seq_ += n; return s; }

  // Raises the socket's send and receive buffers to at least these sizes (never lowers them).
  // A netlink datagram may not exceed SO_SNDBUF, and every ack of a batch is queued before
  // sendmsg() returns, so large nf_tables transactions need both raised. Uses the *FORCE
  // variants (CAP_NET_ADMIN) and falls back to the unprivileged ones, capped by net.core.*_max.
  void EnsureBuffers(size_t snd, size_t rcv);

  // Sends `buf` (messages numbered [first_seq, first_seq + count)) in one sendmsg and collects the
  // replies: one ack or error per message that carries NLM_F_ACK (plus errors for any other). Data messages (e.g. NLM_F_ECHO replies) go to on_msg.
  // The kernel handles requests synchronously inside sendmsg, so every reply is queued once it
  // returns; we drain without blocking, then wait briefly only for replies still owed.
  void Transact(const std::vector<uint8_t>& buf, uint32_t first_seq, uint32_t count, std::vector<NlAck>* acks,
                const std::function<void(const nlmsghdr*)>& on_msg = nullptr);

  // Sends one dump request and feeds every reply message to on_msg until NLMSG_DONE. Restarts
  // the dump (calling on_restart first) when the kernel flags it as interrupted (NLM_F_DUMP_INTR).
  void Dump(std::vector<uint8_t> buf, const std::function<void(const nlmsghdr*)>& on_msg,
            const std::function<void()>& on_restart, const char* op);

 private:
  explicit NlSocket(int fd, int protocol, uint32_t portid);
  void Send(const std::vector<uint8_t>& buf, const char* op);
  ssize_t Recv(bool block, const char* op);
  static void ParseError(const nlmsghdr* h, int* err, std::string* extack, uint32_t* bad_attr = nullptr);

  int fd_;
  int protocol_;
  uint32_t portid_;
  uint32_t seq_;
  // The receive buffer, kRecvBuf bytes, left uninitialised: a reply touches only what it fills
  // (most are one ack), and a socket is opened per container namespace, so zeroing 256 KiB each
  // time was CPU and resident pages for nothing.
  std::unique_ptr<uint8_t[]> rbuf_;
  // What EnsureBuffers knows the buffers hold already (0: not known), so that a socket's later
  // transactions ask the kernel again only for more.
  size_t snd_known_ = 0, rcv_known_ = 0;
};

// Name of an rtnetlink / nfnetlink message type, for error reports.
std::string NlOpName(int protocol, uint16_t type);

}  // namespace nm
