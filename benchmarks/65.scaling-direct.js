#!/usr/bin/env node
// One more attach with K attached on ONE dense network, measured by a direct loop (no harness):
// W connects, each followed by its disconnect, at K = 10 and again at K = --k, after a pause.
// The scaling section of `npm run bench` (benchmarks/run.js) sees more growth than this loop does
// (README, "Dense hosts"); this script is the other side of that comparison.
//   node benchmarks/65.scaling-direct.js [--k 10000] [--window 300] [--ports 1] [--ipnetns 0] [--pause 500]
//   --ports 1:   each container publishes one TCP port (as the harness's containers do)
//   --ipnetns 1: the namespaces are made by `ip netns add` (as the harness makes them), not by netmodes
// Runs only inside its own sandbox (unshare --net --mount), like the tests.
'use strict';
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { sandboxed, now, med } = require('./common');

const { opt } = sandboxed(__filename);
const K = opt('k', 10000);
const W = opt('window', 300);
const PORTS = opt('ports', 1) === 1;
const IPNETNS = opt('ipnetns', 0) === 1;
const PAUSE = opt('pause', 500);

const nm = require(path.join(__dirname, '..', 'dist', 'lib'));
const ip = (i) => `10.64.${(i >> 8) & 0xff}.${i & 0xff}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function window(net, names, from, tag) {
  await sleep(PAUSE);
  const t = [];
  for (let i = 0; i < W; i++) {
    const t0 = now();
    const e = await net.connect(names[from + i], { id: `w${tag}-${i}`, ip: ip(from + i + 2), ...(PORTS ? { ports: [`${50000 + i}:80`] } : {}) });
    t.push(now() - t0);
    await e.disconnect();
  }
  await nm.reapDetached();
  return med(t);
}

(async () => {
  const all = Array.from({ length: K + W + 10 }, (_, i) => `sd${i}`);
  const names = [];
  if (IPNETNS) {
    for (let a = 0; a < all.length; a += 1000) execFileSync('ip', ['-batch', '-'], { input: all.slice(a, a + 1000).map((n) => `netns add ${n}\n`).join('') });
    for (const n of all) names.push(`/run/netns/${n}`);
  } else {
    for (const n of all) {
      const ns = await nm.createNamespace(n);
      names.push(ns.path);
      ns.close();
    }
  }
  const net = await nm.createBridgeNetwork({ name: 'sdirect', subnet: '10.64.0.0/18', portsPerBridge: 256 });
  const port = (i) => (PORTS ? { ports: [`${20000 + i}:80`] } : {});
  for (let i = 0; i < 10; i++) await net.connect(names[i], { id: `c${i}`, ip: ip(i + 2), ...port(i) });
  const at10 = await window(net, names, K + 10, 10);
  for (let i = 10; i < K; i++) await net.connect(names[i], { id: `c${i}`, ip: ip(i + 2), ...port(i) });
  const atK = await window(net, names, K + 10, K);
  console.log(`one more attach (p50 of ${W}, ports ${PORTS ? 'on' : 'off'}, namespaces by ${IPNETNS ? 'ip netns add' : 'netmodes'}): ` +
    `K=10 ${at10.toFixed(3)} ms, K=${K} ${atK.toFixed(3)} ms (${(atK / at10).toFixed(2)}x)`);
  await net.remove({ force: true });
  if (IPNETNS) for (let a = 0; a < all.length; a += 1000) execFileSync('ip', ['-batch', '-'], { input: all.slice(a, a + 1000).map((n) => `netns del ${n}\n`).join('') });
  else for (const n of names) await (await nm.openNamespace(n)).delete();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
