/**
 * Bridge mode: Docker's `docker network create -d bridge` and `docker run --net=NET -p ...`.
 *
 * Per network (made once): a bridge with the gateway address and a fixed MAC, up; ip_forward on;
 * route_localnet on the bridge (so 127.0.0.1 can be published); nftables objects (see
 * bridge-firewall.ts): one masquerade rule per network as in Docker, and per-network dispatch
 * chains. Per container (connect): one veth pair made in ONE RTM_NEWLINK (host end named
 * vethXXXXXXXXXXX on the bridge and up, container end created directly in the container's namespace
 * as eth0 with its MAC, no IPv6 unless the network has it), a permanent neighbour entry on each
 * side (no ARP broadcasts at a thousand ports), the address, lo up, the default route; published
 * ports and links are nftables set/map elements, so the rule count never grows with containers.
 *
 * State: the kernel says which endpoints exist (host veths carry an alias `netmodes:NETID:ID`);
 * the state store (lib/state/store.ts) keeps each endpoint's record and the O_EXCL reservations of
 * its address and host ports, written before the kernel is touched. `reconcile()` reads both and
 * finishes or undoes whatever a killed process left half-made.
 *
 * A veth is made with the alias `netmodes-pending:NETID:ID` and gets its final alias only once
 * every step of the connect (addresses, neighbours, routes) is done: rtnetlink has no
 * transactions, so the alias is the commit mark. A veth still marked pending after a crash is
 * half-made, and reconcile() deletes it with its record and reservations (docs/reliability.md).
 *
 * Disconnect detaches at once (elements removed, veth off the bridge and down, address freed) and
 * reaps detached veths in batches with one RTM_DELLINK per link group, so churn does not pay one
 * RCU grace period (about 18 ms) per container.
 */
import { promises as fsp, existsSync } from 'node:fs';
import * as path from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import { ConfigError, NetmodesError, NetlinkError, isNotFound } from '../errors';
import { Namespace, currentNamespace, openNamespace, assertNamespaceName, sysctlSet, sysctlKey, namespacePath, prepareNamespace, openPrepared } from '../netns';
import * as nl from '../netlink';
import { batchTrusted } from '../netlink/batch';
import { parseCidr, parseIP, parseIPv4, assertIfname, parseMac, macFromIPv4, randomMac, cidrOverlaps } from '../net/addr';
import { Ipv4Pool, Ipv6Pool, AddressPool } from '../ipam/allocator';
import { chooseSubnet, checkSubnetFree, defaultGateway, parseRange, validateGateway } from '../ipam/subnets';
import { parsePortSpecs, PortMapping, hostIpsConflict, EPHEMERAL_PORT_RANGE } from '../portspec';
import { buildResolvConf, buildHosts, assertHostname } from '../dnsfiles';
import * as store from '../state/store';
import { firewall, FwNetwork, FwEndpoint } from './bridge-firewall';
import * as dns from '../dns/control';
import type {
  BridgeNetworkOptions,
  ConnectOptions,
  Endpoint,
  EndpointRecord,
  NetworkRecord,
  BridgeNetworkInfo,
  PublishedPort,
  EndpointLink,
  ReconcileReport,
} from './bridge-types';

export * from './bridge-types';

/** A Linux bridge takes at most this many ports (BR_MAX_PORTS - 1); one more gives EXFULL. */
export const MAX_BRIDGE_PORTS = 1023;
/** Link group that detached veths wait in until one RTM_DELLINK reaps them all ("NM" + 0xdead). */
export const REAP_GROUP = 0x4e4ddead;
const ALIAS_PREFIX = 'netmodes:';
/** Alias of a host veth whose connect has not finished (see the module comment). */
const PENDING_PREFIX = 'netmodes-pending:';

/**
 * TEST-ONLY fault hook: when the environment variable NETMODES_FAULT names `point`, the process
 * kills itself with SIGKILL right there, so crash tests can stop a connect or a disconnect between
 * two of its steps (test/ns/70.reliability-crash.test.ts), and a network's create, remove or
 * reconcile (test/ns/75.reliability-network-crash.test.ts). Points: connect:after-reserve,
 * connect:after-record, connect:after-elements, connect:after-veth, connect:after-routes,
 * disconnect:after-elements, disconnect:after-detach, disconnect:after-release,
 * network:after-record, remove:after-endpoints, remove:after-kernel, remove:after-state,
 * reconcile:after-veths. Unset, it costs one environment lookup.
 */
function fault(point: string): void {
  if (process.env.NETMODES_FAULT === point) process.kill(process.pid, 'SIGKILL');
}
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

// ---------------------------------------------------------------------------------------------
// Paths in the state store.

function networksDir(): string {
  return path.join(store.stateDir(), 'networks');
}
function globalLock(): string {
  return path.join(store.stateDir(), 'networks.lock');
}
function portFile(p: { protocol: string; hostPort: number; hostIp: string }): string {
  return path.join(store.stateDir(), 'ports', p.protocol, String(p.hostPort), p.hostIp);
}
function portDir(protocol: string, port: number): string {
  return path.join(store.stateDir(), 'ports', protocol, String(port));
}
/** The op that undoes a reserve op (owner-checked unless undefined). */
function releaseOp(op: store.FsOp, owner: string | undefined): store.FsOp {
  const file = (op as { file: string }).file;
  return owner === undefined ? { op: 'remove', file } : { op: 'release', file, owner };
}

// ---------------------------------------------------------------------------------------------
// The reaper: detached veths wait in REAP_GROUP; one request deletes them all.

class Reaper {
  private pending = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private hooked = false;

  /** A veth was detached into REAP_GROUP. */
  add(): void {
    this.pending++;
    if (!this.hooked) {
      this.hooked = true;
      // A process that ends normally reaps what it detached; one that dies leaves them for
      // reconcile(), which reaps the group too. They are already down and off every bridge.
      process.on('beforeExit', () => {
        if (this.pending) void this.flush();
      });
    }
    if (this.pending >= 64) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), 100);
      this.timer.unref();
    }
  }

  /**
   * Deletes every link in REAP_GROUP now. `force`: even when this process detached none (another
   * process, or a killed one, may have left detached veths behind).
   */
  async flush(force = false): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running) await this.running;
    if (!this.pending && !force) return;
    this.pending = 0;
    this.running = nl.linkDelGroup(REAP_GROUP).catch((err) => {
      if (!isNotFound(err)) throw err;
    });
    try {
      await this.running;
    } finally {
      this.running = undefined;
    }
  }
}
const reaper = new Reaper();

/** Deletes now every veth that disconnects have detached and not yet reaped. */
export function reapDetached(): Promise<void> {
  return reaper.flush();
}

// ---------------------------------------------------------------------------------------------
// Validation.

function assertId(id: unknown, field: string): asserts id is string {
  if (typeof id !== 'string' || !ID_RE.test(id))
    throw new ConfigError(`invalid id ${JSON.stringify(id)} (1-64 characters of A-Z a-z 0-9 _ . -)`, field);
}

function assertBool(v: unknown, field: string): void {
  if (v !== undefined && typeof v !== 'boolean') throw new ConfigError('must be a boolean', field);
}

function checkNetworkOptions(o: BridgeNetworkOptions): void {
  if (!o || typeof o !== 'object') throw new ConfigError('options must be an object', 'options');
  assertNamespaceName(o.name, 'name');
  if (o.bridge !== undefined) assertIfname(o.bridge, 'bridge');
  if (o.mtu !== undefined && (!Number.isInteger(o.mtu) || o.mtu < 68 || o.mtu > 65535))
    throw new ConfigError('must be an integer from 68 to 65535', 'mtu');
  if (o.vethQueues !== undefined && (!Number.isInteger(o.vethQueues) || o.vethQueues < 1 || o.vethQueues > 4096))
    throw new ConfigError('must be an integer from 1 to 4096', 'vethQueues');
  for (const k of ['icc', 'masquerade', 'internal', 'embeddedDns'] as const) assertBool(o[k], k);
  if (o.hostIp !== undefined) parseIP(o.hostIp, 'hostIp');
}

// ---------------------------------------------------------------------------------------------

// Random hex for ids and veth names, from a pool filled 4 KiB at a time (one randomBytes call per
// ~100 connects instead of two each: the synchronous call costs tens of microseconds).
let randPool = Buffer.alloc(0);
let randAt = 0;
function hex(n: number): string {
  const bytes = Math.ceil(n / 2);
  if (randAt + bytes > randPool.length) {
    randPool = randomBytes(4096);
    randAt = 0;
  }
  const out = randPool.toString('hex', randAt, randAt + bytes).slice(0, n);
  randAt += bytes;
  return out;
}

// The host's resolv.conf, re-read at most once a second (read asynchronously: connect never
// blocks the event loop on a file).
let resolvCache: { text: string; at: number } | undefined;
async function hostResolvConf(): Promise<string> {
  const now = Date.now();
  if (!resolvCache || now - resolvCache.at > 1000) {
    let text = '';
    try {
      text = await fsp.readFile('/etc/resolv.conf', 'utf8');
    } catch {
      /* no resolv.conf: buildResolvConf falls back to public resolvers */
    }
    resolvCache = { text, at: now };
  }
  return resolvCache.text;
}

function toFw(r: NetworkRecord): FwNetwork {
  return {
    id: r.id,
    name: r.name,
    bridge: r.bridge,
    subnet: r.subnet,
    subnet6: r.ipv6?.subnet,
    icc: r.icc,
    masquerade: r.masquerade,
    internal: r.internal,
  };
}

function epToFw(r: EndpointRecord): FwEndpoint {
  return { id: r.id, ip: r.ip, ipv6: r.ipv6, hostVeth: r.hostVeth, ports: r.ports, links: r.links };
}

/** Subnets that a new network must not overlap: the host's addresses and routes, and other networks'. */
async function subnetsInUse(host: Namespace): Promise<string[]> {
  const out: string[] = [];
  for (const a of await nl.addrList(host)) if (a.family === 4 && a.address !== '127.0.0.1') out.push(`${a.address}/${a.prefix}`);
  for (const r of await nl.routeList(host))
    if (r.family === 4 && r.dst && r.prefix > 0 && r.table === 254) out.push(`${r.dst}/${r.prefix}`);
  for (const n of await readNetworkRecords()) out.push(n.subnet);
  return out;
}

async function readNetworkRecords(): Promise<NetworkRecord[]> {
  const names = (await store.listDir(networksDir())).filter((n) => n.endsWith('.json'));
  const out: NetworkRecord[] = [];
  for (const n of names) {
    const r = await store.readJson<NetworkRecord>(path.join(networksDir(), n));
    if (r && r.version === 1) out.push(r);
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

// ---------------------------------------------------------------------------------------------

/**
 * Creates a bridge network: the bridge, its gateway address, forwarding, and the firewall
 * objects. Throws NetmodesError ENETWORKEXISTS for a taken name, ESUBNETOVERLAP for a subnet that
 * overlaps another network or the host's addresses and routes; ConfigError for bad options.
 * Equivalent to: `docker network create -d bridge --subnet S --gateway G NAME`
 */
export async function createBridgeNetwork(opts: BridgeNetworkOptions): Promise<BridgeNetwork> {
  checkNetworkOptions(opts);
  const host = currentNamespace();
  return store.withLock(globalLock(), true, async () => {
    const file = path.join(networksDir(), `${opts.name}.json`);
    if (await store.readJson(file))
      throw new NetmodesError('ENETWORKEXISTS', `network ${JSON.stringify(opts.name)} already exists`);
    const inUse = await subnetsInUse(host);
    let subnet: string;
    if (opts.subnet !== undefined) {
      const c = parseCidr(opts.subnet, 'subnet');
      if (c.family !== 4) throw new ConfigError('must be an IPv4 subnet (use ipv6.subnet for IPv6)', 'subnet');
      if (c.prefix > 30) throw new ConfigError('must leave room for a gateway and a container (/30 or larger)', 'subnet');
      subnet = `${c.network}/${c.prefix}`;
      checkSubnetFree(subnet, inUse, 'subnet');
    } else {
      subnet = chooseSubnet(inUse);
    }
    const gateway = opts.gateway !== undefined ? validateGateway(parseIPv4(opts.gateway, 'gateway'), subnet, 'gateway') : defaultGateway(subnet);
    if (opts.ipRange !== undefined) {
      const r = parseRange(opts.ipRange, 'ipRange');
      const s = parseCidr(subnet, 'subnet');
      if (r.family !== 4 || r.start < s.start || r.end > s.end) throw new ConfigError(`must lie inside ${subnet}`, 'ipRange');
    }
    let ipv6: NetworkRecord['ipv6'];
    if (opts.ipv6 !== undefined) {
      if (!opts.ipv6 || typeof opts.ipv6 !== 'object') throw new ConfigError('must be { subnet, gateway? }', 'ipv6');
      const c6 = parseCidr(opts.ipv6.subnet, 'ipv6.subnet');
      if (c6.family !== 6) throw new ConfigError('must be an IPv6 subnet', 'ipv6.subnet');
      if (c6.prefix > 126) throw new ConfigError('must be /126 or larger', 'ipv6.subnet');
      const s6 = `${c6.network}/${c6.prefix}`;
      for (const n of await readNetworkRecords())
        if (n.ipv6 && cidrOverlaps(n.ipv6.subnet, s6))
          throw new NetmodesError('ESUBNETOVERLAP', `ipv6.subnet ${s6} overlaps ${n.ipv6.subnet} of network ${n.name}`);
      const g6 = opts.ipv6.gateway !== undefined ? validateGateway(parseIP(opts.ipv6.gateway, 'ipv6.gateway').address, s6, 'ipv6.gateway') : defaultGateway(s6);
      ipv6 = { subnet: s6, gateway: g6 };
    }
    const id = createHash('sha256').update(`${opts.name}:${Date.now()}:${hex(16)}`).digest('hex');
    const rec: NetworkRecord = {
      version: 1,
      name: opts.name,
      id,
      bridge: opts.bridge ?? `br-${id.slice(0, 12)}`,
      bridgeMac: randomMac(),
      subnet,
      gateway,
      ipRange: opts.ipRange,
      mtu: opts.mtu ?? 1500,
      vethQueues: opts.vethQueues ?? 1,
      icc: opts.icc ?? true,
      masquerade: opts.masquerade ?? true,
      hostIp: opts.hostIp ? parseIP(opts.hostIp, 'hostIp').address : '0.0.0.0',
      internal: opts.internal ?? false,
      ipv6,
      created: new Date().toISOString(),
      ...(opts.embeddedDns ? { embeddedDns: true } : {}),
    };
    // A state directory without a record is what a remove() killed before its last step left:
    // its files must not pass for this network's.
    await fsp.rm(path.join(networksDir(), opts.name), { recursive: true, force: true });
    store.forgetDirs(path.join(networksDir(), opts.name));
    // The record goes first: a crash after it leaves a network that openBridgeNetwork() and
    // reconcile() complete (or remove() takes down).
    await store.writeJson(file, rec);
    fault('network:after-record');
    const net = new BridgeNetwork(rec, host);
    try {
      await net.setupKernel(false);
      if (rec.embeddedDns) await dns.ensureDnsServer(rec);
    } catch (err) {
      // A bridge of that name that is not ours stays exactly as it was.
      const foreign = (err as NetlinkError).code === 'EEXIST' && (err as NetlinkError).index === undefined && (err as NetlinkError).op === 'RTM_NEWLINK';
      if (!foreign) await net.teardownKernel().catch(() => undefined);
      await store.removeFile(file);
      if (foreign) throw new NetmodesError('EEXIST', `bridge ${rec.bridge} already exists (not made by netmodes)`, { cause: err });
      await dnsAfterRemove();
      throw err;
    }
    return net;
  });
}

/** Stops the embedded DNS server once no network in the store uses it. */
async function dnsAfterRemove(): Promise<void> {
  if (!(await readNetworkRecords()).some((n) => n.embeddedDns)) await dns.stopDnsServer();
}

/**
 * Opens an existing network, from this or a new process: every endpoint, address and published
 * port in the store is visible and can be disconnected. Throws NetmodesError ENONETWORK.
 */
export async function openBridgeNetwork(name: string): Promise<BridgeNetwork> {
  assertNamespaceName(name, 'name');
  // The record is read under the networks' lock, shared: a create (whose record goes in before
  // its bridge) or a remove in progress holds it exclusively, so a network is never opened
  // half-made (a connect to it would find no bridge). Lock and read in one trip.
  const { lock, results } = await store.FileLock.acquireWith(globalLock(), false, [{ op: 'read', file: path.join(networksDir(), `${name}.json`) }]);
  lock.release();
  const rec = store.parseRecord<NetworkRecord>(results[0]);
  if (!rec) throw new NetmodesError('ENONETWORK', `no bridge network named ${JSON.stringify(name)}`);
  const net = new BridgeNetwork(rec, currentNamespace());
  await net.load();
  return net;
}

/** Every bridge network in the store. Equivalent to: `docker network ls --filter driver=bridge` */
export async function listBridgeNetworks(): Promise<BridgeNetworkInfo[]> {
  const out: BridgeNetworkInfo[] = [];
  for (const r of await readNetworkRecords()) {
    const eps = (await store.listDir(path.join(networksDir(), r.name, 'endpoints'))).filter((n) => n.endsWith('.json'));
    out.push({
      name: r.name,
      id: r.id,
      bridge: r.bridge,
      subnet: r.subnet,
      gateway: r.gateway,
      ipv6: r.ipv6,
      icc: r.icc,
      internal: r.internal,
      masquerade: r.masquerade,
      embeddedDns: !!r.embeddedDns,
      endpoints: eps.length,
      created: r.created,
    });
  }
  return out;
}

export class BridgeNetwork {
  readonly name: string;
  readonly id: string;
  readonly bridge: string;
  readonly subnet: string;
  readonly gateway: string;
  readonly ipv6?: { subnet: string; gateway: string };
  readonly icc: boolean;
  readonly internal: boolean;
  readonly masquerade: boolean;
  /** Whether the embedded DNS server answers for this network (see lib/dns/). */
  readonly embeddedDns: boolean;
  readonly mtu: number;
  /** Transmit and receive queues of each veth end (see BridgeNetworkOptions.vethQueues). */
  readonly vethQueues: number;
  /** The bridge's fixed MAC address. */
  readonly bridgeMac: string;
  /** The range addresses are allocated from, if the network has one (CIDR or FIRST-LAST). */
  readonly ipRange?: string;

  private readonly rec: NetworkRecord;
  private readonly host: Namespace;
  private readonly pool: Ipv4Pool;
  private readonly pool6?: Ipv6Pool;
  private readonly eps = new Map<string, EndpointRecord>();
  private readonly prefix: number;
  private readonly prefix6?: number;
  private removed = false;

  /** @internal use createBridgeNetwork / openBridgeNetwork */
  constructor(rec: NetworkRecord, host: Namespace) {
    this.rec = rec;
    this.host = host;
    this.name = rec.name;
    this.id = rec.id;
    this.bridge = rec.bridge;
    this.subnet = rec.subnet;
    this.gateway = rec.gateway;
    this.ipv6 = rec.ipv6;
    this.icc = rec.icc;
    this.internal = rec.internal;
    this.masquerade = rec.masquerade;
    this.embeddedDns = !!rec.embeddedDns;
    this.mtu = rec.mtu;
    this.vethQueues = rec.vethQueues ?? 1;
    this.bridgeMac = rec.bridgeMac;
    this.ipRange = rec.ipRange;
    this.pool = new Ipv4Pool({ subnet: rec.subnet, gateway: rec.gateway, ipRange: rec.ipRange });
    this.prefix = parseCidr(rec.subnet, 'subnet').prefix;
    if (rec.ipv6) {
      this.pool6 = new Ipv6Pool({ subnet: rec.ipv6.subnet, gateway: rec.ipv6.gateway });
      this.prefix6 = parseCidr(rec.ipv6.subnet, 'ipv6.subnet').prefix;
    }
  }

  /** The network's state directory, made once per state root (tests change the root). */
  private dirOf?: { root: string; dir: string };
  private get dir(): string {
    const root = store.stateDir();
    if (this.dirOf?.root !== root) this.dirOf = { root, dir: path.join(networksDir(), this.name) };
    return this.dirOf.dir;
  }
  private get lockFile(): string {
    return `${this.dir}/lock`;
  }
  // Ids and addresses are checked (assertId, the pools) before they name a file.
  private epFile(id: string): string {
    return `${this.dir}/endpoints/${id}.json`;
  }
  private ipFile(ip: string): string {
    return `${this.dir}/ip/${ip}`;
  }
  /**
   * Who links to an endpoint: one file per linker in linked/TARGET/, so that the link's elements
   * (which name the target's address) go when the target goes, not only when the linker does.
   */
  private linkedDir(target: string): string {
    return `${this.dir}/linked/${target}`;
  }
  private linkFile(target: string, linker: string): string {
    return `${this.dir}/linked/${target}/${linker}`;
  }
  /** The ops that remove `linkers`' registrations with `target`, then its directory if emptied. */
  private unregisterOps(target: string, linkers: string[]): store.FsOp[] {
    return [...linkers.map((l): store.FsOp => ({ op: 'remove', file: this.linkFile(target, l) })), { op: 'rmdir', dir: this.linkedDir(target) }];
  }
  private alias(epId: string): string {
    return `${ALIAS_PREFIX}${this.id.slice(0, 12)}:${epId}`;
  }
  private pendingAlias(epId: string): string {
    return `${PENDING_PREFIX}${this.id.slice(0, 12)}:${epId}`;
  }

  /** @internal The bridge, its addresses, forwarding, firewall. `repair`: tolerate what exists. */
  async setupKernel(repair: boolean): Promise<string[]> {
    this.bridgeIdx = undefined;
    const done: string[] = [];
    const r = this.rec;
    let exists = false;
    if (repair) {
      try {
        await nl.linkGet(r.bridge, this.host);
        exists = true;
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    if (!exists) {
      await nl.linkAdd(
        {
          name: r.bridge,
          kind: 'bridge',
          mtu: r.mtu,
          mac: r.bridgeMac,
          up: true,
          alias: `${ALIAS_PREFIX}net:${r.name}`,
          noIpv6: !r.ipv6,
          bridge: { stp: false, forwardDelay: 0 },
        },
        this.host,
      );
      done.push(`bridge ${r.bridge}`);
    }
    const addrs = repair ? await nl.addrList(this.host, { link: r.bridge }) : [];
    if (!addrs.some((a) => a.address === r.gateway)) {
      await nl.addrAdd(r.bridge, `${r.gateway}/${this.prefix}`, {}, this.host);
      if (repair) done.push(`address ${r.gateway}`);
    }
    if (r.ipv6 && !addrs.some((a) => a.address === r.ipv6!.gateway)) {
      await nl.addrAdd(r.bridge, `${r.ipv6.gateway}/${this.prefix6}`, { noDad: true }, this.host);
      if (repair) done.push(`address ${r.ipv6.gateway}`);
    }
    await sysctlSet('net.ipv4.ip_forward', 1, this.host);
    if (r.ipv6) await sysctlSet('net.ipv6.conf.all.forwarding', 1, this.host);
    // Published 127.0.0.1 ports are DNATed to the bridge; the kernel drops such packets as
    // martians unless route_localnet is on for the outgoing device.
    await sysctlSet(sysctlKey('net', 'ipv4', 'conf', r.bridge, 'route_localnet'), 1, this.host);
    const fw = await firewall.ensureNetwork(toFw(r), this.host);
    if (repair) done.push(...fw);
    return done;
  }

  /** @internal Best-effort removal of the bridge and the firewall objects of this network. */
  async teardownKernel(): Promise<void> {
    const errors: unknown[] = [];
    const others = (await readNetworkRecords()).filter((n) => n.name !== this.name).length;
    await firewall.removeNetwork(toFw(this.rec), others === 0, this.host).catch((e) => errors.push(e));
    await nl.linkDel(this.rec.bridge, this.host).catch((e) => {
      if (!isNotFound(e)) errors.push(e);
    });
    if (errors.length) throw new AggregateError(errors, `removing network ${this.name}: ${errors.length} step(s) failed`);
  }

  /** The endpoint records in the store (complete ones: a record still "creating" has no ip). */
  private async readRecords(): Promise<Map<string, EndpointRecord>> {
    const m = new Map<string, EndpointRecord>();
    for (const f of await store.listDir(path.join(this.dir, 'endpoints'))) {
      if (!f.endsWith('.json')) continue;
      const r = await store.readJson<EndpointRecord>(path.join(this.dir, 'endpoints', f));
      if (r && r.ip) m.set(r.id, r);
    }
    return m;
  }

  /**
   * @internal Loads endpoint records and reservations into memory. The cache is replaced in one
   * step: two loads running at once (endpoints() from two async callers) once cleared each
   * other's half-filled map, so a caller saw a live endpoint missing (and a reconcile() running
   * beside it could take a live endpoint for a leftover).
   */
  async load(): Promise<void> {
    const m = await this.readRecords();
    this.eps.clear();
    for (const [k, v] of m) this.eps.set(k, v);
    for (const ip of await store.listDir(path.join(this.dir, 'ip'))) this.markUsed(ip);
  }

  private markUsed(ip: string): void {
    const pool: AddressPool | undefined = ip.includes(':') ? this.pool6 : this.pool;
    if (!pool || pool.has(ip)) return;
    try {
      pool.reserve(ip);
    } catch {
      /* outside the pool, or the gateway: not ours to track */
    }
  }

  // -------------------------------------------------------------------------------------------
  // Address and port reservations.

  /**
   * An address for a connect, chosen in memory: `want` (ConfigError outside the subnet or the
   * gateway, EADDRINUSE when this process knows it taken) or the pool's next free one
   * (EPOOLEXHAUSTED). The caller claims it in the store, where another process may hold it.
   */
  private pickIp(want: string | undefined, v6: boolean): string {
    const pool: AddressPool = v6 ? this.pool6! : this.pool;
    const field = v6 ? 'ipv6' : 'ip';
    if (want === undefined) return pool.allocate();
    const canon = v6 ? parseIP(want, field).address : parseIPv4(want, field);
    if (v6 && !canon.includes(':')) throw new ConfigError('must be an IPv6 address', field);
    pool.reserve(canon);
    return canon;
  }

  /** A free address claimed in the store, after the first candidate turned out to be another process's. */
  private async allocateIp(owner: string, v6: boolean): Promise<string> {
    const pool: AddressPool = v6 ? this.pool6! : this.pool;
    // Other processes may hold addresses this one has not seen: the O_EXCL file decides.
    for (let tries = 0; tries <= pool.size; tries++) {
      const ip = pool.allocate(); // EPOOLEXHAUSTED when everything is taken
      if (await store.reserve(this.ipFile(ip), owner)) return ip;
    }
    throw new NetmodesError('EPOOLEXHAUSTED', `no free address left in ${v6 ? this.ipv6!.subnet : this.subnet}`);
  }

  private async releaseIp(ip: string, owner: string): Promise<void> {
    await store.release(this.ipFile(ip), owner);
    (ip.includes(':') ? this.pool6 : this.pool)?.release(ip);
  }

  /** The host address a mapping publishes on (the network's hostIp stands in for 0.0.0.0). */
  private hostIpFor(m: PortMapping): string {
    return m.hostIp === '0.0.0.0' && this.rec.hostIp !== '0.0.0.0' ? this.rec.hostIp : m.hostIp;
  }

  /** The fixed host ports of `maps` (undefined where a dynamic one is to be found), validated. */
  private resolvePorts(maps: PortMapping[], field: string): Array<PublishedPort | undefined> {
    return maps.map((m, i) => {
      const hostIp = this.hostIpFor(m);
      if (hostIp.includes(':') && !this.ipv6) throw new ConfigError('IPv6 host address on a network without IPv6', `${field}[${i}].hostIp`);
      return m.hostPort !== 0 ? { protocol: m.protocol, hostIp, hostPort: m.hostPort, containerPort: m.containerPort } : undefined;
    });
  }

  /** Claims one host port: lock-free, exact across processes and networks (see store.ts). */
  private async claimPort(m: PublishedPort, owner: string): Promise<boolean> {
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
  private async claimDynamicPort(m: PortMapping, hostIp: string, owner: string): Promise<PublishedPort> {
    const [lo, hi] = m.hostPortRange ?? EPHEMERAL_PORT_RANGE;
    const span = hi - lo + 1;
    const start = Math.floor(Math.random() * span);
    for (let k = 0; k < span; k++) {
      const p = { protocol: m.protocol, hostIp, hostPort: lo + ((start + k) % span), containerPort: m.containerPort };
      if (await this.claimPort(p, owner)) return p;
    }
    throw new NetmodesError('EPORTINUSE', `no free ${m.protocol} host port in ${lo}-${hi}`);
  }

  private async releasePorts(ports: PublishedPort[], owner: string): Promise<void> {
    for (const p of ports) await store.release(portFile(p), owner);
  }

  // -------------------------------------------------------------------------------------------

  private checkUsable(): void {
    if (this.removed) throw new NetmodesError('ENONETWORK', `network ${this.name} was removed`);
  }

  /**
   * Connects a namespace: veth pair, address, routes, published ports, links, DNS texts.
   * A failed connect leaves nothing behind. Errors: ConfigError (bad option, naming the field),
   * NetmodesError EENDPOINTEXISTS, EADDRINUSE, EPOOLEXHAUSTED, EPORTINUSE, EBRIDGEFULL, ENOLINK.
   * Equivalent to: `docker run --net=NET --ip A -p H:C ...` (the networking part)
   */
  async connect(nsArg: Namespace | string, opts: ConnectOptions = {}): Promise<Endpoint> {
    this.checkUsable();
    if (!opts || typeof opts !== 'object') throw new ConfigError('options must be an object', 'options');
    const id = opts.id ?? hex(64);
    assertId(id, 'id');
    const ifname = opts.ifname ?? 'eth0';
    assertIfname(ifname, 'ifname');
    if (opts.mac !== undefined) parseMac(opts.mac, 'mac');
    if (opts.ipv6 !== undefined && !this.ipv6) throw new ConfigError('the network has no IPv6 subnet', 'ipv6');
    const hostname = opts.hostname ?? id.slice(0, 12);
    assertHostname(hostname, 'hostname');
    if (opts.aliases !== undefined && !Array.isArray(opts.aliases)) throw new ConfigError('must be an array of names', 'aliases');
    (opts.aliases ?? []).forEach((a, i) => assertHostname(a, `aliases[${i}]`));
    const maps = parsePortSpecs(opts.ports ?? [], 'ports');
    if (maps.length && this.internal) throw new ConfigError('an internal network publishes no ports', 'ports');
    if (opts.links !== undefined && !Array.isArray(opts.links)) throw new ConfigError('must be an array', 'links');
    const links: EndpointLink[] = [];
    // The name /etc/hosts gives a link: the peer's host name (its id may be 64 characters, more
    // than a host name label may have).
    for (const [i, l] of (opts.links ?? []).entries()) {
      const target = typeof l?.endpoint === 'string' ? l.endpoint : l?.endpoint?.id;
      if (typeof target !== 'string') throw new ConfigError('must name an endpoint', `links[${i}].endpoint`);
      if (l.alias !== undefined) assertHostname(l.alias, `links[${i}].alias`);
      const peer = this.eps.get(target) ?? (await store.readJson<EndpointRecord>(this.epFile(target)));
      if (!peer || !peer.ip)
        throw new NetmodesError('ENOLINK', `links[${i}]: no endpoint ${JSON.stringify(target)} on network ${this.name}`);
      links.push({ id: peer.id, name: peer.hostname, alias: l.alias, ip: peer.ip });
    }
    // The namespace is opened, and a socket made inside it, beside the claims (connectLocked):
    // neither waits for the other.
    let nsPath: string;
    let nsReady: Promise<Namespace>;
    if (typeof nsArg === 'string') {
      nsPath = namespacePath(nsArg).p;
      nsReady = openPrepared(nsArg);
    } else if (nsArg instanceof Namespace) {
      nsPath = nsArg.path;
      nsReady = prepareNamespace(nsArg);
    } else {
      throw new ConfigError('must be a Namespace or a namespace path', 'ns');
    }
    nsReady.catch(() => undefined); // awaited (and its error thrown) in connectLocked
    try {
      return await this.connectLocked(nsPath, nsReady, id, ifname, hostname, maps, links, opts);
    } finally {
      if (typeof nsArg === 'string') await nsReady.then((ns) => ns.close(), () => undefined);
    }
  }

  private async connectLocked(
    nsPath: string,
    nsReady: Promise<Namespace>,
    id: string,
    ifname: string,
    hostname: string,
    maps: PortMapping[],
    links: EndpointLink[],
    opts: ConnectOptions,
  ): Promise<Endpoint> {
    if (this.eps.size >= MAX_BRIDGE_PORTS)
      throw new NetmodesError('EBRIDGEFULL', `bridge ${this.bridge} already has ${MAX_BRIDGE_PORTS} ports (the kernel's limit)`);
    const owner = `${this.id.slice(0, 12)}:${id}`;
    const epFile = this.epFile(id);
    // Candidates chosen in memory (ConfigError / EADDRINUSE for what this process knows is taken),
    // then made ours with one batch of file operations: the endpoint's record, its address(es)
    // and its fixed host ports, each an O_EXCL claim (store.ts). Dynamic host ports and an
    // address another process took meanwhile are claimed after, one at a time.
    const picked: string[] = []; // marked used in this process's pools
    const pick = (want: string | undefined, v6: boolean): string => {
      const ip = this.pickIp(want, v6);
      picked.push(ip);
      return ip;
    };
    const undo: Array<() => Promise<unknown>> = [];
    const fsUndo: store.FsOp[] = [];
    let lock: store.FileLock | undefined;
    const rollback = async (): Promise<void> => {
      for (const u of undo.reverse()) await u().catch(() => undefined);
      if (fsUndo.length) await store.batch(fsUndo.reverse()).catch(() => undefined);
      for (const ip of picked) (ip.includes(':') ? this.pool6 : this.pool)?.release(ip);
    };
    try {
      const ports = this.resolvePorts(maps, 'ports');
      let ip = pick(opts.ip, false);
      let ipv6 = this.ipv6 ? pick(opts.ipv6, true) : undefined;
      const mac = opts.mac !== undefined ? parseMac(opts.mac, 'mac') : macFromIPv4(ip);
      const makeRecord = (): EndpointRecord => ({
        id,
        network: this.name,
        namespace: nsPath,
        ifname,
        ip,
        ipv6,
        mac: opts.mac !== undefined ? mac : macFromIPv4(ip),
        hostVeth,
        ports: ports.filter((p): p is PublishedPort => p !== undefined),
        links,
        hostname,
        resolvConf,
        hosts: buildHosts({ hostname, ip, ipv6, aliases: opts.aliases, links: links.map((l) => ({ name: l.name, alias: l.alias, ip: l.ip })) }),
        created,
        ...(opts.aliases?.length ? { aliases: [...opts.aliases] } : {}),
        ...(dnsUpstreams ? { dnsUpstreams } : {}),
      });
      const hostVeth = `veth${hex(11)}`;
      const hostText = await hostResolvConf();
      // With the embedded server, resolv.conf names it (on the gateway) and the servers asked
      // for, or the host's, become its upstreams for this endpoint.
      const dnsUpstreams = this.rec.embeddedDns ? dns.upstreamsFor(hostText, opts.dns?.servers) : undefined;
      const resolvConf = buildResolvConf(hostText, dnsUpstreams ? { ...opts.dns, servers: [this.gateway] } : opts.dns ?? {});
      const created = new Date().toISOString();
      let rec = makeRecord();
      const fixed = ports.filter((p): p is PublishedPort => p !== undefined);
      const ops: store.FsOp[] = [
        // The record goes in as the endpoint's claim (complete when nothing below changes it);
        // until the veth carries its final alias, reconcile() takes it for half-made.
        { op: 'reserve', file: epFile, data: JSON.stringify(rec) },
        { op: 'reserve', file: this.ipFile(ip), data: owner },
      ];
      if (ipv6) ops.push({ op: 'reserve', file: this.ipFile(ipv6), data: owner });
      for (const p of fixed) ops.push({ op: 'reserve', file: portFile(p), data: owner }, { op: 'list', dir: portDir(p.protocol, p.hostPort) });
      // Each link is registered with its target (see linkedDir); the target is checked again after
      // the kernel step, in case it was leaving meanwhile.
      for (const l of links) ops.push({ op: 'reserve', file: this.linkFile(l.id, id), data: owner });
      // Whether the DNS server runs, in the same trip (last: a lock op that would wait ends the batch).
      if (this.rec.embeddedDns) ops.push(dns.lockProbeOp());
      let res: store.FsResult[];
      try {
        // The network's lock (shared: connects and disconnects run side by side; reconcile and
        // remove take it exclusively), then the claims: one trip to the thread pool.
        ({ lock, results: res } = await store.FileLock.acquireWith(this.lockFile, false, ops));
      } catch (err) {
        // An I/O error part way: undo the claims that were made.
        const done = ((err as { results?: unknown[] }).results ?? []) as unknown[];
        for (const [i, r] of done.entries()) if (r === true && ops[i].op === 'reserve') fsUndo.push(releaseOp(ops[i], i === 0 ? undefined : owner));
        throw err;
      }
      const epMine = res[0] === true;
      if (epMine) fsUndo.push({ op: 'remove', file: epFile });
      if (res[1] === true) fsUndo.push({ op: 'release', file: this.ipFile(ip), owner });
      let k = 2;
      const ip6Mine = ipv6 ? res[k++] === true : true;
      if (ipv6 && ip6Mine) fsUndo.push({ op: 'release', file: this.ipFile(ipv6), owner });
      let portBusy: PublishedPort | undefined;
      for (const p of fixed) {
        const mine = res[k++] === true;
        const others = res[k++] as string[];
        if (mine) fsUndo.push({ op: 'release', file: portFile(p), owner });
        // 0.0.0.0 conflicts with every specific address on the same port, and the reverse.
        if (!mine || others.some((o) => o !== p.hostIp && hostIpsConflict(o, p.hostIp))) portBusy ??= p;
      }
      // (fsUndo runs in reverse: the file goes, then its directory if that left it empty.)
      for (const l of links) if (res[k++] === true) fsUndo.push(...this.unregisterOps(l.id, [id]).reverse());
      if (!epMine) throw new NetmodesError('EENDPOINTEXISTS', `endpoint ${JSON.stringify(id)} already exists on network ${this.name}`);
      if (portBusy) throw new NetmodesError('EPORTINUSE', `${portBusy.protocol} port ${portBusy.hostIp}:${portBusy.hostPort} is already published`);
      let changed = false;
      if (res[1] !== true) {
        // Another process holds it (or the address asked for).
        if (opts.ip !== undefined) throw new NetmodesError('EADDRINUSE', `${ip} is already in use on network ${this.name}`);
        ip = await this.allocateIp(owner, false);
        undo.push(() => this.releaseIp(ip, owner));
        changed = true;
      }
      if (ipv6 && !ip6Mine) {
        if (opts.ipv6 !== undefined) throw new NetmodesError('EADDRINUSE', `${ipv6} is already in use on network ${this.name}`);
        ipv6 = await this.allocateIp(owner, true);
        const v6 = ipv6;
        undo.push(() => this.releaseIp(v6, owner));
        changed = true;
      }
      for (const [i, m] of maps.entries()) {
        if (ports[i] !== undefined) continue;
        const p = await this.claimDynamicPort(m, this.hostIpFor(m), owner);
        undo.push(() => this.releasePorts([p], owner));
        ports[i] = p;
        changed = true;
      }
      if (changed) {
        rec = makeRecord();
        await store.writeJson(epFile, rec);
      }
      // A server that died (SIGKILL) comes back with the next connect.
      if (this.rec.embeddedDns && !dns.lockProbeResult(res[ops.length - 1])) await dns.ensureDnsServer(this.rec);
      fault('connect:after-reserve');
      fault('connect:after-record');
      await this.attachKernel(await nsReady, rec);
      if (links.length) {
        // A target that left while this connect ran may have missed our registration: then its
        // disconnect did not take the link's elements away, and this connect must not stand.
        undo.push(() => firewall.removeEndpoint(toFw(this.rec), epToFw(rec), this.host).catch(() => undefined));
        undo.push(() => this.unplumb(rec, true).catch(() => undefined));
        const targets = await store.batch(links.map((l) => ({ op: 'read', file: this.epFile(l.id) })));
        const gone = links.find((l, i) => store.parseRecord<EndpointRecord>(targets[i])?.ip !== l.ip);
        if (gone) throw new NetmodesError('ENOLINK', `links: endpoint ${JSON.stringify(gone.id)} left network ${this.name} while this one connected`);
      }
      this.eps.set(id, rec);
      return this.toEndpoint(rec);
    } catch (err) {
      await rollback();
      throw err;
    } finally {
      lock?.release();
    }
  }

  /**
   * The kernel side of a connect: the firewall elements (one nf_tables transaction) and the veth
   * (one rtnetlink worker call). On a network with icc=false the elements go first (the port is
   * isolated before it is ever up on the bridge); elsewhere both go at once, each on its own
   * thread (a DNAT element for an address that does not answer yet is harmless).
   */
  private async attachKernel(ns: Namespace, rec: EndpointRecord): Promise<void> {
    const fw = () => firewall.addEndpoint(toFw(this.rec), epToFw(rec), this.host);
    const unFw = () => firewall.removeEndpoint(toFw(this.rec), epToFw(rec), this.host).catch(() => undefined);
    if (!this.rec.icc || process.env.NETMODES_FAULT) {
      await fw();
      fault('connect:after-elements');
      try {
        await this.plumb(ns, rec);
      } catch (err) {
        await unFw();
        throw err;
      }
      return;
    }
    // The veth's call first: it is the longer one, so its worker starts before the firewall's
    // messages are encoded on this thread.
    const [k, f] = await Promise.allSettled([this.plumb(ns, rec), fw()]);
    if (f.status === 'fulfilled' && k.status === 'fulfilled') return;
    if (f.status === 'fulfilled') await unFw();
    if (k.status === 'fulfilled') await this.unplumb(rec, true).catch(() => undefined);
    throw f.status === 'rejected' ? f.reason : (k as PromiseRejectedResult).reason;
  }

  /**
   * The bridge's ifindex, looked up once: requests that name the bridge by index spare the
   * executor a lookup per connect and disconnect. A bridge rebuilt meanwhile (reconcile, another
   * process) has another index: the request fails (EINVAL/ENODEV) and is retried by name.
   */
  private bridgeIdx: number | undefined;

  /** The kernel side of a connect: one worker call, one message per step. */
  private async plumb(ns: Namespace, rec: EndpointRecord, retried = false, byName = false): Promise<void> {
    const r = this.rec;
    if (this.bridgeIdx === undefined && !byName)
      this.bridgeIdx = await nl.linkGet(r.bridge, this.host).then((l) => l.index, () => undefined);
    const br = byName ? r.bridge : (this.bridgeIdx ?? r.bridge);
    const ops: nl.BatchOp[] = [
      // ip link add vethX mtu M numtxqueues Q numrxqueues Q master BR type veth
      //   peer name eth0 netns NS address MAC mtu M numtxqueues Q numrxqueues Q up
      // (the host end comes up with the commit mark, below: one message fewer)
      {
        op: 'linkAdd',
        ns: this.host,
        name: rec.hostVeth,
        kind: 'veth',
        mtu: r.mtu,
        queues: this.vethQueues,
        master: br,
        alias: this.pendingAlias(rec.id),
        noIpv6: !r.ipv6,
        // A bridge port needs no IPv6 of its own (the bridge carries the gateway's addresses):
        // without it, the host's IPv6 route table does not grow with the number of containers,
        // and bringing a port up or deleting it does not walk a table that does.
        disableIpv6: true,
        peer: { name: rec.ifname, ns, mac: rec.mac, mtu: r.mtu, queues: this.vethQueues, up: true },
      },
      // ip neigh add IP lladdr MAC dev BR nud permanent (no ARP broadcast to find the container)
      { op: 'neighAdd', ns: this.host, link: br, address: rec.ip, lladdr: rec.mac },
      { op: 'linkSet', ns, link: 'lo', up: true },
      { op: 'addrAdd', ns, link: rec.ifname, cidr: `${rec.ip}/${this.prefix}` },
      // ip neigh add GW lladdr BRMAC dev eth0 nud permanent
      { op: 'neighAdd', ns, link: rec.ifname, address: r.gateway, lladdr: r.bridgeMac },
    ];
    if (rec.ipv6 && r.ipv6) ops.push({ op: 'addrAdd', ns, link: rec.ifname, cidr: `${rec.ipv6}/${this.prefix6}`, noDad: true });
    const routes: nl.BatchOp[] = [{ op: 'routeAdd', ns, dst: 'default', gateway: r.gateway, link: rec.ifname }];
    if (rec.ipv6 && r.ipv6) routes.push({ op: 'routeAdd', ns, dst: 'default', gateway: r.ipv6.gateway, link: rec.ifname });
    // Everything in one worker call, in order, stopping at the first failure: a failed create
    // never lets a later step touch an interface that is not ours. The veth was created with a
    // pending alias; the final one, set last, is the commit mark: from then on the endpoint is
    // complete and reconcile() keeps it (rtnetlink has no transactions).
    const first = ops.length;
    ops.push(...routes);
    // With the commit mark, the host end up (the container's eth0 gets its carrier only now) and
    // hairpin mode (bridge link set dev vethX hairpin on): with br_netfilter, a container reaching
    // its own published port is DNATed back out the port it came in on.
    ops.push({ op: 'linkSet', ns: this.host, link: rec.hostVeth, alias: this.alias(rec.id), up: true, hairpin: true });
    // The test-only fault hook needs the steps apart; otherwise they go as one call.
    const parts = process.env.NETMODES_FAULT ? [ops.slice(0, first), ops.slice(first, -1), ops.slice(-1)] : [ops];
    let base = 0;
    try {
      for (const [i, part] of parts.entries()) {
        await batchTrusted(part);
        base += part.length;
        if (parts.length > 1 && i === 0) fault('connect:after-veth');
        if (parts.length > 1 && i === 1) fault('connect:after-routes');
      }
    } catch (err) {
      const e = err as NetlinkError;
      const idx = e.index === undefined ? undefined : base + e.index;
      if (idx !== undefined && idx >= first && idx < ops.length - 1 && e.code === 'EEXIST') {
        // A namespace that already has a default route (connected to another network first)
        // keeps it; the steps after the refused route still go in.
        return this.finish(rec, ops.slice(idx + 1));
      }
      if (idx === 0 && typeof br === 'number' && (e.code === 'EINVAL' || e.code === 'ENODEV')) {
        // The bridge was rebuilt since its index was learned: by name again.
        this.bridgeIdx = undefined;
        return this.plumb(ns, rec, retried, true);
      }
      if (idx === 0 && (e.code === 'EEXIST' || e.code === 'EXFULL' || e.code === 'ENOSPC') && !retried) {
        // The container still has the interface of a detached, not yet reaped veth (this or
        // another process's), or detached veths still fill the bridge's ports: reap, retry.
        await reaper.flush(true);
        return this.plumb(ns, rec, true, byName);
      }
      if (idx === 0 && e.code === 'EEXIST')
        throw new ConfigError(`the namespace already has an interface named ${rec.ifname}`, 'ifname', 'EEXIST');
      if (idx !== 0) await nl.linkDel(rec.hostVeth, this.host).catch(() => undefined);
      if (idx === 0 && (e.code === 'EXFULL' || e.code === 'ENOSPC'))
        throw new NetmodesError('EBRIDGEFULL', `bridge ${r.bridge} is full (${MAX_BRIDGE_PORTS} ports)`, { cause: err });
      throw err;
    }
  }

  /** The rest of a connect after a refused default route, one step at a time. */
  private async finish(rec: EndpointRecord, rest: nl.BatchOp[]): Promise<void> {
    for (const op of rest) {
      try {
        await nl.batch([op]);
      } catch (err) {
        if (op.op !== 'routeAdd' || (err as NetlinkError).code !== 'EEXIST') {
          await nl.linkDel(rec.hostVeth, this.host).catch(() => undefined);
          throw err;
        }
      }
    }
  }

  /**
   * Detaches the veth at once (off the bridge, down, into the reap group) and drops the host's
   * neighbour entry; `now` deletes it instead (rollback paths).
   */
  private async unplumb(rec: EndpointRecord, now = false): Promise<void> {
    const br = this.bridgeIdx ?? this.rec.bridge;
    const neigh: nl.BatchOp = { op: 'neighDel', ns: this.host, link: br, address: rec.ip };
    const veth: nl.BatchOp = now
      ? { op: 'linkDel', ns: this.host, link: rec.hostVeth }
      : // The port stops forwarding at once (STP state listening) and forgets the MACs it learned;
        // locked, not learning and flooded nothing, it stays cut off even if the container's
        // carrier flapping made the bridge re-enable it. Leaving the bridge and going down (two
        // RCU grace periods) are left to the reaper's one bulk delete.
        {
          op: 'linkSet', ns: this.host, link: rec.hostVeth, group: REAP_GROUP, alias: '',
          portState: 'listening', fdbFlush: true, locked: true, learning: false, unicastFlood: false, mcastFlood: false, bcastFlood: false,
        };
    // One worker call, both messages sent whatever the first one's answer (a missing neighbour
    // entry or a veth already gone with its namespace is what we want anyway).
    const [n, v] = await batchTrusted([neigh, veth], { pipelined: true });
    if (n.status === 'rejected' && isNotFound(n.reason) && typeof br === 'number') {
      // Perhaps no such entry, perhaps a bridge rebuilt since its index was learned: by name.
      this.bridgeIdx = undefined;
      await nl.neighDel({ link: this.rec.bridge, address: rec.ip }, this.host).catch((e) => {
        if (!isNotFound(e)) throw e;
      });
    } else if (n.status === 'rejected' && !isNotFound(n.reason)) throw n.reason;
    if (v.status === 'rejected' && (v.reason as NetlinkError).code === 'ENETDOWN' && !now) {
      // The container set its end down (no carrier): the bridge takes a port state only from an
      // operational port, and would put it back to forwarding when the carrier returns. Take
      // it off the bridge and down instead.
      await nl.linkSet(rec.hostVeth, { master: null, up: false, group: REAP_GROUP, alias: '' }, this.host);
    } else if (v.status === 'rejected') {
      if (!isNotFound(v.reason)) throw v.reason;
      return; // already gone with its namespace
    }
    if (!now) reaper.add();
  }

  private toEndpoint(rec: EndpointRecord): Endpoint {
    const self = this;
    return Object.freeze({
      ...rec,
      gateway: this.gateway,
      gatewayV6: this.ipv6?.gateway,
      disconnect: () => self.disconnect(rec.id),
    });
  }

  /**
   * Disconnects an endpoint (given as the Endpoint, its id, its namespace or the namespace's path). Idempotent; works
   * when the container's namespace is already gone.
   * Equivalent to: `docker network disconnect NET CONTAINER`
   */
  async disconnect(target: Endpoint | Namespace | string): Promise<void> {
    let id: string | undefined;
    // A namespace, or its path (ids never contain '/'; the sandbox layer passes the path).
    const nsPath = target instanceof Namespace ? target.path : typeof target === 'string' && target.startsWith('/') ? target : undefined;
    if (nsPath !== undefined) {
      id = [...this.eps.values()].find((e) => e.namespace === nsPath)?.id;
      if (!id) {
        await this.load();
        id = [...this.eps.values()].find((e) => e.namespace === nsPath)?.id;
      }
      if (!id) return;
    } else if (typeof target === 'string') {
      id = target;
    } else if (target && typeof target === 'object' && typeof (target as Endpoint).id === 'string') {
      id = (target as Endpoint).id;
    } else {
      throw new ConfigError('must be an Endpoint, its id or a Namespace', 'target');
    }
    assertId(id, 'id');
    // The lock and the record (the store's, not the cache's: another process may have
    // disconnected it already) in one trip to the thread pool.
    // With them, who links to it.
    const { lock, results } = await store.FileLock.acquireWith(this.lockFile, false, [
      { op: 'read', file: this.epFile(id) },
      { op: 'list', dir: this.linkedDir(id) },
    ]);
    try {
      const rec = store.parseRecord<EndpointRecord>(results[0]);
      if (!rec || !rec.ip) {
        this.eps.delete(id);
        return;
      }
      await this.detach(rec, results[1] as string[]);
    } finally {
      lock.release();
    }
  }

  /**
   * The addresses of the endpoints that link to `target` (their link's elements name its address
   * too): from this process's records, else from the store. Linkers that are gone, or whose link
   * is to an earlier endpoint of that id, are left out.
   */
  private async linkerAddresses(target: EndpointRecord, linkers: string[]): Promise<string[]> {
    if (!linkers.length) return [];
    const missing = linkers.filter((l) => !this.eps.has(l));
    const read = missing.length ? await store.batch(missing.map((l) => ({ op: 'read', file: this.epFile(l) }))) : [];
    const recs = linkers.map((l) => this.eps.get(l) ?? store.parseRecord<EndpointRecord>(read[missing.indexOf(l)]));
    return recs.filter((r) => r?.ip && r.links.some((k) => k.id === target.id && k.ip === target.ip)).map((r) => r!.ip);
  }

  private async detach(rec: EndpointRecord, linkers: string[] = []): Promise<void> {
    const owner = `${this.id.slice(0, 12)}:${rec.id}`;
    const linkedBy = await this.linkerAddresses(rec, linkers);
    const removeElements = () => firewall.removeEndpoint(toFw(this.rec), epToFw(rec), this.host, linkedBy);
    // Elements and veth at once, each on its own thread (a process killed between or during
    // leaves what reconcile() finishes: a record whose veth lost its alias is removed with its
    // elements; a record whose veth is still marked keeps or regains its elements).
    if (process.env.NETMODES_FAULT) {
      await removeElements();
      fault('disconnect:after-elements');
      await this.unplumb(rec);
      fault('disconnect:after-detach');
    } else {
      const [f, k] = await Promise.allSettled([removeElements(), this.unplumb(rec)]);
      if (f.status === 'rejected') throw f.reason;
      if (k.status === 'rejected') throw k.reason;
    }
    // Claims and record in one batch, the record last (it explains the claims until then).
    const ops: store.FsOp[] = rec.ports.map((p) => ({ op: 'release', file: portFile(p), owner }));
    ops.push({ op: 'release', file: this.ipFile(rec.ip), owner });
    if (rec.ipv6) ops.push({ op: 'release', file: this.ipFile(rec.ipv6), owner });
    // Its own registrations with the endpoints it links to.
    for (const l of rec.links) ops.push(...this.unregisterOps(l.id, [rec.id]));
    if (process.env.NETMODES_FAULT) {
      await store.batch(ops);
      fault('disconnect:after-release');
      ops.length = 0;
    }
    ops.push({ op: 'remove', file: this.epFile(rec.id) });
    // Then the registrations of those that link to it, and their directory: the rmdir fails
    // only if an endpoint registered a link to this one since the list was read.
    ops.push(...this.unregisterOps(rec.id, linkers));
    const res = await store.batch(ops);
    if (res[res.length - 1] === false) await this.lateLinkers(rec, linkers);
    this.pool.release(rec.ip);
    if (rec.ipv6) this.pool6?.release(rec.ipv6);
    this.eps.delete(rec.id);
  }

  /**
   * Endpoints that registered a link to `rec` while it was leaving. Each either saw its record
   * gone (and undoes its own connect: ENOLINK) or added its elements before the record went:
   * those elements are removed here, after they were added.
   */
  private async lateLinkers(rec: EndpointRecord, seen: string[]): Promise<void> {
    for (let round = 0; round < 3; round++) {
      const late = (await store.listDir(this.linkedDir(rec.id))).filter((l) => !seen.includes(l));
      seen = [...seen, ...late];
      const ips = await this.linkerAddresses(rec, late);
      await firewall.removeLinks(rec.ip, ips, this.host);
      const res = await store.batch(this.unregisterOps(rec.id, late));
      if (res[res.length - 1] !== false) return;
    }
  }

  /** Endpoints in the store (all processes'). */
  async endpoints(): Promise<Endpoint[]> {
    await this.load();
    return [...this.eps.values()].map((r) => this.toEndpoint(r));
  }

  /** One endpoint by id, or undefined. */
  async endpoint(id: string): Promise<Endpoint | undefined> {
    const rec = this.eps.get(id) ?? (await store.readJson<EndpointRecord>(this.epFile(id)));
    return rec && rec.ip ? this.toEndpoint(rec) : undefined;
  }

  /**
   * True while the store still holds this network (not removed, and not removed and made again
   * by another process since this object was opened).
   */
  async isCurrent(): Promise<boolean> {
    if (this.removed) return false;
    const rec = await store.readJson<NetworkRecord>(path.join(networksDir(), `${this.name}.json`));
    return rec?.id === this.id;
  }

  /** IPv4 addresses a connect can still be given (from the store: every process's claims). */
  async freeAddresses(): Promise<number> {
    // A pool of its own from the store's reservations: this object's pool does not learn of
    // addresses other processes released.
    const pool = new Ipv4Pool({ subnet: this.rec.subnet, gateway: this.rec.gateway, ipRange: this.rec.ipRange });
    for (const ip of await store.listDir(path.join(this.dir, 'ip')))
      if (!ip.includes(':'))
        try {
          pool.reserve(ip);
        } catch {
          /* outside the pool */
        }
    return pool.free;
  }

  /**
   * What is not as a connect left it, for one endpoint: its veth (present, on the bridge, up,
   * marked complete), the container's interface (MAC, up, addresses, default routes via the
   * gateway), the bridge's neighbour entry and the firewall elements of its published ports and
   * links. An empty list: all in place. Throws NetmodesError ENOENDPOINT for an unknown id.
   * `nsPath`: the container's namespace, if not the one the endpoint was connected in.
   */
  async check(id: string, nsPath?: string): Promise<string[]> {
    assertId(id, 'id');
    const rec = await store.readJson<EndpointRecord>(this.epFile(id));
    if (!rec || !rec.ip) throw new NetmodesError('ENOENDPOINT', `no endpoint ${JSON.stringify(id)} on network ${this.name}`);
    const problems: string[] = [];
    const bridge = await nl.linkGet(this.bridge, this.host).catch(() => undefined);
    if (!bridge) problems.push(`bridge ${this.bridge} is missing`);
    const veth = await nl.linkGet(rec.hostVeth, this.host).catch(() => undefined);
    if (!veth) problems.push(`host veth ${rec.hostVeth} is missing`);
    else {
      if (veth.alias !== this.alias(rec.id)) problems.push(`host veth ${rec.hostVeth} is not marked complete (alias ${JSON.stringify(veth.alias ?? '')})`);
      if (bridge && veth.master !== bridge.index) problems.push(`host veth ${rec.hostVeth} is not on bridge ${this.bridge}`);
      if (!veth.up) problems.push(`host veth ${rec.hostVeth} is down`);
    }
    if (bridge) {
      const neigh = (await nl.neighList(this.host, { link: bridge.index })).find((n) => n.address === rec.ip);
      if (!neigh || neigh.lladdr?.toLowerCase() !== rec.mac.toLowerCase()) problems.push(`neighbour entry ${rec.ip} on ${this.bridge} is missing`);
    }
    let ns: Namespace | undefined;
    try {
      ns = await openNamespace(nsPath ?? rec.namespace);
    } catch (err) {
      problems.push(`namespace ${nsPath ?? rec.namespace} cannot be opened (${(err as { code?: string }).code ?? err})`);
    }
    if (ns) {
      try {
        const link = (await nl.linkList(ns)).find((l) => l.name === rec.ifname);
        if (!link) problems.push(`interface ${rec.ifname} is missing in the container`);
        else {
          if (link.mac?.toLowerCase() !== rec.mac.toLowerCase()) problems.push(`interface ${rec.ifname} has MAC ${link.mac}, not ${rec.mac}`);
          if (!link.up) problems.push(`interface ${rec.ifname} is down`);
          const addrs = await nl.addrList(ns, { link: link.index });
          for (const [ip, prefix] of [[rec.ip, this.prefix], ...(rec.ipv6 ? [[rec.ipv6, this.prefix6]] : [])] as Array<[string, number]>)
            if (!addrs.some((a) => a.address === ip && a.prefix === prefix)) problems.push(`address ${ip}/${prefix} is missing on ${rec.ifname}`);
          const routes = await nl.routeList(ns);
          const gws: Array<[4 | 6, string]> = [[4, this.gateway]];
          if (rec.ipv6 && this.ipv6) gws.push([6, this.ipv6.gateway]);
          for (const [family, gw] of gws)
            if (!routes.some((r) => r.family === family && r.dst === 'default' && r.gateway === gw))
              problems.push(`default route via ${gw} is missing`);
        }
      } finally {
        ns.close();
      }
    }
    problems.push(...(await firewall.missing(toFw(this.rec), epToFw(rec), this.host)));
    return problems;
  }

  /** JSON in the shape of `docker network inspect NAME`. */
  async inspect(): Promise<Record<string, unknown>> {
    const eps = await this.endpoints();
    const r = this.rec;
    const config: Record<string, string>[] = [{ Subnet: r.subnet, Gateway: r.gateway, ...(r.ipRange ? { IPRange: r.ipRange } : {}) }];
    if (r.ipv6) config.push({ Subnet: r.ipv6.subnet, Gateway: r.ipv6.gateway });
    return {
      Name: r.name,
      Id: r.id,
      Created: r.created,
      Scope: 'local',
      Driver: 'bridge',
      EnableIPv6: !!r.ipv6,
      IPAM: { Driver: 'default', Options: {}, Config: config },
      Internal: r.internal,
      Attachable: true,
      Containers: Object.fromEntries(
        eps.map((e) => [
          e.id,
          {
            Name: e.hostname,
            EndpointID: createHash('sha256').update(`${r.id}:${e.id}`).digest('hex'),
            MacAddress: e.mac,
            IPv4Address: `${e.ip}/${this.prefix}`,
            IPv6Address: e.ipv6 ? `${e.ipv6}/${this.prefix6}` : '',
            Namespace: e.namespace,
            HostVeth: e.hostVeth,
            Ports: e.ports,
          },
        ]),
      ),
      Options: {
        'com.docker.network.bridge.name': r.bridge,
        'com.docker.network.bridge.enable_icc': String(r.icc),
        'com.docker.network.bridge.enable_ip_masquerade': String(r.masquerade),
        'com.docker.network.bridge.host_binding_ipv4': r.hostIp,
        'com.docker.network.driver.mtu': String(r.mtu),
        'netmodes.veth_queues': String(this.vethQueues),
        'netmodes.embedded_dns': String(this.embeddedDns),
      },
    };
  }

  /**
   * Removes the network: refuses with NetmodesError ENETWORKINUSE while endpoints are attached,
   * unless `force` (then disconnects them first). Takes down the bridge and everything the network
   * added; the library's nftables tables go with the last network. Removing twice is a no-op.
   * Equivalent to: `docker network rm NAME`
   */
  async remove(opts: { force?: boolean } = {}): Promise<void> {
    if (this.removed) return;
    await store.withLock(globalLock(), true, async () => {
      await store.withLock(this.lockFile, true, async () => {
        const file = path.join(networksDir(), `${this.name}.json`);
        if (!(await store.readJson(file))) {
          this.removed = true;
          return;
        }
        await this.load();
        if (this.eps.size && !opts.force)
          throw new NetmodesError('ENETWORKINUSE', `network ${this.name} has ${this.eps.size} endpoint(s) attached (use force)`);
        for (const rec of [...this.eps.values()]) await this.detach(rec);
        fault('remove:after-endpoints');
        await reaper.flush();
        await this.teardownKernel();
        fault('remove:after-kernel');
        // The state directory before the record: a remove() killed in between leaves a record
        // with nothing behind it, which remove() (or reconcile()) finishes; never files without
        // a record.
        await fsp.rm(this.dir, { recursive: true, force: true });
        store.forgetDirs(this.dir);
        fault('remove:after-state');
        await store.removeFile(file);
        this.removed = true;
        if (this.rec.embeddedDns) await dnsAfterRemove();
      });
    });
  }

  /**
   * Brings the kernel and the store back into agreement after a crash or outside interference:
   * half-made endpoints are removed, unexplained veths, elements and reservations go, a deleted
   * bridge or firewall table is rebuilt, and detached veths are reaped. Safe to run any time;
   * it excludes connects and disconnects of every process while it runs.
   */
  async reconcile(): Promise<ReconcileReport> {
    this.checkUsable();
    const report: ReconcileReport = { removedEndpoints: [], removedVeths: [], freedReservations: [], removedElements: 0, repaired: [] };
    await store.withLock(this.lockFile, true, async () => {
      // 0. Temp files of writers killed mid-write (the lock excludes every writer of these dirs;
      //    the shared ports directory only loses ones older than a minute).
      for (const d of ['endpoints', 'ip']) await store.removeStaleTemps(path.join(this.dir, d));
      for (const proto of await store.listDir(path.join(store.stateDir(), 'ports')))
        for (const port of await store.listDir(path.join(store.stateDir(), 'ports', proto)))
          await store.removeStaleTemps(portDir(proto, Number(port)), 60_000);
      // Its own map of the records (the cache may be refilled by other callers meanwhile).
      const eps = await this.readRecords();
      for (const ip of await store.listDir(path.join(this.dir, 'ip'))) this.markUsed(ip);
      report.repaired.push(...(await this.setupKernel(true)));
      const links = await nl.linkList(this.host);
      const byName = new Map(links.map((l) => [l.name, l]));
      const mark = `${ALIAS_PREFIX}${this.id.slice(0, 12)}:`;
      // 1. Records: keep those whose veth exists (re-attaching it if the bridge was rebuilt).
      const bridgeIdx = byName.get(this.bridge)?.index ?? (await nl.linkGet(this.bridge, this.host)).index;
      for (const rec of [...eps.values()]) {
        let l = byName.get(rec.hostVeth);
        // A deleted container namespace takes its veth pair with it, but only when the kernel's
        // asynchronous namespace cleanup gets to it: a veth whose namespace path is gone is gone.
        if (l && !existsSync(rec.namespace)) {
          await nl.linkDel(rec.hostVeth, this.host).catch((e) => {
            if (!isNotFound(e)) throw e;
          });
          l = undefined;
        }
        if (!l || l.alias !== this.alias(rec.id)) {
          // Missing, detached or never finished (still marked pending). Its elements go in step 3
          // (by owner comment, never by key: the key may already be another endpoint's), its
          // neighbour entry in step 2b, its veth (if any) in step 2.
          const owner = `${this.id.slice(0, 12)}:${rec.id}`;
          await this.releasePorts(rec.ports, owner);
          await this.releaseIp(rec.ip, owner);
          if (rec.ipv6) await this.releaseIp(rec.ipv6, owner);
          await store.removeFile(this.epFile(rec.id));
          eps.delete(rec.id);
          report.removedEndpoints.push(rec.id);
        } else if (l.master !== bridgeIdx || !l.up) {
          await nl.linkSet(rec.hostVeth, { master: this.bridge, up: true }, this.host);
          await nl.batch([{ op: 'neighAdd', ns: this.host, link: this.bridge, address: rec.ip, lladdr: rec.mac }]).catch(() => undefined);
          report.repaired.push(`veth ${rec.hostVeth} re-attached`);
        }
      }
      // 2. Veths with our mark that no record explains, half-made ones (still pending), and
      //    detached ones awaiting the reaper.
      const pending = `${PENDING_PREFIX}${this.id.slice(0, 12)}:`;
      for (const l of links) {
        // The alias is set by a second message after the create: a process killed in between
        // leaves a veth of our naming on our bridge with no alias at all.
        const unmarked = !l.alias && l.master === bridgeIdx && /^veth[0-9a-f]{11}$/.test(l.name);
        if ((l.alias?.startsWith(mark) && !eps.has(l.alias.slice(mark.length))) || l.alias?.startsWith(pending) || unmarked) {
          await nl.linkDel(l.name, this.host).catch((e) => {
            if (!isNotFound(e)) throw e;
          });
          report.removedVeths.push(l.name);
        }
      }
      fault('reconcile:after-veths');
      const detached = links.filter((l) => l.group === REAP_GROUP);
      if (detached.length) {
        await reaper.flush(true);
        // Whatever the group request left (it deletes all or nothing), one by one.
        const left = new Set((await nl.linkList(this.host)).filter((l) => l.group === REAP_GROUP).map((l) => l.name));
        for (const l of detached)
          if (left.has(l.name))
            await nl.linkDel(l.name, this.host).catch((e) => {
              if (!isNotFound(e)) throw e;
            });
      }
      // 2b. Permanent neighbour entries on the bridge: exactly one per live endpoint.
      const liveIps = new Map([...eps.values()].map((e) => [e.ip, e]));
      const bridgeNow = await nl.linkGet(this.bridge, this.host);
      const neighs = await nl.neighList(this.host, { link: bridgeNow.index });
      for (const n of neighs) {
        if (!n.state.includes('PERMANENT')) continue;
        const live = liveIps.get(n.address);
        if (live && (!n.lladdr || n.lladdr.toLowerCase() === live.mac.toLowerCase())) continue;
        const c = parseIP(n.address, 'address');
        if (!live && (c.family !== 4 || !cidrOverlaps(`${c.address}/32`, this.subnet))) continue;
        await nl.neighDel({ link: this.bridge, address: n.address }, this.host).catch((e) => {
          if (!isNotFound(e)) throw e;
        });
        report.repaired.push(`neighbour ${n.address} removed`);
      }
      for (const e of liveIps.values())
        if (!neighs.some((n) => n.address === e.ip && n.state.includes('PERMANENT') && n.lladdr?.toLowerCase() === e.mac.toLowerCase())) {
          await nl.neighAdd({ link: this.bridge, address: e.ip, lladdr: e.mac }, this.host).catch(() => undefined);
          report.repaired.push(`neighbour ${e.ip} restored`);
        }
      // 3. Firewall elements: exactly those of the live endpoints, links only to live endpoints
      //    (a link to an endpoint that left, or to an earlier endpoint of the same id, is over).
      const linkLive = (l: EndpointLink) => eps.get(l.id)?.ip === l.ip;
      const fw = await firewall.reconcile(toFw(this.rec), [...eps.values()].map((e) => ({ ...epToFw(e), links: e.links.filter(linkLive) })), this.host);
      report.removedElements += fw.removed;
      if (fw.added) report.repaired.push(`${fw.added} firewall element(s)`);
      // 4. Reservations whose owner is gone.
      const prefix = `${this.id.slice(0, 12)}:`;
      for (const ip of await store.listDir(path.join(this.dir, 'ip'))) {
        const o = await store.reservationOwner(this.ipFile(ip));
        if (o === undefined) continue;
        if (!o.startsWith(prefix) || !eps.has(o.slice(prefix.length)) || (eps.get(o.slice(prefix.length))!.ip !== ip && eps.get(o.slice(prefix.length))!.ipv6 !== ip)) {
          await store.removeFile(this.ipFile(ip));
          (ip.includes(':') ? this.pool6 : this.pool)?.release(ip);
          report.freedReservations.push(`ip ${ip}`);
        }
      }
      for (const proto of await store.listDir(path.join(store.stateDir(), 'ports'))) {
        for (const port of await store.listDir(path.join(store.stateDir(), 'ports', proto))) {
          for (const hip of await store.listDir(portDir(proto, Number(port)))) {
            const f = path.join(portDir(proto, Number(port)), hip);
            const o = await store.reservationOwner(f);
            if (o === undefined || !o.startsWith(prefix)) continue; // another network's
            const ep = eps.get(o.slice(prefix.length));
            if (!ep || !ep.ports.some((p) => p.protocol === proto && String(p.hostPort) === port && p.hostIp === hip)) {
              await store.removeFile(f);
              report.freedReservations.push(`${proto} ${hip}:${port}`);
            }
          }
        }
      }
      // 4b. Link registrations (linked/TARGET/LINKER): those of live links only.
      for (const target of await store.listDir(path.join(this.dir, 'linked'))) {
        const t = eps.get(target);
        for (const linker of await store.listDir(this.linkedDir(target))) {
          const l = eps.get(linker);
          if (t && l?.links.some((k) => k.id === target && k.ip === t.ip)) continue;
          await store.removeFile(this.linkFile(target, linker));
          report.freedReservations.push(`link ${linker} -> ${target}`);
        }
        await store.removeStaleTemps(this.linkedDir(target)); // of a registration killed mid-write
        await store.batch([{ op: 'rmdir', dir: this.linkedDir(target) }]);
      }
      this.eps.clear();
      for (const [k, v] of eps) this.eps.set(k, v);
      // 4c. The embedded DNS server (one for every network of the host): back if it was killed.
      if (this.rec.embeddedDns && !(await dns.dnsServerRunning())) {
        await dns.ensureDnsServer(this.rec);
        report.repaired.push('dns server');
      }
      // 5. Endpoint files that never got past "creating" (a connect killed before its record).
      for (const f of await store.listDir(path.join(this.dir, 'endpoints'))) {
        const id = f.replace(/\.json$/, '');
        if (!eps.has(id)) {
          await store.removeFile(path.join(this.dir, 'endpoints', f));
          report.removedEndpoints.push(id);
        }
      }
    });
    return report;
  }
}
