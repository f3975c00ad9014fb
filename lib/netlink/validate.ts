/**
 * Input checks for the rtnetlink verbs. Each throws ConfigError(message, field) so that nothing
 * malformed reaches the addon. They check form and ranges the kernel would refuse anyway; they
 * never add policy.
 */
import * as ipaddr from 'ipaddr.js';
import { ConfigError } from '../errors';
import { Namespace } from '../netns';

export const U32_MAX = 0xffffffff;
const IFINDEX_MAX = 0x7fffffff;

/** Throws unless every own key of `obj` is in `allowed` (catches typos such as `Up: true`). */
export function checkKeys(obj: object, allowed: readonly string[], field: string): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) throw new ConfigError(`unknown option ${JSON.stringify(k)}`, field ? `${field}.${k}` : k);
  }
}

export function assertObject(v: unknown, field: string): asserts v is Record<string, unknown> {
  objectArg(v, field);
}

/** Throws unless `v` is a plain object (for typed arguments whose type should stay as it is). */
export function objectArg(v: unknown, field: string): void {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError('must be an object', field);
}

/**
 * An interface name as the kernel's dev_valid_name() accepts it: 1-15 bytes, not "." or "..",
 * no "/", ":", NUL or whitespace.
 */
export function ifname(v: unknown, field: string): string {
  if (typeof v !== 'string') throw new ConfigError('interface name must be a string', field);
  const bytes = Buffer.byteLength(v, 'utf8');
  if (bytes < 1 || bytes > 15) throw new ConfigError(`interface name ${JSON.stringify(v)} must be 1-15 bytes`, field);
  if (v === '.' || v === '..' || /[/:\s\0]/.test(v))
    throw new ConfigError(`invalid interface name ${JSON.stringify(v)} (no "/", ":", NUL or whitespace; not "." or "..")`, field);
  return v;
}

/** A link given by name or by ifindex. */
export function linkRef(v: unknown, field: string): string | number {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 1 || v > IFINDEX_MAX) throw new ConfigError(`invalid ifindex ${v}`, field);
    return v;
  }
  if (typeof v === 'string') return ifname(v, field);
  throw new ConfigError('must be an interface name or an ifindex', field);
}

export function integer(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw new ConfigError(`must be an integer in ${min}..${max} (got ${JSON.stringify(v)})`, field);
  return v;
}

export function u32(v: unknown, field: string): number {
  return integer(v, field, 0, U32_MAX);
}

/** MTU: 68 (the IPv4 minimum) to 65535. */
export function mtu(v: unknown, field: string): number {
  return integer(v, field, 68, 65535);
}

/** Queue count (numtxqueues and numrxqueues): 1 to 4096, the kernel's range. */
export function queues(v: unknown, field: string): number {
  return integer(v, field, 1, 4096);
}

export function bool(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') throw new ConfigError('must be true or false', field);
  return v;
}

export function str(v: unknown, field: string, maxBytes: number): string {
  if (typeof v !== 'string') throw new ConfigError('must be a string', field);
  if (Buffer.byteLength(v, 'utf8') > maxBytes || v.includes('\0'))
    throw new ConfigError(`must be at most ${maxBytes} bytes, without NUL`, field);
  return v;
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** An Ethernet address "aa:bb:cc:dd:ee:ff". For a link's own address (`unicast`), not multicast and not zero. */
export function mac(v: unknown, field: string, unicast = true): string {
  if (typeof v !== 'string' || !MAC_RE.test(v)) throw new ConfigError(`invalid MAC address ${JSON.stringify(v)} (expected aa:bb:cc:dd:ee:ff)`, field);
  if (unicast) {
    const first = parseInt(v.slice(0, 2), 16);
    if (first & 1) throw new ConfigError(`${v} is a multicast address`, field);
    if (/^(00:){5}00$/.test(v)) throw new ConfigError('the all-zero MAC address is not a valid link address', field);
  }
  return v.toLowerCase();
}

export type Family = 4 | 6;

export interface ParsedIp {
  family: Family;
  /** Canonical text form. */
  address: string;
  ip: ipaddr.IPv4 | ipaddr.IPv6;
}

const IPV4_RE = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/;

/** A plain IPv4 (four-part decimal) or IPv6 address, without prefix or zone. */
export function ip(v: unknown, field: string): ParsedIp {
  if (typeof v === 'string') {
    // The common case first: a canonical dotted quad (no leading zeros) is its own text form.
    const m = IPV4_RE.exec(v);
    if (m) {
      const octets = [+m[1], +m[2], +m[3], +m[4]];
      if (octets.every((o) => o <= 255)) return { family: 4, address: v, ip: new ipaddr.IPv4(octets) };
    }
    if (ipaddr.IPv4.isValidFourPartDecimal(v)) {
      const a = ipaddr.IPv4.parse(v);
      return { family: 4, address: a.toString(), ip: a };
    }
    if (!v.includes('%') && ipaddr.IPv6.isValid(v)) {
      const a = ipaddr.IPv6.parse(v);
      return { family: 6, address: a.toString(), ip: a };
    }
  }
  throw new ConfigError(`invalid IP address ${JSON.stringify(v)}`, field);
}

export interface ParsedCidr extends ParsedIp {
  prefix: number;
}

/** "address/prefix", or a bare address meaning a host prefix (/32, /128). */
export function cidr(v: unknown, field: string): ParsedCidr {
  if (typeof v !== 'string') throw new ConfigError(`invalid CIDR ${JSON.stringify(v)}`, field);
  const slash = v.indexOf('/');
  const a = ip(slash < 0 ? v : v.slice(0, slash), field);
  const max = a.family === 4 ? 32 : 128;
  if (slash < 0) return { ...a, prefix: max };
  const p = v.slice(slash + 1);
  if (!/^\d{1,3}$/.test(p) || Number(p) > max) throw new ConfigError(`invalid prefix length in ${JSON.stringify(v)}`, field);
  return { ...a, prefix: Number(p) };
}

/** A network: a CIDR whose host bits are zero (as the kernel requires for a route destination). */
export function network(v: unknown, field: string): ParsedCidr {
  const c = cidr(v, field);
  const bytes = c.ip.toByteArray();
  for (let bit = c.prefix; bit < bytes.length * 8; bit++) {
    if (bytes[bit >> 3] & (0x80 >> (bit & 7)))
      throw new ConfigError(`${v} has host bits set (the network is ${networkOf(bytes, c.prefix)}/${c.prefix})`, field);
  }
  return c;
}

function networkOf(bytes: number[], prefix: number): string {
  const out = bytes.map((b, i) => {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    return b & ((0xff << (8 - keep)) & 0xff);
  });
  return ipaddr.fromByteArray(out).toString();
}

export function family(v: unknown, field: string): Family {
  if (v !== 4 && v !== 6) throw new ConfigError('must be 4 or 6', field);
  return v;
}

/** A Namespace from lib/netns (its native handle goes to the addon). */
export function namespace(v: unknown, field: string): Namespace {
  if (!(v instanceof Namespace)) throw new ConfigError('must be a Namespace (createNamespace, openNamespace, currentNamespace)', field);
  return v;
}

const SCOPES = ['universe', 'site', 'link', 'host', 'nowhere'] as const;
export type ScopeName = (typeof SCOPES)[number];

/** A scope name or number 0..255. */
export function scope(v: unknown, field: string): ScopeName | number {
  if (typeof v === 'number') return integer(v, field, 0, 255);
  if (typeof v === 'string' && (SCOPES as readonly string[]).includes(v)) return v as ScopeName;
  throw new ConfigError(`must be one of ${SCOPES.join(', ')} or a number 0..255`, field);
}

const PROTOCOLS = ['unspec', 'redirect', 'kernel', 'boot', 'static', 'ra', 'dhcp', 'bgp', 'ospf'] as const;
export type ProtocolName = (typeof PROTOCOLS)[number];

export function protocol(v: unknown, field: string): ProtocolName | number {
  if (typeof v === 'number') return integer(v, field, 0, 255);
  if (typeof v === 'string' && (PROTOCOLS as readonly string[]).includes(v)) return v as ProtocolName;
  throw new ConfigError(`must be one of ${PROTOCOLS.join(', ')} or a number 0..255`, field);
}

const ROUTE_TYPES = ['unicast', 'local', 'blackhole', 'unreachable', 'prohibit', 'throw'] as const;
export type RouteTypeName = (typeof ROUTE_TYPES)[number];

export function routeType(v: unknown, field: string): RouteTypeName {
  if (typeof v === 'string' && (ROUTE_TYPES as readonly string[]).includes(v)) return v as RouteTypeName;
  throw new ConfigError(`must be one of ${ROUTE_TYPES.join(', ')}`, field);
}

const PORT_STATES = ['disabled', 'listening', 'learning', 'forwarding', 'blocking'] as const;
export type PortStateName = (typeof PORT_STATES)[number];

/** A bridge port's STP state by name. */
export function portState(v: unknown, field: string): PortStateName {
  if (typeof v === 'string' && (PORT_STATES as readonly string[]).includes(v)) return v as PortStateName;
  throw new ConfigError(`must be one of ${PORT_STATES.join(', ')}`, field);
}

const TABLES: Record<string, number> = { default: 253, main: 254, local: 255 };
export type TableName = 'default' | 'main' | 'local';

/** A routing table: 1..2^32-1 or 'main', 'local', 'default'. */
export function table(v: unknown, field: string): number {
  if (typeof v === 'string' && v in TABLES) return TABLES[v];
  if (typeof v === 'number') return integer(v, field, 1, U32_MAX);
  throw new ConfigError("must be a table number 1..4294967295 or 'main', 'local', 'default'", field);
}
