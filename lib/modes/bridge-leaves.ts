/**
 * Bridge mode, dense networks (BridgeNetworkOptions.portsPerBridge = L): more containers than
 * one Linux bridge takes (1,023 ports), with the per-port work of each attach bounded by L, and
 * one more attach costing the same at any size.
 *
 * The subnet is cut into blocks ("slots") of L addresses; a container's slot is its IPv4
 * address's offset in the subnet divided by L, so the layout needs no state of its own and no
 * count across processes: addresses are claimed O_EXCL, so a slot never holds more than L.
 *
 *   slot 0     the network's bridge (the gateway's address, the /N connected route), as ever;
 *   slot s>0   a "leaf": a namespace /run/netns/nm<id8>b<s> with a bridge br0 (no STP, no IPv6
 *              in that namespace at all) holding the host ends of the slot's containers, and a
 *              trunk veth to the host: its host end nm<id8>b<s> has the gateway's MAC, no address
 *              (IPv6 off, or with the network's IPv6 on but no address of its own: see below), the
 *              route `BLOCK/len dev nm<id8>b<s> scope link src GATEWAY` (more specific than the
 *              subnet's; and `BLOCK6 dev ... src GATEWAY6`) and the host's permanent neighbour
 *              entries of the slot's containers; its other end `trunk` is a port of br0 with a
 *              static fdb entry for the gateway's MAC (frames to the gateway are never flooded).
 *              Made when the slot is first used and kept until the network goes.
 *
 * Why a namespace per leaf: each rtnetlink notification about a veth names its peer's namespace by
 * an id the kernel finds by walking every id the veth's own namespace has given out
 * (__peernet2id); with every host end in the host, one more attach at 10,000 containers walked
 * 10,000 ids about six times. A leaf's namespace gives out at most L, the host one per leaf.
 *
 * Containers see what Docker gives them (the whole subnet on-link, the gateway, its MAC). Within
 * a bridge, frames are switched as in Docker; between bridges the host routes: the network's bridge
 * and every trunk have proxy_arp (with no delay), so a container's ARP for a container on another
 * bridge is answered by the host with the gateway's MAC, and broadcasts stay within one bridge of
 * at most L ports (one broadcast domain of 10,000 ports overflows the per-CPU backlog: most
 * copies are dropped). The firewall treats the bridge and every trunk as the network
 * (bridge-firewall.ts: `nm<id8>b*` beside the bridge's name; icc=false also at layer 3, with the
 * links mirrored; within a leaf, the leaf namespace's own bridge table).
 *
 * A leaf is made under the network's leaves lock (exclusive; connects hold the network's lock
 * shared, so the order is always network lock, then leaves lock) with a pending alias on the
 * trunk's host end, which becomes final once its route, sysctls and firewall elements are in: a
 * connect attaches only to a final leaf, and a pending one (its maker killed) is made again, by the
 * next connect to that slot or by reconcile() (in the namespace that is there: its containers stay).
 */
import { ConfigError, isNotFound, NetmodesError } from '../errors';
import { createNamespace, deleteNamespace, listNamespaces, openNamespace, sysctlSet, sysctlKey } from '../netns';
import * as nl from '../netlink';
import * as store from '../state/store';
import { firewall, TRUNK } from './bridge-firewall';
import { reaper } from './bridge-reaper';
import { bigIntToIP, cidrOverlaps, ipToBigInt, parseCidr, parseIP } from '../net/addr';
import { ALIAS_PREFIX, PENDING_PREFIX, NetworkState, epToFw, fault, leafName, toFw, type Leaf, type Port } from './bridge-store';
import type { Namespace } from '../netns';
import type { EndpointRecord, NetworkRecord } from './bridge-types';

/** Most slots a network may have (a leaf's name holds four decimal digits). */
export const MAX_SLOTS = 10000;

const base = (r: NetworkRecord): bigint => ipToBigInt(r.subnet.split('/')[0], 'subnet').value;

/** The slot of an IPv4 address (0 for a network of one bridge). */
export function slotOf(r: NetworkRecord, ip: string): number {
  if (!r.portsPerBridge) return 0;
  return Number((ipToBigInt(ip, 'ip').value - base(r)) / BigInt(r.portsPerBridge));
}

/** The addresses of a slot, as a CIDR. */
export function slotCidr(r: NetworkRecord, slot: number): string {
  const L = r.portsPerBridge!;
  return `${bigIntToIP(base(r) + BigInt(slot * L), 4)}/${32 - Math.log2(L)}`;
}

// ---------------------------------------------------------------------------------------------
// IPv6 on a dense network. A container's IPv6 address follows its IPv4 slot: by default the same
// offset in the IPv6 subnet as its IPv4 address has in the IPv4 subnet, so block N of the IPv6
// subnet is block N of the IPv4 one and the layout still needs no state. There is no proxy NDP
// (it takes one entry per address and bridge); IPv6 is routed instead. In the container: the
// address with the subnet's prefix but no prefix route (noprefixroute), an on-link route for its
// own block only, the subnet and the default route via the gateway (onlink: the gateway is
// outside a leaf's block) and a permanent neighbour entry for the gateway (the bridge's MAC).
// On the host: the leaf has IPv6 on but no address of its own (addrgenmode none: no link-local,
// no DAD; it settles quiet: test 59), a route `BLOCK6 dev LEAF src GATEWAY6`, and a permanent
// neighbour entry per container on its bridge, as for IPv4.

/** The address at `ip`'s offset in subnet `from`, in subnet `to`; undefined: `to` has no such offset. */
export function sameOffset(ip: string, from: string, to: string): string | undefined {
  const f = parseCidr(from, 'subnet');
  const t = parseCidr(to, 'subnet');
  const v = t.start + (ipToBigInt(ip, 'ip').value - f.start);
  return v >= t.start && v <= t.end ? bigIntToIP(v, t.family) : undefined;
}

/**
 * createBridgeNetwork() on a dense network with IPv6: the IPv6 subnet must have as many
 * addresses as the IPv4 one (ConfigError `ipv6.subnet`), and its gateway is at the IPv4
 * gateway's offset (the default; another one: ConfigError `ipv6.gateway`). Returns the gateway.
 */
export function denseIpv6Gateway(subnet: string, gateway: string, subnet6: string, gateway6: string | undefined): string {
  const c4 = parseCidr(subnet, 'subnet');
  const c6 = parseCidr(subnet6, 'ipv6.subnet');
  if (128 - c6.prefix < 32 - c4.prefix)
    throw new ConfigError(`a dense network's IPv6 subnet needs as many addresses as ${subnet} (a /${96 + c4.prefix} or larger)`, 'ipv6.subnet');
  const g6 = sameOffset(gateway, subnet, subnet6)!;
  if (gateway6 !== undefined && gateway6 !== g6)
    throw new ConfigError(`on a dense network the IPv6 gateway is at the IPv4 gateway's offset: ${g6}`, 'ipv6.gateway');
  return g6;
}

/** `a` canonical, or ConfigError (field `ipv6`). */
function v6Address(a: string): string {
  const p = parseIP(a, 'ipv6');
  if (p.family !== 6) throw new ConfigError('must be an IPv6 address', 'ipv6');
  return p.address;
}

/** The slot of a dense network's IPv6 address. */
export function slotOf6(r: NetworkRecord, ipv6: string): number {
  return Number((ipToBigInt(ipv6, 'ipv6').value - parseCidr(r.ipv6!.subnet, 'ipv6.subnet').start) / BigInt(r.portsPerBridge!));
}

/** The IPv6 addresses of a slot, as a CIDR. */
export function slotCidr6(r: NetworkRecord, slot: number): string {
  const L = r.portsPerBridge!;
  return `${bigIntToIP(parseCidr(r.ipv6!.subnet, 'ipv6.subnet').start + BigInt(slot * L), 6)}/${128 - Math.log2(L)}`;
}

/**
 * connect(), before the claims, on a dense network with IPv6: the IPv4 address wanted (`ip`, or
 * the one at the offset of `ipv6` when only that is given) and the IPv6 candidate for an IPv4
 * address, in its slot: `want` (ConfigError `ipv6` in another slot), else the address at the same
 * offset, else (taken by an explicit one) the slot's first address this process has free.
 */
export function denseIpv4Want(r: NetworkRecord, ip: string | undefined, ipv6: string | undefined): string | undefined {
  if (ip !== undefined || ipv6 === undefined) return ip;
  const v4 = sameOffset(v6Address(ipv6), r.ipv6!.subnet, r.subnet);
  if (v4 === undefined) throw new ConfigError(`${ipv6} has no IPv4 address at its offset in ${r.subnet}`, 'ipv6');
  return v4;
}

/** (See denseIpv4Want.) `taken`: whether this process knows an IPv6 address held. */
export function denseIpv6Candidate(r: NetworkRecord, ip: string, want: string | undefined, taken: (ip: string) => boolean): string {
  const slot = slotOf(r, ip);
  if (want !== undefined) {
    const a = v6Address(want);
    if (!cidrOverlaps(`${a}/128`, slotCidr6(r, slot)))
      throw new ConfigError(`on a dense network the IPv6 address must be in the IPv4 address's block (${slotCidr6(r, slot)} for ${ip})`, 'ipv6');
    return a;
  }
  const same = sameOffset(ip, r.subnet, r.ipv6!.subnet)!;
  if (!taken(same)) return same;
  return slotIpv6s(r, slot).find((a) => !taken(a)) ?? same;
}

/** The IPv6 addresses of slot `slot` a container may have (neither the gateway nor the subnet's first). */
export function slotIpv6s(r: NetworkRecord, slot: number): string[] {
  const start = parseCidr(slotCidr6(r, slot), 'ipv6').start;
  const out: string[] = [];
  for (let i = 0n; i < BigInt(r.portsPerBridge!); i++) {
    const a = bigIntToIP(start + i, 6);
    if (a !== r.ipv6!.gateway && start + i !== parseCidr(r.ipv6!.subnet, 'ipv6.subnet').start) out.push(a);
  }
  return out;
}

/**
 * An IPv6 address for the IPv4 address `ip` claimed in the store, after the candidate turned out
 * to be another process's (or the IPv4 address moved to another slot): the one at the same
 * offset, else the slot's first free one.
 */
export async function claimSlotIpv6(s: NetworkState, owner: string, ip: string): Promise<string> {
  const same = sameOffset(ip, s.rec.subnet, s.rec.ipv6!.subnet)!;
  for (const a of [same, ...slotIpv6s(s.rec, slotOf(s.rec, ip))]) {
    if (s.pool6!.has(a) || !(await store.reserve(s.ipFile(a), owner))) continue;
    s.markUsed(a);
    return a;
  }
  throw new NetmodesError('EPOOLEXHAUSTED', `no free IPv6 address left in ${slotCidr6(s.rec, slotOf(s.rec, ip))}`);
}

/**
 * plumb()'s IPv6 steps on a dense network (bridge-connect.ts): `ops` go with the address steps,
 * `routes` with the routes (before the default routes: a namespace that has one already keeps
 * it, and these still reach the other blocks).
 */
export function denseIpv6Steps(s: NetworkState, ns: Namespace, rec: Pick<EndpointRecord, 'ip' | 'ipv6' | 'mac' | 'ifname'>, br: number | string): { ops: nl.BatchOp[]; routes: nl.BatchOp[] } {
  const r = s.rec;
  const gw6 = r.ipv6!.gateway;
  return {
    ops: [
      // ip -6 neigh add IP6 lladdr MAC dev BR nud permanent
      { op: 'neighAdd', ns: s.host, link: br, address: rec.ipv6!, lladdr: rec.mac },
      // ip addr add IP6/PREFIX dev eth0 nodad noprefixroute
      { op: 'addrAdd', ns, link: rec.ifname, cidr: `${rec.ipv6}/${s.prefix6}`, noDad: true, noPrefixRoute: true },
      // ip -6 neigh add GW6 lladdr BRMAC dev eth0 nud permanent
      { op: 'neighAdd', ns, link: rec.ifname, address: gw6, lladdr: r.bridgeMac },
    ],
    routes: [
      // ip -6 route add BLOCK6 dev eth0 (its own bridge's containers: on-link)
      { op: 'routeAdd', ns, dst: slotCidr6(r, slotOf(r, rec.ip)), link: rec.ifname },
      // ip -6 route add SUBNET6 via GW6 dev eth0 onlink (every other block: through the host)
      { op: 'routeAdd', ns, dst: r.ipv6!.subnet, gateway: gw6, link: rec.ifname, onlink: true },
      // ip -6 route add default via GW6 dev eth0 onlink
      { op: 'routeAdd', ns, dst: 'default', gateway: gw6, link: rec.ifname, onlink: true },
    ],
  };
}

const leafAlias = (r: NetworkRecord, slot: number) => `${ALIAS_PREFIX}leaf:${r.id.slice(0, 12)}:${slot}`;
const leafPending = (r: NetworkRecord, slot: number) => `${PENDING_PREFIX}leaf:${r.id.slice(0, 12)}:${slot}`;

/** The slot a link is this network's leaf for (by its name and alias), or undefined. */
export function leafSlot(r: NetworkRecord, l: nl.Link): { slot: number; final: boolean } | undefined {
  const m = /^nm([0-9a-f]{8})b(\d{1,4})$/.exec(l.name);
  if (!m || m[1] !== r.id.slice(0, 8)) return undefined;
  const slot = Number(m[2]);
  if (l.alias === leafAlias(r, slot)) return { slot, final: true };
  return { slot, final: false };
}

/** The bridge of each leaf namespace: its ports are the trunk and the host ends of the leaf's containers. */
export const LEAF_BRIDGE = 'br0';

/** The namespace of slot `slot`'s leaf: /run/netns/<leafName> (`ip netns exec nm<id8>b<N> bridge link`). */
const leafNsName = (r: NetworkRecord, slot: number): string => leafName(r, slot);

/**
 * Where a container at `ip` has its host end, when this process knows it already (the chain's
 * condition: a first connect, or one to a new leaf, learns or makes it the usual way).
 */
export function knownPort(s: NetworkState, ip: string): Port | undefined {
  const slot = slotOf(s.rec, ip);
  if (!slot) return s.bridgeIdx === undefined ? undefined : { at: s.host, master: s.bridgeIdx, neigh: s.bridgeIdx };
  const l = s.leaves.get(slot);
  return l && { at: l.ns, master: l.br, neigh: l.trunk };
}

/**
 * Where a container of slot `slot` goes: the network's bridge for slot 0, else the slot's leaf,
 * made if it is not there yet (once per process, then cached; `fresh` forgets what is cached: the
 * bridge or leaf was rebuilt meanwhile, and names the network's bridge by name).
 */
export async function slotPort(s: NetworkState, slot: number, fresh = false): Promise<Port> {
  if (slot === 0) {
    const br = fresh ? s.rec.bridge : (s.bridgeIdx ?? s.rec.bridge);
    return { at: s.host, master: br, neigh: br };
  }
  const l = await slotLeaf(s, slot, fresh);
  return { at: l.ns, master: l.br, neigh: l.trunk };
}

/** Slot `slot`'s leaf (slot > 0), found or made (see slotPort). */
export async function slotLeaf(s: NetworkState, slot: number, fresh = false): Promise<Leaf> {
  if (fresh) forgetLeaf(s, slot);
  const known = s.leaves.get(slot);
  if (known) return known;
  let making = s.leafMaking.get(slot);
  if (!making) {
    making = findOrMakeLeaf(s, slot).finally(() => s.leafMaking.delete(slot));
    s.leafMaking.set(slot, making);
  }
  return making;
}

/**
 * Slot `slot`'s leaf if it is there and final, never made (disconnect, check: a leaf that is gone
 * took its containers' host ends with it). undefined: not there.
 */
export async function findLeaf(s: NetworkState, slot: number): Promise<Leaf | undefined> {
  const known = s.leaves.get(slot);
  if (known) return known;
  const l = await trunkOf(s, slot);
  if (!l || l.alias !== leafAlias(s.rec, slot)) return undefined;
  return openLeaf(s, slot, l.index).catch(() => undefined);
}

/** Where an endpoint's host end is, without making anything (undefined: its leaf is gone). */
export async function endpointPort(s: NetworkState, rec: EndpointRecord): Promise<Port | undefined> {
  const slot = slotOf(s.rec, rec.ip);
  if (!slot) return knownPort(s, rec.ip) ?? { at: s.host, master: s.rec.bridge, neigh: s.rec.bridge };
  const l = await findLeaf(s, slot);
  return l && { at: l.ns, master: l.br, neigh: l.trunk };
}

/**
 * The leaf namespace that holds an endpoint's own firewall elements (a dense network's slot > 0
 * with icc=false: bridge-firewall.ts), when this process knows it; undefined: it has none.
 */
export function leafFwNs(s: NetworkState, ip: string): Namespace | undefined {
  if (s.rec.icc || !s.rec.portsPerBridge) return undefined;
  const slot = slotOf(s.rec, ip);
  return slot ? s.leaves.get(slot)?.ns : undefined;
}

/** Whether an endpoint at `ip` has elements in a leaf namespace (see leafFwNs). */
export function hasLeafFw(s: NetworkState, ip: string): boolean {
  return !s.rec.icc && !!s.rec.portsPerBridge && slotOf(s.rec, ip) > 0;
}

/** The host end of slot `slot`'s trunk, as the kernel has it (undefined: none). */
async function trunkOf(s: NetworkState, slot: number): Promise<nl.Link | undefined> {
  return nl.linkGet(leafName(s.rec, slot), s.host).catch((e) => {
    if (isNotFound(e)) return undefined;
    throw e;
  });
}

/** Opens a final leaf's namespace and learns its bridge (cached in s.leaves). */
async function openLeaf(s: NetworkState, slot: number, trunk: number): Promise<Leaf> {
  const ns = await openNamespace(leafNsName(s.rec, slot));
  try {
    const br = (await nl.linkGet(LEAF_BRIDGE, ns)).index;
    return remember(s, slot, { trunk, ns, br });
  } catch (err) {
    ns.close();
    throw err;
  }
}

/**
 * Caches a leaf this process opened or made. The same leaf opened twice at once (parallel calls in a
 * process that did not know it) keeps the first handle (calls may be using it) and closes the
 * second; a leaf made again (another trunk) replaces the old one.
 */
function remember(s: NetworkState, slot: number, leaf: Leaf): Leaf {
  const old = s.leaves.get(slot);
  if (old && old.ns !== leaf.ns) {
    if (old.trunk === leaf.trunk && old.br === leaf.br) {
      leaf.ns.close();
      return old;
    }
    forgetLeaf(s, slot);
  }
  s.leaves.set(slot, leaf);
  return leaf;
}

/**
 * Forgets what this process knows of slot `slot`'s leaf. `close`: closes its handle too, only
 * where no call of this process can be using it (reconcile() and remove() hold the network's lock
 * exclusively); elsewhere a call in flight may be, and the handle goes when it is collected.
 */
export function forgetLeaf(s: NetworkState, slot: number, close = false): void {
  const l = s.leaves.get(slot);
  if (!l) return;
  s.leaves.delete(slot);
  // (a handle left open keeps its place in the reaper: detached veths waiting there are still
  // reaped by this process)
  if (close) {
    reaper.forget(l.ns);
    l.ns.close();
  }
}

async function findOrMakeLeaf(s: NetworkState, slot: number): Promise<Leaf> {
  const r = s.rec;
  if (slot >= MAX_SLOTS) throw new NetmodesError('EBRIDGEFULL', `network ${r.name} has no bridge for slot ${slot}`);
  const found = await findLeaf(s, slot);
  if (found) return found;
  return store.withLock(`${s.dir}/leaves.lock`, true, async () => {
    // Again under the lock: another process may have made it meanwhile.
    const now = await findLeaf(s, slot);
    if (now) return now;
    // A trunk still marked pending is what a maker killed part way left (or a leaf whose
    // namespace cannot be opened): made again, in the namespace that is there if there is one.
    await dropTrunk(s, slot);
    return makeLeaf(s, slot);
  });
}

/** Deletes slot `slot`'s trunk (its routes go with it) and its elements; its namespace stays. */
async function dropTrunk(s: NetworkState, slot: number): Promise<void> {
  forgetLeaf(s, slot);
  const name = leafName(s.rec, slot);
  await nl.linkDel(name, s.host).catch((e) => {
    if (!isNotFound(e)) throw e;
  });
  await firewall.removeBridge(toFw(s.rec), name, s.host).catch(() => undefined);
}

/**
 * Makes slot `slot`'s leaf: its namespace (no IPv6 in it at all: its links are bridge ports), the
 * bridge there, the trunk (host end `nm<id8>b<N>` with the gateway's MAC, peer `trunk` on the
 * leaf's bridge, with a static fdb entry for the gateway's MAC: frames to the gateway are never
 * flooded to the leaf's containers), the routes, sysctls and elements on the host end, and (icc=false)
 * the leaf's own table. The trunk's alias, set last, is the commit mark.
 */
async function makeLeaf(s: NetworkState, slot: number): Promise<Leaf> {
  const r = s.rec;
  const name = leafName(r, slot);
  // A namespace that is there already (its maker killed part way, or its trunk deleted from
  // outside: its containers' host ends are still on its bridge) is made whole, never deleted.
  const existing = await openNamespace(leafNsName(r, slot)).catch(() => undefined);
  let ns: Namespace | undefined = existing;
  try {
    let hasBridge = false;
    if (existing) {
      await nl.linkDel(TRUNK, existing).catch((e) => {
        if (!isNotFound(e)) throw e;
      });
      hasBridge = !!(await nl.linkGet(LEAF_BRIDGE, existing).catch(() => undefined));
      if (hasBridge) await nl.linkSet(LEAF_BRIDGE, { up: true }, existing);
    } else ns = await createNamespace(leafNsName(r, slot));
    const at: Namespace = ns!;
    // (a kernel without IPv6 has no such keys, and nothing to turn off)
    for (const k of ['net.ipv6.conf.all.disable_ipv6', 'net.ipv6.conf.default.disable_ipv6'])
      await sysctlSet(k, 1, at).catch((e) => {
        if ((e as { code?: string }).code !== 'ENOENT') throw e;
      });
    const made = await nl.batch([
      ...(hasBridge ? [] : [{ op: 'linkAdd', ns: at, name: LEAF_BRIDGE, kind: 'bridge', mtu: r.mtu, up: true, noIpv6: true, bridge: { stp: false, forwardDelay: 0 } } as nl.BatchOp]),
      {
        op: 'linkAdd', ns: s.host, name, kind: 'veth', mtu: r.mtu, mac: r.bridgeMac, up: true, alias: leafPending(r, slot),
        // With IPv6 on the network, the host end takes IPv6 (routed to and from it) but has no
        // address of its own (addrgenmode none): it sends nothing (test 59 counts frames at rest).
        noIpv6: true, disableIpv6: !r.ipv6,
        peer: { name: TRUNK, ns: at, mtu: r.mtu, up: true },
      },
      { op: 'linkSet', ns: at, link: TRUNK, master: LEAF_BRIDGE },
      { op: 'fdbAdd', ns: at, link: TRUNK, lladdr: r.bridgeMac },
      ...leafRoutes(r, slot).map((rt): nl.BatchOp => ({ op: 'routeAdd', ns: s.host, ...rt })),
    ]);
    fault('leaf:after-create');
    await leafSysctls(s, name);
    await firewall.addBridge(toFw(r), name, s.host);
    if (!r.icc) await firewall.ensureLeaf(at);
    await nl.linkSet(name, { alias: leafAlias(r, slot) }, s.host);
    const br = (await nl.linkGet(LEAF_BRIDGE, at)).index;
    const trunk = (made[hasBridge ? 0 : 1] as nl.LinkAddResult).index ?? (await nl.linkGet(name, s.host)).index;
    return remember(s, slot, { trunk, ns: at, br });
  } catch (err) {
    ns?.close();
    await nl.linkDel(name, s.host).catch(() => undefined);
    await firewall.removeBridge(toFw(r), name, s.host).catch(() => undefined);
    if (!existing) await deleteNamespace(leafNsName(r, slot)).catch(() => undefined);
    throw err;
  }
}

/** A leaf's routes on the host: `BLOCK dev TRUNK scope link src GATEWAY` (and the same for IPv6). */
function leafRoutes(r: NetworkRecord, slot: number): nl.RouteSpec[] {
  const link = leafName(r, slot);
  const out: nl.RouteSpec[] = [{ dst: slotCidr(r, slot), link, scope: 'link', src: r.gateway, protocol: 'kernel' }];
  if (r.ipv6) out.push({ dst: slotCidr6(r, slot), link, src: r.ipv6.gateway, protocol: 'kernel' });
  return out;
}

/**
 * The sysctls every bridge and trunk of a dense network needs on the host: proxy ARP without its
 * random delay (the host answers for the containers of the other bridges) and route_localnet
 * (127.0.0.1 ports).
 */
export async function leafSysctls(s: NetworkState, dev: string): Promise<void> {
  await sysctlSet(sysctlKey('net', 'ipv4', 'conf', dev, 'proxy_arp'), 1, s.host);
  await sysctlSet(sysctlKey('net', 'ipv4', 'neigh', dev, 'proxy_delay'), 0, s.host);
  if (dev !== s.rec.bridge) await sysctlSet(sysctlKey('net', 'ipv4', 'conf', dev, 'route_localnet'), 1, s.host);
}

/** The slot of a leaf namespace's name of this network (undefined: not one). */
function nsSlot(r: NetworkRecord, name: string): number | undefined {
  const m = /^nm([0-9a-f]{8})b(\d{1,4})$/.exec(name);
  return m && m[1] === r.id.slice(0, 8) ? Number(m[2]) : undefined;
}

/**
 * reconcile(): final leaves are kept (their routes, sysctls, bridge, trunk port, fdb entry and
 * table made good); a pending trunk is deleted; a namespace of ours with no final trunk is made
 * whole again when containers' host ends are in it (its trunk was deleted from outside), else
 * deleted (half-made). Returns what it did, and sets what this process knows of the leaves.
 */
export async function repairLeaves(s: NetworkState, links: nl.Link[]): Promise<string[]> {
  const done: string[] = [];
  for (const slot of [...s.leaves.keys()]) forgetLeaf(s, slot, true);
  if (!s.rec.portsPerBridge) return done;
  const routes = await nl.routeList(s.host);
  const final = new Set<number>();
  for (const l of links) {
    const leaf = leafSlot(s.rec, l);
    if (!leaf) continue;
    const opened = leaf.final ? await openNamespace(leafNsName(s.rec, leaf.slot)).catch(() => undefined) : undefined;
    if (!opened) {
      // (its namespace, if any, is seen to below)
      await dropTrunk(s, leaf.slot);
      if (leaf.final) done.push(`broken leaf ${l.name} removed`);
      continue;
    }
    final.add(leaf.slot);
    const ns = opened;
    if (!l.up) {
      await nl.linkSet(l.name, { up: true }, s.host);
      done.push(`leaf ${l.name} up`);
    }
    for (const rt of leafRoutes(s.rec, leaf.slot))
      if (!routes.some((x) => `${x.dst}/${x.prefix}` === rt.dst && x.oif === l.index)) {
        await nl.routeReplace(rt, s.host);
        done.push(`route ${rt.dst} restored`);
      }
    await leafSysctls(s, l.name);
    await firewall.addBridge(toFw(s.rec), l.name, s.host);
    // Inside: the bridge, the trunk on it and up, the gateway's fdb entry, the table.
    let br = await nl.linkGet(LEAF_BRIDGE, ns).catch(() => undefined);
    if (!br) {
      await nl.batch([{ op: 'linkAdd', ns, name: LEAF_BRIDGE, kind: 'bridge', mtu: s.rec.mtu, up: true, noIpv6: true, bridge: { stp: false, forwardDelay: 0 } }]);
      br = await nl.linkGet(LEAF_BRIDGE, ns);
      done.push(`bridge of leaf ${l.name}`);
    } else if (!br.up) await nl.linkSet(LEAF_BRIDGE, { up: true }, ns);
    const trunk = await nl.linkGet(TRUNK, ns);
    if (trunk.master !== br.index || !trunk.up) {
      await nl.linkSet(TRUNK, { master: br.index, up: true }, ns);
      done.push(`trunk of leaf ${l.name} re-attached`);
    }
    await nl.batch([{ op: 'fdbAdd', ns, link: TRUNK, lladdr: s.rec.bridgeMac }]).catch((e) => {
      if ((e as { code?: string }).code !== 'EEXIST') throw e;
    });
    if (!s.rec.icc) await firewall.ensureLeaf(ns);
    remember(s, leaf.slot, { trunk: l.index, ns, br: br.index });
  }
  for (const name of await listNamespaces()) {
    const slot = nsSlot(s.rec, name);
    if (slot === undefined || final.has(slot)) continue;
    const ns = await openNamespace(name).catch(() => undefined);
    const ports = ns ? (await nl.linkList(ns).catch(() => [])).filter((x) => /^veth[0-9a-f]{11}$/.test(x.name)).length : 0;
    ns?.close();
    if (ports) {
      await makeLeaf(s, slot);
      done.push(`leaf ${name} made whole again`);
    } else {
      await deleteNamespace(name);
      done.push(`half-made leaf ${name} removed`);
    }
  }
  return done;
}

/** Deletes every leaf of the network (remove()): trunks (their routes go with them) and namespaces. */
export async function removeLeaves(s: NetworkState): Promise<void> {
  if (!s.rec.portsPerBridge) return;
  for (const slot of [...s.leaves.keys()]) forgetLeaf(s, slot, true);
  for (const l of await nl.linkList(s.host, { kind: 'veth' }))
    if (leafSlot(s.rec, l))
      await nl.linkDel(l.name, s.host).catch((e) => {
        if (!isNotFound(e)) throw e;
      });
  for (const name of await listNamespaces()) if (nsSlot(s.rec, name) !== undefined) await deleteNamespace(name);
}

// ---------------------------------------------------------------------------------------------
// An endpoint's firewall elements, wherever they live: the host's tables, and for a dense
// network's icc=false container of slot > 0 also its leaf namespace's table (bridge-firewall.ts).

/** Adds an endpoint's elements: the host's transaction, then (a leaf's) the leaf's. */
export async function endpointFwAdd(s: NetworkState, rec: EndpointRecord): Promise<void> {
  await firewall.addEndpoint(toFw(s.rec), epToFw(rec), s.host);
  if (hasLeafFw(s, rec.ip)) await firewall.addEndpoint(toFw(s.rec), epToFw(rec), (await slotLeaf(s, slotOf(s.rec, rec.ip))).ns, 'leaf');
}

/**
 * Removes an endpoint's elements and those of the links at `linkedBy` (see
 * firewall.removeEndpoint), in the host and (a leaf's) in its leaf, both sent at once.
 */
export async function endpointFwRemove(s: NetworkState, rec: EndpointRecord, linkedBy: string[] = []): Promise<void> {
  const leaf = hasLeafFw(s, rec.ip) ? findLeaf(s, slotOf(s.rec, rec.ip)) : undefined;
  const [h, l] = await Promise.allSettled([
    firewall.removeEndpoint(toFw(s.rec), epToFw(rec), s.host, linkedBy),
    leaf?.then((x) => x && firewall.removeEndpoint(toFw(s.rec), epToFw(rec), x.ns, linkedBy, 'leaf')),
  ]);
  if (h.status === 'rejected') throw h.reason;
  if (l.status === 'rejected') throw l.reason;
}

/** Removes the link elements between `rec` and the endpoints at `ips`, in the host and (a leaf's) its leaf. */
export async function endpointFwRemoveLinks(s: NetworkState, rec: EndpointRecord, ips: string[]): Promise<void> {
  await firewall.removeLinks(epToFw(rec), ips, s.host, toFw(s.rec));
  const leaf = hasLeafFw(s, rec.ip) ? await findLeaf(s, slotOf(s.rec, rec.ip)) : undefined;
  if (leaf) await firewall.removeLinks(epToFw(rec), ips, leaf.ns, toFw(s.rec), 'leaf');
}
