// rtnetlink request encoders: plain structs in, netlink messages out. No sockets, no Napi.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "types.h"

namespace nm {
namespace rtnl {

// The namespace a message is sent to, relative to its operation: the op's own namespace, the
// namespace the link ends up in (linkAdd/linkSet `netns`, else the op's), or the veth peer's
// (`peer.ns`, else the op's: the kernel creates a peer without a namespace attribute in the
// requesting socket's namespace, even when the link itself goes elsewhere).
enum class Role : uint8_t { kOp = 0, kLink = 1, kPeer = 2 };
constexpr int kRoles = 3;

// A u32 ifindex at `offset` in the message that must be filled in by resolving `name` in the
// namespace of `role` (the kernel cannot look names up for IFLA_MASTER, RTA_OIF, ifa_index...).
struct Patch {
  size_t offset = 0;
  Role role = Role::kOp;
  std::string name;
};

struct Msg {
  Bytes bytes;  // one netlink message, nlmsg_seq 0 (the sender numbers it)
  Role role = Role::kOp;
  // Sent only once the op's earlier messages were acked without error: follow-ups that name a
  // link the op just created must never touch a same-named link that existed before.
  bool barrier = false;
  std::vector<Patch> patches;
};

struct Encoded {
  std::vector<Msg> msgs;
  // The op deletes, renames or moves links: cached name -> ifindex lookups are no longer valid.
  bool invalidate_all = false;
  // linkAdd: msgs[0] asks for NLM_F_ECHO; the echoed RTM_NEWLINK gives the ifindex of `prime_name`
  // (role kLink) and, through IFLA_LINK, of the veth peer `prime_peer` (role kPeer).
  std::string prime_name, prime_peer;
  // linkAdd with disableIpv6: this sysctl (a /proc/sys path) is set to 1 in the link's namespace
  // once the create is acknowledged, before any follow-up (so before the link comes up). ENOENT
  // (a kernel without IPv6) is not an error.
  std::string after_create_sysctl;
};

// Encodes one operation into the messages that carry it out, in order.
Encoded EncodeOp(const Op& op);

// Dump request for rtnlDump (NLM_F_DUMP, strict-checking filters).
Bytes EncodeDump(DumpKind kind, const DumpFilter& f);

}  // namespace rtnl
}  // namespace nm
