// nf_tables objects (tables, chains, rules, sets, elements, generation) as schemas, the message
// kinds built on them, and message-level encoding/decoding.
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <cstring>

#include "nft.h"

namespace nm {
namespace nft {

namespace {
using K = Kind;

const Name kFamilies[] = {{NFPROTO_UNSPEC, "unspec"}, {NFPROTO_INET, "inet"},     {NFPROTO_IPV4, "ip"},
                          {NFPROTO_ARP, "arp"},       {NFPROTO_NETDEV, "netdev"}, {NFPROTO_BRIDGE, "bridge"},
                          {NFPROTO_IPV6, "ip6"}};
const Name kTableFlags_[] = {{NFT_TABLE_F_DORMANT, "dormant"}, {NFT_TABLE_F_OWNER, "owner"}, {4, "persist"}};
const Names kTableFlags{kTableFlags_, 3};
const Name kChainFlags_[] = {{NFT_CHAIN_BASE, "base"}, {NFT_CHAIN_HW_OFFLOAD, "hw_offload"}, {NFT_CHAIN_BINDING, "binding"}};
const Names kChainFlags{kChainFlags_, 3};
const Name kPolicies_[] = {{NF_DROP, "drop"}, {NF_ACCEPT, "accept"}};
const Names kPolicies{kPolicies_, 2};
const Name kSetFlags_[] = {{NFT_SET_ANONYMOUS, "anonymous"}, {NFT_SET_CONSTANT, "constant"},
                           {NFT_SET_INTERVAL, "interval"},   {NFT_SET_MAP, "map"},
                           {NFT_SET_TIMEOUT, "timeout"},     {NFT_SET_EVAL, "dynamic"},
                           {NFT_SET_OBJECT, "object"},       {NFT_SET_CONCAT, "concat"},
                           {0x100, "expr"}};
const Names kSetFlags{kSetFlags_, 9};
const Name kSetPolicies_[] = {{NFT_SET_POL_PERFORMANCE, "performance"}, {NFT_SET_POL_MEMORY, "memory"}};
const Names kSetPolicies{kSetPolicies_, 2};
const Name kElemFlags_[] = {{NFT_SET_ELEM_INTERVAL_END, "interval_end"}, {NFT_SET_ELEM_CATCHALL, "catchall"}};
const Names kElemFlags{kElemFlags_, 2};

// libnftnl userdata TLVs (libnftnl/udata.h), so that `nft list` shows our comments.
const Schema kTableUdata{"table userdata", {{"comment", 0 /* NFTNL_UDATA_TABLE_COMMENT */, K::kUdStr}}};
const Schema kChainUdata{"chain userdata", {{"comment", 0 /* NFTNL_UDATA_CHAIN_COMMENT */, K::kUdStr}}};
const Schema kRuleUdata{"rule userdata", {{"comment", 0 /* NFTNL_UDATA_RULE_COMMENT */, K::kUdStr}}};
// NFTNL_UDATA_SET_*: byte orders are nft's BYTEORDER_* (0 invalid/mixed, 1 host, 2 big endian);
// nft needs them to print host-endian keys (mark) right.
const Schema kSetUdata{"set userdata",
                       {{"keyByteorder", 0, K::kUdU32},
                        {"dataByteorder", 1, K::kUdU32},
                        {"mergeElements", 2, K::kUdU32},
                        {"dataInterval", 6, K::kUdU32},
                        {"comment", 7, K::kUdStr}}};
const Schema kElemUdata{"element userdata",
                        {{"comment", 0 /* NFTNL_UDATA_SET_ELEM_COMMENT */, K::kUdStr},
                         {"udataFlags", 1 /* NFTNL_UDATA_SET_ELEM_FLAGS */, K::kUdU32}}};

const Schema kHook{"hook",
                   {{"hooknum", NFTA_HOOK_HOOKNUM, K::kBe32},
                    {"priority", NFTA_HOOK_PRIORITY, K::kS32},
                    {"dev", NFTA_HOOK_DEV, K::kStr}}};
const Schema kCounters{"counters",
                       {{"bytes", NFTA_COUNTER_BYTES, K::kBe64}, {"packets", NFTA_COUNTER_PACKETS, K::kBe64}}};
const Schema kField{"field", {{"len", NFTA_SET_FIELD_LEN, K::kBe32}}};
const Schema kSetDesc{"desc",
                      {{"size", NFTA_SET_DESC_SIZE, K::kBe32}, {"concat", NFTA_SET_DESC_CONCAT, K::kList, nullptr, &kField}}};
}  // namespace

const Names kFamilyNames{kFamilies, sizeof kFamilies / sizeof kFamilies[0]};

const Schema kTableSchema{"table",
                          {{"name", NFTA_TABLE_NAME, K::kStr},
                           {"flags", NFTA_TABLE_FLAGS, K::kFlags32, &kTableFlags},
                           {"use", NFTA_TABLE_USE, K::kBe32},
                           {"handle", NFTA_TABLE_HANDLE, K::kBe64},
                           {"userdata", NFTA_TABLE_USERDATA, K::kUdata, nullptr, &kTableUdata},
                           {"owner", NFTA_TABLE_OWNER, K::kBe32}}};

const Schema kChainSchema{"chain",
                          {{"table", NFTA_CHAIN_TABLE, K::kStr},
                           {"handle", NFTA_CHAIN_HANDLE, K::kBe64},
                           {"name", NFTA_CHAIN_NAME, K::kStr},
                           {"type", NFTA_CHAIN_TYPE, K::kStr},
                           {"policy", NFTA_CHAIN_POLICY, K::kEnum32, &kPolicies},
                           {"hook", NFTA_CHAIN_HOOK, K::kNest, nullptr, &kHook},
                           {"use", NFTA_CHAIN_USE, K::kBe32},
                           {"counters", NFTA_CHAIN_COUNTERS, K::kNest, nullptr, &kCounters},
                           {"flags", NFTA_CHAIN_FLAGS, K::kFlags32, &kChainFlags},
                           {"id", NFTA_CHAIN_ID, K::kBe32},
                           {"userdata", NFTA_CHAIN_USERDATA, K::kUdata, nullptr, &kChainUdata}}};

const Schema kRuleSchema{"rule",
                         {{"table", NFTA_RULE_TABLE, K::kStr},
                          {"chain", NFTA_RULE_CHAIN, K::kStr},
                          {"handle", NFTA_RULE_HANDLE, K::kBe64},
                          {"position", NFTA_RULE_POSITION, K::kBe64},
                          {"exprs", NFTA_RULE_EXPRESSIONS, K::kExprs},
                          {"userdata", NFTA_RULE_USERDATA, K::kUdata, nullptr, &kRuleUdata},
                          {"id", NFTA_RULE_ID, K::kBe32}}};

const Schema kSetSchema{"set",
                        {{"table", NFTA_SET_TABLE, K::kStr},
                         {"name", NFTA_SET_NAME, K::kStr},
                         {"flags", NFTA_SET_FLAGS, K::kFlags32, &kSetFlags},
                         {"keyType", NFTA_SET_KEY_TYPE, K::kBe32},
                         {"keyLen", NFTA_SET_KEY_LEN, K::kBe32},
                         {"dataType", NFTA_SET_DATA_TYPE, K::kBe32},
                         {"dataLen", NFTA_SET_DATA_LEN, K::kBe32},
                         {"policy", NFTA_SET_POLICY, K::kEnum32, &kSetPolicies},
                         {"desc", NFTA_SET_DESC, K::kNest, nullptr, &kSetDesc},
                         {"id", NFTA_SET_ID, K::kBe32},
                         {"timeout", NFTA_SET_TIMEOUT, K::kBe64},
                         {"gcInterval", NFTA_SET_GC_INTERVAL, K::kBe32},
                         {"userdata", NFTA_SET_USERDATA, K::kUdata, nullptr, &kSetUdata},
                         {"handle", NFTA_SET_HANDLE, K::kBe64}}};

// Element order as nft sends it: flags first, then the keys, data, timeout, userdata.
const Schema kElemSchema{"element",
                         {{"flags", NFTA_SET_ELEM_FLAGS, K::kFlags32, &kElemFlags, nullptr, true},
                          {"key", NFTA_SET_ELEM_KEY, K::kData},
                          {"keyEnd", NFTA_SET_ELEM_KEY_END, K::kData},
                          {"data", NFTA_SET_ELEM_DATA, K::kData},
                          {"timeout", NFTA_SET_ELEM_TIMEOUT, K::kBe64},
                          {"expiration", NFTA_SET_ELEM_EXPIRATION, K::kBe64},
                          {"userdata", NFTA_SET_ELEM_USERDATA, K::kUdata, nullptr, &kElemUdata}}};

const Schema kSetElemListSchema{"elements",
                                {{"table", NFTA_SET_ELEM_LIST_TABLE, K::kStr},
                                 {"set", NFTA_SET_ELEM_LIST_SET, K::kStr},
                                 {"setId", NFTA_SET_ELEM_LIST_SET_ID, K::kBe32},
                                 {"elements", NFTA_SET_ELEM_LIST_ELEMENTS, K::kList, nullptr, &kElemSchema}}};

const Schema kGenSchema{"gen",
                        {{"id", NFTA_GEN_ID, K::kBe32},
                         {"procPid", NFTA_GEN_PROC_PID, K::kBe32},
                         {"procName", NFTA_GEN_PROC_NAME, K::kStr}}};

namespace {
const MsgType kMsgs[] = {
    {"newtable", NFT_MSG_NEWTABLE, &kTableSchema, true},
    {"gettable", NFT_MSG_GETTABLE, &kTableSchema, false},
    {"deltable", NFT_MSG_DELTABLE, &kTableSchema, false},
    {"destroytable", kMsgDestroyTable, &kTableSchema, false},
    {"newchain", NFT_MSG_NEWCHAIN, &kChainSchema, true},
    {"getchain", NFT_MSG_GETCHAIN, &kChainSchema, false},
    {"delchain", NFT_MSG_DELCHAIN, &kChainSchema, false},
    {"destroychain", kMsgDestroyChain, &kChainSchema, false},
    {"newrule", NFT_MSG_NEWRULE, &kRuleSchema, true},
    {"getrule", NFT_MSG_GETRULE, &kRuleSchema, false},
    {"delrule", NFT_MSG_DELRULE, &kRuleSchema, false},
    {"destroyrule", kMsgDestroyRule, &kRuleSchema, false},
    {"newset", NFT_MSG_NEWSET, &kSetSchema, true},
    {"getset", NFT_MSG_GETSET, &kSetSchema, false},
    {"delset", NFT_MSG_DELSET, &kSetSchema, false},
    {"destroyset", kMsgDestroySet, &kSetSchema, false},
    {"newsetelem", NFT_MSG_NEWSETELEM, &kSetElemListSchema, true},
    {"getsetelem", NFT_MSG_GETSETELEM, &kSetElemListSchema, false},
    {"delsetelem", NFT_MSG_DELSETELEM, &kSetElemListSchema, false},
    {"destroysetelem", kMsgDestroySetElem, &kSetElemListSchema, false},
    {"newgen", NFT_MSG_NEWGEN, &kGenSchema, false},
    {"getgen", NFT_MSG_GETGEN, &kGenSchema, false},
};

const char* const kMetaKeys[] = {"msg", "family", "excl", "append", "replace", "echo", nullptr};

Value FlagList(uint16_t f) {
  static const Name names[] = {{NLM_F_REQUEST, "request"}, {NLM_F_MULTI, "multi"},   {NLM_F_ACK, "ack"},
                               {NLM_F_ECHO, "echo"},       {NLM_F_DUMP_INTR, "intr"}, {0x100, "replace|root"},
                               {0x200, "excl|match"},      {0x400, "create|atomic"}, {0x800, "append"}};
  Value out = Value::Arr();
  for (auto& n : names)
    if (f & n.v) out.Push(Value::Str(n.name));
  return out;
}
}  // namespace

const MsgType* FindMsg(const std::string& name) {
  for (auto& m : kMsgs)
    if (name == m.name) return &m;
  return nullptr;
}

const MsgType* FindMsgByType(uint8_t type) {
  for (auto& m : kMsgs)
    if (m.type == type) return &m;
  return nullptr;
}

size_t BeginNftMsg(NlBuilder& b, uint8_t type, uint16_t flags, uint8_t family, uint16_t res_id) {
  size_t off = b.BeginMsg(static_cast<uint16_t>((NFNL_SUBSYS_NFTABLES << 8) | type), flags, 0);
  nfgenmsg g{};
  g.nfgen_family = family;
  g.version = NFNETLINK_V0;
  g.res_id = __builtin_bswap16(res_id);
  b.PutStruct(g);
  return off;
}

void EncodeMsg(const MsgType& mt, const Value& op, NlBuilder& b, bool echo) {
  const Value* fam = op.Get("family");
  int64_t family = 0;
  if (!fam || !fam->IsStr() || !kFamilyNames.Lookup(fam->AsStr(), &family) || family == NFPROTO_UNSPEC)
    throw EncodeError(std::string(mt.name) + ": family must be one of inet, ip, ip6, arp, bridge, netdev");
  auto flag = [&](const char* k) {
    const Value* v = op.Get(k);
    if (v && !v->IsBool()) throw EncodeError(std::string(mt.name) + ": " + k + " must be a boolean");
    return v && v->AsBool();
  };
  uint16_t flags = NLM_F_REQUEST | NLM_F_ACK;
  if (mt.is_new) flags |= NLM_F_CREATE;
  if (flag("excl")) flags |= NLM_F_EXCL;
  if (echo || flag("echo")) flags |= NLM_F_ECHO;
  if (mt.type == NFT_MSG_NEWRULE) {
    // NEWRULE without NLM_F_APPEND inserts at the head of the chain (or before `position`);
    // with it, at the tail (or after `position`): `nft add rule` vs `nft insert rule`.
    const Value* app = op.Get("append");
    if (flag("replace")) {
      flags = static_cast<uint16_t>((flags & ~NLM_F_CREATE) | NLM_F_REPLACE);
    } else if (!app || flag("append")) {
      flags |= NLM_F_APPEND;
    }
  } else if (op.Get("append") || op.Get("replace")) {
    throw EncodeError(std::string(mt.name) + ": append/replace apply to newrule only");
  }
  size_t m = BeginNftMsg(b, mt.type, flags, static_cast<uint8_t>(family));
  EncodeAttrs(*mt.schema, op, b, kMetaKeys);
  b.EndMsg(m);
}

Value DecodeMsg(const nlmsghdr* h) {
  Value out = Value::Obj();
  uint16_t type = h->nlmsg_type;
  if (type == NLMSG_ERROR) {
    out.Set("msg", Value::Str("error"));
    out.Set("seq", Value::Num(h->nlmsg_seq));
    if (h->nlmsg_len >= NLMSG_HDRLEN + sizeof(nlmsgerr)) {
      nlmsgerr e;
      std::memcpy(&e, NLMSG_DATA(h), sizeof e);
      out.Set("error", Value::Num(-e.error));
    }
    return out;
  }
  if (type == NLMSG_DONE) {
    out.Set("msg", Value::Str("done"));
    out.Set("seq", Value::Num(h->nlmsg_seq));
    return out;
  }
  const MsgType* mt = nullptr;
  const char* name = nullptr;
  if (type == NFNL_MSG_BATCH_BEGIN) name = "batch_begin";
  else if (type == NFNL_MSG_BATCH_END) name = "batch_end";
  else if ((type >> 8) == NFNL_SUBSYS_NFTABLES && (mt = FindMsgByType(type & 0xff))) name = mt->name;
  out.Set("msg", name ? Value::Str(name) : Value::Num(type));
  out.Set("seq", Value::Num(h->nlmsg_seq));
  out.Set("nlmsgFlags", FlagList(h->nlmsg_flags));
  if (h->nlmsg_len < NLMSG_HDRLEN + sizeof(nfgenmsg)) return out;
  nfgenmsg g;
  std::memcpy(&g, NLMSG_DATA(h), sizeof g);
  const char* fam = kFamilyNames.Find(g.nfgen_family);
  out.Set("family", fam ? Value::Str(fam) : Value::Num(g.nfgen_family));
  const uint8_t* p;
  size_t len;
  if (!NlPayload(h, sizeof(nfgenmsg), &p, &len)) return out;
  if (!mt) {
    out.Set("resId", Value::Num(__builtin_bswap16(g.res_id)));
    NlAttrTable<NFNL_BATCH_MAX> t(p, len);
    if (t.Has(NFNL_BATCH_GENID)) out.Set("genid", Value::Num(t[NFNL_BATCH_GENID].Be32()));
    return out;
  }
  DecodeAttrsInto(*mt->schema, p, len, &out);
  return out;
}

Value DecodeBuffer(const uint8_t* p, size_t len) {
  Value out = Value::Arr();
  size_t off = 0;
  while (len - off >= NLMSG_HDRLEN) {
    nlmsghdr h;
    std::memcpy(&h, p + off, sizeof h);
    if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > len - off) break;
    // Decode from an aligned copy: the caller's buffer may start at any address.
    std::vector<uint8_t> copy(p + off, p + off + h.nlmsg_len);
    out.Push(DecodeMsg(reinterpret_cast<const nlmsghdr*>(copy.data())));
    size_t step = NlAlign(h.nlmsg_len);
    if (step >= len - off) break;
    off += step;
  }
  return out;
}

}  // namespace nft
}  // namespace nm
