/**
 * Bridge mode, check and reconcile: the kernel against the store.
 *
 * check() reads, for one endpoint, what is not as a connect left it. reconcile() brings the
 * kernel and the store back into agreement after a crash or outside interference: half-made
 * endpoints (a veth still marked pending, a record without a veth) are removed, unexplained veths,
 * elements and reservations go, a deleted bridge or firewall table is rebuilt, and detached veths
 * are reaped (docs/reliability.md).
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { NetmodesError, isNotFound } from '../errors';
import { Namespace, openNamespace } from '../netns';
import * as nl from '../netlink';
import { parseIP, cidrOverlaps } from '../net/addr';
import * as store from '../state/store';
import * as dns from '../dns/control';
import { firewall } from './bridge-firewall';
import { ALIAS_PREFIX, PENDING_PREFIX, NetworkState, assertId, epToFw, fault, leafName, portDir, toFw } from './bridge-store';
import { REAP_GROUP, reaper } from './bridge-reaper';
import { setupKernel } from './bridge-kernel';
import { findLeaf, hasLeafFw, repairLeaves, slotCidr6, slotLeaf, slotOf } from './bridge-leaves';
import type { EndpointRecord, EndpointLink, ReconcileReport } from './bridge-types';

/** A link and the namespace it is in (the host's, or a dense network's leaf's). */
type LinkAt = nl.Link & { at: Namespace };

/** The addresses the host has a permanent neighbour entry for: the IPv4 one (and a dense network's IPv6 one). */
function hostNeighbours(s: NetworkState, rec: EndpointRecord): string[] {
  return rec.ipv6 && s.rec.ipv6 && s.rec.portsPerBridge ? [rec.ip, rec.ipv6] : [rec.ip];
}

/** BridgeNetwork.check() (documented there). */
export async function checkEndpoint(s: NetworkState, id: string, nsPath?: string): Promise<string[]> {
  assertId(id, 'id');
  const rec = await store.readJson<EndpointRecord>(s.epFile(id));
  if (!rec || !rec.ip) throw new NetmodesError('ENOENDPOINT', `no endpoint ${JSON.stringify(id)} on network ${s.rec.name}`);
  const problems: string[] = [];
  // The container's bridge: the network's, or a dense network's leaf (bridge-leaves.ts).
  // (the host's link for a leaf is its trunk; the host end is in the leaf's namespace, on its bridge)
  const slot = slotOf(s.rec, rec.ip);
  const brName = slot ? leafName(s.rec, slot) : s.rec.bridge;
  const bridge = await nl.linkGet(brName, s.host).catch(() => undefined);
  if (!bridge) problems.push(`bridge ${brName} is missing`);
  const leaf = slot && bridge ? await findLeaf(s, slot) : undefined;
  if (slot && bridge && !leaf) problems.push(`leaf ${brName} is not complete`);
  const veth = slot && !leaf ? undefined : await nl.linkGet(rec.hostVeth, leaf?.ns ?? s.host).catch(() => undefined);
  if (!veth) problems.push(`host veth ${rec.hostVeth} is missing`);
  else {
    if (veth.alias !== s.alias(rec.id)) problems.push(`host veth ${rec.hostVeth} is not marked complete (alias ${JSON.stringify(veth.alias ?? '')})`);
    if (bridge && veth.master !== (leaf ? leaf.br : bridge.index)) problems.push(`host veth ${rec.hostVeth} is not on bridge ${brName}`);
    if (!veth.up) problems.push(`host veth ${rec.hostVeth} is down`);
  }
  if (bridge) {
    const neighs = await nl.neighList(s.host, { link: bridge.index });
    for (const ip of hostNeighbours(s, rec)) {
      const neigh = neighs.find((n) => n.address === ip);
      if (!neigh || neigh.lladdr?.toLowerCase() !== rec.mac.toLowerCase()) problems.push(`neighbour entry ${ip} on ${brName} is missing`);
    }
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
        for (const [ip, prefix] of [[rec.ip, s.prefix], ...(rec.ipv6 ? [[rec.ipv6, s.prefix6]] : [])] as Array<[string, number]>)
          if (!addrs.some((a) => a.address === ip && a.prefix === prefix)) problems.push(`address ${ip}/${prefix} is missing on ${rec.ifname}`);
        const routes = await nl.routeList(ns);
        const gws: Array<[4 | 6, string]> = [[4, s.rec.gateway]];
        if (rec.ipv6 && s.rec.ipv6) gws.push([6, s.rec.ipv6.gateway]);
        for (const [family, gw] of gws)
          if (!routes.some((r) => r.family === family && r.dst === 'default' && r.gateway === gw))
            problems.push(`default route via ${gw} is missing`);
        // A dense network's IPv6: its own block on-link, the rest of the subnet via the gateway.
        if (rec.ipv6 && s.rec.ipv6 && s.rec.portsPerBridge)
          for (const [dst, gw] of [[slotCidr6(s.rec, slot), undefined], [s.rec.ipv6.subnet, s.rec.ipv6.gateway]])
            if (!routes.some((r) => `${r.dst}/${r.prefix}` === dst && r.gateway === gw && r.oif === link.index))
              problems.push(`route ${dst}${gw ? ` via ${gw}` : ''} is missing`);
      }
    } finally {
      ns.close();
    }
  }
  problems.push(...(await firewall.missing(toFw(s.rec), epToFw(rec), s.host)));
  if (leaf && hasLeafFw(s, rec.ip)) problems.push(...(await firewall.missing(toFw(s.rec), epToFw(rec), leaf.ns, 'leaf')));
  return problems;
}

/** BridgeNetwork.reconcile() (documented there). */
export async function reconcileNetwork(s: NetworkState): Promise<ReconcileReport> {
  s.checkUsable();
  const report: ReconcileReport = { removedEndpoints: [], removedVeths: [], freedReservations: [], removedElements: 0, repaired: [] };
  await store.withLock(s.lockFile, true, async () => {
    // 0. Temp files of writers killed mid-write (the lock excludes every writer of these dirs;
    //    the shared ports directory only loses ones older than a minute).
    for (const d of ['endpoints', 'ip']) await store.removeStaleTemps(path.join(s.dir, d));
    for (const proto of await store.listDir(path.join(store.stateDir(), 'ports')))
      for (const port of await store.listDir(path.join(store.stateDir(), 'ports', proto)))
        await store.removeStaleTemps(portDir(proto, Number(port)), 60_000);
    // Its own map of the records (the cache may be refilled by other callers meanwhile).
    const eps = await s.readRecords();
    for (const ip of await store.listDir(path.join(s.dir, 'ip'))) s.markUsed(ip);
    report.repaired.push(...(await setupKernel(s, true)));
    const hostLinks = await nl.linkList(s.host);
    // A dense network's leaves: final ones kept and made good, half-made ones deleted.
    report.repaired.push(...(await repairLeaves(s, hostLinks)));
    // The links of the host and of every leaf namespace, each with where it is; the bridge of each.
    const links: LinkAt[] = hostLinks.map((l) => ({ ...l, at: s.host }));
    const bridgeIdx = hostLinks.find((l) => l.name === s.rec.bridge)?.index ?? (await nl.linkGet(s.rec.bridge, s.host)).index;
    s.bridgeIdx = bridgeIdx;
    const bridgeIn = new Map<Namespace, number>([[s.host, bridgeIdx]]);
    for (const leaf of s.leaves.values()) {
      bridgeIn.set(leaf.ns, leaf.br);
      for (const l of await nl.linkList(leaf.ns)) links.push({ ...l, at: leaf.ns });
    }
    const byName = new Map(links.map((l) => [l.name, l]));
    const mark = `${ALIAS_PREFIX}${s.rec.id.slice(0, 12)}:`;
    // 1. Records: keep those whose veth exists (re-attaching it if the bridge was rebuilt).
    for (const rec of [...eps.values()]) {
      let l = byName.get(rec.hostVeth);
      // A deleted container namespace takes its veth pair with it, but only when the kernel's
      // asynchronous namespace cleanup gets to it: a veth whose namespace path is gone is gone.
      if (l && !existsSync(rec.namespace)) {
        await nl.linkDel(rec.hostVeth, l.at).catch((e) => {
          if (!isNotFound(e)) throw e;
        });
        l = undefined;
      }
      if (!l || l.alias !== s.alias(rec.id)) {
        // Missing, detached or never finished (still marked pending). Its elements go in step 3
        // (by owner comment, never by key: the key may already be another endpoint's), its
        // neighbour entry in step 2b, its veth (if any) in step 2.
        const owner = s.ownerOf(rec.id);
        await s.releasePorts(rec.ports, owner);
        await s.releaseIp(rec.ip, owner);
        if (rec.ipv6) await s.releaseIp(rec.ipv6, owner);
        await store.removeFile(s.epFile(rec.id));
        eps.delete(rec.id);
        report.removedEndpoints.push(rec.id);
      } else {
        // Its bridge (in a dense network's leaf namespace, the leaf's; its neighbour entries on
        // the leaf's trunk).
        const slot = slotOf(s.rec, rec.ip);
        const leaf = slot ? await slotLeaf(s, slot) : undefined;
        const want = leaf ? leaf.br : bridgeIdx;
        if (l.master !== want || !l.up) {
          await nl.linkSet(rec.hostVeth, { master: want, up: true }, l.at);
          for (const address of hostNeighbours(s, rec))
            await nl.batch([{ op: 'neighAdd', ns: s.host, link: leaf ? leaf.trunk : bridgeIdx, address, lladdr: rec.mac }]).catch(() => undefined);
          report.repaired.push(`veth ${rec.hostVeth} re-attached`);
        }
      }
    }
    // 2. Veths with our mark that no record explains, half-made ones (still pending), and
    //    detached ones awaiting the reaper.
    const pending = `${PENDING_PREFIX}${s.rec.id.slice(0, 12)}:`;
    for (const l of links) {
      // A connect's veth has no alias until its commit mark (bridge-connect.ts plumbOps): a
      // process killed before it leaves a veth of our naming on our bridge with no alias at all.
      // (Veths with a pending alias are what an earlier version made.)
      const unmarked = !l.alias && l.master !== undefined && bridgeIn.get(l.at) === l.master && /^veth[0-9a-f]{11}$/.test(l.name);
      if ((l.alias?.startsWith(mark) && !eps.has(l.alias.slice(mark.length))) || l.alias?.startsWith(pending) || unmarked) {
        await nl.linkDel(l.name, l.at).catch((e) => {
          if (!isNotFound(e)) throw e;
        });
        report.removedVeths.push(l.name);
      }
    }
    fault('reconcile:after-veths');
    const detached = links.filter((l) => l.group === REAP_GROUP);
    if (detached.length) {
      // (in the host and in every leaf namespace of the network)
      await reaper.flush(true, [...s.leaves.values()].map((l) => l.ns));
      // Whatever the group request left (it deletes all or nothing), one by one.
      for (const at of new Set(detached.map((l) => l.at))) {
        const left = new Set((await nl.linkList(at)).filter((l) => l.group === REAP_GROUP).map((l) => l.name));
        for (const l of detached)
          if (l.at === at && left.has(l.name))
            await nl.linkDel(l.name, at).catch((e) => {
              if (!isNotFound(e)) throw e;
            });
      }
    }
    // 2b. Permanent neighbour entries on each of the network's bridges: exactly one per live
    //     endpoint of that bridge.
    const bridgeNow = await nl.linkGet(s.rec.bridge, s.host);
    const bridges: Array<[number, number]> = [[0, bridgeNow.index], ...[...s.leaves].map(([slot, l]): [number, number] => [slot, l.trunk])];
    for (const [slot, index] of bridges) {
      const liveIps = new Map([...eps.values()].filter((e) => slotOf(s.rec, e.ip) === slot).flatMap((e) => hostNeighbours(s, e).map((a) => [a, e] as const)));
      const neighs = await nl.neighList(s.host, { link: index });
      for (const n of neighs) {
        if (!n.state.includes('PERMANENT')) continue;
        const live = liveIps.get(n.address);
        if (live && (!n.lladdr || n.lladdr.toLowerCase() === live.mac.toLowerCase())) continue;
        const c = parseIP(n.address, 'address');
        // (IPv6 entries are ours on a dense network only.)
        const ours = c.family === 4 ? cidrOverlaps(`${c.address}/32`, s.rec.subnet) : !!(s.rec.portsPerBridge && s.rec.ipv6 && cidrOverlaps(`${c.address}/128`, s.rec.ipv6.subnet));
        if (!live && !ours) continue;
        await nl.neighDel({ link: index, address: n.address }, s.host).catch((e) => {
          if (!isNotFound(e)) throw e;
        });
        report.repaired.push(`neighbour ${n.address} removed`);
      }
      for (const [address, e] of liveIps)
        if (!neighs.some((n) => n.address === address && n.state.includes('PERMANENT') && n.lladdr?.toLowerCase() === e.mac.toLowerCase())) {
          await nl.neighAdd({ link: index, address, lladdr: e.mac }, s.host).catch(() => undefined);
          report.repaired.push(`neighbour ${address} restored`);
        }
    }
    // 3. Firewall elements: exactly those of the live endpoints, links only to live endpoints
    //    (a link to an endpoint that left, or to an earlier endpoint of the same id, is over).
    const linkLive = (l: EndpointLink) => eps.get(l.id)?.ip === l.ip;
    const fwEps = [...eps.values()].map((e) => ({ ...epToFw(e), links: e.links.filter(linkLive) }));
    const fw = await firewall.reconcile(toFw(s.rec), fwEps, s.host);
    // (and each leaf namespace's table: its own containers' elements)
    if (!s.rec.icc)
      for (const [slot, leaf] of s.leaves) {
        const f = await firewall.reconcile(toFw(s.rec), fwEps.filter((e) => slotOf(s.rec, e.ip) === slot), leaf.ns, 'leaf');
        fw.removed += f.removed;
        fw.added += f.added;
      }
    report.removedElements += fw.removed;
    if (fw.added) report.repaired.push(`${fw.added} firewall element(s)`);
    // 4. Reservations whose owner is gone.
    const prefix = `${s.rec.id.slice(0, 12)}:`;
    for (const ip of await store.listDir(path.join(s.dir, 'ip'))) {
      const o = await store.reservationOwner(s.ipFile(ip));
      if (o === undefined) continue;
      if (!o.startsWith(prefix) || !eps.has(o.slice(prefix.length)) || (eps.get(o.slice(prefix.length))!.ip !== ip && eps.get(o.slice(prefix.length))!.ipv6 !== ip)) {
        await store.removeFile(s.ipFile(ip));
        (ip.includes(':') ? s.pool6 : s.pool)?.release(ip);
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
    for (const target of await store.listDir(path.join(s.dir, 'linked'))) {
      const t = eps.get(target);
      for (const linker of await store.listDir(s.linkedDir(target))) {
        const l = eps.get(linker);
        if (t && l?.links.some((k) => k.id === target && k.ip === t.ip)) continue;
        await store.removeFile(s.linkFile(target, linker));
        report.freedReservations.push(`link ${linker} -> ${target}`);
      }
      await store.removeStaleTemps(s.linkedDir(target)); // of a registration killed mid-write
      await store.batch([{ op: 'rmdir', dir: s.linkedDir(target) }]);
    }
    s.eps.clear();
    for (const [k, v] of eps) s.eps.set(k, v);
    // 4c. The embedded DNS server (one for every network of the host): back if it was killed.
    if (s.rec.embeddedDns && !(await dns.dnsServerRunning())) {
      await dns.ensureDnsServer(s.rec);
      report.repaired.push('dns server');
    }
    // 5. Endpoint files that never got past "creating" (a connect killed before its record).
    for (const f of await store.listDir(path.join(s.dir, 'endpoints'))) {
      const id = f.replace(/\.json$/, '');
      if (!eps.has(id)) {
        await store.removeFile(path.join(s.dir, 'endpoints', f));
        report.removedEndpoints.push(id);
      }
    }
  });
  return report;
}

