/**
 * Bridge mode, disconnect: one container off the network.
 *
 * Detaches at once: the firewall elements go (with those of the links that name the endpoint's
 * address: the linkers registered in linked/TARGET/, see NetworkState.linkedDir) beside the veth,
 * which leaves forwarding at once and waits in the reap group (unplumb; bridge-reaper.ts deletes
 * detached veths in batches); then the claims and the record in one batch. Idempotent; works when
 * the container's namespace is already gone.
 *
 * Like connect, this is the hot path (benchmarked): one trip for the lock, the record and the
 * linkers, the elements beside the veth, one batch for the claims; in the common case ONE worker
 * call whose spec its connect already converted (prepareDetach).
 */
import { ConfigError, isNotFound } from '../errors';
import { Namespace } from '../netns';
import * as nl from '../netlink';
import { batchTrusted } from '../netlink/batch';
import * as store from '../state/store';
import { firewall } from './bridge-firewall';
import { NetworkState, assertId, epToFw, fault, leafName, portFile, toFw, type Port } from './bridge-store';
import { REAP_GROUP, reaper } from './bridge-reaper';
import { endpointFwRemove, endpointFwRemoveLinks, endpointPort, forgetLeaf, knownPort, leafFwNs, slotOf } from './bridge-leaves';
import { chainAllowed, prepareChain, runChain, type ChainSpec, type PreparedChain } from './bridge-chain';
import type { Endpoint, EndpointRecord } from './bridge-types';

/**
 * Detaches the veth at once (off the bridge, down, into the reap group) and drops the host's
 * neighbour entry; `now` deletes it instead (rollback paths).
 */
export async function unplumb(s: NetworkState, rec: EndpointRecord, now = false): Promise<void> {
  // (a dense network's leaf that is gone took the host end with it, and its trunk the entries)
  const port = await endpointPort(s, rec);
  if (!port) return;
  const { slot, brName, neigh, veth, neigh6 } = unplumbOps(s, rec, port, now);
  const br = port.neigh;
  // One worker call, every message sent whatever the first one's answer (a missing neighbour
  // entry or a veth already gone with its namespace is what we want anyway).
  const [n, v, n6] = await batchTrusted([neigh, veth, ...neigh6], { pipelined: true });
  if (n6?.status === 'rejected' && !isNotFound(n6.reason)) throw n6.reason;
  if (n.status === 'rejected' && isNotFound(n.reason) && typeof br === 'number') {
    // Perhaps no such entry, perhaps a bridge (or a leaf) rebuilt since its index was learned: by name.
    if (slot) forgetLeaf(s, slot);
    else s.bridgeIdx = undefined;
    for (const address of [rec.ip, ...neigh6.map(() => rec.ipv6!)])
      await nl.neighDel({ link: brName, address }, s.host).catch((e) => {
        if (!isNotFound(e)) throw e;
      });
  } else if (n.status === 'rejected' && !isNotFound(n.reason)) throw n.reason;
  if (v.status === 'rejected') {
    if (!isNotFound(v.reason)) throw v.reason;
    return; // already gone with its namespace
  }
  if (!now) reaper.add(port.at === s.host ? undefined : port.at);
}

/**
 * unplumb's two requests: the host's neighbour entry (on the container's bridge, or a dense
 * network's leaf's trunk: bridge-leaves.ts), and the veth's detach (or delete) where its host
 * end is (`port`).
 */
function unplumbOps(s: NetworkState, rec: EndpointRecord, port: Port, now: boolean) {
  const slot = slotOf(s.rec, rec.ip);
  const brName = slot ? leafName(s.rec, slot) : s.rec.bridge;
  const neigh: nl.BatchOp = { op: 'neighDel', ns: s.host, link: port.neigh, address: rec.ip };
  const veth: nl.BatchOp = now
    ? { op: 'linkDel', ns: port.at, link: rec.hostVeth }
    : // The port is cut off where it is: it forgets the MACs it learned, and locked (it may send
      // only from MACs with an fdb entry on it: none), learning nothing and flooded nothing, it
      // passes nothing either way, whatever state the bridge gives it (its container's carrier
      // may come and go). No STP state: setting one walks every port of the bridge (~0.1 ms at
      // 300 ports) and the lock holds without it. Leaving the bridge and going down (two RCU
      // grace periods) are left to the reaper's one bulk delete.
      {
        op: 'linkSet', ns: port.at, link: rec.hostVeth, group: REAP_GROUP, alias: '',
        fdbFlush: true, locked: true, learning: false, unicastFlood: false, mcastFlood: false, bcastFlood: false,
      };
  // (A dense network with IPv6 has a neighbour entry of each family: bridge-leaves.ts.)
  const neigh6: nl.BatchOp[] = rec.ipv6 && s.rec.ipv6 && s.rec.portsPerBridge ? [{ ...neigh, address: rec.ipv6 }] : [];
  return { slot, brName, neigh, veth, neigh6 };
}

/** BridgeNetwork.disconnect() (documented there): which endpoint, then detach with the lock held. */
export async function disconnectEndpoint(s: NetworkState, target: Endpoint | Namespace | string): Promise<void> {
  let id: string | undefined;
  // A namespace, or its path (ids never contain '/'; the sandbox layer passes the path).
  const nsPath = target instanceof Namespace ? target.path : typeof target === 'string' && target.startsWith('/') ? target : undefined;
  if (nsPath !== undefined) {
    id = [...s.eps.values()].find((e) => e.namespace === nsPath)?.id;
    if (!id) {
      await s.load();
      id = [...s.eps.values()].find((e) => e.namespace === nsPath)?.id;
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
  const known = s.eps.get(id);
  if (known && chainAllowed() && !store.FileLock.queued(s.lockFile) && (await detachChained(s, known))) return;
  // The lock and the record (the store's, not the cache's: another process may have
  // disconnected it already) in one trip to the thread pool.
  // With them, who links to it.
  const { lock, results } = await store.FileLock.acquireWith(s.lockFile, false, [
    { op: 'read', file: s.epFile(id) },
    { op: 'list', dir: s.linkedDir(id) },
  ]);
  try {
    const rec = store.parseRecord<EndpointRecord>(results[0]);
    if (!rec || !rec.ip) {
      s.eps.delete(id);
      return;
    }
    await detach(s, rec, results[1] as string[]);
  } finally {
    lock.release();
  }
}

/**
 * disconnectEndpoint in one worker call (bridge-chain.ts): the lock, the record and its linkers,
 * then, when the record is the one this process holds and nobody links to the endpoint, its
 * elements, its veth's detach, its claims and its record. True when that is done; false when the
 * lock was busy (nothing done). Anything else carries on the usual way under the lock.
 */
async function detachChained(s: NetworkState, known: EndpointRecord): Promise<boolean> {
  const id = known.id;
  // (only where this process knows the host end)
  const port = knownPort(s, known.ip);
  if (!port) return false;
  // The chain its connect converted (prepareDetach), when it was built for what is still so.
  const p = prepared.get(known);
  if (p) prepared.delete(known);
  const leaf = leafFwNs(s, known.ip);
  const fresh = p && p.at === port.at && p.neigh === port.neigh && p.master === port.master && p.net === s.rec && p.leaf === leaf;
  const c = await runChain(fresh ? p : detachSpec(s, known, port));
  if (c.fsError) throw c.fsError;
  if (typeof c.fs[0] !== 'number') return false;
  const lock = store.FileLock.adopt(c.fs[0]);
  try {
    if (c.after && !c.afterError) {
      reaper.add(port.at === s.host ? undefined : port.at);
      if (c.after[c.after.length - 1] === false) await lateLinkers(s, known, []);
      forget(s, known);
      return true;
    }
    if (c.afterError) throw c.afterError;
    // Not as expected, or the kernel's part failed: from what the chain read, the usual way
    // (each step is idempotent).
    const rec = store.parseRecord<EndpointRecord>(c.fs[1]);
    if (!rec || !rec.ip) {
      s.eps.delete(id);
      return true;
    }
    await detach(s, rec, (c.fs[2] as string[] | undefined) ?? []);
    return true;
  } finally {
    lock.release();
  }
}

/**
 * A disconnect's chain (detachChained): the lock, the record and its linkers; then, when the
 * record is the one this process wrote and nobody links to the endpoint, its elements (a dense
 * network's icc=false container of a leaf has elements in the leaf's namespace too: a second
 * transaction), its veth's detach, its claims and its record.
 */
function detachSpec(s: NetworkState, known: EndpointRecord, port: Port, text = JSON.stringify(known)): ChainSpec {
  const id = known.id;
  const tx = firewall.removeEndpointTx(toFw(s.rec), epToFw(known), s.host);
  const leaf = leafFwNs(s, known.ip);
  const ltx = leaf && firewall.removeEndpointTx(toFw(s.rec), epToFw(known), leaf, [], 'leaf');
  const nft = [...(tx ? [{ ns: s.host, msgs: tx.messages() }] : []), ...(ltx ? [{ ns: leaf!, msgs: ltx.messages() }] : [])];
  const { neigh, veth, neigh6 } = unplumbOps(s, known, port, false);
  return {
    fs: [{ op: 'lock', file: s.lockFile, exclusive: false }, { op: 'read', file: s.epFile(id) }, { op: 'list', dir: s.linkedDir(id) }],
    // The record as this process wrote it (no parse of it), and no linkers.
    expect: [null, text, []],
    nft: nft.length ? nft : undefined,
    rtnl: { ops: [neigh, veth, ...neigh6], pipelined: true, quiet: true },
    after: releaseOps(s, known, s.ownerOf(id), []),
  };
}

/**
 * Disconnect chains converted ahead, by the record they were built from (a record replaced in the
 * cache never finds its chain again), with what they were built for. At most PREPARED_MAX in the
 * process, the oldest dropped first: each holds ~5 KiB of converted requests, and a host of 10,000
 * long-lived containers would otherwise hold 50 MiB for disconnects that come rarely; churn, which
 * the prepared chain is for, disconnects the recent ones.
 */
// (An entry is itself the PreparedChain runChain takes: no wrapper object held per endpoint.)
const prepared = new Map<EndpointRecord, PreparedChain & { at: Namespace; neigh: Port['neigh']; master: Port['master']; net: NetworkState['rec']; leaf: Namespace | undefined }>();
/** How many prepared disconnect chains the process keeps (see `prepared`). */
export const PREPARED_MAX = 1024;

/** How many prepared disconnect chains the process holds now (tests: the cap, and remove()'s drop). */
export function preparedCount(): number {
  return prepared.size;
}

/**
 * Converts the disconnect's chain of an endpoint now (called by its connect while the kernel makes
 * its veth, when the main thread would wait anyway), so that the disconnect converts nothing.
 * `text`: the record's JSON as the connect's claim writes it (not stringified a second time). Used
 * only when the host end's place, the network's record and its leaf are still the ones it was built
 * for; anything else builds it again.
 */
export function prepareDetach(s: NetworkState, rec: EndpointRecord, port: Port, text?: string): void {
  try {
    const { prepared: token } = prepareChain(detachSpec(s, rec, port, text));
    prepared.set(rec, { prepared: token, at: port.at, neigh: port.neigh, master: port.master, net: s.rec, leaf: leafFwNs(s, rec.ip) });
    if (prepared.size > PREPARED_MAX) prepared.delete(prepared.keys().next().value!);
  } catch {
    /* the disconnect builds its own */
  }
}

/**
 * Drops the prepared disconnect chains of a network (its remove(): they hold its namespaces'
 * handles, a leaf's among them).
 */
export function dropPrepared(s: NetworkState): void {
  for (const [k, v] of prepared) if (v.net === s.rec) prepared.delete(k);
}

/**
 * The claims and record of an endpoint, released in one batch, the record last (it explains the
 * claims until then), then the registrations of `linkers` with it and their directory (the rmdir
 * fails only if an endpoint registered a link to this one since the list was read).
 */
function releaseOps(s: NetworkState, rec: EndpointRecord, owner: string, linkers: string[]): store.FsOp[] {
  const ops: store.FsOp[] = rec.ports.map((p) => ({ op: 'release', file: portFile(p), owner }));
  ops.push({ op: 'release', file: s.ipFile(rec.ip), owner });
  if (rec.ipv6) ops.push({ op: 'release', file: s.ipFile(rec.ipv6), owner });
  // Its own registrations with the endpoints it links to.
  for (const l of rec.links) ops.push(...s.unregisterOps(l.id, [rec.id]));
  ops.push({ op: 'remove', file: s.epFile(rec.id) });
  ops.push(...s.unregisterOps(rec.id, linkers));
  return ops;
}

/** The endpoint's addresses back in this process's pools, its record out of the cache. */
function forget(s: NetworkState, rec: EndpointRecord): void {
  prepared.delete(rec);
  s.pool.release(rec.ip);
  if (rec.ipv6) s.pool6?.release(rec.ipv6);
  s.eps.delete(rec.id);
}

/**
 * The addresses (IPv4 and IPv6) of the endpoints that link to `target` (their link's elements
 * name its addresses too): from this process's records, else from the store. Linkers that are gone, or whose link
 * is to an earlier endpoint of that id, are left out.
 */
async function linkerAddresses(s: NetworkState, target: EndpointRecord, linkers: string[]): Promise<string[]> {
  if (!linkers.length) return [];
  const missing = linkers.filter((l) => !s.eps.has(l));
  const read = missing.length ? await store.batch(missing.map((l) => ({ op: 'read', file: s.epFile(l) }))) : [];
  const recs = linkers.map((l) => s.eps.get(l) ?? store.parseRecord<EndpointRecord>(read[missing.indexOf(l)]));
  return recs
    .filter((r) => r?.ip && r.links.some((k) => k.id === target.id && k.ip === target.ip))
    .flatMap((r) => (r!.ipv6 ? [r!.ip, r!.ipv6] : [r!.ip]));
}

/**
 * Takes an endpoint off the network: its elements and veth, then its claims, record and link
 * registrations (`linkers`: who registered a link to it). The caller holds the network's lock.
 */
export async function detach(s: NetworkState, rec: EndpointRecord, linkers: string[] = []): Promise<void> {
  const owner = s.ownerOf(rec.id);
  const linkedBy = await linkerAddresses(s, rec, linkers);
  const removeElements = () => endpointFwRemove(s, rec, linkedBy);
  // Elements and veth at once, each on its own thread (a process killed between or during
  // leaves what reconcile() finishes: a record whose veth lost its alias is removed with its
  // elements; a record whose veth is still marked keeps or regains its elements).
  if (process.env.NETMODES_FAULT) {
    await removeElements();
    fault('disconnect:after-elements');
    await unplumb(s, rec);
    fault('disconnect:after-detach');
  } else {
    const [f, k] = await Promise.allSettled([removeElements(), unplumb(s, rec)]);
    if (f.status === 'rejected') throw f.reason;
    if (k.status === 'rejected') throw k.reason;
  }
  let ops = releaseOps(s, rec, owner, linkers);
  if (process.env.NETMODES_FAULT) {
    // The claims first, then the record and the link registrations.
    const at = ops.findIndex((o) => o.op === 'remove' && o.file === s.epFile(rec.id));
    await store.batch(ops.slice(0, at));
    fault('disconnect:after-release');
    ops = ops.slice(at);
  }
  const res = await store.batch(ops);
  if (res[res.length - 1] === false) await lateLinkers(s, rec, linkers);
  forget(s, rec);
}

/**
 * Endpoints that registered a link to `rec` while it was leaving. Each either saw its record
 * gone (and undoes its own connect: ENOLINK) or added its elements before the record went:
 * those elements are removed here, after they were added.
 */
async function lateLinkers(s: NetworkState, rec: EndpointRecord, seen: string[]): Promise<void> {
  for (let round = 0; round < 3; round++) {
    const late = (await store.listDir(s.linkedDir(rec.id))).filter((l) => !seen.includes(l));
    seen = [...seen, ...late];
    const ips = await linkerAddresses(s, rec, late);
    await endpointFwRemoveLinks(s, rec, ips);
    const res = await store.batch(s.unregisterOps(rec.id, late));
    if (res[res.length - 1] !== false) return;
  }
}

