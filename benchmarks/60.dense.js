#!/usr/bin/env node
// Dense hosts (issue 20): N containers (default 10,000) attached to ONE netmodes network, a dense one
// (`portsPerBridge` 256: the root bridge and routed leaf bridges of 256 ports, lib/modes/bridge-leaves.ts).
//   node benchmarks/60.dense.js [--dense 10000] [--pairs 20] [--out FILE]
// Also a section of `npm run bench` (benchmarks/run.js; --dense N sets its size, --no-dense leaves it out).
//
// Figures: the total time of N sequential connects (and per 1,000, to show growth), kernel memory
// from /proc/meminfo (Slab, and Percpu beside it) read on a quiet machine before the namespaces are
// made, after they are made and after every container is attached, so the per-namespace and the
// per-container parts are separate; the RSS of this (the netmodes) process after a full GC before and
// after; the bridges the network made and their port counts. Reachability: every container answers
// an ICMP echo from the gateway (benchmarks/floor/probe.c: one raw socket in the sandbox's host
// namespace, where the gateway is, one request per address, retried in later rounds), a sample of
// pairs on different bridges exchange UDP datagrams (the same program, sockets opened inside the two
// namespaces), and the last container's published port answers a TCP connection from an outside
// namespace on 198.18.0.2. Then everything is disconnected (timed), the network removed, and the
// sandbox checked for links left behind.
// Slab and Percpu are the machine's, so other work running at the same time moves them.
// Runs only inside its own sandbox (unshare --net --mount), like the tests.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const sb = require('./peers/sandbox');
const c = require('./peers/common');
const prun = require('./peers/run');

const r3 = (x) => (Number.isFinite(x) ? Math.round(x * 1000) / 1000 : null);
const range = (from, count) => Array.from({ length: count }, (_, k) => from + k);

/** The /proc/meminfo fields the section reads, in KiB. */
function meminfo() {
  const out = {};
  for (const line of fs.readFileSync('/proc/meminfo', 'utf8').split('\n')) {
    const m = /^(\w+):\s+(\d+) kB/.exec(line);
    if (m && ['Slab', 'SReclaimable', 'SUnreclaim', 'Percpu', 'MemAvailable'].includes(m[1])) out[m[1]] = Number(m[2]);
  }
  return out;
}

/** KiB per item between two meminfo readings, per field. */
function perItem(from, to, count) {
  const out = {};
  for (const k of Object.keys(to)) out[`${k}KiB`] = r3((to[k] - from[k]) / count);
  return out;
}

/**
 * A dense network's leaves (bridge-leaves.ts): each a namespace /run/netns/nm<id8>b<N> whose bridge
 * br0 holds its containers' host ends (and the trunk to the host): leaf name -> its ports.
 */
function leafPorts() {
  const out = new Map();
  for (const name of fs.readdirSync('/sys/class/net').filter((l) => /^nm[0-9a-f]{8}b\d+$/.test(l))) {
    let ports = [];
    try {
      ports = JSON.parse(sb.sh('ip', ['-n', name, '-j', 'link', 'show', 'master', 'br0']) || '[]').map((l) => l.ifname).filter((n) => n !== 'trunk');
    } catch { /* not a leaf namespace (yet) */ }
    out.set(name, ports);
  }
  return out;
}

/** The sandbox's bridges and how many ports each has (sysfs of the sandbox's namespace; a leaf's in its namespace). */
function bridges() {
  const host = fs.readdirSync('/sys/class/net').filter((l) => fs.existsSync(`/sys/class/net/${l}/bridge`))
    .map((name) => ({ name, ports: fs.readdirSync(`/sys/class/net/${name}/brif`).length }));
  return [...host, ...[...leafPorts()].map(([name, ports]) => ({ name, ports: ports.length }))];
}

/** The bridge a host veth is a port of (sysfs; a leaf's port: by the leaf's name). */
let leafOfPort;
function masterOf(link) {
  try { return path.basename(fs.readlinkSync(`/sys/class/net/${link}/master`)); } catch { /* not in the host */ }
  if (!leafOfPort) leafOfPort = new Map([...leafPorts()].flatMap(([leaf, ports]) => ports.map((p) => [p, leaf])));
  return leafOfPort.get(link) ?? null;
}

/**
 * `count` pairs of attached containers, each on a different bridge from its partner where there are
 * several (`bridgeOf`: index -> bridge name, as the kernel has it), spread over the network; the
 * first and the last container always.
 */
function pickPairs(n, count, bridgeOf) {
  const pairs = [[0, n - 1]];
  for (let k = 1; k < count && n > 1; k++) {
    const a = (k * 7919) % n;
    let b = (a + Math.floor(n / 2) + k * 131) % n;
    for (let step = 0; step < 64 && (b === a || bridgeOf[b] === bridgeOf[a]); step++) b = (b + 97) % n;
    if (b === a) b = (a + 1) % n;
    pairs.push([a, b]);
  }
  return pairs.map(([a, b]) => ({ a, b, bridgeA: bridgeOf[a], bridgeB: bridgeOf[b], acrossBridges: bridgeOf[a] !== bridgeOf[b] }));
}

/**
 * Whether container i's host veth is on the bridge of its slot (offset / ports per bridge): slot 0
 * the root, slot s a leaf whose name ends in `b<s>`.
 */
function onItsSlot(i, bridge) {
  const slot = Math.floor((i + 2) / c.PORTS_PER_BRIDGE);
  return slot ? new RegExp(`b${slot}$`).test(bridge || '') && bridge !== c.BRIDGE : bridge === c.BRIDGE;
}

async function denseAll({ n, pairs: pairCount = 20 }, log, nm) {
  const { rss } = require('./run');
  const v = require('./peers/verify');
  const probe = require('./peers/cfloor').compile('probe');
  const list = range(0, n);
  const names = list.map((i) => c.nsName(i));
  const res = { n, portsPerBridge: c.PORTS_PER_BRIDGE, addresses: 'dense: 10.88.0.2 upwards (c.ipDense)' };
  const eps = [];
  let net = null;
  log(`dense: ${n} containers on one network`);
  // Memory is read on a quiet machine (at most 30 s of waiting each time; 5 s for a small run such
  // as test 80's, whose figures are not judged).
  const quiesce = () => prun.quiesce({ timeoutMs: n >= 1000 ? 30000 : 5000 });
  res.quiesceBefore = await quiesce();
  const m0 = meminfo();
  let t = process.hrtime.bigint();
  sb.netnsAddMany(names);
  res.nsCreateMs = r3(c.hrms(t));
  try {
    res.quiesceNs = await quiesce();
    const m1 = meminfo();
    res.rssBefore = rss();
    net = await nm.createBridgeNetwork({ name: c.NETWORK, bridge: c.BRIDGE, subnet: c.SUBNET, gateway: c.GATEWAY, portsPerBridge: c.PORTS_PER_BRIDGE });
    const lat = [];
    t = process.hrtime.bigint();
    for (const i of list) {
      const t0 = process.hrtime.bigint();
      try {
        eps.push(await net.connect(c.nsPath(i), { id: `c${i}`, ip: c.ipDense(i), ports: [`${c.portFor(i)}:${c.CONTAINER_PORT}`] }));
      } catch (e) {
        res.attachError = { at: i, code: e.code, message: e.message.slice(0, 300) };
        log(`  connect ${i} failed: ${e.code} ${e.message.slice(0, 200)}`);
        break;
      }
      lat.push(c.hrms(t0));
      if ((i + 1) % 1000 === 0) log(`  ${i + 1} attached, ${r3(c.hrms(t) / 1000)} s`);
    }
    const attached = eps.length;
    res.attached = attached;
    res.attach = { ...c.summarize(lat, c.hrms(t), attached), totalS: r3(c.hrms(t) / 1000) };
    // Mean ms of each block of 1,000 connects: whether a connect grows with the containers attached.
    res.attach.msPerThousand = range(0, Math.ceil(attached / 1000)).map((b) => {
      const part = lat.slice(b * 1000, (b + 1) * 1000);
      return r3(part.reduce((x, y) => x + y, 0) / part.length);
    });
    log(`  attached ${attached} in ${res.attach.totalS} s (${res.attach.msPerContainer} ms each; per 1,000: ${res.attach.msPerThousand.join(', ')})`);
    res.quiesceAttached = await quiesce();
    const m2 = meminfo();
    res.rssAfter = rss();
    res.meminfo = { beforeNamespaces: m0, afterNamespaces: m1, afterAttach: m2 };
    res.perNamespace = perItem(m0, m1, n);
    res.perContainer = attached ? perItem(m1, m2, attached) : null;
    res.rssGrowthMiB = r3(res.rssAfter.rssMiB - res.rssBefore.rssMiB);
    const br = bridges();
    const bridgeOf = eps.map((e) => masterOf(e.hostVeth));
    res.bridges = { count: br.length, maxPorts: Math.max(...br.map((b) => b.ports)), onTheirSlot: bridgeOf.filter((b, i) => onItsSlot(i, b)).length, list: br };
    log(`  kernel memory: Slab ${res.perNamespace.SlabKiB} KiB per namespace, ${res.perContainer && res.perContainer.SlabKiB} KiB per container; ` +
      `RSS ${res.rssBefore.rssMiB} -> ${res.rssAfter.rssMiB} MiB; ${br.length} bridges, at most ${res.bridges.maxPorts} ports`);

    // Reachability 1: every container answers an echo request from the gateway.
    t = process.hrtime.bigint();
    res.ping = JSON.parse(sb.sh(probe, ['ping', '--rounds', '3'], { input: eps.map((e) => `${e.ip}\n`).join('') }));
    log(`  ping from the gateway: ${res.ping.answered} of ${res.ping.count} answered (rounds: ${res.ping.rounds.map((r) => `${r.answered}/${r.sent}`).join(', ')}) in ${Math.round(res.ping.ms)} ms`);
    // Reachability 2: pairs across bridges.
    const pairs = pickPairs(attached, pairCount, bridgeOf);
    const pr = JSON.parse(sb.sh(probe, ['pairs'], {
      input: pairs.map((p) => `${c.nsPath(p.a)} ${eps[p.a].ip} ${c.nsPath(p.b)} ${eps[p.b].ip}\n`).join(''),
    }));
    res.pairs = { count: pr.count, ok: pr.ok, acrossBridges: pairs.filter((p) => p.acrossBridges).length, ms: pr.ms, failed: pr.failed,
      list: pairs.map((p, k) => ({ ...p, tries: pr.tries[k], rttMs: pr.rttMs[k] })) };
    log(`  UDP between pairs: ${pr.ok} of ${pr.count} (${res.pairs.acrossBridges} across bridges)`);
    // Reachability 3: the last container's published port from outside.
    const last = attached - 1;
    v.ensureOutside();
    let listener = null;
    try {
      listener = await v.startListener(last);
      const r = await v.connectFromOutside(c.portFor(last));
      res.outside = { container: last, port: c.portFor(last), from: v.OUTSIDE_ADDR, ok: r.ok && r.got === `pbench-${last}`, reply: r };
    } finally {
      if (listener) listener.kill();
      v.removeOutside();
    }
    log(`  outside ${v.OUTSIDE_ADDR} -> ${v.HOST_ADDR}:${c.portFor(last)} reaches c${last}: ${res.outside.ok}`);

    // Removal, timed.
    t = process.hrtime.bigint();
    while (eps.length) await eps.pop().disconnect();
    await nm.reapDetached();
    res.detach = { totalS: r3(c.hrms(t) / 1000), msPerContainer: r3(c.hrms(t) / attached) };
    t = process.hrtime.bigint();
    await net.remove();
    net = null;
    res.removeMs = r3(c.hrms(t));
    res.leftLinks = sb.sandboxLinks().filter((l) => l !== 'lo');
    log(`  detached in ${res.detach.totalS} s, network removed in ${Math.round(res.removeMs)} ms; links left: ${res.leftLinks.length}`);
  } finally {
    while (eps.length) await eps.pop().disconnect().catch(() => {});
    if (net) await net.remove({ force: true }).catch(() => {});
    sb.netnsDelMany(names);
    res.leftover = await prun.cleanSandbox([]);
  }
  return res;
}

function report(d) {
  const f = (x, dd = 1) => (x === null || x === undefined ? '-' : Number(x).toLocaleString('en-US', { maximumFractionDigits: dd }));
  const lines = ['', `### Dense host: ${f(d.attached, 0)} of ${f(d.n, 0)} containers on one network (bridges of ${d.portsPerBridge} ports)`, ''];
  if (d.attachError) lines.push(`connect ${d.attachError.at} FAILED: ${d.attachError.code} ${d.attachError.message}`);
  lines.push(`attach: ${f(d.attach.totalS, 1)} s in all, ${f(d.attach.msPerContainer, 2)} ms per container (p50 ${f(d.attach.p50, 2)}, p99 ${f(d.attach.p99, 2)}); ` +
    `mean per 1,000: ${d.attach.msPerThousand.map((x) => f(x, 2)).join(', ')} ms`);
  lines.push(`namespaces (ip -batch, not timed above): ${f(d.nsCreateMs / 1000, 1)} s; detach all: ${f(d.detach && d.detach.totalS, 1)} s; network removed in ${f(d.removeMs, 0)} ms`);
  if (d.perContainer) {
    lines.push(`kernel memory (/proc/meminfo, machine-wide): Slab ${f(d.perNamespace.SlabKiB)} KiB per namespace (unreclaimable ${f(d.perNamespace.SUnreclaimKiB)}), ` +
      `${f(d.perContainer.SlabKiB)} KiB per attached container (unreclaimable ${f(d.perContainer.SUnreclaimKiB)}); ` +
      `Percpu ${f(d.perNamespace.PercpuKiB)} and ${f(d.perContainer.PercpuKiB)} KiB`);
    lines.push(`netmodes process RSS after a full GC: ${f(d.rssBefore.rssMiB)} MiB before, ${f(d.rssAfter.rssMiB)} MiB with all attached (live JS heap ${f(d.rssBefore.heapUsedMiB)} -> ${f(d.rssAfter.heapUsedMiB)} MiB)`);
    lines.push(`bridges: ${d.bridges.count}, at most ${d.bridges.maxPorts} ports each; ${f(d.bridges.onTheirSlot, 0)} of ${f(d.attached, 0)} containers on the bridge of their slot (offset / ${d.portsPerBridge})`);
  }
  if (d.ping) lines.push(`reachability: ${f(d.ping.answered, 0)} of ${f(d.ping.count, 0)} answer an echo from the gateway (per round ${d.ping.rounds.map((r) => `${r.answered}/${r.sent}`).join(', ')}; ${f(d.ping.ms, 0)} ms)` +
    `; UDP pairs ${d.pairs.ok} of ${d.pairs.count} (${d.pairs.acrossBridges} across bridges)` +
    `; published port of the last from outside: ${d.outside && d.outside.ok ? 'answers' : 'FAILED'}`);
  const left = (d.leftLinks || []).length + ((d.leftover && d.leftover.removedLinks) || []).length;
  lines.push(`left behind after removal: ${left ? `${left} links (${[...(d.leftLinks || [])].slice(0, 5).join(', ')})` : 'nothing'}`);
  return lines.join('\n');
}

module.exports = { denseAll, report, meminfo };

if (require.main === module) {
  const argv = process.argv.slice(2);
  const val = (k, dflt) => {
    const i = argv.indexOf(`--${k}`);
    return i >= 0 ? argv[i + 1] : dflt;
  };
  const n = Number(val('dense', 10000));
  if (!Number.isInteger(n) || n < 2 || n > 20000) throw new Error('--dense N must be 2..20000');
  sb.ensureSandbox({ tools: ['ip', 'nft', 'unshare', 'sysctl'] });
  process.env.NETMODES_STATE_DIR = sb.workPath('netmodes-state');
  const nm = require(path.join(__dirname, '..', 'dist', 'lib', 'index.js'));
  const log = (m) => console.error(`${new Date().toISOString().slice(11, 19)} ${m}`);
  denseAll({ n, pairs: Number(val('pairs', 20)) }, log, nm)
    .then((d) => {
      const file = val('out', path.join(__dirname, 'results', `dense-${new Date().toISOString().replace(/[:.]/g, '-')}.json`));
      fs.writeFileSync(file, `${JSON.stringify(d, null, 1)}\n`);
      console.log(report(d));
      console.log(`\nraw results: ${path.relative(process.cwd(), file)}`);
    })
    .catch((e) => {
      console.error(e.stack || e.message);
      process.exit(1);
    });
}
