// rtnetlink message decoders: bytes in, plain structs out. Every read is bounds-checked; a
// malformed message yields false (or stops DecodeAll), never a read past the buffer.
#pragma once
#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "types.h"

namespace nm {
namespace rtnl {

bool DecodeLink(const nlmsghdr* h, LinkMsg* out);
bool DecodeAddr(const nlmsghdr* h, AddrMsg* out);
bool DecodeRoute(const nlmsghdr* h, RouteMsg* out);
bool DecodeNeigh(const nlmsghdr* h, NeighMsg* out);

// Every message in a buffer, requests as well as replies (rtnlDecode). Stops at the first
// header that does not fit.
std::vector<AnyMsg> DecodeAll(const uint8_t* p, size_t len);

// Names for numeric fields, as iproute2 prints them (`ip -j`); numbers as decimal strings when
// unknown.
std::vector<std::string> LinkFlagNames(uint32_t flags);
std::vector<std::string> AddrFlagNames(uint32_t flags);
std::vector<std::string> NudStateNames(uint16_t state);
std::vector<std::string> RouteFlagNames(uint32_t flags);
std::string OperstateName(uint8_t v);
std::string PortStateName(uint8_t v);  // BR_STATE_*: disabled, listening, learning, forwarding, blocking
std::string AddrGenModeName(uint8_t v);
std::string ScopeName(uint8_t v);
std::string ProtocolName(uint8_t v);
std::string RouteTypeName(uint8_t v);

}  // namespace rtnl
}  // namespace nm
