/**
 * Bridge mode, dense networks (BridgeNetworkOptions.portsPerBridge = L): more containers than
 * one Linux bridge takes (1,023 ports), with the per-port work of each attach bounded by L.
 *
 * The subnet is cut into blocks ("slots") of L addresses; a container's slot is its IPv4
 * address's offset in the subnet divided by L, so the layout needs no state of its own and no
 * count across processes: addresses are claimed O_EXCL, so a slot never holds more than L.
 *
 *   slot 0     the network's bridge (the gateway's address, the /N connected route), as ever;
 *   slot s>0   a "leaf" bridge nm<id8>b<s>: the gateway's MAC, no address, no IPv6, no STP,
 *              and a route `BLOCK/len dev LEAF scope link src GATEWAY` (more specific than the
 *              subnet's), made when the slot is first used and kept until the network goes.
 *
 * Containers see what Docker gives them (the whole subnet on-link, the gateway, its MAC). Within
 * a bridge, frames are switched as in Docker; between bridges the host routes: every bridge of
 * the network has proxy_arp (with no delay), so a container's ARP for a container on another
 * bridge is answered by the host with the gateway's MAC, and broadcasts stay within one bridge of
 * at most L ports (one broadcast domain of 10,000 ports overflows the per-CPU backlog: most
 * copies are dropped). The host's permanent neighbour entry for a container is on its slot's
 * bridge. The firewall treats every bridge of the network as the network (bridge-firewall.ts:
 * `nm<id8>b*` beside the bridge's name; icc=false also at layer 3, with the links mirrored).
 *
 * A leaf is made under the network's leaves lock (exclusive; connects hold the network's lock
 * shared, so the order is always network lock, then leaves lock) with a pending alias, which
 * becomes final once its route, sysctls and firewall elements are in: a connect attaches only to
 * a final leaf, and a pending one (its maker killed) is deleted and made again, by the next
 * connect to that slot or by reconcile().
 */
import { isNotFound, NetmodesError } from '../errors';
import { sysctlSet, sysctlKey } from '../netns';
import * as nl from '../netlink';
import * as store from '../state/store';
import { firewall } from './bridge-firewall';
import { bigIntToIP, ipToBigInt } from '../net/addr';
import { ALIAS_PREFIX, PENDING_PREFIX, NetworkState, fault, leafName, toFw } from './bridge-store';
import type { NetworkRecord } from './bridge-types';

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

/**
 * The ifindex of the bridge a container of slot `slot` goes on: the network's bridge for slot 0,
 * else the slot's leaf, made if it is not there yet (once per process, then cached; `fresh`
 * forgets the cached index: the leaf was rebuilt meanwhile).
 */
export async function slotBridge(s: NetworkState, slot: number, fresh = false): Promise<number | string> {
  if (slot === 0) return s.bridgeIdx ?? s.rec.bridge;
  if (fresh) s.leafIdx.delete(slot);
  const known = s.leafIdx.get(slot);
  if (known !== undefined) return known;
  let making = s.leafMaking.get(slot);
  if (!making) {
    making = findOrMakeLeaf(s, slot).finally(() => s.leafMaking.delete(slot));
    s.leafMaking.set(slot, making);
  }
  return making;
}

async function findOrMakeLeaf(s: NetworkState, slot: number): Promise<number> {
  const r = s.rec;
  if (slot >= MAX_SLOTS) throw new NetmodesError('EBRIDGEFULL', `network ${r.name} has no bridge for slot ${slot}`);
  const name = leafName(r, slot);
  // The leaf as the kernel has it: its index when it is final, else whether it is there at all.
  const look = async (): Promise<{ index?: number; present: boolean }> => {
    const l = await nl.linkGet(name, s.host).catch((e) => {
      if (isNotFound(e)) return undefined;
      throw e;
    });
    return { index: l && l.alias === leafAlias(r, slot) ? l.index : undefined, present: !!l };
  };
  const first = await look();
  if (first.index !== undefined) {
    s.leafIdx.set(slot, first.index);
    return first.index;
  }
  return store.withLock(`${s.dir}/leaves.lock`, true, async () => {
    // Again under the lock: another process may have made it meanwhile.
    const now = await look();
    if (now.index !== undefined) {
      s.leafIdx.set(slot, now.index);
      return now.index;
    }
    // A leaf still marked pending is what a maker killed part way left: made again.
    if (now.present)
      await nl.linkDel(name, s.host).catch((e) => {
        if (!isNotFound(e)) throw e;
      });
    const idx = await makeLeaf(s, slot);
    s.leafIdx.set(slot, idx);
    return idx;
  });
}

/** Makes slot `slot`'s leaf; its alias, set last, is the commit mark. Returns its ifindex. */
async function makeLeaf(s: NetworkState, slot: number): Promise<number> {
  const r = s.rec;
  const name = leafName(r, slot);
  try {
    const [made] = await nl.batch([
      {
        op: 'linkAdd', ns: s.host, name, kind: 'bridge', mtu: r.mtu, mac: r.bridgeMac, up: true, alias: leafPending(r, slot),
        noIpv6: true, disableIpv6: true, bridge: { stp: false, forwardDelay: 0 },
      },
      { op: 'routeAdd', ns: s.host, dst: slotCidr(r, slot), link: name, scope: 'link', src: r.gateway, protocol: 'kernel' },
    ]);
    fault('leaf:after-create');
    await leafSysctls(s, name);
    await firewall.addBridge(toFw(r), name, s.host);
    await nl.linkSet(name, { alias: leafAlias(r, slot) }, s.host);
    return made.index ?? (await nl.linkGet(name, s.host)).index;
  } catch (err) {
    await nl.linkDel(name, s.host).catch(() => undefined);
    await firewall.removeBridge(toFw(r), name, s.host).catch(() => undefined);
    throw err;
  }
}

/**
 * The sysctls every bridge of a dense network needs: proxy ARP without its random delay (the
 * host answers for the containers of the other bridges) and route_localnet (127.0.0.1 ports).
 */
export async function leafSysctls(s: NetworkState, dev: string): Promise<void> {
  await sysctlSet(sysctlKey('net', 'ipv4', 'conf', dev, 'proxy_arp'), 1, s.host);
  await sysctlSet(sysctlKey('net', 'ipv4', 'neigh', dev, 'proxy_delay'), 0, s.host);
  if (dev !== s.rec.bridge) await sysctlSet(sysctlKey('net', 'ipv4', 'conf', dev, 'route_localnet'), 1, s.host);
}

/**
 * reconcile(): final leaves are kept (their route, sysctls and elements made good), pending ones
 * deleted. Returns what it did, and sets the cache of leaf indexes.
 */
export async function repairLeaves(s: NetworkState, links: nl.Link[]): Promise<string[]> {
  const done: string[] = [];
  s.leafIdx.clear();
  if (!s.rec.portsPerBridge) return done;
  const routes = await nl.routeList(s.host);
  for (const l of links) {
    const leaf = leafSlot(s.rec, l);
    if (!leaf) continue;
    if (!leaf.final) {
      await nl.linkDel(l.name, s.host).catch((e) => {
        if (!isNotFound(e)) throw e;
      });
      await firewall.removeBridge(toFw(s.rec), l.name, s.host).catch(() => undefined);
      done.push(`half-made leaf ${l.name} removed`);
      continue;
    }
    const cidr = slotCidr(s.rec, leaf.slot);
    if (!l.up) {
      await nl.linkSet(l.name, { up: true }, s.host);
      done.push(`leaf ${l.name} up`);
    }
    if (!routes.some((x) => x.family === 4 && `${x.dst}/${x.prefix}` === cidr && x.oif === l.index)) {
      await nl.routeReplace({ dst: cidr, link: l.name, scope: 'link', src: s.rec.gateway, protocol: 'kernel' }, s.host);
      done.push(`route ${cidr} restored`);
    }
    await leafSysctls(s, l.name);
    await firewall.addBridge(toFw(s.rec), l.name, s.host);
    s.leafIdx.set(leaf.slot, l.index);
  }
  return done;
}

/** Deletes every leaf of the network (remove()): their routes go with them. */
export async function removeLeaves(s: NetworkState): Promise<void> {
  if (!s.rec.portsPerBridge) return;
  for (const l of await nl.linkList(s.host, { kind: 'bridge' }))
    if (leafSlot(s.rec, l))
      await nl.linkDel(l.name, s.host).catch((e) => {
        if (!isNotFound(e)) throw e;
      });
  s.leafIdx.clear();
}
