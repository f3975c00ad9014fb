// nf_tables expressions: one schema per kernel expression (libnftnl's src/expr/*.c as data).
// Registers are kernel register numbers: 0 is the verdict register, 1-4 the legacy 16-byte
// registers, 8-23 the 4-byte registers NFT_REG32_00..15 (nft puts each field of a concatenation
// in consecutive 4-byte registers: `ip daddr . meta l4proto . th dport` loads into 1, 9, 10 —
// register 1 and NFT_REG32_00 (8) name the same bytes, nft prints the former).
// Fields are listed in the order libnftnl emits them, so our bytes match `nft --debug=mnl`.
// `type` names the expression itself, so nat's and reject's own type fields are natType/rejectType.
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>

#include "schema.h"

namespace nm {
namespace nft {

namespace {

#define NAMES(var, ...)                         \
  const Name var##_[] = {__VA_ARGS__};          \
  const Names var{var##_, sizeof var##_ / sizeof var##_[0]}

// Names follow nft's own vocabulary (`meta ibrname`, `ct state`, `fib ... type`).
NAMES(kPayloadBase, {NFT_PAYLOAD_LL_HEADER, "ll"}, {NFT_PAYLOAD_NETWORK_HEADER, "network"},
      {NFT_PAYLOAD_TRANSPORT_HEADER, "transport"}, {3, "inner"});
NAMES(kCsumType, {NFT_PAYLOAD_CSUM_NONE, "none"}, {NFT_PAYLOAD_CSUM_INET, "inet"}, {2, "sctp"});
NAMES(kMetaKey, {NFT_META_LEN, "len"}, {NFT_META_PROTOCOL, "protocol"}, {NFT_META_PRIORITY, "priority"},
      {NFT_META_MARK, "mark"}, {NFT_META_IIF, "iif"}, {NFT_META_OIF, "oif"}, {NFT_META_IIFNAME, "iifname"},
      {NFT_META_OIFNAME, "oifname"}, {NFT_META_IIFTYPE, "iiftype"}, {NFT_META_OIFTYPE, "oiftype"},
      {NFT_META_SKUID, "skuid"}, {NFT_META_SKGID, "skgid"}, {NFT_META_NFTRACE, "nftrace"},
      {NFT_META_RTCLASSID, "rtclassid"}, {NFT_META_SECMARK, "secmark"}, {NFT_META_NFPROTO, "nfproto"},
      {NFT_META_L4PROTO, "l4proto"}, {NFT_META_BRI_IIFNAME, "ibrname"}, {NFT_META_BRI_OIFNAME, "obrname"},
      {NFT_META_PKTTYPE, "pkttype"}, {NFT_META_CPU, "cpu"}, {NFT_META_IIFGROUP, "iifgroup"},
      {NFT_META_OIFGROUP, "oifgroup"}, {NFT_META_CGROUP, "cgroup"}, {NFT_META_PRANDOM, "random"},
      {NFT_META_SECPATH, "ipsec"}, {NFT_META_IIFKIND, "iifkind"}, {NFT_META_OIFKIND, "oifkind"},
      {NFT_META_BRI_IIFPVID, "ibrpvid"}, {NFT_META_BRI_IIFVPROTO, "ibrvproto"}, {NFT_META_TIME_NS, "time"},
      {NFT_META_TIME_DAY, "day"}, {NFT_META_TIME_HOUR, "hour"}, {NFT_META_SDIF, "sdif"},
      {NFT_META_SDIFNAME, "sdifname"}, {35, "broute"});
NAMES(kCmpOp, {NFT_CMP_EQ, "eq"}, {NFT_CMP_NEQ, "neq"}, {NFT_CMP_LT, "lt"}, {NFT_CMP_LTE, "lte"},
      {NFT_CMP_GT, "gt"}, {NFT_CMP_GTE, "gte"});
NAMES(kRangeOp, {NFT_RANGE_EQ, "eq"}, {NFT_RANGE_NEQ, "neq"});
NAMES(kBitwiseOp, {NFT_BITWISE_BOOL, "mask_xor"}, {NFT_BITWISE_LSHIFT, "lshift"}, {NFT_BITWISE_RSHIFT, "rshift"});
NAMES(kLookupFlags, {NFT_LOOKUP_F_INV, "inv"});
NAMES(kNatType, {NFT_NAT_SNAT, "snat"}, {NFT_NAT_DNAT, "dnat"});
NAMES(kNfproto, {NFPROTO_INET, "inet"}, {NFPROTO_IPV4, "ip"}, {NFPROTO_IPV6, "ip6"});
NAMES(kNatFlags, {NF_NAT_RANGE_MAP_IPS, "map_ips"}, {NF_NAT_RANGE_PROTO_SPECIFIED, "proto_specified"},
      {NF_NAT_RANGE_PROTO_RANDOM, "random"}, {NF_NAT_RANGE_PERSISTENT, "persistent"},
      {NF_NAT_RANGE_PROTO_RANDOM_FULLY, "fully_random"}, {NF_NAT_RANGE_PROTO_OFFSET, "proto_offset"},
      {NF_NAT_RANGE_NETMAP, "netmap"});
NAMES(kCtKey, {NFT_CT_STATE, "state"}, {NFT_CT_DIRECTION, "direction"}, {NFT_CT_STATUS, "status"},
      {NFT_CT_MARK, "mark"}, {NFT_CT_SECMARK, "secmark"}, {NFT_CT_EXPIRATION, "expiration"},
      {NFT_CT_HELPER, "helper"}, {NFT_CT_L3PROTOCOL, "l3proto"}, {NFT_CT_SRC, "saddr"}, {NFT_CT_DST, "daddr"},
      {NFT_CT_PROTOCOL, "protocol"}, {NFT_CT_PROTO_SRC, "proto-src"}, {NFT_CT_PROTO_DST, "proto-dst"},
      {NFT_CT_LABELS, "label"}, {NFT_CT_PKTS, "packets"}, {NFT_CT_BYTES, "bytes"}, {NFT_CT_AVGPKT, "avgpkt"},
      {NFT_CT_ZONE, "zone"}, {NFT_CT_EVENTMASK, "event"}, {NFT_CT_SRC_IP, "ip saddr"},
      {NFT_CT_DST_IP, "ip daddr"}, {NFT_CT_SRC_IP6, "ip6 saddr"}, {NFT_CT_DST_IP6, "ip6 daddr"},
      {NFT_CT_ID, "id"});
NAMES(kCtDir, {0, "original"}, {1, "reply"});
NAMES(kFibResult, {NFT_FIB_RESULT_OIF, "oif"}, {NFT_FIB_RESULT_OIFNAME, "oifname"},
      {NFT_FIB_RESULT_ADDRTYPE, "type"});
NAMES(kFibFlags, {NFTA_FIB_F_SADDR, "saddr"}, {NFTA_FIB_F_DADDR, "daddr"}, {NFTA_FIB_F_MARK, "mark"},
      {NFTA_FIB_F_IIF, "iif"}, {NFTA_FIB_F_OIF, "oif"}, {NFTA_FIB_F_PRESENT, "present"});
NAMES(kRejectType, {NFT_REJECT_ICMP_UNREACH, "icmp"}, {NFT_REJECT_TCP_RST, "tcp reset"},
      {NFT_REJECT_ICMPX_UNREACH, "icmpx"});
NAMES(kLimitType, {NFT_LIMIT_PKTS, "packets"}, {NFT_LIMIT_PKT_BYTES, "bytes"});
NAMES(kLimitFlags, {NFT_LIMIT_F_INV, "inv"});

#undef NAMES

using K = Kind;

// [ payload load 4b @ network header + 16 => reg 1 ]; with sreg: payload write (mangling).
const Schema kPayload{"payload",
                      {{"sreg", NFTA_PAYLOAD_SREG, K::kBe32},
                       {"dreg", NFTA_PAYLOAD_DREG, K::kBe32},
                       {"base", NFTA_PAYLOAD_BASE, K::kEnum32, &kPayloadBase},
                       {"offset", NFTA_PAYLOAD_OFFSET, K::kBe32},
                       {"len", NFTA_PAYLOAD_LEN, K::kBe32},
                       {"csumType", NFTA_PAYLOAD_CSUM_TYPE, K::kEnum32, &kCsumType},
                       {"csumOffset", NFTA_PAYLOAD_CSUM_OFFSET, K::kBe32},
                       {"csumFlags", NFTA_PAYLOAD_CSUM_FLAGS, K::kBe32}}};

// [ meta load oifname => reg 1 ] / [ meta set mark with reg 1 ]
const Schema kMeta{"meta",
                   {{"key", NFTA_META_KEY, K::kEnum32, &kMetaKey},
                    {"dreg", NFTA_META_DREG, K::kBe32},
                    {"sreg", NFTA_META_SREG, K::kBe32}}};

// [ cmp neq reg 1 0x6b636f64 ... ]
const Schema kCmp{"cmp",
                  {{"sreg", NFTA_CMP_SREG, K::kBe32},
                   {"op", NFTA_CMP_OP, K::kEnum32, &kCmpOp},
                   {"data", NFTA_CMP_DATA, K::kData}}};

// [ range eq reg 1 0x401f 0x901f ]
const Schema kRange{"range",
                    {{"sreg", NFTA_RANGE_SREG, K::kBe32},
                     {"op", NFTA_RANGE_OP, K::kEnum32, &kRangeOp},
                     {"from", NFTA_RANGE_FROM_DATA, K::kData},
                     {"to", NFTA_RANGE_TO_DATA, K::kData}}};

// [ bitwise reg 1 = ( reg 1 & 0x00feffff ) ^ 0x00000000 ]. nft leaves NFTA_BITWISE_OP out for
// mask/xor (the kernel's default) but the kernel always dumps it: omitted when it is the default.
const Schema kBitwise{"bitwise",
                      {{"sreg", NFTA_BITWISE_SREG, K::kBe32},
                       {"dreg", NFTA_BITWISE_DREG, K::kBe32},
                       {"op", NFTA_BITWISE_OP, K::kEnum32, &kBitwiseOp, nullptr, true},
                       {"len", NFTA_BITWISE_LEN, K::kBe32},
                       {"mask", NFTA_BITWISE_MASK, K::kData},
                       {"xor", NFTA_BITWISE_XOR, K::kData},
                       {"data", NFTA_BITWISE_DATA, K::kData}}};

// [ lookup reg 1 set published dreg 1 ]; flags [inv] for `!= @set`. The kernel dumps flags 0.
const Schema kLookup{"lookup",
                     {{"sreg", NFTA_LOOKUP_SREG, K::kBe32},
                      {"dreg", NFTA_LOOKUP_DREG, K::kBe32},
                      {"set", NFTA_LOOKUP_SET, K::kStr},
                      {"setId", NFTA_LOOKUP_SET_ID, K::kBe32},
                      {"flags", NFTA_LOOKUP_FLAGS, K::kFlags32, &kLookupFlags, nullptr, true}}};

// [ immediate reg 0 accept ] / [ immediate reg 1 0x050011ac ]
const Schema kImmediate{"immediate",
                        {{"dreg", NFTA_IMMEDIATE_DREG, K::kBe32}, {"data", NFTA_IMMEDIATE_DATA, K::kData}}};

// [ nat dnat ip addr_min reg 1 proto_min reg 9 ]
const Schema kNat{"nat",
                  {{"natType", NFTA_NAT_TYPE, K::kEnum32, &kNatType},
                   {"family", NFTA_NAT_FAMILY, K::kEnum32, &kNfproto},
                   {"regAddrMin", NFTA_NAT_REG_ADDR_MIN, K::kBe32},
                   {"regAddrMax", NFTA_NAT_REG_ADDR_MAX, K::kBe32},
                   {"regProtoMin", NFTA_NAT_REG_PROTO_MIN, K::kBe32},
                   {"regProtoMax", NFTA_NAT_REG_PROTO_MAX, K::kBe32},
                   {"flags", NFTA_NAT_FLAGS, K::kFlags32, &kNatFlags, nullptr, true}}};

// [ masq ] (the kernel dumps flags only when set)
const Schema kMasq{"masq",
                   {{"flags", NFTA_MASQ_FLAGS, K::kFlags32, &kNatFlags, nullptr, true},
                    {"regProtoMin", NFTA_MASQ_REG_PROTO_MIN, K::kBe32},
                    {"regProtoMax", NFTA_MASQ_REG_PROTO_MAX, K::kBe32}}};

// [ redir proto_min reg 1 ]
const Schema kRedir{"redir",
                    {{"regProtoMin", NFTA_REDIR_REG_PROTO_MIN, K::kBe32},
                     {"regProtoMax", NFTA_REDIR_REG_PROTO_MAX, K::kBe32},
                     {"flags", NFTA_REDIR_FLAGS, K::kFlags32, &kNatFlags, nullptr, true}}};

// [ ct load state => reg 1 ]
const Schema kCt{"ct",
                 {{"key", NFTA_CT_KEY, K::kEnum32, &kCtKey},
                  {"dreg", NFTA_CT_DREG, K::kBe32},
                  {"dir", NFTA_CT_DIRECTION, K::kEnum8, &kCtDir},
                  {"sreg", NFTA_CT_SREG, K::kBe32}}};

// [ fib daddr type => reg 1 ]
const Schema kFib{"fib",
                  {{"flags", NFTA_FIB_FLAGS, K::kFlags32, &kFibFlags},
                   {"result", NFTA_FIB_RESULT, K::kEnum32, &kFibResult},
                   {"dreg", NFTA_FIB_DREG, K::kBe32}}};

// [ counter pkts 0 bytes 0 ]: nft sends an empty counter; the kernel dumps both values, which
// are left out while they are zero so a fresh rule reads back as it was written.
const Schema kCounter{"counter",
                      {{"bytes", NFTA_COUNTER_BYTES, K::kBe64, nullptr, nullptr, true},
                       {"packets", NFTA_COUNTER_PACKETS, K::kBe64, nullptr, nullptr, true}}};

// [ reject type 0 code 3 ]
const Schema kReject{"reject",
                     {{"rejectType", NFTA_REJECT_TYPE, K::kEnum32, &kRejectType},
                      {"code", NFTA_REJECT_ICMP_CODE, K::kU8}}};

// [ log prefix "x" ]
const Schema kLog{"log",
                  {{"group", NFTA_LOG_GROUP, K::kBe16},
                   {"prefix", NFTA_LOG_PREFIX, K::kStr},
                   {"snaplen", NFTA_LOG_SNAPLEN, K::kBe32},
                   {"qthreshold", NFTA_LOG_QTHRESHOLD, K::kBe16},
                   {"level", NFTA_LOG_LEVEL, K::kBe32},
                   {"flags", NFTA_LOG_FLAGS, K::kBe32}}};

// [ limit rate 10/second burst 5 type packets flags 0x0 ]
const Schema kLimit{"limit",
                    {{"rate", NFTA_LIMIT_RATE, K::kBe64},
                     {"unit", NFTA_LIMIT_UNIT, K::kBe64},
                     {"burst", NFTA_LIMIT_BURST, K::kBe32},
                     {"limitType", NFTA_LIMIT_TYPE, K::kEnum32, &kLimitType},
                     {"flags", NFTA_LIMIT_FLAGS, K::kFlags32, &kLimitFlags, nullptr, true}}};

const Schema kNotrack{"notrack", {}};

const Schema* const kExprs[] = {&kPayload, &kMeta,    &kCmp,     &kRange,  &kBitwise, &kLookup,
                                &kImmediate, &kNat,   &kMasq,    &kRedir,  &kCt,      &kFib,
                                &kCounter, &kReject,  &kLog,     &kLimit,  &kNotrack};

}  // namespace

const Schema* FindExpr(const std::string& name) {
  for (const Schema* s : kExprs)
    if (name == s->name) return s;
  return nullptr;
}

void EncodeExpr(const Value& e, NlBuilder& b) {
  const Value* type = e.IsObj() ? e.Get("type") : nullptr;
  if (!type || !type->IsStr() || type->AsStr().empty() || type->AsStr().find('\0') != std::string::npos)
    throw EncodeError("expression: needs a string `type` (payload, meta, cmp, ...)");
  const std::string& name = type->AsStr();
  size_t elem = b.BeginNest(NFTA_LIST_ELEM);
  b.PutStr(NFTA_EXPR_NAME, name);
  const Schema* s = FindExpr(name);
  if (const Value* raw = e.Get("raw")) {
    // Pass-through for expressions this table does not describe (read back as {type, raw}).
    if (!raw->IsBytes() || e.Fields().size() != 2)
      throw EncodeError("expression " + name + ": `raw` must be a Buffer and the only other field");
    if (raw->AsBytes().size() > 0xffff - 2 * NLA_HDRLEN) throw EncodeError("expression " + name + ": raw data too long");
    b.Put(NFTA_EXPR_DATA | NLA_F_NESTED, raw->AsBytes().data(), raw->AsBytes().size());
  } else {
    if (!s) throw EncodeError("unknown expression \"" + name + "\" (pass its NFTA_EXPR_DATA as `raw`)");
    static const char* const kSkip[] = {"type", nullptr};
    size_t data = b.BeginNest(NFTA_EXPR_DATA);
    EncodeAttrs(*s, e, b, kSkip);
    EndNestChecked(b, data, name.c_str());
  }
  EndNestChecked(b, elem, name.c_str());
}

Value DecodeExpr(const NlAttr& list_elem) {
  NlAttrTable<NFTA_EXPR_MAX> t(list_elem);
  std::string name = t[NFTA_EXPR_NAME].Str();
  const NlAttr& data = t[NFTA_EXPR_DATA];
  const Schema* s = FindExpr(name);
  Value out = Value::Obj();
  out.Set("type", Value::Str(name));
  if (!s) {
    out.Set("raw", data.ok() ? Value::Bytes(data.data, data.len) : Value::Bytes({}));
    return out;
  }
  if (data.ok()) DecodeAttrsInto(*s, data.data, data.len, &out);
  return out;
}

}  // namespace nft
}  // namespace nm
