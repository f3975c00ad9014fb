/**
 * Subnet selection and gateway rules for networks (Docker's `default-address-pools` logic).
 */

import { ConfigError, NetmodesError } from '../errors';
import { bigIntToIP, Cidr, ipToBigInt, parseCidr, parseIP } from '../net/addr';

/** A block to carve subnets from: every aligned `/size` inside `base`, in address order. */
export interface AddressPoolSpec {
  /** The block, e.g. `192.168.0.0/16`. */
  base: string;
  /** Prefix length of each subnet handed out, e.g. `20`. Must be >= the base's prefix. */
  size: number;
}

/**
 * The pools {@link chooseSubnet} tries, in order:
 * 1. `172.17.0.0/16` … `172.31.0.0/16` (Docker's bridge pools; `172.16.0.0/16` is left alone);
 * 2. `192.168.0.0/20`, `192.168.16.0/20`, … `192.168.240.0/20` (Docker's);
 * 3. last resort, our addition: `10.0.0.0/8` split into `/24`s (the split Docker used for its
 *    "granular" predefined networks). 10/8 is where corporate networks and VPNs usually live, so
 *    it is tried only when the others are all taken; a `/24` holds 253 containers.
 */
export const DEFAULT_ADDRESS_POOLS: readonly AddressPoolSpec[] = Object.freeze([
  ...Array.from({ length: 15 }, (_, i) => Object.freeze({ base: `172.${17 + i}.0.0/16`, size: 16 })),
  Object.freeze({ base: '192.168.0.0/16', size: 20 }),
  Object.freeze({ base: '10.0.0.0/8', size: 24 }),
]);

/**
 * Parses a subnet: a prefix whose host bits are all zero (`172.20.0.0/16`, not `172.20.0.1/16`),
 * as Docker requires.
 * @throws ConfigError (with `field`) for bad syntax or host bits set (the message gives the fix).
 */
export function parseSubnet(s: string, field: string): Cidr {
  const cidr = parseCidr(s, field);
  if (cidr.address !== cidr.network) {
    throw new ConfigError(`invalid subnet ${s}: it should be ${cidr.toString()}`, field);
  }
  return cidr;
}

/** An allocation range: a CIDR block or an inclusive `FIRST-LAST` span of addresses. */
export interface AddressRange {
  readonly family: 4 | 6;
  readonly start: bigint;
  readonly end: bigint;
  /** Canonical text: `network/prefix` for a block, `FIRST-LAST` for a span. */
  readonly text: string;
}

/**
 * Parses an allocation range: a subnet (`172.17.5.0/24`) or an inclusive span
 * (`10.88.7.100-10.88.7.199`, as the CNI host-local plugin's rangeStart..rangeEnd), addresses of
 * one family, first <= last.
 * @throws ConfigError (with `field`).
 */
export function parseRange(s: string, field: string): AddressRange {
  if (typeof s === 'string' && !s.includes('/') && s.includes('-')) {
    const [a, b, ...rest] = s.split('-');
    if (rest.length) throw new ConfigError(`invalid range ${JSON.stringify(s)} (expected FIRST-LAST or a CIDR block)`, field);
    const x = ipToBigInt(a.trim(), field);
    const y = ipToBigInt(b.trim(), field);
    if (x.family !== y.family) throw new ConfigError(`range ${JSON.stringify(s)} mixes IPv4 and IPv6`, field);
    if (y.value < x.value) throw new ConfigError(`range ${JSON.stringify(s)} ends before it starts`, field);
    return { family: x.family, start: x.value, end: y.value, text: `${bigIntToIP(x.value, x.family)}-${bigIntToIP(y.value, y.family)}` };
  }
  const c = parseSubnet(s, field);
  return { family: c.family, start: c.start, end: c.end, text: c.toString() };
}

/** Parses one `inUse` entry: a prefix, or a bare address meaning a /32 or /128. */
function parseInUse(entry: string, field: string): Cidr {
  if (typeof entry === 'string' && !entry.includes('/')) {
    const ip = parseIP(entry, field);
    return parseCidr(`${ip.address}/${ip.family === 4 ? 32 : 128}`, field);
  }
  return parseCidr(entry, field);
}

/** `inUse` entries that can block a subnet: default routes (`/0`) are ignored. */
function blockers(inUse: readonly string[]): Cidr[] {
  if (!Array.isArray(inUse)) throw new ConfigError('expected an array of CIDR strings', 'inUse');
  const out: Cidr[] = [];
  inUse.forEach((entry, i) => {
    const c = parseInUse(entry, `inUse[${i}]`);
    if (c.prefix > 0) out.push(c);
  });
  return out;
}

/** Sorted, disjoint [start, end] intervals covering the given blocks. */
function mergeIntervals(cidrs: Cidr[]): [bigint, bigint][] {
  const sorted = cidrs
    .map((c): [bigint, bigint] => [c.start, c.end])
    .sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  const out: [bigint, bigint][] = [];
  for (const iv of sorted) {
    const top = out[out.length - 1];
    if (top && iv[0] <= top[1] + 1n) {
      if (iv[1] > top[1]) top[1] = iv[1];
    } else {
      out.push([iv[0], iv[1]]);
    }
  }
  return out;
}

/**
 * Picks the first subnet from the pools that overlaps nothing in `inUse`, like Docker does when a
 * network is created without `--subnet`.
 *
 * @param inUse prefixes already taken: the host's interface addresses (`192.168.1.5/24` blocks
 *   `192.168.1.0/24`), its routes and the subnets of other networks. Bare addresses count as
 *   /32 (/128). Default routes (prefix 0) are ignored, as Docker ignores routes without a
 *   destination; otherwise every host with a default route would block everything.
 * @param opts.pools pools to use instead of {@link DEFAULT_ADDRESS_POOLS} (Docker's
 *   `default-address-pools`); IPv6 pools work the same way.
 * @returns the subnet as `network/prefix`, e.g. `172.18.0.0/16`.
 * @throws ConfigError for malformed `inUse` entries (field `inUse[i]`) or pools (`pools[i]`).
 * @throws NetmodesError `EPOOLEXHAUSTED` when every candidate overlaps something.
 */
export function chooseSubnet(inUse: readonly string[], opts?: { pools?: readonly AddressPoolSpec[] }): string {
  const used = blockers(inUse);
  const pools = opts?.pools ?? DEFAULT_ADDRESS_POOLS;
  if (!Array.isArray(pools) || pools.length === 0) throw new ConfigError('expected a non-empty array of pools', 'pools');
  for (let i = 0; i < pools.length; i++) {
    const field = `pools[${i}]`;
    const base = parseSubnet(pools[i]?.base, `${field}.base`);
    const bits = base.family === 4 ? 32 : 128;
    const size = pools[i].size;
    if (!Number.isInteger(size) || size < base.prefix || size > bits) {
      throw new ConfigError(`size must be an integer between ${base.prefix} and ${bits}`, `${field}.size`);
    }
    const step = 1n << BigInt(bits - size);
    const taken = mergeIntervals(used.filter((u) => u.family === base.family && u.start <= base.end && base.start <= u.end));
    /* Candidates and `taken` both ascend, so one pass over each: O(n log n) for n entries. */
    let k = 0;
    let start = base.start;
    while (start + step - 1n <= base.end) {
      while (k < taken.length && taken[k][1] < start) k++;
      if (k === taken.length || taken[k][0] > start + step - 1n) return `${bigIntToIP(start, base.family)}/${size}`;
      start = ((taken[k][1] + step) / step) * step; /* first aligned candidate past the interval */
    }
  }
  throw new NetmodesError(
    'EPOOLEXHAUSTED',
    'all predefined address pools have been fully subnetted: every candidate subnet overlaps an address, route or network in use',
  );
}

/**
 * Checks that `subnet` overlaps nothing in `inUse` (same rules as {@link chooseSubnet}).
 * @param field the option `subnet` came from, for the ConfigError.
 * @returns the parsed subnet.
 * @throws ConfigError when `subnet` is not a canonical prefix or an `inUse` entry is malformed.
 * @throws NetmodesError `ESUBNETOVERLAP` naming the subnet and the first entry it overlaps.
 */
export function checkSubnetFree(subnet: string, inUse: readonly string[], field = 'subnet'): Cidr {
  const cidr = parseSubnet(subnet, field);
  if (!Array.isArray(inUse)) throw new ConfigError('expected an array of CIDR strings', 'inUse');
  inUse.forEach((entry, i) => {
    const c = parseInUse(entry, `inUse[${i}]`);
    if (c.prefix > 0 && c.family === cidr.family && c.start <= cidr.end && cidr.start <= c.end) {
      throw new NetmodesError('ESUBNETOVERLAP', `subnet ${cidr.toString()} overlaps ${entry}, which is already in use`);
    }
  });
  return cidr;
}

/**
 * Addresses of `subnet` that are never given to an endpoint: the network address and, for IPv4,
 * the broadcast address. IPv4 /31 and /32 (RFC 3021) and IPv6 /127 and /128 (RFC 6164) have no
 * reserved addresses. For IPv6 the network address is the subnet-router anycast address.
 */
export function reservedAddresses(subnet: Cidr): bigint[] {
  if (subnet.family === 4) return subnet.prefix >= 31 ? [] : [subnet.start, subnet.end];
  return subnet.prefix >= 127 ? [] : [subnet.start];
}

/**
 * Docker's default gateway: the first address after the network address (`172.17.0.1` for
 * `172.17.0.0/16`).
 * @throws ConfigError (field `subnet`) when `subnet` is invalid or a single address (/32, /128).
 */
export function defaultGateway(subnet: string | Cidr, field = 'subnet'): string {
  const cidr = typeof subnet === 'string' ? parseSubnet(subnet, field) : subnet;
  if (cidr.start === cidr.end) throw new ConfigError(`subnet ${cidr.toString()} has no room for a gateway`, field);
  return bigIntToIP(cidr.start + 1n, cidr.family);
}

/**
 * Checks a gateway for `subnet`: same family, inside it, and not its network or broadcast
 * address (see {@link reservedAddresses}).
 * @returns the gateway in canonical form.
 * @throws ConfigError (with `field`).
 */
export function validateGateway(gateway: string, subnet: string | Cidr, field = 'gateway'): string {
  const cidr = typeof subnet === 'string' ? parseSubnet(subnet, 'subnet') : subnet;
  const { value, family } = ipToBigInt(gateway, field);
  const text = bigIntToIP(value, family);
  if (family !== cidr.family) {
    throw new ConfigError(`gateway ${text} is IPv${family} but subnet ${cidr.toString()} is IPv${cidr.family}`, field);
  }
  if (value < cidr.start || value > cidr.end) {
    throw new ConfigError(`gateway ${text} is outside subnet ${cidr.toString()}`, field);
  }
  if (reservedAddresses(cidr).includes(value)) {
    const what = value === cidr.start ? 'network' : 'broadcast';
    throw new ConfigError(`gateway ${text} is the ${what} address of subnet ${cidr.toString()}`, field);
  }
  return text;
}
