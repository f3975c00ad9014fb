#!/usr/bin/env node
// Before and after of a change to the sequential attach + detach, in ONE process, in alternating
// blocks: B attaches, B detaches and the reap, through this checkout's library, then the same through
// the library built in DIR (e.g. a git worktree of the commit the change started from), and so on,
// the order flipped every block. This machine's speed drifts by ±10% between runs minutes apart, so
// separate runs (benchmarks/run.js's median of 3) hide a change of a few percent; blocks a few
// seconds apart, compared pairwise, do not.
//   node benchmarks/46.ab-blocks.js --base DIR [--blocks 12] [--b 500] [--in-flight K]
// Prints each build's median cycle (attach, detach) and the per-block ratio this / DIR (median,
// min, max). With --in-flight K, each block's attaches (then its detaches) run K at a time, as
// promises in one process, and the figures are cycles/s (the ratio then > 1 when this build is
// faster). Runs only inside its own sandbox (unshare --net --mount), like the tests.
'use strict';
const path = require('node:path');
const { sandboxed, med } = require('./common');

const { args, opt } = sandboxed(__filename);
const i = args.indexOf('--base');
if (i < 0 || !args[i + 1]) {
  console.error('usage: node benchmarks/46.ab-blocks.js --base DIR [--blocks 12] [--b 500] [--in-flight K]');
  process.exit(2);
}
const BLOCKS = opt('blocks', 12);
const B = opt('b', 500);
const K = opt('in-flight', 0);
const dirs = [path.join(__dirname, '..'), path.resolve(args[i + 1])];

(async () => {
  const libs = [];
  for (const [k, dir] of dirs.entries()) {
    const nm = require(path.join(dir, 'dist', 'lib'));
    const tag = k ? 'base' : 'this';
    const names = [];
    const handles = [];
    for (let j = 0; j < B; j++) {
      const ns = await nm.createNamespace(`ab${k}c${j}`);
      names.push(ns.path);
      handles.push(ns);
    }
    const net = await nm.createBridgeNetwork({ name: `ab${k}`, bridge: `ab${k}br0`, subnet: `10.${80 + k}.0.0/16`, gateway: `10.${80 + k}.0.1` });
    libs.push({ tag, dir, nm, names, handles, net, k, res: [] });
  }
  // Each j in 0..B-1 through fn, one at a time or K at once.
  const each = async (fn) => {
    if (!K) {
      for (let j = 0; j < B; j++) await fn(j);
      return;
    }
    let next = 0;
    await Promise.all(Array.from({ length: K }, async () => {
      while (next < B) await fn(next++);
    }));
  };
  const run = async (L) => {
    const eps = new Array(B);
    const t0 = performance.now();
    await each(async (j) => {
      const ip = `10.${80 + L.k}.${1 + Math.floor(j / 250)}.${(j % 250) + 2}`;
      eps[j] = await L.net.connect(L.names[j], { id: `c${j}`, ip, ports: [`${10000 + j}:80`] });
    });
    const t1 = performance.now();
    await each((j) => eps[j].disconnect());
    await L.nm.reapDetached();
    const t2 = performance.now();
    // ms per container, or (in flight) per second
    const per = (ms) => (K ? (B * 1000) / ms : ms / B);
    return { a: per(t1 - t0), d: per(t2 - t1), c: per(t2 - t0) };
  };
  for (const L of libs) for (let w = 0; w < 2; w++) await run(L); // warm-up (V8 compiles meanwhile)
  for (let b = 0; b < BLOCKS; b++) for (const L of b % 2 ? libs : [...libs].reverse()) L.res.push(await run(L));
  const f = (x) => x.toFixed(3);
  for (const L of libs) {
    const [c, a, d] = ['c', 'a', 'd'].map((k) => med(L.res.map((r) => r[k])));
    if (K) console.log(`${L.tag} (${L.dir}): ${c.toFixed(0)} cycles/s (attach ${a.toFixed(0)}/s, detach ${d.toFixed(0)}/s), ${K} in flight, median of ${BLOCKS} blocks of ${B}`);
    else console.log(`${L.tag} (${L.dir}): cycle ${f(c)} ms (attach ${f(a)}, detach ${f(d)}), median of ${BLOCKS} blocks of ${B}`);
  }
  const ratio = libs[0].res.map((r, j) => r.c / libs[1].res[j].c);
  console.log(`this / base per block: median ${f(med(ratio))}, min ${f(Math.min(...ratio))}, max ${f(Math.max(...ratio))}`);
  for (const L of libs) {
    await L.net.remove({ force: true });
    for (const ns of L.handles) await ns.delete();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
