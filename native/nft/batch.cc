// nf_tables transactions: NFNL_MSG_BATCH_BEGIN, the operations, NFNL_MSG_BATCH_END, all in one
// datagram. nfnetlink runs the whole batch inside our sendmsg(): every message is checked and
// staged, and only if all succeed is the batch committed; otherwise everything is rolled back
// (nfnetlink_rcv_batch -> ss->abort). Acks and errors are queued on our socket before sendmsg
// returns, and with NLM_F_ECHO so are the new rules (with their handles).
//
// One batch is one transaction: nf_tables never merges two sendmsg() calls, so a transaction
// larger than one datagram cannot be atomic. We raise the socket buffers to fit the batch (a
// netlink datagram is limited by SO_SNDBUF, and all acks must fit in SO_RCVBUF at once) up to
// BatchOptions::max_bytes (64 MiB by default, about a million map elements); beyond that the
// caller must allow splitting (atomic: false).
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "nft.h"

namespace nm {
namespace nft {

namespace {

// nla_len is 16 bits: the NFTA_SET_ELEM_LIST_ELEMENTS nest of one message holds at most 64 KiB
// of elements, so bulk element operations become several messages in the same batch.
constexpr size_t kMaxNest = 0xffff;

std::string Str(const Value& op, const char* k) {
  const Value* v = op.Get(k);
  return v && v->IsStr() ? v->AsStr() : std::string();
}

std::string Label(const MsgType& mt, const Value& op) {
  std::string where = Str(op, "family") + " " + Str(op, "table");
  switch (mt.type) {
    case NFT_MSG_NEWTABLE:
    case NFT_MSG_DELTABLE:
    case kMsgDestroyTable: return "table " + Str(op, "family") + " " + Str(op, "name");
    case NFT_MSG_NEWCHAIN:
    case NFT_MSG_DELCHAIN:
    case kMsgDestroyChain: return "chain " + where + " " + Str(op, "name");
    case NFT_MSG_NEWSET:
    case NFT_MSG_DELSET:
    case kMsgDestroySet: return "set " + where + " " + Str(op, "name");
    case NFT_MSG_NEWSETELEM:
    case NFT_MSG_DELSETELEM:
    case kMsgDestroySetElem: return "elements of set " + where + " " + Str(op, "set");
    default: break;
  }
  std::string chain = Str(op, "chain");
  const Value* h = op.Get("handle");
  if (mt.type != NFT_MSG_NEWRULE && !h)
    return chain.empty() ? "rules of table " + where : "rules of chain " + where + " " + chain;
  std::string s = "rule";
  if (h && h->IsNum()) s += " handle " + std::to_string(static_cast<uint64_t>(h->AsDouble()));
  if (const Value* c = op.Get("comment"))
    if (c->IsStr()) s += " \"" + c->AsStr() + "\"";
  return s + " in chain " + where + " " + chain;
}

// The attribute the kernel pointed at (NLMSGERR_ATTR_OFFS), named by the message's schema.
std::string BlamedAttr(const Batch& batch, uint32_t seq_off, const EncodedMsg& m, uint32_t bad_attr) {
  if (!bad_attr || seq_off >= batch.offset.size()) return "";
  const uint8_t* msg = batch.buf.data() + batch.offset[seq_off];
  size_t len = m.bytes.size();
  nlmsghdr h;
  std::memcpy(&h, msg, sizeof h);
  const MsgType* mt = FindMsgByType(h.nlmsg_type & 0xff);
  size_t payload = NLMSG_HDRLEN + NlAlign(sizeof(nfgenmsg));
  if (!mt || len < payload || bad_attr >= len) return "";
  return AttrPath(*mt->schema, msg, msg + payload, len - payload, bad_attr, m.first_elem);
}

std::string OpName(const MsgType& mt) {
  std::string s = "NFT_MSG_";
  for (const char* p = mt.name; *p; p++) s += static_cast<char>(std::toupper(static_cast<unsigned char>(*p)));
  return s;
}

// Bulk elements: as many as fit in one message's 64 KiB nest, then the next message.
void EncodeElements(const MsgType& mt, const Value& op, size_t index, EncodedOps* out) {
  const Value& elems = *op.Get("elements");
  if (!elems.IsArr()) throw EncodeError(std::string(mt.name) + ": elements must be an array");
  Value head = Value::Obj();
  for (auto& kv : op.Fields())
    if (kv.first != "elements") head.Set(kv.first, kv.second);
  NlBuilder b;
  size_t msg = 0, nest = 0, in_nest = 0, first = 0;
  auto open = [&] {
    b.Clear();
    EncodeMsg(mt, head, b, false);
    msg = 0;
    nest = b.BeginNest(NFTA_SET_ELEM_LIST_ELEMENTS);
    in_nest = 0;
  };
  auto close = [&] {
    b.EndNest(nest);
    b.EndMsg(msg);
    out->msgs.push_back({b.Bytes(), index, first});
  };
  open();
  for (size_t i = 0; i < elems.Items().size(); i++) {
    const Value& e = elems.Items()[i];
    if (!e.IsObj()) throw EncodeError("element " + std::to_string(i) + ": must be an object");
    size_t at = b.Size();
    size_t le = b.BeginNest(NFTA_LIST_ELEM);
    EncodeAttrs(kElemSchema, e, b);
    EndNestChecked(b, le, "element");
    if (b.Size() - nest > kMaxNest) {
      if (in_nest == 0) throw EncodeError("element " + std::to_string(i) + ": too large");
      b.Bytes().resize(at);
      close();
      open();
      first = i;
      i--;  // encode it again in the new message
      continue;
    }
    in_nest++;
  }
  close();
}

}  // namespace

EncodedOps EncodeOps(const Value& ops) {
  if (!ops.IsArr()) throw EncodeError("operations must be an array");
  EncodedOps out;
  for (size_t i = 0; i < ops.Items().size(); i++) {
    const Value& op = ops.Items()[i];
    const Value* name = op.IsObj() ? op.Get("msg") : nullptr;
    const MsgType* mt = name && name->IsStr() ? FindMsg(name->AsStr()) : nullptr;
    if (!mt || std::strncmp(mt->name, "get", 3) == 0 || mt->type == NFT_MSG_NEWGEN)
      throw EncodeError("operation " + std::to_string(i) + ": msg must be new*/del*/destroy* (table, chain, rule, set, setelem)");
    bool echo = mt->type == NFT_MSG_NEWRULE;  // the echo carries the new rule's handle
    out.op_names.push_back(OpName(*mt));
    out.labels.push_back(Label(*mt, op));
    out.echo.push_back(echo);
    try {
      const Value* elems = op.Get("elements");
      if (mt->schema == &kSetElemListSchema && elems) {
        // An empty list adds or removes nothing: send nothing (the kernel would say EINVAL).
        if (elems->IsArr() && elems->Items().empty()) continue;
        EncodeElements(*mt, op, i, &out);
      } else if (mt->type == NFT_MSG_NEWSET && !op.Get("id")) {
        // The kernel refuses NEWSET without NFTA_SET_ID (the id lets later messages of the same
        // batch name an anonymous set); any number unique in the transaction will do.
        Value with_id = op;
        with_id.Set("id", Value::Num(static_cast<double>(i + 1)));
        NlBuilder b;
        EncodeMsg(*mt, with_id, b, echo);
        out.msgs.push_back({std::move(b.Bytes()), i});
      } else {
        NlBuilder b;
        EncodeMsg(*mt, op, b, echo);
        out.msgs.push_back({std::move(b.Bytes()), i});
      }
    } catch (const EncodeError& e) {
      throw EncodeError("operation " + std::to_string(i) + " (" + out.labels.back() + "): " + e.what());
    }
  }
  return out;
}

namespace {
NlBuilder Marker(uint16_t type, uint32_t genid) {
  NlBuilder b;
  nfgenmsg g{};
  g.nfgen_family = AF_UNSPEC;
  g.version = NFNETLINK_V0;
  g.res_id = __builtin_bswap16(NFNL_SUBSYS_NFTABLES);
  size_t m = b.BeginMsg(type, NLM_F_REQUEST, 0);
  b.PutStruct(g);
  if (type == NFNL_MSG_BATCH_BEGIN && genid) b.PutBe32(NFNL_BATCH_GENID, genid);
  b.EndMsg(m);
  return b;
}
}  // namespace

std::vector<Batch> FrameBatches(const EncodedOps& enc, const BatchOptions& opts) {
  NlBuilder begin = Marker(NFNL_MSG_BATCH_BEGIN, opts.genid), end = Marker(NFNL_MSG_BATCH_END, 0);
  size_t frame = begin.Size() + end.Size();
  size_t total = frame;
  for (auto& m : enc.msgs) total += m.bytes.size();
  if (opts.atomic && total > opts.max_bytes)
    throw TooBig("transaction needs " + std::to_string(total) + " bytes, more than the " +
                      std::to_string(opts.max_bytes) +
                      " one batch may hold; nf_tables commits one batch atomically, so pass atomic: false to "
                      "split it into several transactions");
  std::vector<Batch> out;
  auto start = [&] {
    out.emplace_back();
    out.back().buf = begin.Bytes();
    out.back().msg_of_seq.push_back(-1);
    out.back().offset.push_back(0);
  };
  auto finish = [&] {
    Batch& b = out.back();
    b.offset.push_back(b.buf.size());
    b.buf.insert(b.buf.end(), end.Bytes().begin(), end.Bytes().end());
    b.msg_of_seq.push_back(-1);
  };
  start();
  for (size_t i = 0; i < enc.msgs.size(); i++) {
    Batch& b = out.back();
    size_t n = enc.msgs[i].bytes.size();
    if (b.msg_of_seq.size() > 1 && b.buf.size() + n + end.Size() > opts.max_bytes) {
      finish();
      start();
    }
    Batch& cur = out.back();
    cur.offset.push_back(cur.buf.size());
    cur.buf.insert(cur.buf.end(), enc.msgs[i].bytes.begin(), enc.msgs[i].bytes.end());
    cur.msg_of_seq.push_back(static_cast<long>(i));
  }
  finish();
  return out;
}

void PatchSeqs(std::vector<uint8_t>& buf, uint32_t first) {
  size_t off = 0;
  while (buf.size() - off >= NLMSG_HDRLEN) {
    auto* h = reinterpret_cast<nlmsghdr*>(buf.data() + off);
    if (h->nlmsg_len < NLMSG_HDRLEN) break;  // never ours; but never loop on a zero length
    h->nlmsg_seq = first++;
    off += NlAlign(h->nlmsg_len);
  }
}

Value Transact(NsState& ns, const EncodedOps& enc, std::vector<Batch>& batches) {
  Value results = Value::Arr();
  for (size_t i = 0; i < enc.op_names.size(); i++) results.Push(Value::Obj());
  auto sock = ns.Acquire(NETLINK_NETFILTER);
  size_t committed_ops = 0;
  for (size_t bi = 0; bi < batches.size(); bi++) {
    Batch& batch = batches[bi];
    uint32_t count = static_cast<uint32_t>(batch.msg_of_seq.size());
    uint32_t first = sock->ReserveSeq(count);
    PatchSeqs(batch.buf, first);
    // Every ack is queued before sendmsg() returns: reserve ~1 KiB of socket memory per message
    // (an ack skb's truesize), plus room for the echoed rules.
    size_t echo_bytes = 0;
    for (uint32_t s = 1; s + 1 < count; s++) {
      size_t m = static_cast<size_t>(batch.msg_of_seq[s]);
      if (enc.echo[enc.msgs[m].op]) echo_bytes += 2 * enc.msgs[m].bytes.size() + 512;
    }
    std::vector<NlAck> acks;
    try {
      sock->EnsureBuffers(batch.buf.size() + 65536, size_t(count) * 1024 + echo_bytes + 262144);
      sock->Transact(batch.buf, first, count, &acks, [&](const nlmsghdr* h) {
        if (h->nlmsg_type != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE)) return;
        long m = batch.msg_of_seq[h->nlmsg_seq - first];
        if (m < 0) return;
        Value rule = DecodeMsg(h);
        if (const Value* handle = rule.Get("handle")) results.Items()[enc.msgs[m].op].Set("handle", *handle);
      });
    } catch (...) {
      sock.Discard();  // transport failure: replies may still be queued; never reuse this socket
      throw;
    }
    int failures = 0;
    const NlAck* bad = nullptr;
    long bad_msg = -1;
    uint32_t bad_seq = 0;
    for (uint32_t s = 0; s < count; s++) {
      if (!acks[s].err) continue;
      failures++;
      if (!bad) bad = &acks[s], bad_msg = batch.msg_of_seq[s], bad_seq = s;
    }
    if (bad) {
      NlError e;
      e.err = bad->err;
      e.extack = bad->extack;
      if (bad_msg >= 0) {
        size_t op = enc.msgs[static_cast<size_t>(bad_msg)].op;
        e.index = static_cast<int>(op);
        e.op = enc.op_names[op];
        e.message = enc.labels[op];
        std::string at = BlamedAttr(batch, bad_seq, enc.msgs[static_cast<size_t>(bad_msg)], bad->bad_attr);
        if (!at.empty()) e.message += ", at " + at;
      } else {
        // Errors reported against BATCH_BEGIN concern the whole transaction: the commit failed
        // (e.g. a chain loop found at validation), the generation changed (ERESTART), EPERM.
        e.op = "NFNL_MSG_BATCH_BEGIN";
        e.message = "transaction";
      }
      e.message += "; the transaction was rolled back";
      if (failures > 1) e.message += " (" + std::to_string(failures - 1) + " later operation(s) failed too)";
      if (committed_ops)
        e.message += "; " + std::to_string(committed_ops) + " earlier operation(s) were committed (atomic: false)";
      throw e;
    }
    for (uint32_t s = 1; s + 1 < count; s++) {
      size_t m = static_cast<size_t>(batch.msg_of_seq[s]);
      if (m + 1 == enc.msgs.size() || enc.msgs[m + 1].op != enc.msgs[m].op) committed_ops++;
    }
  }
  return results;
}

}  // namespace nft
}  // namespace nm
