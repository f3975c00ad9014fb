/**
 * Published ports: parsing Docker's `-p` syntax into single-port mappings, and bookkeeping of
 * which host ports are taken.
 */

import { randomInt } from 'node:crypto';
import { ConfigError, NetmodesError } from './errors';
import { parseIP } from './net/addr';

/** Transport protocols a port can be published for. */
export type Protocol = 'tcp' | 'udp' | 'sctp';

const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp', 'sctp'];

/** Host address meaning "every address" (IPv4 and IPv6). */
export const ALL_ADDRESSES = '0.0.0.0';

/** Host ports picked when none is given: Docker's fallback for `ip_local_port_range`. */
export const EPHEMERAL_PORT_RANGE: readonly [number, number] = Object.freeze([49153, 65535]) as readonly [number, number];

/** A port to publish, in object form. */
export interface PortSpec {
  /** Container port, or an inclusive range of them. */
  containerPort: number | [number, number];
  /**
   * Host port. Omitted or 0: pick a free one. A range the same length as `containerPort`'s maps
   * port to port; a range with a single container port means "any free port of the range".
   */
  hostPort?: number | [number, number];
  /** Default `tcp`. */
  protocol?: Protocol;
  /** Host address to publish on. Omitted, `''` or `0.0.0.0`: every address. */
  hostIp?: string;
}

/** One published port, as produced by {@link parsePortSpecs}. */
export interface PortMapping {
  protocol: Protocol;
  /** Canonical address; `0.0.0.0` means every host address (IPv4 and IPv6), `::` every IPv6 one. */
  hostIp: string;
  /** Host port; 0 means "pick one" (from `hostPortRange` if set, else the ephemeral range). */
  hostPort: number;
  /** Inclusive range to pick the host port from, when `hostPort` is 0. */
  hostPortRange?: [number, number];
  containerPort: number;
}

/** What {@link PortAllocator} needs to know about a mapping. */
export type PortClaim = Pick<PortMapping, 'protocol' | 'hostIp' | 'hostPort'> & { hostPortRange?: [number, number] };

function checkPort(n: unknown, field: string, allowZero: boolean): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < (allowZero ? 0 : 1) || n > 65535) {
    const shown = typeof n === 'string' ? JSON.stringify(n) : String(n);
    throw new ConfigError(`invalid port ${shown}: expected an integer ${allowZero ? 0 : 1}..65535`, field);
  }
  return n;
}

function checkRange(r: unknown, field: string): [number, number] {
  if (!Array.isArray(r) || r.length !== 2) throw new ConfigError('expected a port or a [from, to] range', field);
  const from = checkPort(r[0], field, false);
  const to = checkPort(r[1], field, false);
  if (from > to) throw new ConfigError(`port range ${from}-${to} is reversed`, field);
  return [from, to];
}

function single(p: number): [number, number] {
  return [p, p];
}

/** `"80"` or `"8000-8010"` → range; `allowZero` admits a single `0` ("pick one"). */
function parsePortText(text: string, field: string, allowZero: boolean): [number, number] {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  if (!m) throw new ConfigError(`invalid port or range ${JSON.stringify(text)}`, field);
  if (m[2] === undefined) {
    return single(checkPort(Number(m[1]), field, allowZero));
  }
  return checkRange([Number(m[1]), Number(m[2])], field);
}

function parseProtocol(p: unknown, field: string): Protocol {
  const proto = typeof p === 'string' ? p.toLowerCase() : p;
  if (!PROTOCOLS.includes(proto as Protocol)) {
    const shown = typeof p === 'string' ? JSON.stringify(p) : String(p);
    throw new ConfigError(`unknown protocol ${shown} (expected tcp, udp or sctp)`, field);
  }
  return proto as Protocol;
}

function parseHostIp(ip: unknown, field: string): string {
  if (ip === undefined || ip === '') return ALL_ADDRESSES;
  return parseIP(ip as string, field).address;
}

/** Splits `[ip:][hostPort:]containerPort` (protocol already removed). */
function splitSpec(s: string, field: string): { hostIp: string; host: string; container: string } {
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    const parts = close < 0 ? [] : s.slice(close + 1).split(':');
    if (parts.length !== 3 || parts[0] !== '') {
      throw new ConfigError(`invalid port spec ${JSON.stringify(s)}: expected [ipv6]:hostPort:containerPort`, field);
    }
    return { hostIp: s.slice(1, close), host: parts[1], container: parts[2] };
  }
  const parts = s.split(':');
  switch (parts.length) {
    case 1:
      return { hostIp: '', host: '', container: parts[0] };
    case 2:
      return { hostIp: '', host: parts[0], container: parts[1] };
    case 3:
      return { hostIp: parts[0], host: parts[1], container: parts[2] };
    default:
      throw new ConfigError(
        `invalid port spec ${JSON.stringify(s)}: expected [ip:][hostPort:]containerPort (put IPv6 addresses in brackets)`,
        field,
      );
  }
}

/** Host ports × container ports → mappings, with Docker's pairing rules. */
function expand(
  protocol: Protocol,
  hostIp: string,
  host: [number, number] | undefined,
  container: [number, number],
  field: string,
): PortMapping[] {
  const out: PortMapping[] = [];
  const [cFrom, cTo] = container;
  if (host === undefined || host[1] === 0) {
    for (let c = cFrom; c <= cTo; c++) out.push({ protocol, hostIp, hostPort: 0, containerPort: c });
    return out;
  }
  const [hFrom, hTo] = host;
  if (hTo - hFrom === cTo - cFrom) {
    for (let i = 0; i <= cTo - cFrom; i++) out.push({ protocol, hostIp, hostPort: hFrom + i, containerPort: cFrom + i });
    return out;
  }
  if (cFrom === cTo) {
    out.push({ protocol, hostIp, hostPort: 0, hostPortRange: [hFrom, hTo], containerPort: cFrom });
    return out;
  }
  throw new ConfigError(
    hFrom === hTo
      ? `a single host port (${hFrom}) cannot publish container port range ${cFrom}-${cTo}; ` +
        'give a host range of the same length'
      : `host port range ${hFrom}-${hTo} and container port range ${cFrom}-${cTo} differ in length`,
    `${field}.hostPort`,
  );
}

/**
 * Parses one published port.
 *
 * Strings follow `docker run -p`: `[ip:][hostPort:]containerPort[/protocol]`, where the ports may
 * be ranges (`8000-8010`), an empty or `0` host port means "pick one", and IPv6 host addresses go
 * in brackets. Examples: `80`, `8080:80`, `8080:80/udp`, `127.0.0.1:8080:80`, `127.0.0.1::80`,
 * `[::1]:8080:80`, `8000-8010:8000-8010`, `8000-8010:80` (any free host port of the range),
 * `5000/sctp`.
 *
 * @param field names the spec in errors, e.g. `ports[2]`; sub-fields are appended
 *   (`ports[2].hostPort`).
 * @returns one mapping per container port (ranges are expanded).
 * @throws ConfigError (with field) for any invalid part.
 */
export function parsePortSpec(spec: string | PortSpec, field = 'port'): PortMapping[] {
  if (typeof spec === 'string') {
    let rest = spec;
    let protocol: Protocol = 'tcp';
    const slash = rest.lastIndexOf('/');
    if (slash >= 0) {
      protocol = parseProtocol(rest.slice(slash + 1), `${field}.protocol`);
      rest = rest.slice(0, slash);
    }
    const parts = splitSpec(rest, field);
    const hostIp = parseHostIp(parts.hostIp, `${field}.hostIp`);
    const container = parsePortText(parts.container, `${field}.containerPort`, false);
    const host = parts.host === '' ? undefined : parsePortText(parts.host, `${field}.hostPort`, true);
    return expand(protocol, hostIp, host, container, field);
  }
  if (!spec || typeof spec !== 'object') {
    throw new ConfigError('expected a port spec string or object', field);
  }
  const protocol = spec.protocol === undefined ? 'tcp' : parseProtocol(spec.protocol, `${field}.protocol`);
  const hostIp = parseHostIp(spec.hostIp, `${field}.hostIp`);
  const cp = spec.containerPort;
  const cField = `${field}.containerPort`;
  const container = Array.isArray(cp) ? checkRange(cp, cField) : single(checkPort(cp, cField, false));
  const hp = spec.hostPort;
  const hField = `${field}.hostPort`;
  const host =
    hp === undefined ? undefined : Array.isArray(hp) ? checkRange(hp, hField) : single(checkPort(hp, hField, true));
  return expand(protocol, hostIp, host, container, field);
}

/**
 * Parses a list of published ports ({@link parsePortSpec} for each), naming entries
 * `${field}[i]` in errors.
 * @returns all mappings, in order.
 * @throws ConfigError (with field, e.g. `ports[2].hostPort`).
 */
export function parsePortSpecs(specs: ReadonlyArray<string | PortSpec>, field = 'ports'): PortMapping[] {
  if (!Array.isArray(specs)) throw new ConfigError('expected an array of port specs', field);
  const out: PortMapping[] = [];
  specs.forEach((s, i) => {
    for (const m of parsePortSpec(s, `${field}[${i}]`)) out.push(m);
  });
  return out;
}

/* Allocation -------------------------------------------------------------------------------------- */

function protoIndex(p: Protocol): number {
  return p === 'tcp' ? 0 : p === 'udp' ? 1 : 2;
}

/**
 * True when two host addresses collide on the same protocol and port: equal, or one of them is
 * the all-addresses `0.0.0.0`, or one is `::` (all IPv6) and the other is IPv6.
 */
export function hostIpsConflict(a: string, b: string): boolean {
  if (a === b || a === ALL_ADDRESSES || b === ALL_ADDRESSES) return true;
  return (a === '::' && b.includes(':')) || (b === '::' && a.includes(':'));
}

/**
 * Tracks which (protocol, host address, host port) triples are published, in memory. Rebuild it
 * after a restart with {@link PortAllocator.fromClaims}.
 */
export class PortAllocator {
  /** protocol index * 65536 + port → host addresses holding it. */
  readonly #used = new Map<number, string[]>();
  #count = 0;

  /**
   * Builds an allocator holding `claims`, e.g. the mappings found in the ruleset after a restart.
   * Every claim needs a concrete `hostPort`.
   * @throws ConfigError (field `claims[i]...`) for invalid or port-0 claims.
   * @throws NetmodesError `EPORTINUSE` if two claims conflict.
   */
  static fromClaims(claims: Iterable<PortClaim>): PortAllocator {
    const a = new PortAllocator();
    let i = 0;
    for (const c of claims) {
      const field = `claims[${i++}]`;
      if (c?.hostPort === 0) throw new ConfigError('a claim to restore needs a concrete host port', `${field}.hostPort`);
      a.#claim(c, field);
    }
    return a;
  }

  /** Number of triples held. */
  get size(): number {
    return this.#count;
  }

  /**
   * Takes the mapping's host port. With `hostPort` 0, first picks a free one with
   * {@link chooseFree} (from `hostPortRange` if set).
   * @returns the mapping with `hostPort` filled in and `hostIp` canonical (a new object).
   * @throws ConfigError (fields `protocol`, `hostIp`, `hostPort`, `hostPortRange`) for bad input.
   * @throws NetmodesError `EPORTINUSE` when the port conflicts with one held (see
   *   {@link hostIpsConflict}) or no port of the range is free.
   */
  claim<T extends PortClaim>(mapping: T): T {
    return this.#claim(mapping, '');
  }

  /**
   * Picks a free port for `protocol` on `hostIp` without taking it: a random start in `range`
   * (default {@link EPHEMERAL_PORT_RANGE}), then upwards, wrapping.
   * @throws ConfigError for bad arguments (fields `protocol`, `hostIp`, `range`).
   * @throws NetmodesError `EPORTINUSE` when every port of the range is taken.
   */
  chooseFree(protocol: Protocol, hostIp: string = ALL_ADDRESSES, range?: readonly [number, number]): number {
    return this.#chooseFree(
      parseProtocol(protocol, 'protocol'),
      parseHostIp(hostIp, 'hostIp'),
      range === undefined ? EPHEMERAL_PORT_RANGE : checkRange(range, 'range'),
    );
  }

  /**
   * True when `port` could be claimed for `protocol` on `hostIp`.
   * @throws ConfigError for bad arguments.
   */
  isFree(protocol: Protocol, hostIp: string, port: number): boolean {
    const proto = parseProtocol(protocol, 'protocol');
    return this.#conflict(proto, parseHostIp(hostIp, 'hostIp'), checkPort(port, 'port', false)) === undefined;
  }

  /**
   * Gives back a claimed triple (the host address must match the claim exactly). Idempotent.
   * @returns true if it was held.
   * @throws ConfigError for bad arguments.
   */
  release(mapping: PortClaim): boolean {
    const proto = parseProtocol(mapping?.protocol, 'protocol');
    const ip = parseHostIp(mapping.hostIp, 'hostIp');
    const key = protoIndex(proto) * 65536 + checkPort(mapping.hostPort, 'hostPort', true);
    const ips = this.#used.get(key);
    const i = ips ? ips.indexOf(ip) : -1;
    if (i < 0) return false;
    if (ips!.length === 1) this.#used.delete(key);
    else ips!.splice(i, 1);
    this.#count--;
    return true;
  }

  /** Held triples, in no particular order. */
  entries(): Array<Pick<PortMapping, 'protocol' | 'hostIp' | 'hostPort'>> {
    const out: Array<Pick<PortMapping, 'protocol' | 'hostIp' | 'hostPort'>> = [];
    for (const [key, ips] of this.#used) {
      const protocol = PROTOCOLS[Math.floor(key / 65536)];
      for (const hostIp of ips) out.push({ protocol, hostIp, hostPort: key % 65536 });
    }
    return out;
  }

  #claim<T extends PortClaim>(mapping: T, prefix: string): T {
    const f = (name: string) => (prefix ? `${prefix}.${name}` : name);
    if (!mapping || typeof mapping !== 'object') throw new ConfigError('expected a port mapping', prefix || 'mapping');
    const protocol = parseProtocol(mapping.protocol, f('protocol'));
    const hostIp = parseHostIp(mapping.hostIp, f('hostIp'));
    let port = checkPort(mapping.hostPort, f('hostPort'), true);
    if (port === 0) {
      const range =
        mapping.hostPortRange === undefined ? EPHEMERAL_PORT_RANGE : checkRange(mapping.hostPortRange, f('hostPortRange'));
      port = this.#chooseFree(protocol, hostIp, range);
    } else {
      const other = this.#conflict(protocol, hostIp, port);
      if (other !== undefined) {
        throw new NetmodesError(
          'EPORTINUSE',
          `cannot publish ${protocol} port ${fmt(hostIp, port)}: ${fmt(other, port)} is already allocated`,
        );
      }
    }
    const key = protoIndex(protocol) * 65536 + port;
    const ips = this.#used.get(key);
    if (ips) ips.push(hostIp);
    else this.#used.set(key, [hostIp]);
    this.#count++;
    return { ...mapping, hostIp, hostPort: port } as T;
  }

  /** A held address conflicting with (protocol, hostIp, port), if any. */
  #conflict(protocol: Protocol, hostIp: string, port: number): string | undefined {
    const ips = this.#used.get(protoIndex(protocol) * 65536 + port);
    return ips?.find((ip) => hostIpsConflict(ip, hostIp));
  }

  #chooseFree(protocol: Protocol, hostIp: string, range: readonly [number, number]): number {
    const [from, to] = range;
    const span = to - from + 1;
    const start = randomInt(span);
    for (let i = 0; i < span; i++) {
      const port = from + ((start + i) % span);
      if (this.#conflict(protocol, hostIp, port) === undefined) return port;
    }
    throw new NetmodesError('EPORTINUSE', `no free ${protocol} port in ${from}-${to} on ${hostIp}: all are allocated`);
  }
}

function fmt(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}
