// nf_tables over netlink, shared declarations of the nft module (native/nft/*.cc). Pure C++: the
// N-API glue lives in nft.cc only.
#pragma once
#include <linux/netlink.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "netns.h"
#include "schema.h"
#include "value.h"

namespace nm {
namespace nft {

// Message types newer than the build host's <linux/netfilter/nf_tables.h> may be (kernel 6.3+:
// DESTROY* delete without failing when the object is missing).
enum : uint8_t {
  kMsgDestroyTable = 26,
  kMsgDestroyChain = 27,
  kMsgDestroyRule = 28,
  kMsgDestroySet = 29,
  kMsgDestroySetElem = 30,
};

// One message kind we can send or decode: `newrule`, `delsetelem`, ...
struct MsgType {
  const char* name;
  uint8_t type;  // NFT_MSG_*
  const Schema* schema;
  bool is_new;  // NEW*: gets NLM_F_CREATE
};
const MsgType* FindMsg(const std::string& name);
const MsgType* FindMsgByType(uint8_t type);

extern const Names kFamilyNames;  // nfgenmsg families: inet, ip, ip6, arp, bridge, netdev
extern const Schema kTableSchema, kChainSchema, kRuleSchema, kSetSchema, kElemSchema, kSetElemListSchema,
    kGenSchema;

// --- Encoding a transaction (batch.cc) ---

// One netlink message of a transaction; an element operation may need several.
struct EncodedMsg {
  std::vector<uint8_t> bytes;  // nlmsghdr with seq 0; patched when sent
  size_t op;                   // index of the caller's operation
  size_t first_elem = 0;       // element messages: index of their first element in the operation
};
struct EncodedOps {
  std::vector<EncodedMsg> msgs;
  std::vector<std::string> op_names;  // "newrule", per operation
  std::vector<std::string> labels;    // "rule in inet t c", per operation, for error messages
  std::vector<bool> echo;             // per operation: NLM_F_ECHO set (rules: handle comes back)
};
// Throws EncodeError.
EncodedOps EncodeOps(const Value& ops);

struct BatchOptions {
  bool atomic = true;           // refuse to split into several transactions
  size_t max_bytes = 64 << 20;  // largest batch (one sendmsg) we build
  uint32_t genid = 0;           // NFNL_BATCH_GENID: fail with ERESTART if the ruleset changed
};
// A framed batch: BATCH_BEGIN, messages, BATCH_END; seqs relative to 0.
struct Batch {
  std::vector<uint8_t> buf;
  std::vector<long> msg_of_seq;  // seq offset -> index in EncodedOps::msgs (-1: begin/end)
  std::vector<size_t> offset;    // seq offset -> where that message starts in buf
};
// Thrown when the operations do not fit in one batch and the caller wants atomicity.
struct TooBig : EncodeError {
  using EncodeError::EncodeError;
};
std::vector<Batch> FrameBatches(const EncodedOps& enc, const BatchOptions& opts);
// Rewrites the sequence numbers of a framed batch to start at `first`.
void PatchSeqs(std::vector<uint8_t>& buf, uint32_t first);

// Sends the batches (in order, each its own transaction) on a NETLINK_NETFILTER socket in `ns`;
// returns one result object per operation ({} or {handle} for rules). Throws NlError naming the
// failing operation.
Value Transact(NsState& ns, const EncodedOps& enc, std::vector<Batch>& batches);

// --- Reading (dump.cc) ---
struct ListFilter {
  int family = 0;  // NFPROTO_UNSPEC: all
  std::string table;
  bool elements = true;
  bool rules = true;
};
Value List(NsState& ns, const ListFilter& f);

// --- Decoding (objects.cc) ---
// One message to {msg, seq, nlmsgFlags, family, ...attributes}; bounds-checked.
Value DecodeMsg(const nlmsghdr* h);
// Every message in a buffer (stops at the first malformed header).
Value DecodeBuffer(const uint8_t* p, size_t len);
// Encodes one operation's message into b (header included, seq 0). Throws EncodeError.
void EncodeMsg(const MsgType& mt, const Value& op, NlBuilder& b, bool echo);
// Header for a message of this module.
size_t BeginNftMsg(NlBuilder& b, uint8_t type, uint16_t flags, uint8_t family, uint16_t res_id = 0);

}  // namespace nft
}  // namespace nm
