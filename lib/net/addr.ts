/**
 * Address, prefix, interface-name and MAC validation.
 *
 * Every parser here takes the name of the option it is validating (`field`) and throws a
 * {@link ConfigError} carrying it, so callers never need to wrap these in try/catch to say which
 * option was wrong.
 *
 * Canonical text forms (compare addresses only in these forms):
 * - IPv4: dotted quad without leading zeros (`10.0.0.1`). Octal/hex/short forms such as
 *   `010.1.1.1`, `0x7f.1` or `127.1` are rejected rather than guessed at.
 * - IPv6: RFC 5952 (lower case, longest run of zero groups as `::`, never mixed dotted notation;
 *   `::ffff:1.2.3.4` becomes `::ffff:102:304`). This is also what `ipaddr.js`'s
 *   `toRFC5952String()` produces. Zone ids (`fe80::1%eth0`) are rejected.
 *
 * We parse IPv6 ourselves instead of with `ipaddr.js` because ipaddr.js 2.x maps `::1.2.3.4` to
 * `::ffff:1.2.3.4` (a different address), and because this sits on the hot path of IPAM.
 */

import { randomBytes } from 'node:crypto';
import { ConfigError } from '../errors';

/** Address family: 4 for IPv4, 6 for IPv6. */
export type Family = 4 | 6;

/** A parsed IP address. */
export interface ParsedIP {
  /** Canonical text form (see the module comment). */
  address: string;
  family: Family;
}

/** A parsed prefix, e.g. from `"172.17.0.1/16"`. */
export interface Cidr {
  /** The address as written, canonicalised (`172.17.0.1`). Host bits are kept. */
  readonly address: string;
  /** Prefix length: 0..32 for IPv4, 0..128 for IPv6. */
  readonly prefix: number;
  readonly family: Family;
  /** Canonical network address, host bits cleared (`172.17.0.0`). */
  readonly network: string;
  /** Last address of the block (the IPv4 broadcast address, `172.17.255.255`). */
  readonly last: string;
  /** {@link network} as an integer. */
  readonly start: bigint;
  /** {@link last} as an integer. */
  readonly end: bigint;
  /**
   * True when `ip` (an address string of either family) lies inside this block; false for the
   * other family. Throws ConfigError (field `ip`) when `ip` is not an address at all.
   */
  contains(ip: string): boolean;
  /** `network/prefix`, e.g. `172.17.0.0/16`. */
  toString(): string;
}

const MAX_V4 = 0xffffffffn;
const MAX_V6 = (1n << 128n) - 1n;

function describe(s: unknown): string {
  return typeof s === 'string' ? JSON.stringify(s) : String(s);
}

function requireString(s: unknown, field: string, what: string): string {
  if (typeof s !== 'string') throw new ConfigError(`expected ${what} as a string, got ${typeof s}`, field);
  return s;
}

/** IPv4 dotted quad to uint32, or -1 if `s` is not a strict dotted quad. */
function ipv4ToNumber(s: string): number {
  const len = s.length;
  if (len < 7 || len > 15) return -1;
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i <= len; i++) {
    const c = i < len ? s.charCodeAt(i) : 46; /* '.' terminates the last octet */
    if (c === 46) {
      if (digits === 0 || octet > 255) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      if (i < len && ++dots > 3) return -1;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1; /* leading zero */
      octet = octet * 10 + (c - 48);
      if (++digits > 3) return -1;
    } else {
      return -1;
    }
  }
  return dots === 3 ? value : -1;
}

function numberToIPv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** IPv6 text to a 128-bit integer, or undefined when invalid (zone ids are invalid). */
function ipv6ToBigInt(s: string): bigint | undefined {
  if (s.length < 2 || s.length > 45) return undefined;
  const lastColon = s.lastIndexOf(':');
  if (lastColon < 0) return undefined;
  let text = s;
  const tail = s.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = ipv4ToNumber(tail);
    if (v4 < 0) return undefined;
    text = `${s.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] === '' ? [] : halves[0].split(':');
  const rest = halves.length === 2 ? (halves[1] === '' ? [] : halves[1].split(':')) : [];
  const explicit = head.length + rest.length;
  if (halves.length === 1 ? explicit !== 8 : explicit > 7) return undefined;
  let value = 0n;
  for (const g of head) {
    if (!HEX_GROUP.test(g)) return undefined;
    value = (value << 16n) | BigInt(parseInt(g, 16));
  }
  value <<= 16n * BigInt(8 - explicit);
  for (const g of rest) {
    if (!HEX_GROUP.test(g)) return undefined;
    value = (value << 16n) | BigInt(parseInt(g, 16));
  }
  return value;
}

/** RFC 5952 text for a 128-bit integer. */
function bigIntToIPv6(v: bigint): string {
  const groups: number[] = new Array(8);
  for (let i = 7; i >= 0; i--) {
    groups[i] = Number(v & 0xffffn);
    v >>= 16n;
  }
  /* Longest run of two or more zero groups; the first one on ties. */
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]) => a.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/**
 * Parses an IP address of either family into its integer value.
 * Mostly for IPAM arithmetic; other code wants {@link parseIP}.
 * @throws ConfigError (with `field`) when `s` is not an IPv4 or IPv6 address.
 */
export function ipToBigInt(s: string, field: string): { value: bigint; family: Family } {
  requireString(s, field, 'an IP address');
  const v4 = ipv4ToNumber(s);
  if (v4 >= 0) return { value: BigInt(v4), family: 4 };
  const v6 = ipv6ToBigInt(s);
  if (v6 !== undefined) return { value: v6, family: 6 };
  if (s.includes('%')) throw new ConfigError(`${describe(s)} has a zone id; zone ids are not supported here`, field);
  if (s.includes('/')) throw new ConfigError(`${describe(s)} is a prefix, expected a single IP address`, field);
  throw new ConfigError(`${describe(s)} is not a valid IP address`, field);
}

/**
 * Formats an integer as a canonical address of the given family.
 * @throws RangeError when `value` does not fit the family (a programming error, not bad input).
 */
export function bigIntToIP(value: bigint, family: Family): string {
  if (value < 0n || value > (family === 4 ? MAX_V4 : MAX_V6)) {
    throw new RangeError(`${value} is out of range for IPv${family}`);
  }
  return family === 4 ? numberToIPv4(Number(value)) : bigIntToIPv6(value);
}

/**
 * Parses an IPv4 address in strict dotted-quad form and returns it unchanged.
 * @throws ConfigError (with `field`) for anything else, with a specific message for IPv6 input.
 */
export function parseIPv4(s: string, field: string): string {
  requireString(s, field, 'an IPv4 address');
  if (ipv4ToNumber(s) >= 0) return s;
  if (ipv6ToBigInt(s) !== undefined) {
    throw new ConfigError(`expected an IPv4 address, got IPv6 address ${describe(s)}`, field);
  }
  throw new ConfigError(`${describe(s)} is not a valid IPv4 address (expected a dotted quad such as 10.0.0.1)`, field);
}

/**
 * Parses an IPv4 or IPv6 address.
 * @returns the canonical text form and the family.
 * @throws ConfigError (with `field`) when `s` is not an address (zone ids and prefixes included).
 */
export function parseIP(s: string, field: string): ParsedIP {
  const v4 = typeof s === 'string' ? ipv4ToNumber(s) : -1;
  if (v4 >= 0) return { address: s, family: 4 };
  const { value, family } = ipToBigInt(s, field);
  return { address: bigIntToIP(value, family), family };
}

class CidrImpl implements Cidr {
  readonly network: string;
  readonly last: string;
  readonly start: bigint;
  readonly end: bigint;
  constructor(
    readonly address: string,
    readonly prefix: number,
    readonly family: Family,
    value: bigint,
  ) {
    const bits = family === 4 ? 32 : 128;
    const hostMask = (1n << BigInt(bits - prefix)) - 1n;
    this.start = value & ~hostMask;
    this.end = this.start | hostMask;
    this.network = bigIntToIP(this.start, family);
    this.last = bigIntToIP(this.end, family);
  }
  contains(ip: string): boolean {
    const { value, family } = ipToBigInt(ip, 'ip');
    return family === this.family && value >= this.start && value <= this.end;
  }
  toString(): string {
    return `${this.network}/${this.prefix}`;
  }
  toJSON(): string {
    return this.toString();
  }
}

/**
 * Parses `address/prefix` (`172.17.0.1/16`, `fd00::/64`). Host bits are allowed and kept in
 * `address`; `network` has them cleared. Callers that need a canonical subnet compare
 * `address === network`.
 * @throws ConfigError (with `field`) when the text is not a valid prefix of either family.
 */
export function parseCidr(s: string, field: string): Cidr {
  requireString(s, field, 'a CIDR prefix');
  const slash = s.indexOf('/');
  if (slash < 0) throw new ConfigError(`${describe(s)} has no prefix length (expected e.g. 10.0.0.0/24)`, field);
  const addrText = s.slice(0, slash);
  const prefixText = s.slice(slash + 1);
  const { value, family } = ipToBigInt(addrText, field);
  const bits = family === 4 ? 32 : 128;
  if (!/^(0|[1-9]\d{0,2})$/.test(prefixText) || Number(prefixText) > bits) {
    throw new ConfigError(`${describe(s)} has an invalid prefix length (expected 0..${bits})`, field);
  }
  return new CidrImpl(bigIntToIP(value, family), Number(prefixText), family, value);
}

/**
 * True when the two blocks share at least one address. Blocks of different families never
 * overlap. Strings are parsed with {@link parseCidr} (field `cidr`).
 */
export function cidrOverlaps(a: Cidr | string, b: Cidr | string): boolean {
  const x = typeof a === 'string' ? parseCidr(a, 'cidr') : a;
  const y = typeof b === 'string' ? parseCidr(b, 'cidr') : b;
  return x.family === y.family && x.start <= y.end && y.start <= x.end;
}

/* Interface names ------------------------------------------------------------------------------ */

/** Linux IFNAMSIZ minus the terminating NUL. */
export const IFNAME_MAX_BYTES = 15;

function ifnameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return `expected an interface name as a string, got ${typeof name}`;
  if (name.length === 0) return 'interface name is empty';
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > IFNAME_MAX_BYTES) {
    return `interface name ${describe(name)} is ${bytes} bytes long, Linux allows at most ${IFNAME_MAX_BYTES}`;
  }
  if (name === '.' || name === '..') return `interface name ${describe(name)} is not allowed`;
  if (/[\/:%\s\0]/.test(name)) {
    return `interface name ${describe(name)} contains a character Linux does not allow ('/', ':', whitespace, NUL) or '%'`;
  }
  return undefined;
}

/**
 * True when `name` is a usable Linux interface name: 1..15 bytes of UTF-8, not `.` or `..`, and
 * none of `/`, `:`, whitespace or NUL (the kernel's `dev_valid_name`). We also reject `%`: the
 * kernel treats a name containing it as a template (`eth%d`) and picks the name itself.
 */
export function isValidIfname(name: string): boolean {
  return ifnameProblem(name) === undefined;
}

/**
 * Throws unless {@link isValidIfname}; returns `name` for chaining.
 * @throws ConfigError (with `field`) saying what is wrong.
 */
export function assertIfname(name: string, field: string): string {
  const problem = ifnameProblem(name);
  if (problem) throw new ConfigError(problem, field);
  return name;
}

/* MAC addresses -------------------------------------------------------------------------------- */

const MAC_RE = /^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$/;

/**
 * Parses a 6-byte Ethernet address written with `:` or `-` separators, and returns it as lower
 * case `aa:bb:cc:dd:ee:ff`. Rejects multicast/broadcast addresses (low bit of the first octet set)
 * and the all-zero address: the kernel refuses both as an interface address.
 * @throws ConfigError (with `field`).
 */
export function parseMac(s: string, field: string): string {
  requireString(s, field, 'a MAC address');
  if (!MAC_RE.test(s)) throw new ConfigError(`${describe(s)} is not a MAC address (expected aa:bb:cc:dd:ee:ff)`, field);
  const mac = s.toLowerCase().replace(/-/g, ':');
  if (parseInt(mac.slice(0, 2), 16) & 1) {
    throw new ConfigError(`${describe(s)} is a multicast address and cannot be assigned to an interface`, field);
  }
  if (mac === '00:00:00:00:00:00') {
    throw new ConfigError('the all-zero MAC address cannot be assigned to an interface', field);
  }
  return mac;
}

function hex2(n: number): string {
  return (n & 255).toString(16).padStart(2, '0');
}

/**
 * A random locally administered unicast MAC in Docker's `02:42:xx:xx:xx:xx` space
 * (4 random bytes from `crypto.randomBytes`).
 */
export function randomMac(): string {
  const b = randomBytes(4);
  return `02:42:${hex2(b[0])}:${hex2(b[1])}:${hex2(b[2])}:${hex2(b[3])}`;
}

/**
 * Docker's MAC for a container address: `02:42` followed by the four bytes of the IPv4 address
 * (`172.17.0.2` → `02:42:ac:11:00:02`), so the MAC is unique wherever the address is.
 * @throws ConfigError (field `ip`) when `ip` is not an IPv4 address.
 */
export function macFromIPv4(ip: string): string {
  const n = ipv4ToNumber(parseIPv4(ip, 'ip'));
  return `02:42:${hex2(n >>> 24)}:${hex2(n >>> 16)}:${hex2(n >>> 8)}:${hex2(n)}`;
}
