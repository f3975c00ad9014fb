#include "types.h"

#include <arpa/inet.h>

#include <cstring>

namespace nm {
namespace rtnl {

bool IpAddr::operator==(const IpAddr& o) const {
  return family == o.family && std::memcmp(b, o.b, len()) == 0;
}

bool ParseIp(const std::string& s, IpAddr* out) {
  IpAddr ip;
  if (s.find(':') != std::string::npos) {
    ip.family = AF_INET6;
    if (inet_pton(AF_INET6, s.c_str(), ip.b) != 1) return false;
  } else {
    ip.family = AF_INET;
    if (inet_pton(AF_INET, s.c_str(), ip.b) != 1) return false;
  }
  *out = ip;
  return true;
}

std::string FormatIp(uint8_t family, const uint8_t* p, size_t len) {
  char buf[INET6_ADDRSTRLEN] = {};
  if ((family == AF_INET && len >= 4) || (family == AF_INET6 && len >= 16))
    if (inet_ntop(family, p, buf, sizeof buf)) return buf;
  return "";
}

static int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool ParseHw(const std::string& s, Bytes* out) {
  Bytes b;
  size_t i = 0;
  while (i < s.size()) {
    if (i + 2 > s.size()) return false;
    int hi = HexVal(s[i]), lo = HexVal(s[i + 1]);
    if (hi < 0 || lo < 0) return false;
    b.push_back(static_cast<uint8_t>(hi << 4 | lo));
    i += 2;
    if (i == s.size()) break;
    if (s[i] != ':') return false;
    i++;
    if (i == s.size()) return false;  // trailing colon
  }
  if (b.empty() || b.size() > 32) return false;
  *out = std::move(b);
  return true;
}

std::string FormatHw(const uint8_t* p, size_t len) {
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(len * 3);
  for (size_t i = 0; i < len; i++) {
    if (i) s += ':';
    s += kHex[p[i] >> 4];
    s += kHex[p[i] & 15];
  }
  return s;
}

static const char* const kOpNames[] = {"linkAdd", "linkDel", "linkSet", "linkGet", "linkDelGroup", "addrAdd",
                                       "addrDel", "routeAdd", "routeReplace", "routeDel", "neighAdd", "neighDel",
                                       "fdbAdd", "fdbDel"};

const char* OpKindName(OpKind k) { return kOpNames[static_cast<size_t>(k)]; }

bool OpKindFromName(const std::string& s, OpKind* out) {
  for (size_t i = 0; i < sizeof kOpNames / sizeof kOpNames[0]; i++)
    if (s == kOpNames[i]) {
      *out = static_cast<OpKind>(i);
      return true;
    }
  return false;
}

}  // namespace rtnl
}  // namespace nm
