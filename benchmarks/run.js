#!/usr/bin/env node
'use strict';
// netmodes against its peers, side by side, in one run (`npm run bench`).
//
//   node benchmarks/run.js [--quick] [--peers netmodes,cfloor,netavark,cni,ip,ipbatch] [--n 500] [--ip-n 200] [--slow-n 100]
//        [--repeat 3] [--warmup 1000] [--conc 8,64] [--scale 10,1000,5000] [--peer-scale 10,250] [--no-scale] [--no-datapath]
//        [--churn 500,5000,20000 | --no-churn] [--no-dns] [--dense 10000 | --no-dense] [--base DIR] [--out FILE]
//
// Per container: namespace exists -> attached to a bridge with an address, a default route and one
// published TCP port -> detached. Peers (benchmarks/peers/): netavark 1.4 and the CNI plugins as a
// runtime drives them, one ip/nft process per operation (`ip`), and the floors: `ipbatch` (one
// `ip -batch` + one `nft -f` for all containers), `floorgroup` (the same, veths deleted as one link
// group), and the C floor `cfloor`/`cfloorgroup` (benchmarks/floor/floor.c: the same requests over raw
// netlink from one process, each acknowledged; veths deleted one by one / as a group; `cfloorv4`: as a
// group, with IPv6 off and one queue pair on the veths as netmodes has them on an IPv4 network). netmodes runs in
// this process (connect/disconnect through the public API; concurrency = promises in flight), the
// peers as child processes.
//
// Everything runs inside one sandbox (benchmarks/peers/sandbox.js): the script re-executes itself under
// `unshare --net --mount`, refuses unless both namespaces are new, and mounts tmpfs on /run/netns and
// on the state directories. Nothing touches the machine's own network namespace.

const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn, execFileSync } = require('child_process');
const sb = require('./peers/sandbox');
const prun = require('./peers/run');
const c = require('./peers/common');

const ALL_PEERS = ['netmodes', 'cfloor', 'cfloorgroup', 'cfloorv4', 'ipbatch', 'floorgroup', 'ip', 'netavark', 'cni', 'cniplugin', 'cniplugin-process'];
const SLOW = new Set(['netavark', 'cni', 'cniplugin-process']);
// Not in the default list: `netmodes-base` is netmodes built from another checkout (--base DIR, or
// NETMODES_BASE; e.g. a git worktree of the commit a change started from, built there), run in this
// process exactly as `netmodes` is, so that a change's before and after are measured in one run.
const EXTRA_PEERS = ['netmodes-base'];
const isNetmodes = (name) => name === 'netmodes' || name === 'netmodes-base';

function parseArgs(argv) {
  const quick = argv.includes('--quick');
  const o = quick
    ? { n: 100, midN: 50, slowN: 30, repeat: 1, warmup: 200, fastPeerScale: [10], conc: [8, 64], scale: [10, 1000], peerScale: [10], scaleExtra: 20, portsScale: true,
      churn: { small: 200, large: 1000 }, datapath: { seconds: 1, runs: 1, ports: [10, 10000], netavarkPorts: [10, 300] } }
    : { n: 500, midN: 200, slowN: 100, repeat: 3, warmup: 1000, fastPeerScale: [10, 1000], conc: [8, 64], scale: [10, 1000, 5000, 10000], peerScale: [10, 250], scaleExtra: 20, portsScale: true,
      churn: { small: 500, large: 5000, long: 20000 }, datapath: { seconds: 3, runs: 3, ports: [10, 10000], netavarkPorts: [10, 1000] } };
  o.quick = quick; o.peers = [...ALL_PEERS]; o.out = null; o.dns = true; o.dense = quick ? 300 : 10000; o.base = process.env.NETMODES_BASE || null;
  const list = (v) => v.split(',').map((s) => s.trim()).filter(Boolean);
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k];
    const next = () => { if (k + 1 >= argv.length) throw new Error(`${a} needs a value`); return argv[++k]; };
    switch (a) {
      case '--quick': break;
      case '--peers': o.peers = list(next()); break;
      case '--n': o.n = Number(next()); break;
      case '--slow-n': o.slowN = Number(next()); break;
      case '--ip-n': o.midN = Number(next()); break;
      case '--repeat': o.repeat = Number(next()); break;
      case '--warmup': o.warmup = Number(next()); break;
      case '--conc': o.conc = list(next()).map(Number); break;
      case '--no-conc': o.conc = []; break;
      case '--scale': o.scale = list(next()).map(Number); break;
      case '--peer-scale': o.peerScale = list(next()).map(Number); break;
      case '--no-scale': o.scale = []; o.peerScale = []; o.fastPeerScale = []; o.portsScale = false; break;
      case '--no-churn': o.churn = null; break;
      case '--churn': { const [small, large, long] = list(next()).map(Number); o.churn = { small, large, ...(long ? { long } : {}) }; break; }
      case '--no-datapath': o.datapath = null; break;
      case '--no-dns': o.dns = false; break;
      case '--dense': o.dense = Number(next()); break;
      case '--no-dense': o.dense = null; break;
      case '--out': o.out = next(); break;
      case '--base': o.base = next(); break;
      case '--report': o.report = next(); break;
      case '-h': case '--help':
        console.log(fs.readFileSync(__filename, 'utf8').split('\n').slice(3, 6).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
        process.exit(0);
        break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  for (const p of o.peers) if (!ALL_PEERS.includes(p) && !EXTRA_PEERS.includes(p)) throw new Error(`unknown peer ${p} (known: ${[...ALL_PEERS, ...EXTRA_PEERS].join(', ')})`);
  if (o.peers.includes('netmodes-base') && !o.base) throw new Error('netmodes-base needs --base DIR (a built checkout of netmodes) or NETMODES_BASE');
  if (!Number.isInteger(o.n) || o.n < 1 || o.n > 1000) throw new Error('--n must be 1..1000 (one bridge holds at most 1,023 ports)');
  if (!Number.isInteger(o.slowN) || o.slowN < 1 || o.slowN > 1000) throw new Error('--slow-n must be 1..1000');
  if (!Number.isInteger(o.repeat) || o.repeat < 1 || o.repeat > 20) throw new Error('--repeat must be 1..20');
  if (!Number.isInteger(o.warmup) || o.warmup < 0 || o.warmup > 1000) throw new Error('--warmup must be 0..1000');
  // One network holds K + extra on its root and leaves (10.88.0.0/16, dense addresses).
  for (const k of [...o.scale, ...o.peerScale]) if (!Number.isInteger(k) || k < 0 || k > 20000) throw new Error('--scale K must be 0..20000');
  if (o.dense !== null && (!Number.isInteger(o.dense) || o.dense < 2 || o.dense > 20000)) throw new Error('--dense N must be 2..20000');
  for (const k of o.peerScale) if (k + o.scaleExtra > 1020) throw new Error('--peer-scale K must stay <= 1000 (the peers use one bridge)');
  return o;
}

// --- netmodes as a peer -----------------------------------------------------------------------------

let nm = null;
let nmBase = null; // netmodes-base: the library of --base DIR
let baseDir = null;

/**
 * netmodes as a peer of the same shape as the others: container i in /run/netns/pbc<i>, network
 * `pbnet` on bridge pbbr0 with 10.88.0.0/16 (gateway 10.88.0.1, as the peers), address ipOf(i) (the
 * caller's, as netavark gets it from podman; default c.ipFor), one published port 10000+i -> 80.
 * `portsOf(i)` overrides the published ports; `portsPerBridge` makes it a dense network.
 * `base`: the same through the library of --base DIR (peer `netmodes-base`).
 */
function netmodesPeer({ portsOf = null, ipOf = c.ipFor, portsPerBridge = undefined, base = false } = {}) {
  const lib = base ? nmBase : nm;
  let net = null;
  const eps = new Map();
  const ports = (i) => (portsOf ? portsOf(i) : [`${c.portFor(i)}:${c.CONTAINER_PORT}`]);
  async function setup(i) {
    eps.set(i, await net.connect(c.nsPath(i), { id: `c${i}`, ip: ipOf(i), ports: ports(i) }));
  }
  async function teardown(i) {
    const e = eps.get(i);
    if (!e) throw new Error(`c${i} is not attached`);
    eps.delete(i);
    await e.disconnect();
    // Detached veths are reaped in batches (one RTM_DELLINK per link group): the last detach of a
    // run waits for that reaping, so the run's wall clock (ms/container) includes it.
    if (!eps.size) await lib.reapDetached();
  }
  return {
    name: base ? 'netmodes-base' : 'netmodes',
    async init() {
      net = await lib.createBridgeNetwork({ name: c.NETWORK, bridge: c.BRIDGE, subnet: c.SUBNET, gateway: c.GATEWAY, ...(portsPerBridge ? { portsPerBridge } : {}) });
      return this.info();
    },
    network: () => net,
    setup, teardown, setupAsync: setup, teardownAsync: teardown,
    addressOf(i) { const e = eps.get(i); return e ? `${e.ip}/${c.PREFIX}` : null; },
    async fini() {
      for (const [, e] of eps) await e.disconnect().catch(() => {});
      eps.clear();
      await lib.reapDetached();
      if (net) await net.remove({ force: true });
      net = null;
    },
    info() {
      const pkg = require('../package.json');
      return { version: pkg.version, how: 'in-process (Node API over rtnetlink + nf_tables netlink)', networks: 1, ...(base ? { from: baseDir, commit: baseCommit() } : {}) };
    },
  };
}

/**
 * A second floor: the ipbatch peer's setup, and a teardown that deletes the veths the way the kernel
 * allows in bulk: one `nft -f` (elements), one `ip -batch` moving the host veths into a link group,
 * one `ip link del group G` (a single RTM_DELLINK, so one RCU grace period for all instead of one per
 * veth). Same kernel work as netmodes' reaper; the fairest floor for detach.
 */
function floorGroupPeer() {
  const iproute = require('./peers/iproute');
  const base = iproute.peers.ipbatch;
  const teardownAll = (list) => iproute.teardownAll(list, { group: c.LINK_GROUP });
  return {
    ...base, name: 'floorgroup', teardownAll,
    teardown: (i) => { teardownAll([i]); },
    info: () => ({ processesPerSetupOfN: 'N + 2', processesPerTeardownOfN: 3 }),
  };
}

/** The commit the --base checkout is at (for the results file), or null. */
function baseCommit() {
  try {
    return execFileSync('git', ['-C', baseDir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function peerFor(name, opts) {
  if (name === 'netmodes') return netmodesPeer(opts);
  if (name === 'netmodes-base') return netmodesPeer({ ...opts, base: true });
  if (name === 'floorgroup') return floorGroupPeer();
  return prun.getPeer(name);
}

// --- helpers ----------------------------------------------------------------------------------------

const median = (a) => {
  const s = a.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
  if (!s.length) return null;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const r3 = (x) => (Number.isFinite(x) ? Math.round(x * 1000) / 1000 : null);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const range = (from, count) => Array.from({ length: count }, (_, k) => from + k);
/**
 * RSS and heap after a full garbage collection (so garbage is not counted as growth), and the
 * size of V8's young generation (new space), which V8 grows with the allocation rate.
 */
function rss() {
  const before = process.memoryUsage().rss;
  try {
    require('v8').setFlagsFromString('--expose-gc');
    require('vm').runInNewContext('gc')();
  } catch { /* no gc: figures include garbage */ }
  const m = process.memoryUsage();
  const young = require('v8').getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');
  const c = require(path.join(__dirname, '..', 'dist', 'lib', 'native.js')).native().mallocStats();
  return {
    rssMiB: r3(m.rss / 2 ** 20), heapUsedMiB: r3(m.heapUsed / 2 ** 20), heapTotalMiB: r3(m.heapTotal / 2 ** 20), rssBeforeGcMiB: r3(before / 2 ** 20),
    youngMiB: young ? r3(young.space_size / 2 ** 20) : null,
    // The C heap in use (Node, V8's own allocations, the addon): what a native leak would grow.
    mallocInUseMiB: r3(c.inUse / 2 ** 20),
    // Free bytes in the C heap's arenas: resident, or handed back by a trim (lib/memory.ts), which
    // glibc still counts free.
    mallocFreeMiB: r3(c.free / 2 ** 20),
    ...(process.env.NETMODES_CHURN_SMAPS === '1' ? { smapsMiB: smapsByKind() } : {}),
  };
}

/** Resident memory by kind of mapping (/proc/self/smaps): where RSS beyond V8's heap sits. */
function smapsByKind() {
  const out = {};
  let kind = null;
  for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+)\s+\S+\s+\S+\s+\S+\s+\d+\s*(.*)$/.exec(line);
    if (head) {
      const size = parseInt(head[2], 16) - parseInt(head[1], 16); const name = head[3].trim();
      kind = name === '' ? (size >= 60 * 2 ** 20 ? 'anon>=60M' : size >= 2 ** 20 ? 'anon1-60M' : 'anon<1M') : name.startsWith('/') ? 'file' : name;
      continue;
    }
    const m = /^Rss:\s+(\d+) kB/.exec(line);
    if (m && kind) out[kind] = r3((out[kind] || 0) + Number(m[1]) / 1024);
  }
  return out;
}

/**
 * A 1 ms timer's delay (ms beyond the 1 ms asked) sampled while it runs, counted in 10 us bins up
 * to 100 ms (the max exactly): constant memory, so a long churn's samples do not show up as heap
 * growth in section 4.
 */
function lagMonitor() {
  const BIN = 0.01; const hist = new Uint32Array(10001);
  let count = 0; let max = 0;
  let last = process.hrtime.bigint();
  const t = setInterval(() => {
    const now = process.hrtime.bigint();
    const lag = Math.max(0, Number(now - last) / 1e6 - 1);
    last = now;
    hist[Math.min(hist.length - 1, Math.floor(lag / BIN))]++;
    count++;
    if (lag > max) max = lag;
  }, 1);
  const pct = (p) => {
    if (!count) return null;
    const want = Math.ceil((p / 100) * count);
    let seen = 0;
    for (let i = 0; i < hist.length; i++) if ((seen += hist[i]) >= want) return i === hist.length - 1 ? max : (i + 0.5) * BIN;
    return max;
  };
  return { stop() { clearInterval(t); return { samples: count, max: r3(max), p99: r3(pct(99)), p50: r3(pct(50)) }; } };
}

// --- 1 + 2: sequential and concurrent, repeated ---------------------------------------------------

async function churnAll(opts, log, keep) {
  const runs = {};
  let warmup;
  for (const name of opts.warmup ? opts.peers.filter(isNetmodes) : []) {
    // netmodes is JavaScript: V8 compiles its hot paths over the first few hundred cycles, with
    // compiler threads competing for the CPUs meanwhile. Untimed cycles first put it in the state a
    // long-running service is in (the peers are compiled programs, or start afresh every time).
    log(`warm-up: ${name}, ${opts.warmup} untimed attach + detach cycles`);
    const res = await prun.benchPeer(peerFor(name), { n: opts.warmup, conc: [], keep, log: () => {} });
    const w = { cycles: opts.warmup, cycleMs: r3(res.setup.msPerContainer + res.teardown.msPerContainer) };
    if (name === 'netmodes') warmup = w;
    log(`  ${w.cycleMs} ms per cycle while warming up`);
  }
  for (let r = 0; r < opts.repeat; r++) {
    for (const name of opts.peers) {
      const n = SLOW.has(name) ? opts.slowN : name === 'ip' ? Math.min(opts.n, opts.midN) : opts.n;
      const peer = peerFor(name);
      // The concurrent levels in every run for netmodes and the C floors (a few seconds each), so
      // that their figures are medians too, as the sequential ones are (one run of them swung by
      // ±15% on this machine); the slower peers in the first run only.
      const concHere = r === 0 || isNetmodes(name) || name.startsWith('cfloor');
      const conc = concHere && (peer.setupAsync || peer.setupParallel || isNetmodes(name)) ? opts.conc : [];
      log(`run ${r + 1}/${opts.repeat}: ${name}, N=${n}${conc.length ? `, then ${conc.join(' and ')} in flight` : ''}`);
      const res = await prun.benchPeer(peer, { n, conc, keep, log: () => {} });
      (runs[name] = runs[name] || []).push(res);
      const s = res.setup; const t = res.teardown;
      log(`  attach ${s.msPerContainer} ms/c, detach ${t.msPerContainer} ms/c, errors ${(s.errors || 0) + (t.errors || 0)}`);
    }
  }
  // Medians over the repeated runs.
  const summary = {};
  for (const [name, list] of Object.entries(runs)) {
    const pick = (f) => r3(median(list.map(f)));
    summary[name] = {
      n: list[0].n, runs: list.length,
      nsCreateMs: pick((x) => x.nsCreate.msPerContainer), nsDeleteMs: pick((x) => x.nsDelete.msPerContainer),
      attach: { ms: pick((x) => x.setup.msPerContainer), p50: pick((x) => x.setup.p50), p99: pick((x) => x.setup.p99) },
      detach: { ms: pick((x) => x.teardown.msPerContainer), p50: pick((x) => x.teardown.p50), p99: pick((x) => x.teardown.p99) },
      cycleMs: pick((x) => x.setup.msPerContainer + x.teardown.msPerContainer),
      errors: list.reduce((a, x) => a + (x.setup.errors || 0) + (x.teardown.errors || 0), 0),
      // Per level: the medians over the runs that had it (the run with the median cycles/s gives the rest).
      concurrent: (list[0].concurrent || []).map(({ inFlight }) => {
        const at = list.map((x) => (x.concurrent || []).find((y) => y.inFlight === inFlight)).filter(Boolean);
        const cps = (x) => (1000 * x.setup.count) / (x.setup.totalMs + x.teardown.totalMs);
        const mid = [...at].sort((a, b) => cps(a) - cps(b))[Math.floor((at.length - 1) / 2)];
        return {
          inFlight, runs: at.length,
          cyclesPerSecond: r3(median(at.map(cps))), cyclesPerSecondRuns: at.map((x) => r3(cps(x))),
          attachPerSecond: r3(median(at.map((x) => x.setup.perSecond))), detachPerSecond: r3(median(at.map((x) => x.teardown.perSecond))),
          attach: { p50: mid.setup.p50, p99: mid.setup.p99 }, detach: { p50: mid.teardown.p50, p99: mid.teardown.p99 },
          errors: at.reduce((a, x) => a + (x.setup.errors || 0) + (x.teardown.errors || 0), 0),
        };
      }),
    };
    summary[name].cyclesPerSecond = r3(1000 / summary[name].cycleMs);
  }
  return { runs, summary, warmup };
}

// --- 3: scaling ------------------------------------------------------------------------------------

/**
 * netmodes' scaling run: like benchScaling() (k attached, then `extra` timed sequential attaches and
 * detaches), plus a kernel probe at the same point: one bare veth pair made by one RTM_NEWLINK through
 * the same addon (host end up, no IPv6; the other end straight into a container namespace) and
 * deleted, timed `extra` times. Where the library's cost grows with k, the probe tells whether the
 * kernel's does too.
 */
async function netmodesScaling(peer, { k, extra, keep }) {
  const base = range(0, k); const more = range(k, extra);
  const res = { peer: 'netmodes', k, extra };
  const names = [...base, ...more].map((i) => c.nsName(i));
  sb.netnsAddMany(names);
  await peer.init();
  res.quiesce = await prun.quiesce(); // as benchScaling
  try {
    const t = process.hrtime.bigint();
    const pre = await prun.timeSeq(base, (i) => peer.setup(i));
    if (pre.errors.length) res.prefillErrors = pre.errors.length;
    res.prefill = { how: 'seq', ms: Math.round(c.hrms(t)), msPerContainer: k ? r3(c.hrms(t) / k) : null };
    res.quiesceExtra = await prun.quiesce();
    res.setup = prun.summary(await prun.timeSeq(more, (i) => peer.setup(i)));
    res.teardown = prun.summary(await prun.timeSeq(more, (i) => peer.teardown(i)));
    const host = nm.currentNamespace();
    const probe = [];
    for (const i of more) {
      const ns = await nm.openNamespace(c.nsPath(i));
      const name = `pbk${i}`;
      const t0 = process.hrtime.bigint();
      // As netmodes makes its veths: one queue pair per end, no IPv6 on the host end.
      await nm.batch([{ op: 'linkAdd', ns: host, name, kind: 'veth', up: true, noIpv6: true, disableIpv6: true, queues: 1, peer: { name: 'eth9', ns, up: true, queues: 1 } }]);
      const add = c.hrms(t0);
      const t1 = process.hrtime.bigint();
      await nm.linkDel(name, host);
      probe.push({ add, del: c.hrms(t1) });
      ns.close();
    }
    res.kernelProbe = {
      vethAddP50: r3(c.percentile(probe.map((x) => x.add), 50)), vethAddP99: r3(c.percentile(probe.map((x) => x.add), 99)),
      vethDelP50: r3(c.percentile(probe.map((x) => x.del), 50)),
    };
  } finally {
    await peer.fini();
    sb.netnsDelMany(names);
    res.cleanup = await prun.cleanSandbox(keep);
  }
  return res;
}

/**
 * Scaling: one more attach with K already attached. netmodes: ONE network for every K, a dense one
 * (`portsPerBridge` 256; dense addresses, so its root bridge and then its leaves fill as its IPAM
 * would fill them), beside the like-for-like C floor on the same layout (`cfloorv4` with --ports-per-bridge, at
 * the same K), each leaf in a namespace of its own as netmodes makes them for issue 20 (floor.c
 * --leaf-ns). The other peers use one bridge, so K stays within what one bridge holds.
 */
async function scalingAll(opts, log, keep) {
  const out = [];
  const one = async (name, k, extraOpts = {}, label = null) => {
    const layout = name === 'netmodes' || name === 'cfloorv4';
    const peer = name === 'netmodes' ? netmodesPeer({ ipOf: c.ipDense, portsPerBridge: c.PORTS_PER_BRIDGE, ...extraOpts })
      : name === 'cfloorv4' ? require('./peers/cfloor').layoutPeer(c.PORTS_PER_BRIDGE, { leafNs: true }) : peerFor(name);
    log(`scaling: ${name} with ${label || `${k} attached`} (+${opts.scaleExtra})${layout ? `, one dense network: root + leaves of ${c.PORTS_PER_BRIDGE}` : ''}` +
      (name === 'cfloorv4' ? ' in namespaces of their own' : ''));
    const res = name === 'netmodes'
      ? await netmodesScaling(peer, { k, extra: opts.scaleExtra, keep })
      : await prun.benchScaling(peer, { k, extra: opts.scaleExtra, keep, log: () => {} });
    res.label = label || String(k);
    res.networks = 1;
    if (layout) res.layout = { portsPerBridge: c.PORTS_PER_BRIDGE, bridges: 1 + Math.floor((k + opts.scaleExtra + 1) / c.PORTS_PER_BRIDGE) };
    if (name === 'cfloorv4') res.layout.leafNamespaces = true;
    if (label) res.publishedPorts = k * 10;
    out.push(res);
    log(`  one more attach: p50 ${res.setup.p50} ms (mean ${res.setup.msPerContainer}), detach p50 ${res.teardown.p50} ms; prefill ${res.prefill.msPerContainer} ms/c` +
      (res.kernelProbe ? `; bare veth add p50 ${res.kernelProbe.vethAddP50} ms` : ''));
  };
  // floorgroup attaches as ipbatch does, cfloorgroup as cfloor does.
  for (const name of opts.peers.filter((p) => p !== 'floorgroup' && p !== 'cfloorgroup')) {
    // netmodes and its like-for-like floor: every K; ip/ipbatch/cfloor: the K a single bridge holds; netavark/CNI: --peer-scale (slow to prefill).
    let ks;
    if (name === 'netmodes' || name === 'cfloorv4') ks = opts.scale;
    else if (SLOW.has(name)) ks = opts.peerScale;
    else ks = [...new Set([...opts.peerScale, ...opts.fastPeerScale])];
    for (const k of [...ks].sort((a, b) => a - b)) await one(name, k);
  }
  if (opts.portsScale && opts.peers.includes('netmodes')) {
    // 1,000 attached with 10 published ports each: 10,000 elements in the port maps.
    const portsOf = (i) => (i < 1000 ? range(0, 10).map((p) => `${20000 + i * 10 + p}:${c.CONTAINER_PORT}`) : [`${c.portFor(i)}:${c.CONTAINER_PORT}`]);
    await one('netmodes', 1000, { portsOf }, '1000 x 10 ports');
  }
  return out;
}

/**
 * The issue's scaling figures: per K, one more attach (p50) of netmodes on one network and of the C
 * floor on the same layout, each with its ratio to its own K = 10.
 */
function oneNetworkScaling(scaling) {
  const rows = (scaling || []).filter((s) => s.layout && s.label === String(s.k));
  const at = (peer, k) => rows.find((s) => s.peer === peer && s.k === k);
  const side = (peer, k) => {
    const s = at(peer, k); const b = at(peer, 10);
    return s ? { p50: s.setup.p50, vsK10: b ? r3(s.setup.p50 / b.setup.p50) : null } : null;
  };
  return [...new Set(rows.map((s) => s.k))].sort((a, b) => a - b)
    .map((k) => ({ k, bridges: (at('netmodes', k) || at('cfloorv4', k)).layout.bridges, netmodes: side('netmodes', k), floor: side('cfloorv4', k) }));
}

// --- 4: event-loop lag and RSS over long churn -----------------------------------------------------

// V8 grows its young generation (two semi-spaces, 1 -> 16 MiB each on 64-bit) as a process keeps
// allocating: a one-time step in RSS that is V8's sizing, not retained memory. The second run
// starts with the young generation at that final size, so RSS after `small` and after `large`
// cycles compare like with like.
const YOUNG_FIXED = ['--min-semi-space-size=16', '--max-semi-space-size=16'];

/**
 * The long churn, each time in a fresh child process (the netmodes process alone, nothing left
 * from the other sections): with V8's default heap sizing, then with the young generation fixed.
 */
async function churnMemory(opts, log) {
  // NETMODES_CHURN_V8: extra V8 flags for both children (e.g. --trace-gc-nvp to see what survives).
  const extra = (process.env.NETMODES_CHURN_V8 || '').split(/\s+/).filter(Boolean);
  const res = await churnChild(opts, extra, log);
  if (process.env.NETMODES_CHURN_ONE === '1') return res;
  res.youngFixed = await churnChild(opts, [...YOUNG_FIXED, ...extra], log);
  res.youngFixed.v8Flags = YOUNG_FIXED;
  return res;
}

function churnChild(opts, v8Flags, log) {
  log(`churn child: node ${[...v8Flags, path.basename(__filename)].join(' ')} --churn-child`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...v8Flags, __filename, '--churn-child', JSON.stringify(opts.churn)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`churn child exited with status ${code}`));
      // The result is the last line (a V8 trace flag may print before it: kept in NETMODES_CHURN_LOG).
      if (process.env.NETMODES_CHURN_LOG) fs.appendFileSync(process.env.NETMODES_CHURN_LOG, out);
      try { resolve(JSON.parse(out.trim().split('\n').pop())); } catch (e) { reject(new Error(`churn child printed no result: ${e.message}`)); }
    });
  });
}

async function churnLoop(churn, log, keep) {
  // RSS at `small` and `large` cycles (what the issue compares), and at `long` to show where it settles.
  const { small, large, long } = churn;
  const marks = [small, large, ...(long ? [long] : [])];
  // The issue's comparison again once V8 has sized its heap: `large` cycles of warm-up, then
  // RSS after `small` and after `large` more (within the long run: no extra cycles).
  const warmMarks = long && long >= 2 * large ? [large + small, 2 * large] : [];
  const total = marks[marks.length - 1];
  const pool = 100; const inFlight = 8;
  const list = range(0, pool);
  log(`churn: ${total} connect/disconnect cycles over ${pool} namespaces, ${inFlight} in flight (RSS at ${marks.join(', ')})`);
  for (const i of list) sb.netnsAdd(c.nsName(i));
  const peer = netmodesPeer();
  await peer.init();
  const res = { pool, inFlight, cycles: {} };
  let done = 0;
  const mon = lagMonitor();
  const t0 = process.hrtime.bigint();
  try {
    while (done < total) {
      const batch = list.slice(0, Math.min(pool, total - done));
      await prun.runPool(batch, inFlight, (i) => peer.setupAsync(i));
      await prun.runPool(batch, inFlight, (i) => peer.teardownAsync(i));
      const before = done; done += batch.length;
      for (const m of warmMarks)
        if (before < m && done >= m) {
          (res.afterWarmup ??= { warmup: large, cycles: {} }).cycles[m - large] = rss();
          log(`  after ${done} (${m - large} after the warm-up): RSS ${res.afterWarmup.cycles[m - large].rssMiB} MiB`);
        }
      for (const m of marks)
        if (before < m && done >= m) {
          res.cycles[m] = rss();
          if (res.cycles[m].smapsMiB) log(`  smaps: ${JSON.stringify(res.cycles[m].smapsMiB)}`);
          log(`  after ${done}: RSS ${res.cycles[m].rssMiB} MiB (V8 heap committed ${res.cycles[m].heapTotalMiB} MiB, of it young generation ${res.cycles[m].youngMiB} MiB; live ${res.cycles[m].heapUsedMiB} MiB; C heap in use ${res.cycles[m].mallocInUseMiB} MiB, free ${res.cycles[m].mallocFreeMiB} MiB)`);
        }
    }
  } finally {
    res.eventLoopLag = mon.stop();
    res.wallMs = r3(c.hrms(t0));
    res.cyclesPerSecond = r3((done * 1000) / res.wallMs);
    await peer.fini();
    for (const i of list) sb.netnsDel(c.nsName(i));
    res.leftover = await prun.cleanSandbox(keep);
  }
  res.rssGrowthMiB = r3(res.cycles[large].rssMiB - res.cycles[small].rssMiB);
  // What a leak would grow: the live JS heap plus the C heap in use (RSS also moves with V8's heap sizing).
  const retained = (m) => res.cycles[m].heapUsedMiB + res.cycles[m].mallocInUseMiB;
  res.retainedGrowthMiB = r3(retained(large) - retained(small));
  if (long) res.retainedGrowthAfterLargeMiB = r3(retained(long) - retained(large));
  if (long) res.rssGrowthAfterLargeMiB = r3(res.cycles[long].rssMiB - res.cycles[large].rssMiB);
  if (res.afterWarmup) {
    const w = res.afterWarmup.cycles;
    res.afterWarmup.rssGrowthMiB = r3(w[large].rssMiB - w[small].rssMiB);
    res.afterWarmup.retainedGrowthMiB = r3(w[large].heapUsedMiB + w[large].mallocInUseMiB - w[small].heapUsedMiB - w[small].mallocInUseMiB);
  }
  return res;
}

// --- 5: data path -----------------------------------------------------------------------------------

const CLIENT = `
const net = require('net');
const [host, port, ms] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
let ok = 0, err = 0; const t0 = Date.now(); const end = t0 + ms;
function one() {
  if (Date.now() >= end || err > 1000) { console.log(JSON.stringify({ ok, err, ms: Date.now() - t0 })); return; }
  const s = net.connect({ host, port });
  let done = false;
  s.setTimeout(2000, () => s.destroy(new Error('timeout')));
  s.on('data', () => {});
  s.on('error', () => {});
  s.on('close', (hadErr) => { if (done) return; done = true; if (hadErr) err++; else ok++; setImmediate(one); });
}
one();
`;

function connectLoop(port, seconds) {
  return sb.shAsync('ip', ['netns', 'exec', 'pbout', process.execPath, '-e', CLIENT, '198.18.0.1', String(port), String(seconds * 1000)])
    .then((out) => JSON.parse(out.trim().split('\n').pop()));
}

/** Connections/s from the outside namespace through container 0's published port, with `total` ports published. */
async function datapathOne(name, total, opts, log) {
  const v = require('./peers/verify');
  const fillers = 10; // containers 1..10 carry the other published ports
  const per = Math.ceil((total - 1) / fillers);
  const list = range(0, fillers + 1);
  for (const i of list) sb.netnsAdd(c.nsName(i));
  const fillerPorts = (i) => range(0, per).map((p) => 20000 + (i - 1) * per + p).filter((p) => p - 20000 < total - 1);
  let peer; let listener = null;
  const res = { peer: name, publishedPorts: total };
  try {
    if (name === 'netmodes') {
      peer = netmodesPeer({ portsOf: (i) => (i === 0 ? [`${c.portFor(0)}:80`] : fillerPorts(i).map((p) => `${p}:80`)) });
      await peer.init();
      const t = process.hrtime.bigint();
      for (const i of list) await peer.setup(i);
      res.setupMs = r3(c.hrms(t));
    } else {
      // netavark: the same, each filler container with its share of port mappings (one rule each).
      const nv = require('./peers/netavark');
      await nv.init();
      peer = nv;
      const env = { ...process.env, NETAVARK_FW: 'iptables' };
      const t = process.hrtime.bigint();
      nv.setup(0);
      for (const i of list.slice(1)) {
        const cfg = JSON.parse(nv.config(i));
        cfg.port_mappings = fillerPorts(i).map((p) => ({ host_ip: '', container_port: 80, host_port: p, range: 1, protocol: 'tcp' }));
        await sb.shAsync(sb.findTool('netavark'), ['--config', sb.workPath('nvdp'), 'setup', c.nsPath(i)], { input: JSON.stringify(cfg), env });
      }
      res.setupMs = r3(c.hrms(t));
      res.note = 'filler containers set up with their own config dir; torn down by namespace deletion and sandbox reset';
    }
    log(`datapath: ${name} with ${total} published ports (set up in ${Math.round(res.setupMs)} ms)`);
    listener = await v.startListener(0);
    await connectLoop(c.portFor(0), Math.min(1, opts.datapath.seconds)); // warm-up
    const per_ = [];
    for (let r = 0; r < opts.datapath.runs; r++) {
      const x = await connectLoop(c.portFor(0), opts.datapath.seconds);
      per_.push({ ...x, perSecond: r3((x.ok * 1000) / x.ms) });
    }
    res.runs = per_;
    res.connectionsPerSecond = r3(median(per_.map((x) => x.perSecond)));
    res.errors = per_.reduce((a, x) => a + x.err, 0);
    log(`  ${res.connectionsPerSecond} connections/s (errors ${res.errors})`);
  } finally {
    if (listener) listener.kill();
    if (name === 'netmodes' && peer) await peer.fini();
    if (name === 'netavark' && peer) { try { peer.teardown(0); } catch { /* gone */ } peer.fini(); }
    await sleep(200);
    for (const i of list) sb.netnsDel(c.nsName(i));
    res.leftover = await prun.cleanSandbox(['pbout0']);
  }
  return res;
}

/**
 * netmodes: container 0 publishes 10000 -> 80; filler containers 1..10 carry the other ports. The
 * fillers are re-attached with few or many ports between runs (cheap here), so the sizes alternate
 * (10, 10000, 10, 10000, ...) and a machine that slows down for a while hurts both alike.
 */
async function datapathNetmodes(opts, log) {
  const v = require('./peers/verify');
  const fillers = 10;
  const list = range(0, fillers + 1);
  for (const i of list) sb.netnsAdd(c.nsName(i));
  let total = 10;
  const fillerPorts = (i) => {
    const per = Math.ceil((total - 1) / fillers);
    return range(0, per).map((p) => 20000 + (i - 1) * per + p).filter((p) => p - 20000 < total - 1).map((p) => `${p}:80`);
  };
  const peer = netmodesPeer({ portsOf: (i) => (i === 0 ? [`${c.portFor(0)}:80`] : fillerPorts(i)) });
  const res = new Map(opts.datapath.ports.map((t) => [t, { peer: 'netmodes', publishedPorts: t, runs: [], setupMs: null }]));
  let listener = null;
  try {
    await peer.init();
    await peer.setup(0);
    listener = await v.startListener(0);
    for (let r = 0; r < opts.datapath.runs; r++) {
      const order = r % 2 ? [...opts.datapath.ports].reverse() : opts.datapath.ports; // ABBA: no size always goes first
      for (const t of order) {
        total = t;
        const t0 = process.hrtime.bigint();
        for (const i of list.slice(1)) if (fillerPorts(i).length) await peer.setup(i);
        const x = res.get(t);
        x.setupMs = r3(c.hrms(t0));
        if (r === 0) log(`datapath: netmodes with ${t} published ports (fillers attached in ${Math.round(x.setupMs)} ms)`);
        await connectLoop(c.portFor(0), Math.min(1, opts.datapath.seconds)); // warm-up
        const y = await connectLoop(c.portFor(0), opts.datapath.seconds);
        x.runs.push({ ...y, perSecond: r3((y.ok * 1000) / y.ms) });
        for (const i of list.slice(1)) if (fillerPorts(i).length) await peer.teardown(i);
        await nm.reapDetached();
      }
    }
  } finally {
    if (listener) listener.kill();
    await peer.fini();
    await sleep(200);
    for (const i of list) sb.netnsDel(c.nsName(i));
    await prun.cleanSandbox(['pbout0']);
  }
  const out = [...res.values()];
  for (const x of out) {
    x.connectionsPerSecond = r3(median(x.runs.map((y) => y.perSecond)));
    x.errors = x.runs.reduce((a, y) => a + y.err, 0);
    log(`  netmodes, ${x.publishedPorts} ports: ${x.connectionsPerSecond} connections/s (runs ${x.runs.map((y) => Math.round(y.perSecond)).join(', ')})`);
  }
  return out;
}

async function datapathAll(opts, log) {
  const v = require('./peers/verify');
  v.ensureOutside();
  const out = [];
  try {
    for (const name of ['netmodes', 'netavark'].filter((p) => opts.peers.includes(p))) {
      // netavark 1.4 adds one iptables rule per published port, one `iptables` process each (with a
      // `-C` check first): 1,000 ports take about 30 s, 10,000 several minutes, so it is measured at 1,000.
      if (name === 'netmodes') out.push(...(await datapathNetmodes(opts, log)));
      else for (const total of opts.datapath.netavarkPorts) out.push(await datapathOne(name, total, opts, log));
    }
  } finally {
    v.removeOutside();
  }
  return out;
}

// --- report -----------------------------------------------------------------------------------------

function fmt(x, d = 1) {
  if (x === null || x === undefined || Number.isNaN(x)) return '-';
  const v = Number(x);
  return v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : null);
const fx = (x) => (x === null ? '-' : `${x >= 10 ? fmt(x, 0) : fmt(x, x >= 1 ? 1 : 2)}x`);

function table(rows, header) {
  const w = header.map((h, k) => Math.max(h.length, ...rows.map((r) => String(r[k]).length)));
  const line = (r) => r.map((x, k) => (k === 0 ? String(x).padEnd(w[k]) : String(x).padStart(w[k]))).join('  ');
  return [line(header), w.map((x) => '-'.repeat(x)).join('  '), ...rows.map(line)].join('\n');
}

const LABEL = {
  netmodes: 'netmodes', 'netmodes-base': 'netmodes, old build (--base)', cfloor: 'C floor (raw netlink, one process)', cfloorgroup: 'C floor, bulk delete (group)',
  cfloorv4: 'C floor, bulk delete, no IPv6, 1 queue',
  ipbatch: 'floor (ip -batch + nft -f)', floorgroup: 'floor, bulk delete (+ del group)', ip: 'ip/nft per operation',
  netavark: 'netavark 1.4', cni: 'CNI bridge+host-local+portmap',
  cniplugin: 'netmodes CNI plugin (resident server)', 'cniplugin-process': 'netmodes CNI plugin (Node per call)',
};

function report(R) {
  const out = [];
  const m = R.machine;
  out.push(`machine: ${m.cpus} cores (${m.cpuModel}), kernel ${m.kernel}, Node ${m.node}, ${m.memGiB} GiB; ${R.date}`);
  const S = R.churn ? R.churn.summary : {};
  const names = Object.keys(S);
  if (names.length) {
    out.push('');
    out.push(`namespace creation (ip netns add; NOT in the figures below): ${names.map((n) => `${n} run ${fmt(S[n].nsCreateMs, 2)} ms`).join(', ')}; deletion ${fmt(median(names.map((n) => S[n].nsDeleteMs)), 2)} ms`);
    out.push('');
    // The floor: the cheapest batch floor measured (C or ip -batch; veths deleted one by one or as a group).
    const cheapest = c.cheapestFloor(S);
    const floor = cheapest ? cheapest.cycleMs : null;
    const ours = S.netmodes ? S.netmodes.cycleMs : null;
    out.push(`sequential attach + detach (ms per container; median of ${R.options.repeat} run(s); p50/p99 of single operations; batch floors: total / N,`);
    out.push('the C floor\'s p50/p99 as it timed each container (for its bulk delete without the one group delete);');
    out.push(`"vs floor": to the cheapest floor measured, ${cheapest ? LABEL[cheapest.name] : 'none'}; "vs netmodes": how many times netmodes' time the implementation takes):`);
    out.push(table(names.map((n) => {
      const s = S[n];
      return [LABEL[n] || n, s.n, fmt(s.attach.ms, 2), `${fmt(s.attach.p50, 2)} / ${fmt(s.attach.p99, 2)}`, fmt(s.detach.ms, 2),
        `${fmt(s.detach.p50, 2)} / ${fmt(s.detach.p99, 2)}`, fmt(s.cycleMs, 2), fmt(s.cyclesPerSecond, 0),
        fx(ratio(s.cycleMs, floor)), n === 'netmodes' ? '-' : fx(ratio(s.cycleMs, ours)), s.errors];
    }), ['implementation', 'N', 'attach', 'attach p50/p99', 'detach', 'detach p50/p99', 'attach+detach', 'cycles/s', 'vs floor', 'vs netmodes', 'err']));
    if (S.cniplugin && S.cni) {
      // The issue's comparison: the plugin as a runtime runs it against the reference chain.
      const line = (n) => `${LABEL[n]} ${fx(ratio(S.cni.attach.ms, S[n].attach.ms))} faster per ADD, ${fx(ratio(S.cni.detach.ms, S[n].detach.ms))} per DEL, ` +
        `${fx(ratio(S.cni.cycleMs, S[n].cycleMs))} per ADD+DEL` +
        S[n].concurrent.map((x) => { const y = S.cni.concurrent.find((z) => z.inFlight === x.inFlight); return y ? `, ${fx(ratio(x.cyclesPerSecond, y.cyclesPerSecond))} in cycles/s at ${x.inFlight} in flight` : ''; }).join('');
      out.push(`CNI, against the reference bridge + host-local + portmap chain (a process per plugin and call): ${line('cniplugin')}` +
        (S['cniplugin-process'] ? `; ${line('cniplugin-process')}` : ''));
    }
    const w = R.churn.warmup;
    if (w) out.push(`(netmodes ran ${w.cycles} untimed cycles first, ${fmt(w.cycleMs, 2)} ms each, so that V8 had compiled it: the state of a long-running service)`);
    const conc = names.flatMap((n) => S[n].concurrent.map((x) => [LABEL[n] || n, x.inFlight, fmt(x.cyclesPerSecond, 0), fmt(x.attachPerSecond, 0),
      `${fmt(x.attach.p50, 1)} / ${fmt(x.attach.p99, 1)}`, fmt(x.detachPerSecond, 0), `${fmt(x.detach.p50, 1)} / ${fmt(x.detach.p99, 1)}`,
      n === 'netmodes' ? '-' : fx(ratio((S.netmodes?.concurrent.find((y) => y.inFlight === x.inFlight) || {}).cyclesPerSecond, x.cyclesPerSecond)), x.errors]));
    if (conc.length) {
      out.push('');
      out.push(`concurrent (netmodes: promises in one process; peers: parallel processes; netavark behind podman's lock; netmodes and the C floors: median of ${R.options.repeat} run(s), the others one):`);
      out.push(table(conc, ['implementation', 'in flight', 'cycles/s', 'attach/s', 'attach p50/p99 ms', 'detach/s', 'detach p50/p99 ms', 'netmodes ahead', 'err']));
    }
  }
  if (R.scaling && R.scaling.length) {
    out.push('');
    out.push(`scaling: one more attach (p50 of ${R.options.scaleExtra}, ms) with K already attached; ratio to K=10 of the same implementation:`);
    const base = {};
    for (const s of R.scaling) if (s.k === 10 && s.label === '10') base[s.peer] = s.setup.p50;
    const p10 = R.scaling.find((s) => s.k === 10 && s.kernelProbe);
    const probe10 = p10 ? p10.kernelProbe.vethAddP50 : null;
    out.push(table(R.scaling.map((s) => [LABEL[s.peer] || s.peer, s.label === String(s.k) ? `${s.k} attached` : `${s.label} (${s.publishedPorts} published)`,
      fmt(s.setup.p50, 2), fmt(s.setup.p99, 2), fx(ratio(s.setup.p50, base[s.peer])), fmt(s.teardown.p50, 2), fmt(s.prefill.msPerContainer, 2),
      s.kernelProbe ? `${fmt(s.kernelProbe.vethAddP50, 2)} (${fx(ratio(s.kernelProbe.vethAddP50, probe10))})` : '-',
      (s.setup.errors || 0) + (s.teardown.errors || 0) + (s.prefillErrors || 0)]),
    ['implementation', 'K', 'attach p50', 'attach p99', 'vs K=10', 'detach p50', 'prefill ms/c', 'bare veth add p50 (vs K=10)', 'err']));
  }
  const one = oneNetworkScaling(R.scaling);
  if (one.length) {
    out.push('');
    out.push(`one network (root bridge + leaves of ${c.PORTS_PER_BRIDGE} ports): one more attach, p50 ms (ratio to K=10; target: netmodes at most 1.3x):`);
    const side = (x) => (x ? `${fmt(x.p50, 2)} (${fx(x.vsK10)})` : '-');
    out.push(table(one.map((x) => [x.k, x.bridges, side(x.netmodes), side(x.floor)]), ['K attached', 'bridges', 'netmodes', `${LABEL.cfloorv4}, same layout`]));
  }
  if (R.dense) out.push(require('./60.dense').report(R.dense));
  if (R.churnMemory) {
    const x = R.churnMemory; const ks = Object.keys(x.cycles);
    out.push('');
    out.push(`netmodes long churn (${x.inFlight} in flight over ${x.pool} namespaces): ${fmt(x.cyclesPerSecond, 0)} cycles/s; ` +
      `event-loop lag of a 1 ms timer: p99 ${fmt(x.eventLoopLag.p99, 2)} ms, max ${fmt(x.eventLoopLag.max, 2)} ms; ` +
      `RSS after a full GC ${ks.map((k) => `${fmt(x.cycles[k].rssMiB, 1)} MiB after ${k}`).join(', ')} (growth ${fmt(x.rssGrowthMiB, 1)} MiB; ` +
      `live JS heap ${ks.map((k) => fmt(x.cycles[k].heapUsedMiB, 1)).join(' -> ')} MiB, V8 heap committed ` +
      `${ks.map((k) => fmt(x.cycles[k].heapTotalMiB, 1)).join(' -> ')} MiB)` +
      (x.rssGrowthAfterLargeMiB !== undefined ? `; from ${ks[1]} to ${ks[2]} cycles RSS changed by ${fmt(x.rssGrowthAfterLargeMiB, 1)} MiB` : '') +
      (ks.every((k) => x.cycles[k].youngMiB != null) ? `; V8 young generation ${ks.map((k) => fmt(x.cycles[k].youngMiB, 0)).join(' -> ')} MiB` : '') +
      (ks.every((k) => x.cycles[k].mallocInUseMiB != null) ? `; C heap in use (malloc) ${ks.map((k) => fmt(x.cycles[k].mallocInUseMiB, 1)).join(' -> ')} MiB` : ''));
    if (x.retainedGrowthMiB !== undefined)
      out.push(`  retained memory (live JS heap + C heap in use): ${fmt(x.retainedGrowthMiB, 2)} MiB from ${ks[0]} to ${ks[1]} cycles` +
        (x.retainedGrowthAfterLargeMiB !== undefined ? `, ${fmt(x.retainedGrowthAfterLargeMiB, 2)} MiB from ${ks[1]} to ${ks[2]}` : ''));
    const w = x.afterWarmup;
    if (w) {
      const kw = Object.keys(w.cycles);
      out.push(`  after a warm-up of ${w.warmup} cycles (V8's heap sized): RSS ${kw.map((k) => `${fmt(w.cycles[k].rssMiB, 1)} MiB after ${k} more`).join(', ')} ` +
        `(growth ${fmt(w.rssGrowthMiB, 1)} MiB; V8 young generation ${kw.map((k) => fmt(w.cycles[k].youngMiB, 0)).join(' -> ')} MiB; retained ${fmt(w.retainedGrowthMiB, 2)} MiB)`);
    }
    const y = x.youngFixed;
    if (y) {
      const ky = Object.keys(y.cycles);
      out.push(`  the same with V8's young generation fixed at its final size (${y.v8Flags.join(' ')}): ${fmt(y.cyclesPerSecond, 0)} cycles/s; ` +
        `RSS after a full GC ${ky.map((k) => `${fmt(y.cycles[k].rssMiB, 1)} MiB after ${k}`).join(', ')} (growth ${fmt(y.rssGrowthMiB, 1)} MiB, ` +
        `${fmt((100 * y.rssGrowthMiB) / y.cycles[ky[0]].rssMiB, 1)}%; live JS heap ${ky.map((k) => fmt(y.cycles[k].heapUsedMiB, 1)).join(' -> ')} MiB, ` +
        `V8 heap committed ${ky.map((k) => fmt(y.cycles[k].heapTotalMiB, 1)).join(' -> ')} MiB, C heap in use ${ky.map((k) => fmt(y.cycles[k].mallocInUseMiB, 1)).join(' -> ')} MiB)` +
        (y.rssGrowthAfterLargeMiB !== undefined ? `; from ${ky[1]} to ${ky[2]} cycles ${fmt(y.rssGrowthAfterLargeMiB, 1)} MiB` : ''));
    }
  }
  if (R.datapath && R.datapath.length) {
    out.push('');
    out.push('data path: TCP connections/s from an outside namespace through one published port (sequential connect/close loop):');
    const base = {};
    for (const d of R.datapath) if (d.publishedPorts === 10) base[d.peer] = d.connectionsPerSecond;
    out.push(table(R.datapath.map((d) => [LABEL[d.peer] || d.peer, d.publishedPorts, fmt(d.connectionsPerSecond, 0), fx(ratio(d.connectionsPerSecond, base[d.peer])), fmt(d.setupMs / 1000, 1), d.errors]),
      ['implementation', 'published ports', 'connections/s', 'vs fewest', 'setup s', 'err']));
  }
  if (R.dns) out.push(require('./50.dns').report(R.dns));
  return out.join('\n');
}

// --- main -------------------------------------------------------------------------------------------

async function main() {
  if (process.argv[2] === '--churn-child') {
    // Section 4 in a process of its own (churnMemory): inside the parent's sandbox, result on stdout.
    sb.joinSandbox();
    nm = require(path.join(__dirname, '..', 'dist', 'lib', 'index.js'));
    const log = (msg) => console.error(`${new Date().toISOString().slice(11, 19)} ${msg}`);
    const res = await churnLoop(JSON.parse(process.argv[3]), log, []);
    res.node = { execArgv: process.execArgv };
    process.stdout.write(`${JSON.stringify(res)}\n`);
    return;
  }
  const opts = parseArgs(process.argv.slice(2));
  if (opts.report) {
    // Prints the table of a results file again (and rewrites nothing).
    console.log(report(JSON.parse(fs.readFileSync(opts.report, 'utf8'))));
    return;
  }
  // Without netmodes in --peers: the peers alone (no netmodes column, no churn and no netmodes data path).
  const dist = path.join(__dirname, '..', 'dist', 'lib', 'index.js');
  if (!fs.existsSync(dist)) throw new Error('dist/lib is missing: run `npm install && npx tsc -p .` first');
  // Outside: installs the missing tools of the peers asked for (apt-get), re-executes under unshare, never returns.
  const tools = ['ip', 'nft', 'unshare', 'sysctl'];
  if (opts.peers.includes('netavark')) tools.push('iptables', 'netavark');
  if (opts.peers.includes('cni')) tools.push('iptables', 'cni-bridge');
  // aardvark-dns is installed for a full run; a --quick one uses it when present (else netmodes alone).
  if (opts.dns && opts.peers.includes('netmodes') && !opts.quick) tools.push('aardvark-dns');
  const sandbox = sb.ensureSandbox({ tools });
  const stateDir = sb.workPath('netmodes-state');
  process.env.NETMODES_STATE_DIR = stateDir; // the library's state store on the sandbox's tmpfs
  nm = require(dist);
  if (opts.peers.includes('netmodes-base')) {
    baseDir = path.resolve(opts.base);
    const baseDist = path.join(baseDir, 'dist', 'lib', 'index.js');
    if (!fs.existsSync(baseDist)) throw new Error(`--base ${baseDir}: no dist/lib/index.js (build it there: node scripts/build-native.js && npx tsc -p .)`);
    nmBase = require(baseDist);
  }
  const started = Date.now();
  const log = (msg) => console.error(`${new Date().toISOString().slice(11, 19)} ${msg}`);
  const cpus = os.cpus();
  const R = {
    date: new Date().toISOString(),
    machine: { cpus: cpus.length, cpuModel: cpus[0] && cpus[0].model, kernel: os.release(), node: process.version, memGiB: Math.round(os.totalmem() / 2 ** 30) },
    sandbox, options: opts, versions: {},
  };
  const keep = [];
  log(`machine: ${R.machine.cpus} cores, kernel ${R.machine.kernel}; peers ${opts.peers.join(', ')}; ${opts.quick ? 'quick' : 'full'} run`);
  R.spawnFloor = await prun.spawnFloor(100);
  const v = require('./peers/verify');
  // netmodes, and the C floor (new netlink code of its own), must do the work they are timed for.
  R.verifyPeers = {};
  for (const name of ['netmodes', 'netmodes-base', 'cfloor', 'cfloorgroup', 'cfloorv4'].filter((p) => opts.peers.includes(p))) {
    log(`verify: ${name} attach gives eth0, address, default route, and an outside connection reaches the container`);
    const res = await v.verifyPeer(peerFor(name), { log: () => {} });
    v.removeOutside();
    await prun.cleanSandbox(keep);
    log(`  ${res.ok ? 'ok' : 'FAILED'} (${res.checks.filter((x) => x.ok).length}/${res.checks.length} checks)`);
    if (!res.ok) throw new Error(`${name} failed its check: ${JSON.stringify(res.checks.filter((x) => !x.ok))}`);
    R.verifyPeers[name] = res;
  }
  R.verify = R.verifyPeers.netmodes;

  R.churn = await churnAll(opts, log, keep);
  for (const [name, runs] of Object.entries(R.churn.runs)) R.versions[name] = runs[0].info;
  if (opts.scale.length || opts.peerScale.length || opts.portsScale) {
    R.scaling = await scalingAll(opts, log, keep);
    R.scalingOneNetwork = oneNetworkScaling(R.scaling);
  }
  // 10,000 containers on one network: time, kernel memory, RSS, reachability (benchmarks/60.dense.js).
  if (opts.dense && opts.peers.includes('netmodes')) {
    await prun.cleanSandbox(keep);
    R.dense = await require('./60.dense').denseAll({ n: opts.dense }, log, nm);
  }
  if (opts.churn && opts.peers.includes('netmodes')) R.churnMemory = await churnMemory(opts, log);
  if (opts.datapath && opts.peers.some((p) => p === 'netmodes' || p === 'netavark')) R.datapath = await datapathAll(opts, log);
  // The embedded DNS server against aardvark-dns, and what embeddedDns costs a connect (benchmarks/50.dns.js).
  if (opts.dns && opts.peers.includes('netmodes')) {
    await prun.cleanSandbox(keep);
    R.dns = await require('./50.dns').dnsAll({ quick: opts.quick }, log, nm);
  }
  R.wallSeconds = Math.round((Date.now() - started) / 1000);

  const dir = path.join(__dirname, 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = opts.out ? path.resolve(opts.out) : path.join(dir, `bench-${R.date.replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, `${JSON.stringify(R, null, 1)}\n`);
  console.log(report(R));
  console.log(`\n${R.wallSeconds} s; raw results: ${path.relative(process.cwd(), file)}`);
  try {
    const chart = require('./chart');
    // Only a full run (every peer, every section) replaces the chart the README shows.
    const full = !opts.quick && ALL_PEERS.every((p) => opts.peers.includes(p)) && opts.conc.length && opts.scale.length && opts.churn && opts.datapath;
    const svgFile = path.join(dir, full ? 'chart.svg' : 'chart-quick.svg');
    chart.writeChart(R, svgFile);
    console.log(`chart: ${path.relative(process.cwd(), svgFile)}`);
  } catch (e) { if (e.code !== 'MODULE_NOT_FOUND') throw e; }
}

module.exports = { netmodesPeer, report, parseArgs, rss };

if (require.main === module) {
  main().catch((e) => { console.error(e.stack || e.message); process.exit(1); });
}
