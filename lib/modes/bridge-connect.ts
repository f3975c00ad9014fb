/**
 * Bridge mode, connect: one container onto the network.
 *
 * Validation, then the claims in the state store: the endpoint's record, its address(es), its
 * host ports and its link registrations, each an O_EXCL claim, in one trip to the thread pool
 * with the network's lock (shared). Then the kernel side (attachKernel): the firewall elements
 * (one nf_tables transaction) and the veth (plumb: one rtnetlink worker call): one veth pair made
 * in ONE RTM_NEWLINK (host end named vethXXXXXXXXXXX on the bridge, container end created
 * directly in the container's namespace as eth0 with its MAC, no IPv6 unless the network has
 * it), a permanent neighbour entry on each side (no ARP broadcasts at a thousand ports), the
 * address, lo up, the default route; published ports and links are nftables set/map elements, so
 * the rule count never grows with containers. The veth's final alias, set last, is the commit
 * mark (see bridge.ts's module comment). A failed connect undoes what it did.
 *
 * This is the hot path (benchmarked). In the common case it is ONE worker call (bridge-chain.ts),
 * started as soon as the veth can be: the lock and the veth's create go first, and while the
 * kernel makes the veth this thread builds the rest (the record, the claims, the firewall's
 * messages, the other requests) and feeds it to the running call, then converts the disconnect's
 * chain for later (bridge-disconnect.ts prepareDetach). Add no awaits or trips to it.
 */
import { promises as fsp } from 'node:fs';
import { ConfigError, NetmodesError, NetlinkError } from '../errors';
import { Namespace, namespacePath, prepareNamespace, openPrepared } from '../netns';
import * as nl from '../netlink';
import { batchTrusted } from '../netlink/batch';
import { assertIfname, parseMac, macFromIPv4 } from '../net/addr';
import { parsePortSpecs, PortMapping, hostIpsConflict } from '../portspec';
import { buildResolvConf, buildHosts, assertHostname } from '../dnsfiles';
import * as store from '../state/store';
import * as dns from '../dns/control';
import { firewall } from './bridge-firewall';
import { NetworkState, assertId, epToFw, fault, hex, portDir, portFile, releaseOp, toFw, type Port } from './bridge-store';
import { reaper } from './bridge-reaper';
import { prepareDetach, unplumb } from './bridge-disconnect';
import {
  claimSlotIpv6, denseIpv4Want, denseIpv6Candidate, denseIpv6Steps, endpointFwAdd, endpointFwRemove, knownPort, leafFwNs, slotOf, slotOf6, slotPort,
} from './bridge-leaves';
import { CHAIN_NS, ChainFeed, ChainOutcome, ChainSpec, chainAllowed, feedChain, newFeed, runChain } from './bridge-chain';
import type { NftMsg } from '../nft/native';
import type { ConnectOptions, Endpoint, EndpointRecord, PublishedPort, EndpointLink } from './bridge-types';

/** A Linux bridge takes at most this many ports (BR_MAX_PORTS - 1); one more gives EXFULL. */
export const MAX_BRIDGE_PORTS = 1023;

// The host's resolv.conf, re-read at most once a second (read asynchronously: connect never
// blocks the event loop on a file).
let resolvCache: { text: string; at: number } | undefined;
/** The host's resolv.conf when read less than a second ago (no await needed). */
function freshResolvConf(): string | undefined {
  return resolvCache && Date.now() - resolvCache.at <= 1000 ? resolvCache.text : undefined;
}
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

/** BridgeNetwork.connect() (documented there): the options checked, then connectLocked. */
export async function connectEndpoint(s: NetworkState, nsArg: Namespace | string, opts: ConnectOptions = {}): Promise<Endpoint> {
  s.checkUsable();
  if (!opts || typeof opts !== 'object') throw new ConfigError('options must be an object', 'options');
  const id = opts.id ?? hex(64);
  assertId(id, 'id');
  const ifname = opts.ifname ?? 'eth0';
  assertIfname(ifname, 'ifname');
  if (opts.mac !== undefined) parseMac(opts.mac, 'mac');
  if (opts.ipv6 !== undefined && !s.rec.ipv6) throw new ConfigError('the network has no IPv6 subnet', 'ipv6');
  const hostname = opts.hostname ?? id.slice(0, 12);
  assertHostname(hostname, 'hostname');
  if (opts.aliases !== undefined && !Array.isArray(opts.aliases)) throw new ConfigError('must be an array of names', 'aliases');
  (opts.aliases ?? []).forEach((a, i) => assertHostname(a, `aliases[${i}]`));
  const maps = parsePortSpecs(opts.ports ?? [], 'ports');
  if (maps.length && s.rec.internal) throw new ConfigError('an internal network publishes no ports', 'ports');
  if (opts.links !== undefined && !Array.isArray(opts.links)) throw new ConfigError('must be an array', 'links');
  const links: EndpointLink[] = [];
  // The name /etc/hosts gives a link: the peer's host name (its id may be 64 characters, more
  // than a host name label may have).
  for (const [i, l] of (opts.links ?? []).entries()) {
    const target = typeof l?.endpoint === 'string' ? l.endpoint : l?.endpoint?.id;
    if (typeof target !== 'string') throw new ConfigError('must name an endpoint', `links[${i}].endpoint`);
    if (l.alias !== undefined) assertHostname(l.alias, `links[${i}].alias`);
    const peer = s.eps.get(target) ?? (await store.readJson<EndpointRecord>(s.epFile(target)));
    if (!peer || !peer.ip)
      throw new NetmodesError('ENOLINK', `links[${i}]: no endpoint ${JSON.stringify(target)} on network ${s.rec.name}`);
    links.push({ id: peer.id, name: peer.hostname, alias: l.alias, ip: peer.ip, ...(peer.ipv6 ? { ipv6: peer.ipv6 } : {}) });
  }
  let nsPath: string;
  if (typeof nsArg === 'string') nsPath = namespacePath(nsArg).p;
  else if (nsArg instanceof Namespace) nsPath = nsArg.path;
  else throw new ConfigError('must be a Namespace or a namespace path', 'ns');
  const given = nsArg instanceof Namespace ? nsArg : undefined;
  // The namespace, opened with a socket made inside it. Without the chain, beside the claims
  // (connectLocked): neither waits for the other. With it, the chain opens it itself, and this
  // is needed only when the chain stopped short.
  let opened: Promise<Namespace> | undefined;
  const nsReady = (): Promise<Namespace> => {
    if (!opened) {
      opened = given ? prepareNamespace(given) : openPrepared(nsArg as string);
      opened.catch(() => undefined); // awaited (and its error thrown) in connectLocked
    }
    return opened;
  };
  const chained = chainAllowed();
  if (!chained) void nsReady();
  try {
    return await connectLocked(s, nsPath, given, nsReady, chained, id, ifname, hostname, maps, links, opts);
  } finally {
    if (!given && opened) await opened.then((ns) => ns.close(), () => undefined);
  }
}

async function connectLocked(
  s: NetworkState,
  nsPath: string,
  given: Namespace | undefined,
  nsReady: () => Promise<Namespace>,
  chained: boolean,
  id: string,
  ifname: string,
  hostname: string,
  maps: PortMapping[],
  links: EndpointLink[],
  opts: ConnectOptions,
): Promise<Endpoint> {
  // (A dense network's slots each hold fewer than a bridge's ports: bridge-leaves.ts.)
  if (!s.rec.portsPerBridge && s.eps.size >= MAX_BRIDGE_PORTS)
    throw new NetmodesError('EBRIDGEFULL', `bridge ${s.rec.bridge} already has ${MAX_BRIDGE_PORTS} ports (the kernel's limit)`);
  const owner = s.ownerOf(id);
  const epFile = s.epFile(id);
  // Candidates chosen in memory (ConfigError / EADDRINUSE for what this process knows is taken),
  // then made ours with one batch of file operations: the endpoint's record, its address(es)
  // and its fixed host ports, each an O_EXCL claim (store.ts). Dynamic host ports and an
  // address another process took meanwhile are claimed after, one at a time.
  const picked: string[] = []; // marked used in this process's pools
  const pick = (want: string | undefined, v6: boolean): string => {
    const ip = s.pickIp(want, v6);
    picked.push(ip);
    return ip;
  };
  const undo: Array<() => Promise<unknown>> = [];
  const fsUndo: store.FsOp[] = [];
  let lock: store.FileLock | undefined;
  const rollback = async (): Promise<void> => {
    for (const u of undo.reverse()) await u().catch(() => undefined);
    if (fsUndo.length) await store.batch(fsUndo.reverse()).catch(() => undefined);
    for (const ip of picked) (ip.includes(':') ? s.pool6 : s.pool)?.release(ip);
  };
  try {
    const ports = s.resolvePorts(maps, 'ports');
    // A dense network's IPv6 address is in its IPv4 address's slot (bridge-leaves.ts).
    const dense6 = !!(s.rec.portsPerBridge && s.rec.ipv6);
    const wantIp = dense6 ? denseIpv4Want(s.rec, opts.ip, opts.ipv6) : opts.ip;
    let ip = pick(wantIp, false);
    let ipv6 = s.rec.ipv6 ? pick(dense6 ? denseIpv6Candidate(s.rec, ip, opts.ipv6, (a) => s.pool6!.has(a)) : opts.ipv6, true) : undefined;
    const mac = opts.mac !== undefined ? parseMac(opts.mac, 'mac') : macFromIPv4(ip);
    const makeRecord = (): EndpointRecord => ({
      id,
      network: s.rec.name,
      namespace: nsPath,
      ifname,
      ip,
      ipv6,
      mac: opts.mac !== undefined ? mac : macFromIPv4(ip),
      hostVeth,
      // (sliced: filter's array keeps room for 17 elements, ~130 B more per endpoint held)
      ports: ports.filter((p): p is PublishedPort => p !== undefined).slice(),
      links,
      hostname,
      resolvConf,
      hosts: buildHosts({ hostname, ip, ipv6, aliases: opts.aliases, links: links.map((l) => ({ name: l.name, alias: l.alias, ip: l.ip })) }),
      created,
      ...(opts.aliases?.length ? { aliases: [...opts.aliases] } : {}),
      ...(dnsUpstreams ? { dnsUpstreams } : {}),
    });
    const hostVeth = `veth${hex(11)}`;
    const hostText = freshResolvConf() ?? (await hostResolvConf());
    const fixed = ports.filter((p): p is PublishedPort => p !== undefined);
    // With the embedded server, resolv.conf names it (on the gateway) and the servers asked
    // for, or the host's, become its upstreams for this endpoint. (DNS options given are checked
    // before anything is made; without any, nothing here can fail, and it waits for the chain.)
    let dnsUpstreams: string[] | undefined;
    let resolvConf = '';
    const dnsFiles = () => {
      dnsUpstreams = s.rec.embeddedDns ? dns.upstreamsFor(hostText, opts.dns?.servers) : undefined;
      // (no DNS options: the host's text decides alone, so its last result is reused as it is)
      resolvConf = !dnsUpstreams && opts.dns === undefined
        ? s.derived(hostText, () => buildResolvConf(hostText, {}))
        : s.shared(buildResolvConf(hostText, dnsUpstreams ? { ...opts.dns, servers: [s.rec.gateway] } : opts.dns ?? {}));
    };
    if (opts.dns !== undefined) dnsFiles();
    // The chain (bridge-chain.ts), when the common case holds: started at once with the lock and
    // the veth's create, so that the rest (the record, the claims, the firewall's messages, the
    // other requests) is built while the kernel makes the veth, and fed to it with no await
    // between (feedChain). The container's requests then go beside the claims and the firewall's
    // transaction; the host's wait for both (plumbOps).
    const port = chained && fixed.length === maps.length ? knownPort(s, ip) : undefined;
    let fed: { feed: ChainFeed; run: Promise<ChainOutcome>; plumbing: ReturnType<typeof plumbOps> } | undefined;
    if (port !== undefined && !store.FileLock.queued(s.lockFile)) {
      const plumbing = plumbOps(s, given ?? CHAIN_NS, { id, ip, ipv6, mac, hostVeth, ifname }, port);
      const feed = newFeed();
      const run = runChain({
        ns: given ? undefined : nsPath,
        fs: [{ op: 'lock', file: s.lockFile, exclusive: false }],
        rtnl: { ops: plumbing.ops.slice(0, 1), quiet: true },
        feed,
      });
      fed = { feed, run, plumbing };
    }
    let created = '';
    let rec: EndpointRecord;
    let ops: store.FsOp[];
    try {
      if (opts.dns === undefined) dnsFiles();
      created = new Date().toISOString();
      rec = makeRecord();
      ops = claimOps(s, rec, fixed, links, owner);
      if (fed) {
        feedChain(fed.feed, {
          fs: ops,
          // A port's directory may hold only this claim (another address on it would conflict).
          expect: [null, ...ops.map((o) => (o.op === 'list' ? [fixed.find((p) => portDir(p.protocol, p.hostPort) === o.dir)!.hostIp] : null))],
          nft: fwTx(s, rec),
          rtnl: { ops: fed.plumbing.ops.slice(1), early: fed.plumbing.host },
        });
        // The disconnect's chain, converted while the kernel works (bridge-disconnect.ts).
        prepareDetach(s, rec, port!, recordText(ops));
      }
    } catch (err) {
      if (fed) {
        // Abandoned: what its start did (the lock, the veth) is undone.
        feedChain(fed.feed, null);
        const c = await fed.run.catch(() => undefined);
        if (c && typeof c.fs[0] === 'number') store.FileLock.adopt(c.fs[0]).release();
        if (c?.rtnl !== undefined) await dropEarlyVeth(s, { hostVeth, ip } as EndpointRecord, c);
      }
      throw err;
    }
    let res: store.FsResult[] | undefined;
    // The kernel's part, when the chain did it (bridge-chain.ts): only after every claim was won.
    let chain: ChainOutcome | undefined;
    try {
      // The network's lock (shared: connects and disconnects run side by side; reconcile and
      // remove take it exclusively), then the claims: one trip to the thread pool; with the
      // chain, the kernel's part too, when the claims went as they nearly always do.
      if (fed) {
        chain = await fed.run;
        if (chain.ns) throw chain.ns; // nothing ran
        if (typeof chain.fs[0] === 'number') lock = store.FileLock.adopt(chain.fs[0]);
        if (chain.fsError) {
          if (chain.rtnl !== undefined) await dropEarlyVeth(s, rec, chain);
          const e = chain.fsError as NetlinkError & { results?: unknown[] };
          e.index = (e.index ?? 1) - 1;
          e.results = chain.fs.slice(1);
          throw e;
        }
        // (every claim's result; fewer only when the chain was abandoned: then the waiting way)
        if (lock && chain.fs.length === ops.length + 1) res = chain.fs.slice(1);
        else if (lock) {
          lock.release();
          lock = undefined;
        }
        if (!chain.go) {
          // A claim lost (or the lock busy): the early requests' veth, if made, goes (nothing of
          // the host's was touched), and the connect goes on the usual way.
          if (chain.rtnl !== undefined) await dropEarlyVeth(s, rec, chain);
          chain = undefined;
        }
      }
      // The lock taken the waiting way (busy, or others of this process wait for it).
      if (!res) ({ lock, results: res } = await store.FileLock.acquireWith(s.lockFile, false, ops));
    } catch (err) {
      // An I/O error part way: undo the claims that were made.
      const done = ((err as { results?: unknown[] }).results ?? []) as unknown[];
      for (const [i, r] of done.entries()) if (r === true && ops[i].op === 'reserve') fsUndo.push(releaseOp(ops[i], i === 0 ? undefined : owner));
      throw err;
    }
    // Whether the DNS server runs, read (and the probe's lock let go) at once: a check below that
    // throws must not keep the server's lock in this process.
    const dnsRunning = s.rec.embeddedDns ? dns.lockProbeResult(res[ops.length - 1]) : true;
    const epMine = res[0] === true;
    if (epMine) fsUndo.push({ op: 'remove', file: epFile });
    if (res[1] === true) fsUndo.push({ op: 'release', file: s.ipFile(ip), owner });
    let k = 2;
    const ip6Mine = ipv6 ? res[k++] === true : true;
    if (ipv6 && ip6Mine) fsUndo.push({ op: 'release', file: s.ipFile(ipv6), owner });
    let portBusy: PublishedPort | undefined;
    for (const p of fixed) {
      const mine = res[k++] === true;
      const others = res[k++] as string[];
      if (mine) fsUndo.push({ op: 'release', file: portFile(p), owner });
      // 0.0.0.0 conflicts with every specific address on the same port, and the reverse.
      if (!mine || others.some((o) => o !== p.hostIp && hostIpsConflict(o, p.hostIp))) portBusy ??= p;
    }
    // (fsUndo runs in reverse: the file goes, then its directory if that left it empty.)
    for (const l of links) if (res[k++] === true) fsUndo.push(...s.unregisterOps(l.id, [id]).reverse());
    if (!epMine) throw new NetmodesError('EENDPOINTEXISTS', `endpoint ${JSON.stringify(id)} already exists on network ${s.rec.name}`);
    if (portBusy) throw new NetmodesError('EPORTINUSE', `${portBusy.protocol} port ${portBusy.hostIp}:${portBusy.hostPort} is already published`);
    let changed = false;
    if (res[1] !== true) {
      // Another process holds it (or the address asked for).
      if (wantIp !== undefined) throw new NetmodesError('EADDRINUSE', `${ip} is already in use on network ${s.rec.name}`);
      ip = await s.allocateIp(owner, false);
      undo.push(() => s.releaseIp(ip, owner));
      changed = true;
    }
    // (A dense network's IPv6 address follows an IPv4 address that moved to another slot.)
    if (ipv6 && (!ip6Mine || (dense6 && slotOf6(s.rec, ipv6) !== slotOf(s.rec, ip)))) {
      if (opts.ipv6 !== undefined) throw new NetmodesError('EADDRINUSE', `${ipv6} is already in use on network ${s.rec.name}`);
      if (ip6Mine) await s.releaseIp(ipv6, owner);
      ipv6 = dense6 ? await claimSlotIpv6(s, owner, ip) : await s.allocateIp(owner, true);
      const v6 = ipv6;
      undo.push(() => s.releaseIp(v6, owner));
      changed = true;
    }
    for (const [i, m] of maps.entries()) {
      if (ports[i] !== undefined) continue;
      const p = await s.claimDynamicPort(m, s.hostIpFor(m), owner);
      undo.push(() => s.releasePorts([p], owner));
      ports[i] = p;
      changed = true;
    }
    if (changed) {
      rec = makeRecord();
      await store.writeJson(epFile, rec);
    }
    // A server that died (SIGKILL) comes back with the next connect.
    if (!dnsRunning) await dns.ensureDnsServer(s.rec);
    fault('connect:after-reserve');
    fault('connect:after-record');
    if (chain && chainDone(chain)) {
      // Undone like attachKernel's work if a later step fails.
      undo.push(() => endpointFwRemove(s, rec).catch(() => undefined));
      undo.push(() => unplumb(s, rec, true).catch(() => undefined));
    } else {
      // The chain's kernel part failed somewhere: its veth goes (the elements are added again,
      // idempotently), then the usual way, which knows every failure.
      if (chain?.rtnlGated) await dropEarlyVeth(s, rec, chain);
      else if (chain?.rtnl && !Array.isArray(chain.rtnl)) await undoPlumb(s, rec, (chain.rtnl as NetlinkError).index, knownPort(s, rec.ip)!);
      await attachKernel(s, await nsReady(), rec);
    }
    if (links.length) {
      // A target that left while this connect ran may have missed our registration: then its
      // disconnect did not take the link's elements away, and this connect must not stand.
      undo.push(() => endpointFwRemove(s, rec).catch(() => undefined));
      undo.push(() => unplumb(s, rec, true).catch(() => undefined));
      const targets = await store.batch(links.map((l) => ({ op: 'read', file: s.epFile(l.id) })));
      const gone = links.find((l, i) => store.parseRecord<EndpointRecord>(targets[i])?.ip !== l.ip);
      if (gone) throw new NetmodesError('ENOLINK', `links: endpoint ${JSON.stringify(gone.id)} left network ${s.rec.name} while this one connected`);
    }
    s.eps.set(id, rec);
    return s.toEndpoint(rec);
  } catch (err) {
    await rollback();
    throw err;
  } finally {
    lock?.release();
  }
}

/** The record's JSON in claimOps' first op (its reserve). */
function recordText(ops: store.FsOp[]): string {
  return (ops[0] as { data: string }).data;
}

/**
 * A connect's claims in the store, in order: the record (as the endpoint's claim: complete when
 * nothing changes it later; until the veth carries its final alias, reconcile() takes it for
 * half-made), the address(es), each fixed host port with its directory's list, the links'
 * registrations with their targets (each target is checked again after the kernel step, in case it
 * was leaving meanwhile), and whether the DNS server runs (last: a lock op that would wait ends the
 * batch).
 */
function claimOps(s: NetworkState, rec: EndpointRecord, fixed: PublishedPort[], links: EndpointLink[], owner: string): store.FsOp[] {
  const ops: store.FsOp[] = [
    { op: 'reserve', file: s.epFile(rec.id), data: JSON.stringify(rec) },
    { op: 'reserve', file: s.ipFile(rec.ip), data: owner },
  ];
  if (rec.ipv6) ops.push({ op: 'reserve', file: s.ipFile(rec.ipv6), data: owner });
  for (const p of fixed) ops.push({ op: 'reserve', file: portFile(p), data: owner }, { op: 'list', dir: portDir(p.protocol, p.hostPort) });
  for (const l of links) ops.push({ op: 'reserve', file: s.linkFile(l.id, rec.id), data: owner });
  if (s.rec.embeddedDns) ops.push(dns.lockProbeOp());
  return ops;
}

/**
 * The kernel side of a connect: the firewall elements (one nf_tables transaction) and the veth
 * (one rtnetlink worker call). On a network with icc=false the elements go first (the port is
 * isolated before it is ever up on the bridge); elsewhere both go at once, each on its own
 * thread (a DNAT element for an address that does not answer yet is harmless).
 */
async function attachKernel(s: NetworkState, ns: Namespace, rec: EndpointRecord): Promise<void> {
  const fw = () => endpointFwAdd(s, rec);
  const unFw = () => endpointFwRemove(s, rec).catch(() => undefined);
  if (!s.rec.icc || process.env.NETMODES_FAULT) {
    await fw();
    fault('connect:after-elements');
    try {
      await plumb(s, ns, rec);
    } catch (err) {
      await unFw();
      throw err;
    }
    return;
  }
  // The veth's call first: it is the longer one, so its worker starts before the firewall's
  // messages are encoded on this thread.
  const [k, f] = await Promise.allSettled([plumb(s, ns, rec), fw()]);
  if (f.status === 'fulfilled' && k.status === 'fulfilled') return;
  if (f.status === 'fulfilled') await unFw();
  if (k.status === 'fulfilled') await unplumb(s, rec, true).catch(() => undefined);
  throw f.status === 'rejected' ? f.reason : (k as PromiseRejectedResult).reason;
}

/** The kernel side of a connect: one worker call, one message per step. */
async function plumb(s: NetworkState, ns: Namespace, rec: EndpointRecord, retried = false, byName = false): Promise<void> {
  const r = s.rec;
  const slot = slotOf(r, rec.ip);
  if (s.bridgeIdx === undefined && !byName && !slot)
    s.bridgeIdx = await nl.linkGet(r.bridge, s.host).then((l) => l.index, () => undefined);
  // The container's bridge: the network's, or in a dense network its slot's leaf (made the
  // first time the slot is used; bridge-leaves.ts), whose trunk holds the neighbour entry.
  const port = await slotPort(s, slot, byName);
  const { ops, first } = plumbOps(s, ns, rec, port);
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
      return finish(s, rec, ops.slice(idx + 1));
    }
    if (idx === 0 && typeof port.master === 'number' && (e.code === 'EINVAL' || e.code === 'ENODEV')) {
      // The bridge was rebuilt since its index was learned: by name again (a leaf: found or
      // made again).
      s.bridgeIdx = undefined;
      if (byName) throw err;
      return plumb(s, ns, rec, retried, true);
    }
    if (idx === 0 && (e.code === 'EEXIST' || e.code === 'EXFULL' || e.code === 'ENOSPC') && !retried) {
      // The container still has the interface of a detached, not yet reaped veth (this or
      // another process's), or detached veths still fill the bridge's ports: reap, retry.
      await reaper.flush(true, port.at === s.host ? [] : [port.at]);
      return plumb(s, ns, rec, true, byName);
    }
    if (idx === 0 && e.code === 'EEXIST')
      throw new ConfigError(`the namespace already has an interface named ${rec.ifname}`, 'ifname', 'EEXIST');
    if (idx !== 0) await undoPlumb(s, rec, idx, port);
    if (idx === 0 && (e.code === 'EXFULL' || e.code === 'ENOSPC'))
      throw new NetmodesError('EBRIDGEFULL', `bridge ${r.bridge} is full (${MAX_BRIDGE_PORTS} ports)`, { cause: err });
    throw err;
  }
}

/**
 * The endpoint's elements as uncommitted transactions: the host's, and (a dense network's
 * icc=false container of slot > 0) its leaf namespace's; none: no elements.
 */
function fwTx(s: NetworkState, rec: EndpointRecord): ChainSpec['nft'] {
  const out: Array<{ ns: Namespace; msgs: NftMsg[] }> = [];
  const tx = firewall.addEndpointTx(toFw(s.rec), epToFw(rec), s.host);
  if (tx) out.push({ ns: s.host, msgs: tx.messages() });
  const leaf = leafFwNs(s, rec.ip);
  const ltx = leaf && firewall.addEndpointTx(toFw(s.rec), epToFw(rec), leaf, 'leaf');
  if (ltx) out.push({ ns: leaf!, msgs: ltx.messages() });
  return out.length ? out : undefined;
}

/** Whether a chain's kernel part succeeded. */
function chainDone(c: ChainOutcome): boolean {
  return !c.nft && Array.isArray(c.rtnl);
}

/**
 * Takes away what a chain's early requests made (their veth: its peer, with the container's
 * address, routes and neighbour entry, goes with it) when the claims or the firewall's
 * transaction did not go well, so the host's requests never ran: the host's neighbour entry for
 * the address may be another endpoint's (one that won the address), and is left alone.
 */
async function dropEarlyVeth(s: NetworkState, rec: EndpointRecord, c: ChainOutcome): Promise<void> {
  // (the create itself failed: nothing was made)
  const failedAt = c.rtnl && !Array.isArray(c.rtnl) ? (c.rtnl as NetlinkError).index : undefined;
  if (failedAt === 0) return;
  await nl.linkDel(rec.hostVeth, knownPort(s, rec.ip)?.at ?? s.host).catch(() => undefined);
}

/**
 * Takes away what plumbOps' requests made before request `idx` failed (undefined: any of them):
 * the veth (its peer goes with it) and the host's neighbour entry, which the veth's deletion
 * leaves on the bridge (and which would refuse the next connect given that address).
 */
async function undoPlumb(s: NetworkState, rec: EndpointRecord, idx: number | undefined, port: Port): Promise<void> {
  if (idx === 0) return;
  const ops: nl.BatchOp[] = [{ op: 'linkDel', ns: port.at, link: rec.hostVeth }, { op: 'neighDel', ns: s.host, link: port.neigh, address: rec.ip }];
  // (a dense network's IPv6 entry too: bridge-leaves.ts)
  if (rec.ipv6 && s.rec.ipv6 && s.rec.portsPerBridge) ops.push({ op: 'neighDel', ns: s.host, link: port.neigh, address: rec.ipv6 });
  await nl.batch(ops, { pipelined: true }).catch(() => undefined);
}

/** What a connect's requests need of its record (known before the record is built). */
type PlumbFields = Pick<EndpointRecord, 'id' | 'ip' | 'ipv6' | 'mac' | 'hostVeth' | 'ifname'>;

/**
 * A connect's rtnetlink requests, in order (`first`: the first route; `host`: the first of the
 * host's requests after the veth's create). `ns`: the container's namespace (CHAIN_NS in a
 * chain); `port`: where its host end goes (the host's bridge, or a dense network's leaf
 * namespace and its bridge there, the neighbour entries on the leaf's trunk). The container's own requests come right after the create and the
 * host's last, so that a chain can send the create and the container's requests beside the
 * store's claims (ChainSpec rtnl.early): until the claims are won nothing of the host's changes,
 * and the veth (its peer, with everything on it) is all there is to take away.
 */
function plumbOps(s: NetworkState, ns: Namespace, rec: PlumbFields, port: Port): { ops: nl.BatchOp[]; first: number; host: number } {
  const r = s.rec;
  const ops: nl.BatchOp[] = [
    // ip link add vethX mtu M numtxqueues Q numrxqueues Q master BR type veth
    //   peer name eth0 netns NS address MAC mtu M numtxqueues Q numrxqueues Q up
    // (the host end comes up with the commit mark, below: one message fewer)
    {
      op: 'linkAdd',
      ns: port.at,
      name: rec.hostVeth,
      kind: 'veth',
      mtu: r.mtu,
      queues: s.vethQueues,
      master: port.master,
      // No alias until the commit mark below: a veth of our naming on our bridge without one is
      // half-made (reconcile deletes it). A pending alias would cost a message of its own
      // (IFLA_IFALIAS is ignored at create), and on the host's side each message makes the kernel
      // walk the ids of every container namespace (~0.1 ms per message at 10,000 containers).
      // (a dense network's containers have no link-local address: no router solicitations for
      // ever, as no router advertises; bridge-leaves.ts)
      noIpv6: !r.ipv6 || !!r.portsPerBridge,
      // A bridge port needs no IPv6 of its own (the bridge carries the gateway's addresses):
      // without it, the host's IPv6 route table does not grow with the number of containers,
      // and bringing a port up or deleting it does not walk a table that does.
      disableIpv6: true,
      peer: { name: rec.ifname, ns, mac: rec.mac, mtu: r.mtu, queues: s.vethQueues, up: true },
    },
    { op: 'linkSet', ns, link: 'lo', up: true },
    { op: 'addrAdd', ns, link: rec.ifname, cidr: `${rec.ip}/${s.prefix}` },
    // ip neigh add GW lladdr BRMAC dev eth0 nud permanent
    { op: 'neighAdd', ns, link: rec.ifname, address: r.gateway, lladdr: r.bridgeMac },
  ];
  // ip neigh add IP lladdr MAC dev BR nud permanent (no ARP broadcast to find the container)
  const hostOps: nl.BatchOp[] = [{ op: 'neighAdd', ns: s.host, link: port.neigh, address: rec.ip, lladdr: rec.mac }];
  // A dense network's IPv6 is routed between its bridges: steps of its own (bridge-leaves.ts).
  const dense6 = rec.ipv6 && r.ipv6 && r.portsPerBridge ? denseIpv6Steps(s, ns, rec, port.neigh) : undefined;
  if (dense6) {
    for (const op of dense6.ops) ((op as { ns?: Namespace }).ns === s.host ? hostOps : ops).push(op);
  } else if (rec.ipv6 && r.ipv6) ops.push({ op: 'addrAdd', ns, link: rec.ifname, cidr: `${rec.ipv6}/${s.prefix6}`, noDad: true });
  const routes: nl.BatchOp[] = [{ op: 'routeAdd', ns, dst: 'default', gateway: r.gateway, link: rec.ifname }];
  if (dense6) routes.unshift(...dense6.routes);
  else if (rec.ipv6 && r.ipv6) routes.push({ op: 'routeAdd', ns, dst: 'default', gateway: r.ipv6.gateway, link: rec.ifname });
  // Everything in one worker call, in order, stopping at the first failure: a failed create
  // never lets a later step touch an interface that is not ours. The veth was created without an
  // alias; the final one, set last, is the commit mark: from then on the endpoint is complete and
  // reconcile() keeps it (rtnetlink has no transactions).
  const first = ops.length;
  ops.push(...routes);
  const host = ops.length;
  ops.push(...hostOps);
  // With the commit mark, the host end up (the container's eth0 gets its carrier only now) and
  // hairpin mode (bridge link set dev vethX hairpin on): with br_netfilter, a container reaching
  // its own published port is DNATed back out the port it came in on.
  ops.push({ op: 'linkSet', ns: port.at, link: rec.hostVeth, alias: s.alias(rec.id), up: true, hairpin: true });
  return { ops, first, host };
}

/** The rest of a connect after a refused default route, one step at a time. */
async function finish(s: NetworkState, rec: EndpointRecord, rest: nl.BatchOp[]): Promise<void> {
  for (const op of rest) {
    try {
      await nl.batch([op]);
    } catch (err) {
      if (op.op !== 'routeAdd' || (err as NetlinkError).code !== 'EEXIST') {
        await nl.linkDel(rec.hostVeth, knownPort(s, rec.ip)?.at ?? s.host).catch(() => undefined);
        throw err;
      }
    }
  }
}

