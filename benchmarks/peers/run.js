#!/usr/bin/env node
'use strict';
// Peer benchmarks: the same per-container work (namespace exists -> veth on bridge pbbr0, address
// 10.88.x.y/16, default route, one published TCP port 10000+i -> 80) done by netavark, the CNI plugins,
// one ip/nft process per operation, and the ip -batch/nft -f floor. Everything runs in a sandbox
// (see sandbox.js): the script re-executes itself under `unshare --net --mount`.
//
//   node benchmarks/peers/run.js [--n 200] [--peers netavark,cni,ip,ipbatch] [--conc 8,64]
//        [--scale 10,1000] [--scale-extra 20] [--scale-prefill seq|<conc>] [--no-conc] [--no-scale] [--scale-only]
//        [--verify] [--out FILE] [--quiet]
//
// A peer is any object { name, init(), setup(i), teardown(i), fini() } with optional
// setupAsync(i)/teardownAsync(i) (for the concurrent runs) or setupAll(list)/teardownAll(list)
// (a batch peer: timed as one operation for the whole list). A later benchmarks/run.js can import this
// module, add a netmodes peer of that shape, and call benchPeer()/benchScaling() in the same process.

const fs = require('fs');
const os = require('os');
const path = require('path');
const sb = require('./sandbox');
const c = require('./common');

const PEER_MODULES = {
  netavark: () => require('./netavark'),
  'netavark-unlocked': () => require('./netavark').unlocked,
  cni: () => require('./cni'),
  ip: () => require('./iproute').peers.ip,
  ipbatch: () => require('./iproute').peers.ipbatch,
  cfloor: () => require('./cfloor').peers.cfloor,
  cfloorgroup: () => require('./cfloor').peers.cfloorgroup,
  cfloorv4: () => require('./cfloor').peers.cfloorv4,
  cniplugin: () => require('./cniplugin').cniplugin,
  'cniplugin-process': () => require('./cniplugin').cniprocess,
};
const DEFAULTS = {
  n: 200, peers: ['netavark', 'cni', 'ip', 'ipbatch', 'cfloor', 'cfloorgroup', 'cfloorv4'], conc: [8, 64], scale: [10, 1000], scaleExtra: 20,
  scalePrefill: 'seq', scaleOnly: false, verify: false, out: null, quiet: false,
};

function parseArgs(argv) {
  const o = { ...DEFAULTS };
  const list = (v) => v.split(',').map((s) => s.trim()).filter(Boolean);
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k]; const next = () => { if (k + 1 >= argv.length) throw new Error(`${a} needs a value`); return argv[++k]; };
    switch (a) {
      case '--n': o.n = Number(next()); break;
      case '--peers': o.peers = list(next()); break;
      case '--conc': o.conc = list(next()).map(Number); break;
      case '--no-conc': o.conc = []; break;
      case '--scale': o.scale = list(next()).map(Number); break;
      case '--no-scale': o.scale = []; break;
      case '--scale-only': o.scaleOnly = true; break;
      case '--scale-extra': o.scaleExtra = Number(next()); break;
      case '--scale-prefill': o.scalePrefill = next(); break;
      case '--verify': o.verify = true; break;
      case '--out': o.out = next(); break;
      case '--quiet': o.quiet = true; break;
      case '-h': case '--help':
        console.log(fs.readFileSync(__filename, 'utf8').split('\n').slice(7, 10).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
        process.exit(0);
        break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  if (!Number.isInteger(o.n) || o.n < 1 || o.n > 1000) throw new Error('--n must be 1..1000 (a bridge holds at most 1023 ports)');
  for (const p of o.peers) if (!PEER_MODULES[p]) throw new Error(`unknown peer ${p} (known: ${Object.keys(PEER_MODULES).join(', ')})`);
  for (const k of o.scale) if (!Number.isInteger(k) || k < 0 || k + o.scaleExtra > 1020) throw new Error('--scale K: K + extra must stay <= 1020 (bridge port limit)');
  return o;
}

function getPeer(name) { return PEER_MODULES[name](); }
function range(from, count) { return Array.from({ length: count }, (_, k) => from + k); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- timing primitives ---------------------------------------------------------------------------

/**
 * Runs fn(i) for each i in order, one at a time; fn may be synchronous or return a Promise (awaited
 * only when it does, so a synchronous peer pays nothing for it). Returns { latencies, wallMs, errors }.
 */
async function timeSeq(list, fn) {
  const latencies = []; const errors = [];
  const t0 = process.hrtime.bigint();
  for (const i of list) {
    const t = process.hrtime.bigint();
    try {
      const r = fn(i);
      if (r && typeof r.then === 'function') await r;
      latencies.push(c.hrms(t));
    } catch (e) { errors.push({ i, error: e.message.slice(0, 400) }); }
  }
  return { latencies, wallMs: c.hrms(t0), errors };
}

/** Runs async fn(i) for each i with at most `limit` in flight; returns { latencies, wallMs, errors }. */
async function runPool(list, limit, fn) {
  const latencies = []; const errors = [];
  let next = 0;
  const t0 = process.hrtime.bigint();
  async function worker() {
    while (next < list.length) {
      const i = list[next++];
      const t = process.hrtime.bigint();
      try { await fn(i); latencies.push(c.hrms(t)); } catch (e) { errors.push({ i, error: e.message.slice(0, 400) }); }
    }
  }
  await Promise.all(range(0, Math.min(limit, list.length)).map(worker));
  return { latencies, wallMs: c.hrms(t0), errors };
}

function summary(r, count) {
  const s = c.summarize(r.latencies, r.wallMs, count ?? (r.latencies.length + r.errors.length));
  s.errors = r.errors.length;
  if (r.errors.length) s.firstErrors = r.errors.slice(0, 3);
  return s;
}

/**
 * A batch peer's figures: the wall clock over N (total / N); p50/p99 from the per-container times
 * when the peer measured them itself (`parts.latencies`, the C floor), kept out of the stored parts.
 */
function batchSummary(parts, wallMs, n) {
  const { latencies = [], ...rest } = parts || {};
  return { ...c.summarize(latencies, wallMs, n), parts: rest };
}

/** Creates the namespaces pbc<i> with one `ip netns add` each; timed. */
async function createNamespaces(list) { return summary(await timeSeq(list, (i) => sb.netnsAdd(c.nsName(i)))); }
/** Deletes them with one `ip netns del` each; timed. */
async function deleteNamespaces(list) { return summary(await timeSeq(list, (i) => sb.netnsDel(c.nsName(i)))); }

/** Waits until the sandbox host has no veth left from the containers (namespace cleanup is async). */
async function settle({ keep = [], timeoutMs = 120000 } = {}) {
  const t0 = Date.now();
  for (;;) {
    const left = sb.sandboxLinks().filter((l) => l !== 'lo' && l !== c.BRIDGE && !keep.includes(l));
    if (!left.length || Date.now() - t0 > timeoutMs) return { ms: Date.now() - t0, left: left.length };
    await sleep(100);
  }
}

/** CPU time of the whole machine from /proc/stat: [busy, total] in clock ticks. */
function cpuTicks() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return [total - f[3] - (f[4] || 0), total]; // idle and iowait are not busy
}

/**
 * Waits until the machine is quiet: the kernel finishes deleting namespaces (and the veths in
 * them) in a worker thread after `ip netns del` returns, for seconds after hundreds of them, and
 * would otherwise compete with whatever is timed next. Quiet = under 10% of the CPUs busy in two
 * consecutive 250 ms windows (at most `timeoutMs`).
 */
async function quiesce({ timeoutMs = 30000 } = {}) {
  const t0 = Date.now();
  let calm = 0;
  let last = 1;
  while (Date.now() - t0 < timeoutMs) {
    const [b0, t0t] = cpuTicks();
    await sleep(250);
    const [b1, t1t] = cpuTicks();
    last = t1t > t0t ? (b1 - b0) / (t1t - t0t) : 0;
    calm = last < 0.1 ? calm + 1 : 0;
    if (calm >= 2) break;
  }
  return { ms: Date.now() - t0, busy: Math.round(last * 1000) / 1000 };
}

/** Leaves the sandbox host clean for the next peer; returns what had been left behind. */
async function cleanSandbox(keep) {
  const waited = await settle({ keep });
  const removed = sb.resetSandbox({ keep });
  return { settleMs: waited.ms, removedLinks: removed.links, flushedNft: removed.nft };
}

/**
 * Cost of one child process through the same wrappers the peers use (sb.sh / sb.shAsync running
 * /bin/true): the part of every per-process figure that is Node's spawning, not the peer's work.
 */
async function spawnFloor(count = 200) {
  const seq = await timeSeq(range(0, count), () => sb.sh('/bin/true'));
  const asy = { latencies: [], wallMs: 0, errors: [] };
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < count; k++) {
    const t = process.hrtime.bigint();
    await sb.shAsync('/bin/true');
    asy.latencies.push(c.hrms(t));
  }
  asy.wallMs = c.hrms(t0);
  return { sync: summary(seq), async: summary(asy) };
}

// --- measurements --------------------------------------------------------------------------------

/**
 * Benchmarks one peer with n containers: namespace creation, sequential setup and teardown, then
 * (for peers with async forms) concurrent setup/teardown with each level in `conc`, then namespace
 * deletion. Returns a plain object (all times in ms).
 */
async function benchPeer(peer, { n = 200, conc = [8, 64], keep = [], log = console.error } = {}) {
  sb.assertSandboxed();
  const list = range(0, n);
  const res = { peer: peer.name, n };
  log(`[${peer.name}] creating ${n} namespaces`);
  res.nsCreate = await createNamespaces(list);
  res.info = (await peer.init()) || null;
  // The previous run's namespaces may still be being cleaned up by the kernel.
  res.quiesce = await quiesce();
  try {
    if (peer.setupAll) {
      log(`[${peer.name}] batch setup of ${n}`);
      let t = process.hrtime.bigint();
      const parts = await peer.setupAll(list);
      res.setup = batchSummary(parts, c.hrms(t), n);
      log(`[${peer.name}] batch teardown of ${n}`);
      t = process.hrtime.bigint();
      res.teardown = batchSummary(await peer.teardownAll(list), c.hrms(t), n);
      // A batch peer with a parallel form (the C floor): the same containers from `level`
      // processes at once, each on its slice, timed over the wall clock.
      res.concurrent = [];
      if (peer.setupParallel && peer.teardownParallel) {
        for (const level of conc) {
          await settle({ keep });
          log(`[${peer.name}] parallel setup/teardown of ${n}, ${level} processes`);
          t = process.hrtime.bigint();
          const sp = await peer.setupParallel(list, level);
          const setup = batchSummary(sp, c.hrms(t), n);
          t = process.hrtime.bigint();
          const teardown = batchSummary(await peer.teardownParallel(list, level), c.hrms(t), n);
          res.concurrent.push({ inFlight: level, setup, teardown });
        }
      }
    } else {
      log(`[${peer.name}] sequential setup of ${n}`);
      res.setup = summary(await timeSeq(list, (i) => peer.setup(i)));
      log(`[${peer.name}] sequential teardown of ${n}`);
      res.teardown = summary(await timeSeq(list, (i) => peer.teardown(i)));
      res.concurrent = [];
      if (peer.setupAsync && peer.teardownAsync) {
        for (const level of conc) {
          await settle({ keep });
          log(`[${peer.name}] concurrent setup/teardown of ${n}, ${level} in flight`);
          const sr = await runPool(list, level, (i) => peer.setupAsync(i));
          const tr = await runPool(list, level, (i) => peer.teardownAsync(i));
          res.concurrent.push({ inFlight: level, setup: summary(sr), teardown: summary(tr) });
          // A failed op may leave state behind: retry those teardowns one by one so the next level
          // starts from the same point.
          for (const i of new Set([...sr.errors, ...tr.errors].map((e) => e.i))) {
            try { await peer.teardown(i); } catch { /* already gone */ }
          }
        }
      }
    }
  } finally {
    await peer.fini();
    await settle({ keep });
    log(`[${peer.name}] deleting ${n} namespaces`);
    res.nsDelete = await deleteNamespaces(list);
    res.leftover = await cleanSandbox(keep);
  }
  return res;
}

/**
 * Scaling: with k containers already attached by the peer, times `extra` more sequential attaches
 * (and their teardown). The k are attached with the peer itself (so its rule sets grow as they would)
 * — sequentially, or `prefill` in flight — then removed in bulk (namespaces deleted, sandbox reset).
 */
async function benchScaling(peer, { k, extra = 20, prefill = 'seq', keep = [], log = console.error } = {}) {
  sb.assertSandboxed();
  const base = range(0, k); const more = range(k, extra);
  const res = { peer: peer.name, k, extra };
  log(`[${peer.name}] scaling: ${k} attached + ${extra}`);
  const names = [...base, ...more].map((i) => c.nsName(i));
  sb.netnsAddMany(names);
  await peer.init();
  res.quiesce = await quiesce(); // the previous section's namespaces may still be being deleted
  try {
    const t = process.hrtime.bigint();
    if (k > 0) {
      if (peer.setupAll) await peer.setupAll(base);
      else if (prefill !== 'seq' && peer.setupAsync) {
        const r = await runPool(base, Number(prefill), (i) => peer.setupAsync(i));
        if (r.errors.length) res.prefillErrors = r.errors.length;
      } else {
        const r = await timeSeq(base, (i) => peer.setup(i));
        if (r.errors.length) res.prefillErrors = r.errors.length;
      }
    }
    res.prefill = { how: peer.setupAll ? 'batch' : prefill, ms: Math.round(c.hrms(t)), msPerContainer: k ? Math.round((c.hrms(t) / k) * 1000) / 1000 : null };
    res.quiesceExtra = await quiesce();
    if (peer.selfTimed) {
      // The C floor: the extra containers in one process each way, p50/p99 from its own per-container
      // times (one process per container would time the exec, not the kernel).
      let t0 = process.hrtime.bigint();
      res.setup = batchSummary(await peer.setupAll(more), c.hrms(t0), more.length);
      t0 = process.hrtime.bigint();
      res.teardown = batchSummary(await peer.teardownAll(more), c.hrms(t0), more.length);
    } else {
      // ipbatch: each extra container is its own small batch (ip -batch + ip -n -batch + nft -f).
      res.setup = summary(await timeSeq(more, (i) => peer.setup(i)));
      res.teardown = summary(await timeSeq(more, (i) => peer.teardown(i)));
    }
  } finally {
    await peer.fini();
    sb.netnsDelMany(names);
    res.cleanup = await cleanSandbox(keep);
  }
  return res;
}

// --- report ----------------------------------------------------------------------------------------

function fmt(x, d = 1) { return x === null || x === undefined || Number.isNaN(x) ? '-' : Number(x).toFixed(d); }
function pad(s, w) { s = String(s); return s.length >= w ? s : s + ' '.repeat(w - s.length); }
function lpad(s, w) { s = String(s); return s.length >= w ? s : ' '.repeat(w - s.length) + s; }

function table(rows, header) {
  const w = header.map((h, k) => Math.max(h.length, ...rows.map((r) => String(r[k]).length)));
  const line = (r) => r.map((x, k) => (k === 0 ? pad(x, w[k]) : lpad(x, w[k]))).join('  ');
  return [line(header), w.map((x) => '-'.repeat(x)).join('  '), ...rows.map(line)].join('\n');
}

function report(results) {
  const out = [];
  const peers = results.peers || [];
  if (results.spawnFloor) {
    const f = results.spawnFloor;
    out.push(`spawn floor (/bin/true through the same wrappers): sync ${fmt(f.sync.msPerContainer, 2)} ms, async ${fmt(f.async.msPerContainer, 2)} ms per process`);
    out.push('');
  }
  if (peers.length) {
    out.push(`namespaces (one ip netns add/del process each):`);
    out.push(table(peers.map((r) => [r.peer, fmt(r.nsCreate.msPerContainer, 2), fmt(r.nsCreate.p50, 2), fmt(r.nsCreate.p99, 2),
      fmt(r.nsDelete.msPerContainer, 2), fmt(r.nsDelete.p99, 2)]),
    ['run', 'add ms/ns', 'add p50', 'add p99', 'del ms/ns', 'del p99']));
    out.push('');
    out.push(`sequential, N=${results.options.n} (ms per container; p50/p99 of each container's latency; batch peers: total/N):`);
    out.push(table(peers.map((r) => [r.peer, fmt(r.setup.msPerContainer, 2), fmt(r.setup.p50, 2), fmt(r.setup.p99, 2), fmt(r.setup.perSecond, 0),
      fmt(r.teardown.msPerContainer, 2), fmt(r.teardown.p50, 2), fmt(r.teardown.p99, 2), fmt(r.teardown.perSecond, 0),
      (r.setup.errors || 0) + (r.teardown.errors || 0)]),
    ['peer', 'setup ms', 'p50', 'p99', 'setups/s', 'teardown ms', 'p50', 'p99', 'teardowns/s', 'errors']));
    const conc = peers.flatMap((r) => (r.concurrent || []).map((x) => [r.peer, x.inFlight,
      fmt(x.setup.perSecond, 0), fmt(x.setup.p50, 1), fmt(x.setup.p99, 1), x.setup.errors,
      fmt(x.teardown.perSecond, 0), fmt(x.teardown.p50, 1), fmt(x.teardown.p99, 1), x.teardown.errors]));
    if (conc.length) {
      out.push('');
      out.push('concurrent (async spawn; throughput over the wall clock, latency of each container):');
      out.push(table(conc, ['peer', 'in flight', 'setups/s', 'p50 ms', 'p99 ms', 'errors', 'teardowns/s', 'p50 ms', 'p99 ms', 'errors']));
    }
    const batch = peers.filter((r) => r.setup.parts);
    for (const r of batch) {
      const p = r.setup.parts; const q = r.teardown.parts;
      out.push('');
      if (p.programMs !== undefined) {
        out.push(`${r.peer}: one process each way; attach ${fmt(p.programMs)} ms in the program, detach ${fmt(q.programMs)} ms` +
          (q.bulkDeleteMs !== undefined ? ` (of which the group delete ${fmt(q.bulkDeleteMs)} ms)` : ''));
        continue;
      }
      out.push(`${r.peer} parts: setup ip -batch ${fmt(p.hostBatchMs)} ms + ${r.n}x ip -n -batch ${fmt(p.nsBatchMs)} ms + nft -f ${fmt(p.nftMs)} ms; ` +
        `teardown nft -f ${fmt(q.nftMs)} ms + ip -batch ${fmt(q.hostBatchMs)} ms`);
    }
  }
  if (results.scaling && results.scaling.length) {
    out.push('');
    out.push(`scaling (sequential attaches with K already attached; ms per container):`);
    out.push(table(results.scaling.map((r) => [r.peer, r.k, fmt(r.prefill.msPerContainer, 1), fmt(r.setup.p50, 2), fmt(r.setup.p99, 2), fmt(r.setup.msPerContainer, 2),
      fmt(r.teardown.p50, 2), fmt(r.teardown.p99, 2), (r.setup.errors || 0) + (r.teardown.errors || 0) + (r.prefillErrors || 0)]),
    ['peer', 'K', 'prefill ms/c', 'setup p50', 'setup p99', 'setup mean', 'teardown p50', 'teardown p99', 'errors']));
  }
  if (results.verify && results.verify.length) {
    out.push('');
    out.push(`verify: ${results.verify.map((v) => `${v.peer} ${v.ok ? 'ok' : 'FAILED'}`).join(', ')}`);
  }
  return out.join('\n');
}

function resultsPath(out) {
  if (out) return path.resolve(out);
  const dir = path.resolve(__dirname, '..', 'results');
  fs.mkdirSync(dir, { recursive: true });
  return path.join(dir, `peers-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
}

async function main(argv = process.argv.slice(2)) {
  const opts = parseArgs(argv);
  const sandbox = sb.ensureSandbox(); // re-executes under unshare and never returns when outside
  const log = opts.quiet ? () => {} : (m) => console.error(`${new Date().toISOString().slice(11, 19)} ${m}`);
  const results = {
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0] && os.cpus()[0].model, kernel: os.release(), node: process.version, memGiB: Math.round(os.totalmem() / 2 ** 30) },
    sandbox, options: opts, verify: [], peers: [], scaling: [],
  };
  const keep = [];
  results.spawnFloor = await spawnFloor();
  if (opts.verify) {
    const v = require('./verify');
    v.ensureOutside();
    keep.push('pbout0');
    for (const name of opts.peers) {
      log(`[${name}] verify`);
      results.verify.push(await v.verifyPeer(getPeer(name), { log }));
    }
    v.removeOutside();
    keep.pop();
  } else {
    if (!opts.scaleOnly) {
      for (const name of opts.peers) results.peers.push(await benchPeer(getPeer(name), { n: opts.n, conc: opts.conc, keep, log }));
    }
    for (const k of opts.scale) {
      for (const name of opts.peers) {
        results.scaling.push(await benchScaling(getPeer(name), { k, extra: opts.scaleExtra, prefill: opts.scalePrefill, keep, log }));
      }
    }
  }
  const file = resultsPath(opts.out);
  fs.writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  console.log(report(results));
  console.log(`\nresults: ${path.relative(process.cwd(), file)}`);
  if (opts.verify && !results.verify.every((v) => v.ok)) process.exitCode = 1;
  return results;
}

module.exports = {
  PEER_MODULES, getPeer, parseArgs, timeSeq, runPool, summary, createNamespaces, deleteNamespaces,
  settle, quiesce, cleanSandbox, spawnFloor, batchSummary, benchPeer, benchScaling, report, main,
};

if (require.main === module) {
  main().catch((e) => { console.error(e.stack || e.message); process.exit(1); });
}
