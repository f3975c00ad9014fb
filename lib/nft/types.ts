/**
 * nftables data types: how a set key, a map value or a matched constant is laid out in kernel
 * bytes, and back. The kernel only sees bytes plus nft's numeric type id (NFTA_SET_KEY_TYPE);
 * `nft list` uses that id to print elements, so we use nft's ids and layouts exactly:
 *
 * - a concatenation `ipv4_addr . inet_proto . inet_service` has type id
 *   ((7 << 6 | 12) << 6) | 13 (TYPE_BITS = 6, first field in the high bits) and puts each field
 *   in its own 4-byte-aligned slot: 4 + 4 (1 byte + 3 padding) + 4 (2 bytes + 2 padding) = 12;
 *   in a rule, consecutive fields load into consecutive 4-byte registers (reg 1, 9, 10, ...).
 * - a single-field key has the field's own length (2 for inet_service), unpadded.
 * - `mark` and `ct state` are host-endian; addresses and ports are big-endian (network order).
 */
import * as os from 'node:os';
import * as ipaddr from 'ipaddr.js';
import { ConfigError } from '../errors';

/** nft's BYTEORDER_*: kept in set userdata so `nft list` prints host-endian keys right. */
export const BYTEORDER_INVALID = 0;
export const BYTEORDER_HOST = 1;
export const BYTEORDER_BIG = 2;

/** NFTA_SET_DATA_TYPE of verdict maps (NFT_DATA_VERDICT). */
export const NFT_DATA_VERDICT = 0xffffff00;

const LE = os.endianness() === 'LE';

/** A scalar value of some data type, as the API takes and returns it. */
export type Scalar = string | number;

/** An inclusive range of a data type (interval sets), e.g. ports `{ from: 8000, to: 8080 }`. */
export interface Range<V = Scalar> {
  from: V;
  to: V;
}

export interface DataType {
  /** nft's name (`ipv4_addr`). */
  name: string;
  /** False for types only matched in rules, never used as set keys here. */
  keyable?: boolean;
  /** nft's type id (TYPE_IPADDR = 7, ...). */
  id: number;
  /** Length in bytes. */
  len: number;
  byteorder: number;
  /** Value -> bytes; throws ConfigError naming `field`. */
  encode(v: unknown, field: string): Buffer;
  /** Bytes -> value (never throws: unknown values come back as numbers or hex). */
  decode(b: Buffer): Scalar;
  /** Addresses: 'a.b.c.d/n' -> [first, last]. */
  prefix?(v: string, field: string): [Buffer, Buffer] | undefined;
  /** Addresses: [first, last] -> 'a.b.c.d/n' when it is exactly a prefix. */
  toPrefix?(lo: Buffer, hi: Buffer): string | undefined;
}

/** `k` is an own key of `o` (`in` would also find 'toString' and friends). */
export function own(o: object, k: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, k);
}

function bad(field: string, what: string, v: unknown): never {
  throw new ConfigError(`${what} expected, got ${JSON.stringify(v)}`, field);
}

function uint(v: unknown, field: string, max: number, what: string): number {
  if (typeof v === 'string' && /^(0x[0-9a-f]+|[0-9]+)$/i.test(v)) v = Number(v);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) bad(field, what, v);
  return v as number;
}

/** 'a.b.c.d' (decimal, no leading zeros) to 4 bytes, or undefined. */
function fastIPv4(v: unknown): Buffer | undefined {
  if (typeof v !== 'string' || v.length < 7 || v.length > 15) return undefined;
  const b = Buffer.allocUnsafe(4); // every byte is written below (pooled: cheap in bulk)
  let part = 0;
  let n = -1;
  for (let i = 0; i <= v.length; i++) {
    const c = i < v.length ? v.charCodeAt(i) : 46;
    if (c === 46) {
      if (n < 0 || part > 3) return undefined;
      b[part++] = n;
      n = -1;
    } else if (c >= 48 && c <= 57) {
      if (n === 0) return undefined; // leading zero
      n = n < 0 ? c - 48 : n * 10 + c - 48;
      if (n > 255) return undefined;
    } else return undefined;
  }
  return part === 4 ? b : undefined;
}

function addrType(name: string, id: number, kind: 'ipv4' | 'ipv6'): DataType {
  const len = kind === 'ipv4' ? 4 : 16;
  const parse = (v: unknown, field: string): ipaddr.IPv4 | ipaddr.IPv6 => {
    if (typeof v !== 'string') bad(field, `an ${kind === 'ipv4' ? 'IPv4' : 'IPv6'} address`, v);
    const ok = kind === 'ipv4' ? ipaddr.IPv4.isValidFourPartDecimal(v as string) : ipaddr.IPv6.isValid(v as string);
    if (!ok || (v as string).includes('/')) bad(field, `an ${kind === 'ipv4' ? 'IPv4' : 'IPv6'} address`, v);
    return ipaddr.parse(v as string) as ipaddr.IPv4 | ipaddr.IPv6;
  };
  return {
    name,
    id,
    len,
    byteorder: BYTEORDER_BIG,
    // dotted quads are parsed here directly (bulk element updates parse thousands), anything
    // else through ipaddr.js
    encode: (v, field) => (kind === 'ipv4' && fastIPv4(v)) || Buffer.from(parse(v, field).toByteArray()),
    decode: (b) => (b.length === len ? ipaddr.fromByteArray([...b]).toString() : b.toString('hex')),
    prefix(v, field) {
      const slash = v.indexOf('/');
      if (slash < 0) return undefined;
      const bits = Number(v.slice(slash + 1));
      if (!/^[0-9]{1,3}$/.test(v.slice(slash + 1)) || bits > len * 8) bad(field, 'a prefix length', v);
      const base = Buffer.from(parse(v.slice(0, slash), field).toByteArray());
      const lo = Buffer.from(base);
      const hi = Buffer.from(base);
      for (let i = 0; i < len; i++) {
        const keep = Math.max(0, Math.min(8, bits - i * 8));
        const mask = (0xff << (8 - keep)) & 0xff;
        if ((base[i] & ~mask & 0xff) !== 0) bad(field, `a network address (host bits clear) for /${bits}`, v);
        lo[i] = base[i] & mask;
        hi[i] = base[i] | (~mask & 0xff);
      }
      return [lo, hi];
    },
    toPrefix(lo, hi) {
      // lo..hi is a prefix when hi = lo | hostmask and lo & hostmask = 0.
      let bits = len * 8;
      while (bits > 0) {
        const i = (bits - 1) >> 3;
        const bit = 0x80 >> ((bits - 1) & 7);
        if ((lo[i] & bit) === 0 && (hi[i] & bit) !== 0) bits--;
        else break;
      }
      for (let i = 0; i < len; i++) {
        const keep = Math.max(0, Math.min(8, bits - i * 8));
        const mask = (0xff << (8 - keep)) & 0xff;
        if ((lo[i] & ~mask & 0xff) !== 0 || (hi[i] & ~mask & 0xff) !== (~mask & 0xff) || (lo[i] & mask) !== (hi[i] & mask))
          return undefined;
      }
      return bits === len * 8 ? undefined : `${ipaddr.fromByteArray([...lo]).toString()}/${bits}`;
    },
  };
}

/** IANA protocol numbers nft knows by name. */
const PROTOS: Record<string, number> = {
  icmp: 1, igmp: 2, tcp: 6, udp: 17, gre: 47, esp: 50, ah: 51, 'ipv6-icmp': 58, icmpv6: 58, sctp: 132,
  udplite: 136, dccp: 33,
};
const PROTO_NAMES: Record<number, string> = { 1: 'icmp', 2: 'igmp', 6: 'tcp', 17: 'udp', 33: 'dccp', 47: 'gre', 50: 'esp', 51: 'ah', 58: 'ipv6-icmp', 132: 'sctp', 136: 'udplite' };

function be(len: number, n: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  b.writeUIntBE(n, 0, len);
  return b;
}
/** A u32 in host byte order (marks, ct state bits, fib address types). */
export function hostU32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  if (LE) b.writeUInt32LE(n);
  else b.writeUInt32BE(n);
  return b;
}
function readHost32(b: Buffer): number {
  return LE ? b.readUInt32LE(0) : b.readUInt32BE(0);
}

/** A host-endian u32 type (marks, interface indexes). */
function hostU32Type(name: string, id: number, what: string): DataType {
  return {
    name,
    id,
    len: 4,
    byteorder: BYTEORDER_HOST,
    encode: (v, field) => hostU32(uint(v, field, 0xffffffff, what)),
    decode: (b) => readHost32(b),
  };
}

const TYPES: DataType[] = [
  addrType('ipv4_addr', 7, 'ipv4'),
  addrType('ipv6_addr', 8, 'ipv6'),
  {
    name: 'ether_addr',
    id: 9,
    len: 6,
    byteorder: BYTEORDER_BIG,
    encode(v, field) {
      if (typeof v !== 'string' || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(v)) bad(field, 'a MAC address (aa:bb:cc:dd:ee:ff)', v);
      return Buffer.from((v as string).replace(/:/g, ''), 'hex');
    },
    decode: (b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':'),
  },
  {
    name: 'inet_proto',
    id: 12,
    len: 1,
    // nft records no byte order for one-byte protocol numbers.
    byteorder: BYTEORDER_INVALID,
    encode(v, field) {
      const n = typeof v === 'string' && own(PROTOS, v) ? PROTOS[v] : uint(v, field, 255, 'a protocol (tcp, udp, ... or 0-255)');
      return Buffer.from([n]);
    },
    decode: (b) => PROTO_NAMES[b[0]] ?? b[0],
  },
  {
    name: 'inet_service',
    id: 13,
    len: 2,
    byteorder: BYTEORDER_BIG,
    encode: (v, field) => be(2, uint(v, field, 65535, 'a port (0-65535)')),
    decode: (b) => b.readUInt16BE(0),
  },
  hostU32Type('mark', 19, 'a 32-bit mark'),
  hostU32Type('iface_index', 20, 'an interface index'),
  {
    name: 'ifname',
    id: 41,
    len: 16,
    byteorder: BYTEORDER_HOST,
    encode(v, field) {
      // IFNAMSIZ: 15 bytes and the NUL; the kernel compares all 16 bytes.
      if (typeof v !== 'string' || v.length === 0 || Buffer.byteLength(v) > 15 || v.includes('\0'))
        bad(field, 'an interface name (1-15 bytes)', v);
      const b = Buffer.alloc(16);
      b.write(v as string);
      return b;
    },
    decode(b) {
      const z = b.indexOf(0);
      return b.subarray(0, z < 0 ? b.length : z).toString();
    },
  },
];

/** ICMPv6 types by their nft names. */
const ICMP6_TYPES: Record<string, number> = {
  'echo-request': 128, 'echo-reply': 129, 'nd-router-solicit': 133, 'nd-router-advert': 134, 'nd-neighbor-solicit': 135, 'nd-neighbor-advert': 136,
};

// Types that appear in matches only (nft prints them, but we never key sets by them).
const MATCH_TYPES: DataType[] = [
  {
    name: 'ether_type',
    id: 10,
    len: 2,
    keyable: false,
    byteorder: BYTEORDER_BIG,
    encode(v, field) {
      const names: Record<string, number> = { ip: 0x0800, arp: 0x0806, ip6: 0x86dd, vlan: 0x8100, '8021ad': 0x88a8 };
      return be(2, typeof v === 'string' && own(names, v) ? names[v] : uint(v, field, 65535, 'an ether type (ip, ip6, arp, vlan or a number)'));
    },
    decode: (b) => ({ 0x0800: 'ip', 0x0806: 'arp', 0x86dd: 'ip6', 0x8100: 'vlan', 0x88a8: '8021ad' } as Record<number, string>)[b.readUInt16BE(0)] ?? b.readUInt16BE(0),
  },
  {
    name: 'nf_proto',
    id: 2,
    len: 1,
    keyable: false,
    byteorder: BYTEORDER_INVALID,
    encode(v, field) {
      const names: Record<string, number> = { ipv4: 2, ipv6: 10 };
      return Buffer.from([typeof v === 'string' && own(names, v) ? names[v] : uint(v, field, 255, 'ipv4, ipv6 or a number')]);
    },
    decode: (b) => ({ 2: 'ipv4', 10: 'ipv6' } as Record<number, string>)[b[0]] ?? b[0],
  },
  {
    name: 'icmpv6_type',
    id: 29,
    len: 1,
    keyable: false,
    byteorder: BYTEORDER_INVALID,
    encode(v, field) {
      return Buffer.from([typeof v === 'string' && own(ICMP6_TYPES, v) ? ICMP6_TYPES[v] : uint(v, field, 255, 'an ICMPv6 type (nd-neighbor-solicit, ... or 0-255)')]);
    },
    decode: (b) => Object.keys(ICMP6_TYPES).find((k) => ICMP6_TYPES[k] === b[0]) ?? b[0],
  },
];

/** Data types used by rule matches (every set key type, plus ether_type and nf_proto). */
export function matchType(name: string): DataType {
  const t = BY_NAME.get(name) ?? MATCH_TYPES.find((m) => m.name === name);
  if (!t) throw new Error(`internal: no data type ${name}`);
  return t;
}

const BY_NAME = new Map(TYPES.map((t) => [t.name, t]));
const BY_ID = new Map(TYPES.map((t) => [t.id, t]));

/** The data type called `name` (`ipv4_addr`), or undefined. */
export function dataType(name: string): DataType | undefined {
  return BY_NAME.get(name);
}

/** Names of every data type usable in set keys and map values. */
export const DATA_TYPES: readonly string[] = TYPES.map((t) => t.name);

const TYPE_BITS = 6;

/** A parsed key or value type: one data type or a concatenation. */
export interface TypeSpec {
  /** `ipv4_addr . inet_service` */
  text: string;
  parts: DataType[];
  /** NFTA_SET_KEY_TYPE / NFTA_SET_DATA_TYPE */
  id: number;
  /** Bytes: unpadded for one field, 4-byte aligned fields for a concatenation. */
  len: number;
  concat: boolean;
  byteorder: number;
}

const pad4 = (n: number) => (n + 3) & ~3;

/** Parses `ipv4_addr . inet_proto . inet_service` (or an array of names). Throws ConfigError. */
export function parseType(t: string | readonly string[], field: string): TypeSpec {
  const names = typeof t === 'string' ? t.split('.').map((s) => s.trim()) : [...t];
  if (names.length === 0 || names.length > 16) throw new ConfigError(`a data type or a concatenation of up to 16`, field);
  const parts = names.map((n) => {
    const dt = BY_NAME.get(n);
    if (!dt) throw new ConfigError(`unknown data type ${JSON.stringify(n)} (one of ${DATA_TYPES.join(', ')})`, field);
    return dt;
  });
  const concat = parts.length > 1;
  return {
    text: names.join(' . '),
    parts,
    id: parts.reduce((id, p) => id * (1 << TYPE_BITS) + p.id, 0),
    len: concat ? parts.reduce((n, p) => n + pad4(p.len), 0) : parts[0].len,
    concat,
    byteorder: concat ? BYTEORDER_INVALID : parts[0].byteorder,
  };
}

/**
 * The type spec for a kernel type id (read-back). Concatenations are unpacked six bits at a time;
 * an id we do not know yields undefined (the elements then read back as raw bytes).
 */
export function typeFromId(id: number, len: number): TypeSpec | undefined {
  const parts: DataType[] = [];
  let rest = id;
  while (rest > 0) {
    const dt = BY_ID.get(rest % (1 << TYPE_BITS));
    if (!dt) return undefined;
    parts.unshift(dt);
    rest = Math.floor(rest / (1 << TYPE_BITS));
  }
  if (!parts.length) return undefined;
  const spec = parseType(parts.map((p) => p.name), 'type');
  return spec.len === len ? spec : undefined;
}

/** A value of a type spec: a scalar, or an array of scalars for a concatenation. */
export type TypedValue = Scalar | Scalar[];
/** A key of an interval set: values, prefixes ('10.0.0.0/8') or ranges, per field. */
export type IntervalPart = Scalar | Range;
export type IntervalKey = IntervalPart | IntervalPart[];

function fields(spec: TypeSpec, v: unknown, field: string): unknown[] {
  if (!spec.concat) return [v];
  if (!Array.isArray(v) || v.length !== spec.parts.length)
    throw new ConfigError(`an array of ${spec.parts.length} values (${spec.text}) expected, got ${JSON.stringify(v)}`, field);
  return v;
}

function join(spec: TypeSpec, bufs: Buffer[]): Buffer {
  if (!spec.concat) return bufs[0];
  const out = Buffer.allocUnsafe(spec.len).fill(0); // pooled; the padding must be zero
  let off = 0;
  bufs.forEach((b, i) => {
    b.copy(out, off);
    off += pad4(spec.parts[i].len);
  });
  return out;
}

/** Encodes a value of `spec` (e.g. ['10.0.0.1', 'tcp', 80]). Throws ConfigError naming `field`. */
export function encodeValue(spec: TypeSpec, v: unknown, field: string): Buffer {
  const vs = fields(spec, v, field);
  return join(spec, vs.map((x, i) => spec.parts[i].encode(x, spec.concat ? `${field}[${i}]` : field)));
}

/** Splits kernel bytes of `spec` back into the value (raw bytes when the length does not match). */
export function decodeValue(spec: TypeSpec, b: Buffer): TypedValue | Buffer {
  if (b.length !== spec.len) return b;
  if (!spec.concat) return spec.parts[0].decode(b);
  let off = 0;
  return spec.parts.map((p) => {
    const v = p.decode(b.subarray(off, off + p.len));
    off += pad4(p.len);
    return v;
  });
}

/** Inclusive [first, last] bytes of one field of an interval key. */
function bounds(dt: DataType, v: unknown, field: string): [Buffer, Buffer] {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const r = v as Partial<Range>;
    if (!('from' in r) || !('to' in r)) bad(field, 'a value, a prefix or a { from, to } range', v);
    const lo = dt.encode(r.from, `${field}.from`);
    const hi = dt.encode(r.to, `${field}.to`);
    if (dt.byteorder !== BYTEORDER_BIG && dt.len > 1) throw new ConfigError(`${dt.name} ranges are not supported (host byte order)`, field);
    if (Buffer.compare(lo, hi) > 0) throw new ConfigError(`range start ${JSON.stringify(r.from)} is after its end ${JSON.stringify(r.to)}`, field);
    return [lo, hi];
  }
  if (typeof v === 'string' && dt.prefix) {
    const p = dt.prefix(v, field);
    if (p) return p;
  }
  const b = dt.encode(v, field);
  return [b, b];
}

/** Interval key -> inclusive [first, last] key bytes (concatenations: per field). */
export function encodeInterval(spec: TypeSpec, v: unknown, field: string): [Buffer, Buffer] {
  const vs = fields(spec, v, field);
  const bs = vs.map((x, i) => bounds(spec.parts[i], x, spec.concat ? `${field}[${i}]` : field));
  return [join(spec, bs.map((b) => b[0])), join(spec, bs.map((b) => b[1]))];
}

function formatBounds(dt: DataType, lo: Buffer, hi: Buffer): IntervalPart {
  if (lo.equals(hi)) return dt.decode(lo);
  const p = dt.toPrefix?.(lo, hi);
  return p ?? { from: dt.decode(lo), to: dt.decode(hi) };
}

/** Inclusive key bytes -> interval key: a value, 'a.b.c.d/n', or { from, to }. */
export function decodeInterval(spec: TypeSpec, lo: Buffer, hi: Buffer): IntervalKey | Buffer {
  if (lo.length !== spec.len || hi.length !== spec.len) return lo;
  if (!spec.concat) return formatBounds(spec.parts[0], lo, hi);
  let off = 0;
  return spec.parts.map((p) => {
    const v = formatBounds(p, lo.subarray(off, off + p.len), hi.subarray(off, off + p.len));
    off += pad4(p.len);
    return v;
  });
}

/** Big-endian +1 / -1 on a key (interval ends); undefined on overflow / underflow. */
export function increment(b: Buffer): Buffer | undefined {
  const out = Buffer.from(b);
  for (let i = out.length - 1; i >= 0; i--) {
    if (out[i] !== 0xff) {
      out[i]++;
      return out;
    }
    out[i] = 0;
  }
  return undefined;
}
export function decrement(b: Buffer): Buffer | undefined {
  const out = Buffer.from(b);
  for (let i = out.length - 1; i >= 0; i--) {
    if (out[i] !== 0) {
      out[i]--;
      return out;
    }
    out[i] = 0xff;
  }
  return undefined;
}
