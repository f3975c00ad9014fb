#!/usr/bin/env node
// Long churn soak (issue 7.5): N attach/detach cycles (default 20,000) on one network, with a
// published port each, bounded in time (--max-seconds, default 1800). Prints fds, RSS, kernel link
// count and nftables element count at the start, every 10% and at the end; exits 1 if any of them
// differs at the end from the start (RSS: more than 20 MB above the value after warm-up).
//   node benchmarks/70.churn-soak.js [--n 20000] [--max-seconds 1800] [--inflight 8]
// Runs only inside its own sandbox (unshare --net --mount), like the tests.
'use strict';
const path = require('node:path');
const fs = require('node:fs');
const { execFileSync } = require('node:child_process');
const { sandboxed, now } = require('./common');

const { args, opt } = sandboxed(__filename);
const N = opt('n', 20000);
const MAX_S = opt('max-seconds', 1800);
const INFLIGHT = opt('inflight', 8);
const nm = require(path.join(__dirname, '..', 'dist', 'lib'));

function figures() {
  const links = JSON.parse(execFileSync('ip', ['-j', 'link']).toString()).length;
  const nft = JSON.parse(execFileSync('nft', ['-j', 'list', 'ruleset']).toString()).nftables;
  const elements = nft.reduce((n, o) => n + (((o.set || o.map) && (o.set || o.map).elem) || []).length, 0);
  return { fds: fs.readdirSync('/proc/self/fd').length, rssMB: Math.round(process.memoryUsage().rss / 1e6), links, elements };
}

(async () => {
  const net = await nm.createBridgeNetwork({ name: 'soak', subnet: '10.79.0.0/22' });
  const nss = [];
  for (let i = 0; i < INFLIGHT; i++) nss.push(await nm.createNamespace(`soak${i}`));
  // Warm-up at the same concurrency (socket pools per namespace, JIT, heap) before the start figures.
  await Promise.all(nss.map(async (ns) => {
    for (let i = 0; i < 250; i++) await (await net.connect(ns, { ports: ['80'] })).disconnect();
  }));
  await nm.reapDetached();
  const start = figures();
  console.log('start', JSON.stringify(start));
  const t0 = Date.now();
  let done = 0;
  let errors = 0;
  let finished = 0;
  const worker = async (ns) => {
    while (done < N && (Date.now() - t0) / 1000 < MAX_S) {
      done++;
      try {
        const e = await net.connect(ns, { ports: ['80'] });
        await e.disconnect();
      } catch (err) {
        errors++;
        console.error(err);
      }
      const n = ++finished;
      if (n % Math.max(1, Math.floor(N / 10)) === 0) console.log(n, JSON.stringify(figures()), `${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
  };
  await Promise.all(nss.map(worker));
  await nm.reapDetached();
  const end = figures();
  const secs = (Date.now() - t0) / 1000;
  console.log('end', JSON.stringify(end));
  console.log(`${done} cycles in ${secs.toFixed(1)} s (${((done / secs) || 0).toFixed(0)}/s), ${errors} errors`);
  const same = end.fds === start.fds && end.links === start.links && end.elements === start.elements && end.rssMB - start.rssMB <= 20;
  await net.remove({ force: true });
  for (const ns of nss) await ns.delete();
  console.log(same && !errors ? 'OK: fds, links, elements equal; RSS within 20 MB' : 'FAILED');
  process.exit(same && !errors ? 0 : 1);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
