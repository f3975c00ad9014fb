#!/usr/bin/env node
// One more attach with K attached on ONE dense network, measured by a direct loop (no harness):
// W connects, each followed by its disconnect, at K = 10 and again at K = --k, after a pause.
// The scaling section of `npm run bench` (benchmarks/run.js) sees more growth than this loop does
// (README, "Dense hosts"); this script is the other side of that comparison.
//   node benchmarks/65.scaling-direct.js [--k 10000] [--window 300] [--ports 1] [--ipnetns 0] [--pause 500]
//   --ports 1:   each container publishes one TCP port (as the harness's containers do)
//   --ipnetns 1: the namespaces are made by `ip netns add` (as the harness makes them), not by netmodes
//   --consecutive 1: the W connects back to back, then their disconnects (as the harness does them)
//   --lazy 1:    the namespaces of the K containers made only after the K = 10 window (as the harness,
//                which makes each K's namespaces for that K alone); else all are made first
//   --harnessnet 1: the harness's network (10.88.0.0/16, bridge pbbr0, its dense addresses)
//   --steps 1:   print the median time of each step inside the connects' chains
//   --skip10 1:  no K = 10 window (nothing disconnected or reaped before the K containers, as in the harness)
//   --keep 1:    the K Endpoint objects kept alive (as the harness keeps them)
//   --sysfs 1:   sysfs of the sandbox's network namespace mounted on /sys (as the harness's sandbox has it)
// Runs only inside its own sandbox (unshare --net --mount), like the tests.
'use strict';
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { sandboxed, now, med } = require('./common');

//   --pbsandbox 1: in the sandbox of `npm run bench` (benchmarks/peers/sandbox.js) instead of the tests'
const PB = process.argv.includes('--pbsandbox') && process.argv[process.argv.indexOf('--pbsandbox') + 1] === '1';
if (PB) require('./peers/sandbox').ensureSandbox({ tools: ['ip', 'unshare', 'sysctl'] });
const { opt } = PB ? { opt: (k, d) => { const i = process.argv.indexOf(`--${k}`); return i >= 0 ? Number(process.argv[i + 1]) : d; } } : sandboxed(__filename);
const K = opt('k', 10000);
const W = opt('window', 300);
const PORTS = opt('ports', 1) === 1;
const IPNETNS = opt('ipnetns', 0) === 1;
const PAUSE = opt('pause', 500);
const CONSECUTIVE = opt('consecutive', 0) === 1;

// The sandbox's state tmpfs (64 MiB) holds a few thousand endpoints; 10,000 need a larger one
// (inside the sandbox's own mount namespace).
const stateDir = require('node:fs').mkdtempSync('/tmp/nm-sdirect-');
execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512m,mode=0700', 'nm-sdirect', stateDir]);
process.env.NETMODES_STATE_DIR = stateDir;
if (opt('sysfs', 0) === 1) execFileSync('mount', ['-t', 'sysfs', 'nm-sdirect-sys', '/sys']);
const nm = require(path.join(__dirname, '..', 'dist', 'lib'));
// --harnessnet 1: the harness's network (10.88.0.0/16 on bridge pbbr0) instead of 10.64.0.0/18
const HNET = opt('harnessnet', 0) === 1;
const ip = (i) => `${HNET ? '10.88' : '10.64'}.${(i >> 8) & 0xff}.${i & 0xff}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Each connect's chain steps (us: namespace, fs, nft, rtnl, after), to see which grows (--steps 1).
const steps = [];
if (opt('steps', 0) === 1) {
  const nat = require(path.join(__dirname, '..', 'dist', 'lib', 'native.js')).native();
  nat.chainTiming(true); // each outcome with its steps' times (us)
  const run = nat.chainRun;
  nat.chainRun = function (spec) {
    return run.call(this, spec).then((o) => {
      if (spec.ns) steps.push(o.us);
      return o;
    });
  };
}
const medSteps = () => {
  const out = [0, 1, 2, 3, 4].map((k) => med(steps.map((u) => u[k])).toFixed(0)).join(' ');
  steps.length = 0;
  return out;
};

async function window(net, names, from, tag, ipFrom = from) {
  steps.length = 0;
  await sleep(PAUSE);
  const t = [];
  const eps = [];
  for (let i = 0; i < W; i++) {
    const t0 = now();
    const e = await net.connect(names[from + i], { id: `w${tag}-${i}`, ip: ip(ipFrom + i + 2), ...(PORTS ? { ports: [`${50000 + i}:80`] } : {}) });
    t.push(now() - t0);
    if (CONSECUTIVE) eps.push(e);
    else await e.disconnect();
  }
  for (const e of eps) await e.disconnect();
  await nm.reapDetached();
  if (steps.length) console.log(`K=${tag}: connect chain steps (us, median: namespace fs nft rtnl after) ${medSteps()}`);
  return med(t);
}

(async () => {
  const all = Array.from({ length: K + W + 10 }, (_, i) => `sd${i}`);
  const names = new Array(all.length);
  const make = async (idx) => {
    if (IPNETNS) {
      for (let a = 0; a < idx.length; a += 1000) execFileSync('ip', ['-batch', '-'], { input: idx.slice(a, a + 1000).map((i) => `netns add ${all[i]}\n`).join('') });
      for (const i of idx) names[i] = `/run/netns/${all[i]}`;
    } else {
      for (const i of idx) {
        const ns = await nm.createNamespace(all[i]);
        names[i] = ns.path;
        ns.close();
      }
    }
  };
  const range = (a, b) => Array.from({ length: b - a }, (_, k) => a + k);
  const LAZY = opt('lazy', 0) === 1;
  // The first 10 and the window's; the K containers' now or after the K = 10 window.
  await make([...range(0, 10), ...range(K + 10, K + W + 10)]);
  if (!LAZY) await make(range(10, K + 10));
  const net = await nm.createBridgeNetwork(HNET
    ? { name: 'pbnet', bridge: 'pbbr0', subnet: '10.88.0.0/16', gateway: '10.88.0.1', portsPerBridge: 256 }
    : { name: 'sdirect', subnet: '10.64.0.0/18', portsPerBridge: 256 });
  const port = (i) => (PORTS ? { ports: [`${20000 + i}:80`] } : {});
  for (let i = 0; i < 10; i++) await net.connect(names[i], { id: `c${i}`, ip: ip(i + 2), ...port(i) });
  // --rootwindow 1: the K = 10 window's addresses follow the first 10 (the root bridge, as in the
  // harness, where each K's extra containers take the next addresses); else the same as at K.
  // --skip10 1: no K = 10 window (nothing disconnected or reaped before the prefill, as in the harness)
  const at10 = opt('skip10', 0) === 1 ? NaN : await window(net, names, K + 10, 10, opt('rootwindow', 0) === 1 ? 10 : K + 10);
  if (LAZY) await make(range(10, K + 10));
  // --keep 1: the K Endpoint objects kept (as the harness keeps them in a Map); else dropped
  const kept = [];
  for (let i = 10; i < K; i++) {
    const e = await net.connect(names[i], { id: `c${i}`, ip: ip(i + 2), ...port(i) });
    if (opt('keep', 0) === 1) kept.push(e);
  }
  const atK = await window(net, names, K + 10, K);
  console.log(`one more attach (p50 of ${W}${CONSECUTIVE ? ' consecutive' : ''}, ports ${PORTS ? 'on' : 'off'}, namespaces by ${IPNETNS ? 'ip netns add' : 'netmodes'}${LAZY ? ', made after K = 10' : ''}): ` +
    `K=10 ${at10.toFixed(3)} ms, K=${K} ${atK.toFixed(3)} ms (${(atK / at10).toFixed(2)}x)`);
  await net.remove({ force: true });
  if (IPNETNS) for (let a = 0; a < all.length; a += 1000) execFileSync('ip', ['-batch', '-'], { input: all.slice(a, a + 1000).map((n) => `netns del ${n}\n`).join('') });
  else for (const n of names) await (await nm.openNamespace(n)).delete();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
