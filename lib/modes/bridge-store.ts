/**
 * Bridge mode, the network's state: paths in the state store (lib/state/store.ts), the records,
 * the address and host-port claims, and `NetworkState`, the in-memory side of one open network
 * (its record, address pools, endpoint cache, the bridge's ifindex) that the concern files work on:
 * bridge-connect.ts, bridge-disconnect.ts, bridge-reconcile.ts and bridge-kernel.ts take it as their
 * first argument, and BridgeNetwork (bridge.ts) holds one. Also the few helpers they all share:
 * the test-only fault hook, ids and the firewall's view of the records.
 */
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ConfigError, NetmodesError } from '../errors';
import type { Namespace } from '../netns';
import { ipToBigInt, parseCidr, parseIP, parseIPv4 } from '../net/addr';
import { Ipv4Pool, Ipv6Pool, AddressPool } from '../ipam/allocator';
import { PortMapping, hostIpsConflict, EPHEMERAL_PORT_RANGE } from '../portspec';
import * as store from '../state/store';
import type { FwNetwork, FwEndpoint } from './bridge-firewall';
import type { Endpoint, EndpointLink, EndpointRecord, NetworkRecord, PublishedPort } from './bridge-types';

/** Alias of a complete host veth: `netmodes:NETID:ID` (see bridge.ts's module comment). */
export const ALIAS_PREFIX = 'netmodes:';
/** Alias of a host veth whose connect has not finished (see bridge.ts's module comment). */
export const PENDING_PREFIX = 'netmodes-pending:';

/**
 * TEST-ONLY fault hook: when the environment variable NETMODES_FAULT names `point`, the process
 * kills itself with SIGKILL right there, so crash tests can stop a connect or a disconnect between
 * two of its steps (test/ns/70.reliability-crash.test.ts), and a network's create, remove or
 * reconcile (test/ns/75.reliability-network-crash.test.ts). Points: connect:after-reserve,
 * connect:after-record, connect:after-elements, connect:after-veth, connect:after-routes
 * (bridge-connect.ts), disconnect:after-elements, disconnect:after-detach,
 * disconnect:after-release (bridge-disconnect.ts), network:after-record, remove:after-endpoints,
 * remove:after-kernel, remove:after-state (bridge.ts), reconcile:after-veths (bridge-reconcile.ts),
 * leaf:after-create (bridge-leaves.ts).
 * Unset, it costs one environment lookup.
 */
export function fault(point: string): void {
  if (process.env.NETMODES_FAULT === point) process.kill(process.pid, 'SIGKILL');
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function assertId(id: unknown, field: string): asserts id is string {
  if (typeof id !== 'string' || !ID_RE.test(id))
    throw new ConfigError(`invalid id ${JSON.stringify(id)} (1-64 characters of A-Z a-z 0-9 _ . -)`, field);
}

// Random hex for ids and veth names, from a pool filled 4 KiB at a time (one randomBytes call per
// ~100 connects instead of two each: the synchronous call costs tens of microseconds).
let randPool = Buffer.alloc(0);
let randAt = 0;
export function hex(n: number): string {
  const bytes = Math.ceil(n / 2);
  if (randAt + bytes > randPool.length) {
    randPool = randomBytes(4096);
    randAt = 0;
  }
  const out = randPool.toString('hex', randAt, randAt + bytes).slice(0, n);
  randAt += bytes;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Paths in the state store.

// Names directly under the state root, joined once per root (tests change the root); what goes
// below them is concatenated: a protocol, a port number and an address have no '/' or '..' to
// normalize (path.join on every connect + disconnect was ~3.5 KB of garbage).
const joined = new Map<string, { root: string; path: string }>();
function underRoot(name: string): string {
  const root = store.stateDir();
  let j = joined.get(name);
  if (j?.root !== root) joined.set(name, (j = { root, path: path.join(root, name) }));
  return j.path;
}
export function networksDir(): string {
  return underRoot('networks');
}
export function globalLock(): string {
  return underRoot('networks.lock');
}
export function portFile(p: { protocol: string; hostPort: number; hostIp: string }): string {
  return `${underRoot('ports')}/${p.protocol}/${p.hostPort}/${p.hostIp}`;
}
export function portDir(protocol: string, port: number): string {
  return `${underRoot('ports')}/${protocol}/${port}`;
}
/** The op that undoes a reserve op (owner-checked unless undefined). */
export function releaseOp(op: store.FsOp, owner: string | undefined): store.FsOp {
  const file = (op as { file: string }).file;
  return owner === undefined ? { op: 'remove', file } : { op: 'release', file, owner };
}

// ---------------------------------------------------------------------------------------------
// Records.

export async function readNetworkRecords(): Promise<NetworkRecord[]> {
  const names = (await store.listDir(networksDir())).filter((n) => n.endsWith('.json'));
  const out: NetworkRecord[] = [];
  for (const n of names) {
    const r = await store.readJson<NetworkRecord>(path.join(networksDir(), n));
    if (r && r.version === 1) out.push(r);
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** The name of a dense network's leaf bridge of slot `slot` (bridge-leaves.ts); `*`: all of them. */
export function leafName(r: NetworkRecord, slot: number | '*'): string {
  return `nm${r.id.slice(0, 8)}b${slot}`;
}

const fwOf = new WeakMap<NetworkRecord, FwNetwork>();

/** A network record as the firewall (bridge-firewall.ts) sees it (made once per record). */
export function toFw(r: NetworkRecord): FwNetwork {
  let fw = fwOf.get(r);
  if (!fw) {
    fw = {
      id: r.id,
      name: r.name,
      bridge: r.bridge,
      subnet: r.subnet,
      subnet6: r.ipv6?.subnet,
      icc: r.icc,
      masquerade: r.masquerade,
      internal: r.internal,
      ...(r.portsPerBridge ? { leaves: leafName(r, '*'), slotOf: slotFn(r) } : {}),
    };
    fwOf.set(r, fw);
  }
  return fw;
}

/** A dense network's slot of an address of either family (bridge-leaves.ts slotOf, slotOf6). */
function slotFn(r: NetworkRecord): (ip: string) => number {
  const L = BigInt(r.portsPerBridge!);
  const b4 = parseCidr(r.subnet, 'subnet').start;
  const b6 = r.ipv6 ? parseCidr(r.ipv6.subnet, 'ipv6.subnet').start : 0n;
  return (ip) => Number((ipToBigInt(ip, 'ip').value - (ip.includes(':') ? b6 : b4)) / L);
}

/** An endpoint record as the firewall sees it. */
export function epToFw(r: EndpointRecord): FwEndpoint {
  return { id: r.id, ip: r.ip, ipv6: r.ipv6, hostVeth: r.hostVeth, ports: r.ports, links: r.links };
}

// ---------------------------------------------------------------------------------------------

/** What an endpoint's `disconnect()` calls: the BridgeNetwork that made it. */
export interface EndpointOwner {
  disconnect(id: string): Promise<void>;
}

/**
 * A dense network's leaf (bridge-leaves.ts): the host end of its trunk (in the host: the leaf's
 * neighbour entries and routes are on it), its namespace (held open), and that namespace's bridge.
 */
export interface Leaf {
  trunk: number;
  ns: Namespace;
  br: number;
}

/** The leaves this process holds open, by network id (NetworkState.leaves). */
const LEAVES = new Map<string, Map<number, Leaf>>();

/**
 * Where a container's host end is: its namespace (the host's, or a leaf's), its bridge there, and
 * the host's link that carries its neighbour entries (the network's bridge, or the leaf's trunk).
 */
export interface Port {
  at: Namespace;
  master: number | string;
  neigh: number | string;
}

/**
 * An Endpoint as the API hands it out: the record's fields and the gateways as own, enumerable
 * data properties (frozen by toEndpoint), all set here in one order, so that every endpoint has
 * them in the object itself (no out-of-object property array: Object.assign onto `{}` gave each
 * one a 136-byte array) and shares one hidden class. `disconnect` is a getter on the prototype
 * whose function is made when it is read (no closure and context held per endpoint), so that
 * `const { disconnect } = ep` still works. What an endpoint holds is what a churning process
 * promotes out of V8's young generation, and so its RSS (README, "Memory under churn").
 */
class EndpointView implements Endpoint {
  readonly id: string;
  readonly network: string;
  readonly namespace: string;
  readonly ifname: string;
  readonly ip: string;
  readonly ipv6?: string;
  readonly mac: string;
  readonly hostVeth: string;
  readonly ports: PublishedPort[];
  readonly links: EndpointLink[];
  readonly hostname: string;
  readonly resolvConf: string;
  readonly hosts: string;
  readonly created: string;
  readonly aliases?: string[];
  readonly dnsUpstreams?: string[];
  readonly gateway: string;
  readonly gatewayV6?: string;
  readonly #owner: EndpointOwner;

  constructor(r: EndpointRecord, gateway: string, gatewayV6: string | undefined, owner: EndpointOwner) {
    this.id = r.id;
    this.network = r.network;
    this.namespace = r.namespace;
    this.ifname = r.ifname;
    this.ip = r.ip;
    this.ipv6 = r.ipv6;
    this.mac = r.mac;
    this.hostVeth = r.hostVeth;
    this.ports = r.ports;
    this.links = r.links;
    this.hostname = r.hostname;
    this.resolvConf = r.resolvConf;
    this.hosts = r.hosts;
    this.created = r.created;
    if (r.aliases !== undefined) this.aliases = r.aliases;
    if (r.dnsUpstreams !== undefined) this.dnsUpstreams = r.dnsUpstreams;
    this.gateway = gateway;
    this.gatewayV6 = gatewayV6;
    this.#owner = owner;
  }

  get disconnect(): () => Promise<void> {
    const owner = this.#owner;
    const id = this.id;
    return () => owner.disconnect(id);
  }
}

/**
 * @internal The in-memory state of one open network, shared by the concern files: its record,
 * the address pools, the cache of endpoint records, the bridge's ifindex, and the store paths and
 * claims of its endpoints.
 */
export class NetworkState {
  readonly rec: NetworkRecord;
  readonly host: Namespace;
  /** Transmit and receive queues of each veth end (1 in a record from before the option). */
  readonly vethQueues: number;
  readonly pool: Ipv4Pool;
  readonly pool6?: Ipv6Pool;
  readonly eps = new Map<string, EndpointRecord>();
  readonly prefix: number;
  readonly prefix6?: number;
  removed = false;
  /**
   * The bridge's ifindex, looked up once: requests that name the bridge by index spare the
   * executor a lookup per connect and disconnect. A bridge rebuilt meanwhile (reconcile, another
   * process) has another index: the request fails (EINVAL/ENODEV) and is retried by name.
   */
  bridgeIdx: number | undefined;
  /**
   * A dense network's leaves by slot, as this process knows them (shared by every open object of
   * the network in the process: a remove() through one closes them for all), and the makes in
   * progress (bridge-leaves.ts).
   */
  get leaves(): Map<number, Leaf> {
    let m = LEAVES.get(this.rec.id);
    if (!m) LEAVES.set(this.rec.id, (m = new Map()));
    return m;
  }
  readonly leafMaking = new Map<number, Promise<Leaf>>();
  private readonly owner: EndpointOwner;

  constructor(rec: NetworkRecord, host: Namespace, owner: EndpointOwner) {
    this.rec = rec;
    this.host = host;
    this.owner = owner;
    this.vethQueues = rec.vethQueues ?? 1;
    this.pool = new Ipv4Pool({ subnet: rec.subnet, gateway: rec.gateway, ipRange: rec.ipRange });
    this.prefix = parseCidr(rec.subnet, 'subnet').prefix;
    if (rec.ipv6) {
      this.pool6 = new Ipv6Pool({ subnet: rec.ipv6.subnet, gateway: rec.ipv6.gateway });
      this.prefix6 = parseCidr(rec.ipv6.subnet, 'ipv6.subnet').prefix;
    }
  }

  checkUsable(): void {
    if (this.removed) throw new NetmodesError('ENONETWORK', `network ${this.rec.name} was removed`);
  }

  /** The network's record file. */
  get recordFile(): string {
    return path.join(networksDir(), `${this.rec.name}.json`);
  }
  /** The network's state directory, made once per state root (tests change the root). */
  private dirOf?: { root: string; dir: string };
  get dir(): string {
    const root = store.stateDir();
    if (this.dirOf?.root !== root) this.dirOf = { root, dir: path.join(networksDir(), this.rec.name) };
    return this.dirOf.dir;
  }
  get lockFile(): string {
    return `${this.dir}/lock`;
  }
  // Ids and addresses are checked (assertId, the pools) before they name a file.
  epFile(id: string): string {
    return `${this.dir}/endpoints/${id}.json`;
  }
  ipFile(ip: string): string {
    return `${this.dir}/ip/${ip}`;
  }
  /**
   * Who links to an endpoint: one file per linker in linked/TARGET/, so that the link's elements
   * (which name the target's address) go when the target goes, not only when the linker does.
   */
  linkedDir(target: string): string {
    return `${this.dir}/linked/${target}`;
  }
  linkFile(target: string, linker: string): string {
    return `${this.dir}/linked/${target}/${linker}`;
  }
  /** The ops that remove `linkers`' registrations with `target`, then its directory if emptied. */
  unregisterOps(target: string, linkers: string[]): store.FsOp[] {
    return [...linkers.map((l): store.FsOp => ({ op: 'remove', file: this.linkFile(target, l) })), { op: 'rmdir', dir: this.linkedDir(target) }];
  }
  /** Who owns an endpoint's claims in the store. */
  ownerOf(epId: string): string {
    return `${this.rec.id.slice(0, 12)}:${epId}`;
  }
  alias(epId: string): string {
    return `${ALIAS_PREFIX}${this.rec.id.slice(0, 12)}:${epId}`;
  }

  /** The endpoint records in the store (complete ones: a record still "creating" has no ip). */
  async readRecords(): Promise<Map<string, EndpointRecord>> {
    const m = new Map<string, EndpointRecord>();
    for (const f of await store.listDir(path.join(this.dir, 'endpoints'))) {
      if (!f.endsWith('.json')) continue;
      const r = await store.readJson<EndpointRecord>(path.join(this.dir, 'endpoints', f));
      if (r && r.ip) m.set(r.id, r);
    }
    return m;
  }

  /**
   * Loads endpoint records and reservations into memory. The cache is replaced in one step: two
   * loads running at once (endpoints() from two async callers) once cleared each other's
   * half-filled map, so a caller saw a live endpoint missing (and a reconcile() running beside it
   * could take a live endpoint for a leftover).
   */
  async load(): Promise<void> {
    const m = await this.readRecords();
    this.eps.clear();
    for (const [k, v] of m) this.eps.set(k, v);
    for (const ip of await store.listDir(path.join(this.dir, 'ip'))) this.markUsed(ip);
  }

  /**
   * `text`, or the same text this network handed out last (one string held for all its endpoints
   * when they get the same resolv.conf, as they usually do).
   */
  shared(text: string): string {
    if (text === this.lastText) return this.lastText;
    this.lastText = text;
    return text;
  }
  private lastText = '';

  /** make(), or its result for the same `from` as last time (the host's resolv.conf text: one parse while it stays the same). */
  derived(from: string, make: () => string): string {
    if (this.lastFrom !== from) {
      this.lastDerived = this.shared(make());
      this.lastFrom = from;
    }
    return this.lastDerived;
  }
  private lastFrom: string | undefined;
  private lastDerived = '';

  markUsed(ip: string): void {
    const pool: AddressPool | undefined = ip.includes(':') ? this.pool6 : this.pool;
    if (!pool || pool.has(ip)) return;
    try {
      pool.reserve(ip);
    } catch {
      /* outside the pool, or the gateway: not ours to track */
    }
  }

  /** The Endpoint the API hands out for a record. */
  toEndpoint(rec: EndpointRecord): Endpoint {
    return Object.freeze(new EndpointView(rec, this.rec.gateway, this.rec.ipv6?.gateway, this.owner));
  }

  // -------------------------------------------------------------------------------------------
  // Address and port reservations.

  /**
   * An address for a connect, chosen in memory: `want` (ConfigError outside the subnet or the
   * gateway, EADDRINUSE when this process knows it taken) or the pool's next free one
   * (EPOOLEXHAUSTED). The caller claims it in the store, where another process may hold it.
   */
  pickIp(want: string | undefined, v6: boolean): string {
    const pool: AddressPool = v6 ? this.pool6! : this.pool;
    const field = v6 ? 'ipv6' : 'ip';
    if (want === undefined) return pool.allocate();
    const canon = v6 ? parseIP(want, field).address : parseIPv4(want, field);
    if (v6 && !canon.includes(':')) throw new ConfigError('must be an IPv6 address', field);
    pool.reserve(canon);
    return canon;
  }

  /** A free address claimed in the store, after the first candidate turned out to be another process's. */
  async allocateIp(owner: string, v6: boolean): Promise<string> {
    const pool: AddressPool = v6 ? this.pool6! : this.pool;
    // Other processes may hold addresses this one has not seen: the O_EXCL file decides.
    for (let tries = 0; tries <= pool.size; tries++) {
      const ip = pool.allocate(); // EPOOLEXHAUSTED when everything is taken
      if (await store.reserve(this.ipFile(ip), owner)) return ip;
    }
    throw new NetmodesError('EPOOLEXHAUSTED', `no free address left in ${v6 ? this.rec.ipv6!.subnet : this.rec.subnet}`);
  }

  async releaseIp(ip: string, owner: string): Promise<void> {
    await store.release(this.ipFile(ip), owner);
    (ip.includes(':') ? this.pool6 : this.pool)?.release(ip);
  }

  /** The host address a mapping publishes on (the network's hostIp stands in for 0.0.0.0). */
  hostIpFor(m: PortMapping): string {
    return m.hostIp === '0.0.0.0' && this.rec.hostIp !== '0.0.0.0' ? this.rec.hostIp : m.hostIp;
  }

  /** The fixed host ports of `maps` (undefined where a dynamic one is to be found), validated. */
  resolvePorts(maps: PortMapping[], field: string): Array<PublishedPort | undefined> {
    return maps.map((m, i) => {
      const hostIp = this.hostIpFor(m);
      if (hostIp.includes(':') && !this.rec.ipv6) throw new ConfigError('IPv6 host address on a network without IPv6', `${field}[${i}].hostIp`);
      return m.hostPort !== 0 ? { protocol: m.protocol, hostIp, hostPort: m.hostPort, containerPort: m.containerPort } : undefined;
    });
  }

  /** Claims one host port: lock-free, exact across processes and networks (see store.ts). */
  async claimPort(m: PublishedPort, owner: string): Promise<boolean> {
    const [mine, others] = await store.batch([
      { op: 'reserve', file: portFile(m), data: owner },
      { op: 'list', dir: portDir(m.protocol, m.hostPort) },
    ]);
    if (!mine) return false;
    // 0.0.0.0 conflicts with every specific address on the same port, and the reverse.
    if ((others as string[]).some((o) => o !== m.hostIp && hostIpsConflict(o, m.hostIp))) {
      await store.release(portFile(m), owner);
      return false;
    }
    return true;
  }

  /** A free host port from the mapping's range (or the ephemeral range), claimed. */
  async claimDynamicPort(m: PortMapping, hostIp: string, owner: string): Promise<PublishedPort> {
    const [lo, hi] = m.hostPortRange ?? EPHEMERAL_PORT_RANGE;
    const span = hi - lo + 1;
    const start = Math.floor(Math.random() * span);
    for (let k = 0; k < span; k++) {
      const p = { protocol: m.protocol, hostIp, hostPort: lo + ((start + k) % span), containerPort: m.containerPort };
      if (await this.claimPort(p, owner)) return p;
    }
    throw new NetmodesError('EPORTINUSE', `no free ${m.protocol} host port in ${lo}-${hi}`);
  }

  async releasePorts(ports: PublishedPort[], owner: string): Promise<void> {
    for (const p of ports) await store.release(portFile(p), owner);
  }
}
