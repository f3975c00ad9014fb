// Reading the ruleset back: table, chain, set, element and rule dumps, decoded with the same
// schemas that encode them. The dumps are separate requests, so a concurrent change could make
// them disagree; like nft's cache, we read the ruleset generation (NFT_MSG_GETGEN) before and
// after and start over when it moved.
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <sys/socket.h>

#include <functional>

#include "nft.h"

namespace nm {
namespace nft {

namespace {

constexpr int kAttempts = 8;

// The decoded object without the message bookkeeping (msg, seq, nlmsgFlags).
Value Object(const nlmsghdr* h) {
  Value m = DecodeMsg(h);
  Value out = Value::Obj();
  for (auto& kv : m.Fields())
    if (kv.first != "msg" && kv.first != "seq" && kv.first != "nlmsgFlags") out.Set(kv.first, kv.second);
  return out;
}

uint32_t GetGen(NlSocket& s) {
  NlBuilder b;
  size_t m = BeginNftMsg(b, NFT_MSG_GETGEN, NLM_F_REQUEST | NLM_F_ACK, AF_UNSPEC);
  b.EndMsg(m);
  uint32_t seq = s.ReserveSeq(1);
  PatchSeqs(b.Bytes(), seq);
  std::vector<NlAck> acks;
  uint32_t gen = 0;
  bool got = false;
  s.Transact(b.Bytes(), seq, 1, &acks, [&](const nlmsghdr* h) {
    if (h->nlmsg_type != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN)) return;
    Value v = DecodeMsg(h);
    if (const Value* id = v.Get("id")) gen = static_cast<uint32_t>(id->AsDouble()), got = true;
  });
  if (acks[0].err || !got) {
    NlError e;
    e.err = acks[0].err ? acks[0].err : EPROTO;
    e.op = "NFT_MSG_GETGEN";
    e.extack = acks[0].extack;
    throw e;
  }
  return gen;
}

// Dumps one object kind; `attrs` adds request attributes (the rule dump filters by table).
Value DumpAll(NlSocket& s, uint8_t type, int family, const char* op, const std::function<void(NlBuilder&)>& attrs = nullptr) {
  NlBuilder b;
  size_t m = BeginNftMsg(b, type, NLM_F_REQUEST | NLM_F_DUMP, static_cast<uint8_t>(family));
  if (attrs) attrs(b);
  b.EndMsg(m);
  Value out = Value::Arr();
  s.Dump(
      b.Bytes(),
      [&](const nlmsghdr* h) {
        if ((h->nlmsg_type >> 8) == NFNL_SUBSYS_NFTABLES) out.Push(Object(h));
      },
      [&] { out = Value::Arr(); }, op);
  return out;
}

bool InTable(const Value& o, const char* key, const ListFilter& f) {
  if (f.table.empty()) return true;
  const Value* t = o.Get(key);
  return t && t->IsStr() && t->AsStr() == f.table;
}

Value Filter(const Value& all, const char* key, const ListFilter& f) {
  Value out = Value::Arr();
  for (auto& o : all.Items())
    if (InTable(o, key, f)) out.Push(o);
  return out;
}

int FamilyOf(const Value& o) {
  int64_t fam = 0;
  const Value* v = o.Get("family");
  if (v && v->IsStr()) kFamilyNames.Lookup(v->AsStr(), &fam);
  return static_cast<int>(fam);
}

bool ListOnce(NlSocket& s, const ListFilter& f, Value* out) {
  uint32_t gen = GetGen(s);
  Value tables = Filter(DumpAll(s, NFT_MSG_GETTABLE, f.family, "NFT_MSG_GETTABLE"), "name", f);
  Value chains = Filter(DumpAll(s, NFT_MSG_GETCHAIN, f.family, "NFT_MSG_GETCHAIN"), "table", f);
  Value sets = Filter(DumpAll(s, NFT_MSG_GETSET, f.family, "NFT_MSG_GETSET"), "table", f);
  if (f.elements) {
    for (auto& set : sets.Items()) {
      std::string table = set.Get("table") ? set.Get("table")->AsStr() : "";
      std::string name = set.Get("name") ? set.Get("name")->AsStr() : "";
      Value elems = Value::Arr();
      try {
        Value msgs = DumpAll(s, NFT_MSG_GETSETELEM, FamilyOf(set), "NFT_MSG_GETSETELEM", [&](NlBuilder& b) {
          b.PutStr(NFTA_SET_ELEM_LIST_TABLE, table);
          b.PutStr(NFTA_SET_ELEM_LIST_SET, name);
        });
        for (auto& m : msgs.Items())
          if (const Value* list = m.Get("elements"))
            for (auto& e : list->Items()) elems.Push(e);
      } catch (const NlError& e) {
        if (e.err == ENOENT) return false;  // the set went away meanwhile: start over
        throw;
      }
      set.Set("elements", std::move(elems));
    }
  }
  Value rules = Value::Arr();
  if (f.rules)
    rules = Filter(DumpAll(s, NFT_MSG_GETRULE, f.family, "NFT_MSG_GETRULE",
                           [&](NlBuilder& b) {
                             if (!f.table.empty()) b.PutStr(NFTA_RULE_TABLE, f.table);
                           }),
                   "table", f);
  if (GetGen(s) != gen) return false;
  *out = Value::Obj();
  out->Set("gen", Value::Num(gen));
  out->Set("tables", std::move(tables));
  out->Set("chains", std::move(chains));
  out->Set("sets", std::move(sets));
  out->Set("rules", std::move(rules));
  return true;
}

}  // namespace

Value List(NsState& ns, const ListFilter& f) {
  auto sock = ns.Acquire(NETLINK_NETFILTER);
  try {
    Value out;
    for (int i = 0; i < kAttempts; i++)
      if (ListOnce(*sock, f, &out)) return out;
  } catch (...) {
    sock.Discard();
    throw;
  }
  NlError e;
  e.err = EAGAIN;
  e.op = "NFT_MSG_GETGEN";
  e.message = "the ruleset kept changing while it was being read";
  throw e;
}

}  // namespace nft
}  // namespace nm
