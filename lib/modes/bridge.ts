/**
 * Bridge mode: Docker's `docker network create -d bridge` and `docker run --net=NET -p ...`.
 *
 * Per network (made once, bridge-kernel.ts): a bridge with the gateway address and a fixed MAC,
 * up; ip_forward on; route_localnet on the bridge (so 127.0.0.1 can be published); nftables
 * objects (see bridge-firewall.ts): one masquerade rule per network as in Docker, and per-network
 * dispatch chains. Per container (connect, bridge-connect.ts): one veth pair made in ONE
 * RTM_NEWLINK, its neighbour entries, address and routes; published ports and links are nftables
 * set/map elements, so the rule count never grows with containers.
 *
 * State: the kernel says which endpoints exist (host veths carry an alias `netmodes:NETID:ID`);
 * the state store (lib/state/store.ts; the network's paths in bridge-store.ts) keeps each
 * endpoint's record and the O_EXCL reservations of its address and host ports, written before
 * the kernel is touched. `reconcile()` (bridge-reconcile.ts) reads both and finishes or undoes
 * whatever a killed process left half-made.
 *
 * A veth is made with the alias `netmodes-pending:NETID:ID` and gets its final alias only once
 * every step of the connect (addresses, neighbours, routes) is done: rtnetlink has no
 * transactions, so the alias is the commit mark. A veth still marked pending after a crash is
 * half-made, and reconcile() deletes it with its record and reservations (docs/reliability.md).
 *
 * Disconnect (bridge-disconnect.ts) detaches at once (elements removed, veth off the bridge and
 * down, address freed) and reaps detached veths in batches with one RTM_DELLINK per link group
 * (bridge-reaper.ts), so churn does not pay one RCU grace period (about 18 ms) per container.
 *
 * This file: the network's lifecycle (create, open, list, remove), the BridgeNetwork class (its
 * public surface; connect, disconnect, check and reconcile are thin methods over the concern
 * files, which take the network's NetworkState) and the module's exports.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { ConfigError, NetmodesError, NetlinkError } from '../errors';
import { Namespace, currentNamespace, assertNamespaceName } from '../netns';
import * as nl from '../netlink';
import { parseCidr, parseIP, parseIPv4, assertIfname, randomMac, cidrOverlaps } from '../net/addr';
import { Ipv4Pool } from '../ipam/allocator';
import { chooseSubnet, checkSubnetFree, defaultGateway, parseRange, validateGateway } from '../ipam/subnets';
import * as store from '../state/store';
import * as dns from '../dns/control';
import { NetworkState, fault, globalLock, hex, leafName, networksDir, readNetworkRecords } from './bridge-store';
import { reaper } from './bridge-reaper';
import { setupKernel, teardownKernel } from './bridge-kernel';
import { MAX_SLOTS, denseIpv6Gateway, endpointPort, slotOf } from './bridge-leaves';
import { connectEndpoint } from './bridge-connect';
import { detach, disconnectEndpoint, dropPrepared } from './bridge-disconnect';
import { checkEndpoint, reconcileNetwork } from './bridge-reconcile';
import type {
  BridgeNetworkOptions,
  ConnectOptions,
  Endpoint,
  EndpointRecord,
  NetworkRecord,
  BridgeNetworkInfo,
  ReconcileReport,
} from './bridge-types';

export * from './bridge-types';
export { MAX_BRIDGE_PORTS } from './bridge-connect';
export { REAP_GROUP, REAP_BATCH, REAP_QUIET_MS, REAP_MAX_WAIT_MS, reapDetached } from './bridge-reaper';

// ---------------------------------------------------------------------------------------------
// Validation.

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
  if (o.portsPerBridge !== undefined) {
    const L = o.portsPerBridge;
    if (!Number.isInteger(L) || L < 2 || L > 512 || (L & (L - 1)) !== 0) throw new ConfigError('must be a power of two from 2 to 512', 'portsPerBridge');
  }
}

// ---------------------------------------------------------------------------------------------
// The network's lifecycle.

/** Subnets that a new network must not overlap: the host's addresses and routes, and other networks'. */
async function subnetsInUse(host: Namespace): Promise<string[]> {
  const out: string[] = [];
  for (const a of await nl.addrList(host)) if (a.family === 4 && a.address !== '127.0.0.1') out.push(`${a.address}/${a.prefix}`);
  for (const r of await nl.routeList(host))
    if (r.family === 4 && r.dst && r.prefix > 0 && r.table === 254) out.push(`${r.dst}/${r.prefix}`);
  for (const n of await readNetworkRecords()) out.push(n.subnet);
  return out;
}

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
    if (opts.portsPerBridge !== undefined && 2 ** (32 - parseCidr(subnet, 'subnet').prefix) / opts.portsPerBridge > MAX_SLOTS)
      throw new ConfigError(`${subnet} would need more than ${MAX_SLOTS} bridges: a smaller subnet or more ports per bridge`, 'portsPerBridge');
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
      let g6 = opts.ipv6.gateway !== undefined ? validateGateway(parseIP(opts.ipv6.gateway, 'ipv6.gateway').address, s6, 'ipv6.gateway') : undefined;
      // A dense network: as many IPv6 addresses as IPv4 ones, the gateway at the same offset
      // (a container's IPv6 address follows its IPv4 slot: bridge-leaves.ts).
      if (opts.portsPerBridge !== undefined) g6 = denseIpv6Gateway(subnet, gateway, s6, g6);
      g6 ??= defaultGateway(s6);
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
      ...(opts.portsPerBridge ? { portsPerBridge: opts.portsPerBridge } : {}),
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
      ...(r.portsPerBridge ? { portsPerBridge: r.portsPerBridge } : {}),
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
  /** A dense network's addresses per bridge (BridgeNetworkOptions.portsPerBridge); undefined: one bridge. */
  readonly portsPerBridge?: number;
  /** @internal The network's state, which the concern files work on (bridge-store.ts). */
  private readonly s: NetworkState;

  /** @internal use createBridgeNetwork / openBridgeNetwork */
  constructor(rec: NetworkRecord, host: Namespace) {
    this.s = new NetworkState(rec, host, this);
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
    this.portsPerBridge = rec.portsPerBridge;
  }

  /** @internal The bridge, its addresses, forwarding, firewall. `repair`: tolerate what exists. */
  setupKernel(repair: boolean): Promise<string[]> {
    return setupKernel(this.s, repair);
  }

  /** @internal Best-effort removal of the bridge and the firewall objects of this network. */
  teardownKernel(): Promise<void> {
    return teardownKernel(this.s);
  }

  /** @internal Loads endpoint records and reservations into memory (NetworkState.load). */
  load(): Promise<void> {
    return this.s.load();
  }

  /**
   * Connects a namespace: veth pair, address, routes, published ports, links, DNS texts.
   * A failed connect leaves nothing behind. Errors: ConfigError (bad option, naming the field),
   * NetmodesError EENDPOINTEXISTS, EADDRINUSE, EPOOLEXHAUSTED, EPORTINUSE, EBRIDGEFULL, ENOLINK.
   * Equivalent to: `docker run --net=NET --ip A -p H:C ...` (the networking part)
   */
  connect(nsArg: Namespace | string, opts: ConnectOptions = {}): Promise<Endpoint> {
    return connectEndpoint(this.s, nsArg, opts);
  }

  /**
   * Disconnects an endpoint (given as the Endpoint, its id, its namespace or the namespace's path). Idempotent; works
   * when the container's namespace is already gone.
   * Equivalent to: `docker network disconnect NET CONTAINER`
   */
  disconnect(target: Endpoint | Namespace | string): Promise<void> {
    return disconnectEndpoint(this.s, target);
  }

  /** Endpoints in the store (all processes'). */
  async endpoints(): Promise<Endpoint[]> {
    await this.load();
    return [...this.s.eps.values()].map((r) => this.s.toEndpoint(r));
  }

  /** One endpoint by id, or undefined. */
  async endpoint(id: string): Promise<Endpoint | undefined> {
    const rec = this.s.eps.get(id) ?? (await store.readJson<EndpointRecord>(this.s.epFile(id)));
    return rec && rec.ip ? this.s.toEndpoint(rec) : undefined;
  }

  /**
   * True while the store still holds this network (not removed, and not removed and made again
   * by another process since this object was opened).
   */
  async isCurrent(): Promise<boolean> {
    if (this.s.removed) return false;
    const rec = await store.readJson<NetworkRecord>(this.s.recordFile);
    return rec?.id === this.id;
  }

  /** IPv4 addresses a connect can still be given (from the store: every process's claims). */
  async freeAddresses(): Promise<number> {
    // A pool of its own from the store's reservations: this object's pool does not learn of
    // addresses other processes released.
    const pool = new Ipv4Pool({ subnet: this.s.rec.subnet, gateway: this.s.rec.gateway, ipRange: this.s.rec.ipRange });
    for (const ip of await store.listDir(path.join(this.s.dir, 'ip')))
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
  check(id: string, nsPath?: string): Promise<string[]> {
    return checkEndpoint(this.s, id, nsPath);
  }

  /**
   * Where an endpoint's host end is, as the kernel has it: its name and MAC, the namespace it is
   * in (undefined: the host's; a dense network's container of slot > 0: its leaf's, a path), and
   * the host's link it reaches the host by (the bridge, or the leaf's trunk: its name and MAC).
   * Throws NetmodesError ENOENDPOINT for an endpoint this network does not have.
   */
  async hostEnd(id: string): Promise<{ name: string; mac?: string; namespace?: string; hostLink: { name: string; mac: string } }> {
    const rec = this.s.eps.get(id) ?? (await store.readJson<EndpointRecord>(this.s.epFile(id)));
    if (!rec || !rec.ip) throw new NetmodesError('ENOENDPOINT', `no endpoint ${JSON.stringify(id)} on network ${this.name}`);
    const slot = slotOf(this.s.rec, rec.ip);
    const port = await endpointPort(this.s, rec);
    const l = port && (await nl.linkGet(rec.hostVeth, port.at).catch(() => undefined));
    return {
      name: rec.hostVeth,
      ...(l?.mac ? { mac: l.mac } : {}),
      ...(port && port.at !== this.s.host ? { namespace: port.at.path } : {}),
      hostLink: { name: slot ? leafName(this.s.rec, slot) : this.s.rec.bridge, mac: this.s.rec.bridgeMac },
    };
  }

  /** JSON in the shape of `docker network inspect NAME`. */
  async inspect(): Promise<Record<string, unknown>> {
    const eps = await this.endpoints();
    const r = this.s.rec;
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
            IPv4Address: `${e.ip}/${this.s.prefix}`,
            IPv6Address: e.ipv6 ? `${e.ipv6}/${this.s.prefix6}` : '',
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
        ...(r.portsPerBridge ? { 'netmodes.ports_per_bridge': String(r.portsPerBridge) } : {}),
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
    if (this.s.removed) return;
    await store.withLock(globalLock(), true, async () => {
      await store.withLock(this.s.lockFile, true, async () => {
        const file = this.s.recordFile;
        if (!(await store.readJson(file))) {
          this.s.removed = true;
          return;
        }
        await this.load();
        if (this.s.eps.size && !opts.force)
          throw new NetmodesError('ENETWORKINUSE', `network ${this.name} has ${this.s.eps.size} endpoint(s) attached (use force)`);
        for (const rec of [...this.s.eps.values()]) await detach(this.s, rec);
        dropPrepared(this.s);
        fault('remove:after-endpoints');
        await reaper.flush();
        await this.teardownKernel();
        fault('remove:after-kernel');
        // The state directory before the record: a remove() killed in between leaves a record
        // with nothing behind it, which remove() (or reconcile()) finishes; never files without
        // a record.
        await fsp.rm(this.s.dir, { recursive: true, force: true });
        store.forgetDirs(this.s.dir);
        fault('remove:after-state');
        await store.removeFile(file);
        this.s.removed = true;
        if (this.s.rec.embeddedDns) await dnsAfterRemove();
      });
    });
  }

  /**
   * Brings the kernel and the store back into agreement after a crash or outside interference:
   * half-made endpoints are removed, unexplained veths, elements and reservations go, a deleted
   * bridge or firewall table is rebuilt, and detached veths are reaped. Safe to run any time;
   * it excludes connects and disconnects of every process while it runs.
   */
  reconcile(): Promise<ReconcileReport> {
    return reconcileNetwork(this.s);
  }
}
