#!/usr/bin/env node
// Container plumbing over rtnetlink, against iproute2.
//
// For N pre-created namespaces (default 1,000), each container gets: a veth whose peer is
// created directly in its namespace as eth0, an address on eth0, lo and eth0 up (and the host
// end), a default route. Then everything is deleted again. Done by:
//   - this library: one batch() per container, sequentially and with 8 in flight, each in the
//     default mode (every request acknowledged before the next) and pipelined;
//   - one `ip` process per operation;
//   - `ip -batch`: one file for every host-side operation, plus one `ip -n NS -batch` per
//     container for what happens inside it (a batch file cannot switch namespaces).
//   Both run from one `sh` script, files written beforehand: iproute2's best case. (Each
//   `ip -n` also unshares a mount namespace and remounts /sys, which copies every mount: with
//   1,000 namespaces bind-mounted under /run/netns that alone grows from 1.3 to 2.9 ms.)
// Teardown: the library deletes each host end (its peer goes with it) sequentially, 8 in flight,
// as one pipelined batch, and with one linkDelGroup; `ip` with one process per link and one batch.
//
// Measured here (2 cores, Linux 6.18, Node 20, N = 1,000; microseconds per container):
//   netmodes sequential          setup   890  teardown (linkDel each)          18,140
//   netmodes 8 in flight         setup   787  teardown (linkDel, 8 in flight)   5,527
//   netmodes pipelined           setup   677  teardown (one pipelined batch)   17,536
//   netmodes pipelined, 8        setup   589  teardown (one linkDelGroup)         225
//   ip, one process per op       setup 14,617  teardown                        21,744
//   ip -batch                    setup  3,804  teardown                        17,861
// Deleting links one by one costs an RCU grace period each, whoever asks; a group delete pays
// it once.
//
//   node benchmarks/10.rtnl-namespaces.js [--n 1000] [--skip-ip-per-op]
// Needs root; runs inside the sandbox of test/sandbox.js (its own network and mount namespace).
'use strict';
process.env.UV_THREADPOOL_SIZE = process.env.UV_THREADPOOL_SIZE || '8';
const path = require('node:path');
const fs = require('node:fs');
const { spawnSync } = require('node:child_process');
const { inSandbox, enterSandbox, assertSandboxed } = require('../test/sandbox');

const args = process.argv.slice(2);
if (!inSandbox()) process.exit(enterSandbox(__filename, args));
assertSandboxed();

const root = path.resolve(__dirname, '..');
if (!fs.existsSync(path.join(root, 'dist', 'lib', 'index.js'))) {
  console.error('dist/ is missing: run `npm run build:ts`');
  process.exit(1);
}
const lib = require(path.join(root, 'dist', 'lib'));

const nIdx = args.indexOf('--n');
const N = nIdx >= 0 ? Number(args[nIdx + 1]) : 1000;
const skipIpPerOp = args.includes('--skip-ip-per-op');
const GROUP = 4000;

const nsName = (i) => `bc${i}`;
const hostName = (i) => `bh${i}`;
const ctrIp = (i) => { const k = i + 2; return `10.${64 + (k >> 16)}.${(k >> 8) & 255}.${k & 255}`; };

const now = () => process.hrtime.bigint();
const usPer = (t0, t1) => Number(t1 - t0) / 1000 / N;

/** Runs job(i) for i in [0, N) with `width` in flight. */
async function pool(width, job) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < N) await job(next++);
    }),
  );
}

function setupOps(ns, i) {
  return [
    { op: 'linkAdd', name: hostName(i), kind: 'veth', up: true, group: GROUP, peer: { name: 'eth0', ns, up: true } },
    { op: 'addrAdd', ns, link: 'eth0', cidr: `${ctrIp(i)}/10` },
    { op: 'linkSet', ns, link: 'lo', up: true },
    { op: 'routeAdd', ns, dst: 'default', gateway: '10.64.0.1', link: 'eth0', onlink: true },
  ];
}

/** Checks that every container is wired (via `ip -j`, sampled) or that nothing is left. */
function verify(expectWired) {
  const hostVeths = JSON.parse(spawnSync('ip', ['-j', 'link', 'show', 'type', 'veth']).stdout.toString());
  if (expectWired ? hostVeths.length !== N : hostVeths.length !== 0)
    throw new Error(`expected ${expectWired ? N : 0} host veths, found ${hostVeths.length}`);
  if (!expectWired) return;
  for (const i of [0, N >> 1, N - 1]) {
    const out = spawnSync('ip', ['-n', nsName(i), '-j', 'addr', 'show', 'dev', 'eth0']).stdout.toString();
    const route = spawnSync('ip', ['-n', nsName(i), 'route', 'show', 'default']).stdout.toString();
    const lo = spawnSync('ip', ['-n', nsName(i), '-j', 'link', 'show', 'lo']).stdout.toString();
    if (!out.includes(ctrIp(i)) || !out.includes('"UP"') || !route.includes('10.64.0.1') || !lo.includes('"UP"'))
      throw new Error(`container ${i} is not wired: ${out} ${route}`);
  }
}

async function openAll() {
  return Promise.all(Array.from({ length: N }, (_, i) => lib.openNamespace(nsName(i))));
}

// Deleting many links leaves the kernel work to finish in the background (RCU callbacks, device
// freeing); let it settle so that one variant's teardown does not slow the next one's setup.
const settle = () => new Promise((r) => setTimeout(r, 3000));

const results = [];
function record(name, setupUs, teardownName, teardownUs) {
  results.push({ name, setupUs, teardownName, teardownUs });
  console.log(`${name.padEnd(34)} setup ${setupUs.toFixed(0).padStart(6)} us/container   ${teardownName.padEnd(30)} teardown ${teardownUs.toFixed(0).padStart(6)} us/container`);
}

async function libRun(name, width, pipelined, teardownName, teardown) {
  // Fresh handles: a new container's namespace has no pooled socket yet, so opening the handle
  // and the first socket in it are part of the work (as `ip -n` opens and enters it).
  await settle();
  let t0 = now();
  const handles = new Array(N);
  await pool(width, async (i) => {
    handles[i] = await lib.openNamespace(nsName(i));
    if (pipelined) {
      for (const r of await lib.batch(setupOps(handles[i], i), { pipelined: true }))
        if (r.status === 'rejected') throw r.reason;
    } else {
      await lib.batch(setupOps(handles[i], i));
    }
  });
  let t1 = now();
  const setupUs = usPer(t0, t1);
  verify(true);
  t0 = now();
  await teardown();
  t1 = now();
  verify(false);
  for (const h of handles) h.close();
  record(name, setupUs, teardownName, usPer(t0, t1));
}

// The iproute2 baselines run from one `sh` script (cheap fork+exec from a small process), with
// every batch file written before the clock starts: spawning from Node costs several ms per
// process at this size, which would not be iproute2's fault.
const tmp = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'nm-bench-'));
function sh(name, lines) {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, 'set -e\n' + lines.join('\n') + '\n');
  const t0 = now();
  const r = spawnSync('sh', [file], { stdio: ['ignore', 'ignore', 'pipe'] });
  const t1 = now();
  if (r.status !== 0) throw new Error(`${name}: ${r.stderr}`);
  return usPer(t0, t1);
}

async function ipPerOp() {
  await settle();
  const setup = [];
  for (let i = 0; i < N; i++) {
    const ns = nsName(i);
    setup.push(
      `ip link add ${hostName(i)} group ${GROUP} type veth peer name eth0 netns ${ns}`,
      `ip link set ${hostName(i)} up`,
      `ip -n ${ns} addr add ${ctrIp(i)}/10 dev eth0`,
      `ip -n ${ns} link set lo up`,
      `ip -n ${ns} link set eth0 up`,
      `ip -n ${ns} route add default via 10.64.0.1 dev eth0 onlink`,
    );
  }
  const setupUs = sh('per-op-setup.sh', setup);
  verify(true);
  const teardownUs = sh('per-op-teardown.sh', Array.from({ length: N }, (_, i) => `ip link del ${hostName(i)}`));
  verify(false);
  record('ip, one process per operation', setupUs, '`ip link del` per link', teardownUs);
}

async function ipBatch() {
  await settle();
  const host = [];
  for (let i = 0; i < N; i++) host.push(`link add ${hostName(i)} group ${GROUP} type veth peer name eth0 netns ${nsName(i)}`, `link set ${hostName(i)} up`);
  fs.writeFileSync(path.join(tmp, 'host.batch'), host.join('\n') + '\n');
  const script = [`ip -batch ${path.join(tmp, 'host.batch')}`];
  for (let i = 0; i < N; i++) {
    const f = path.join(tmp, `c${i}.batch`);
    fs.writeFileSync(f, [`addr add ${ctrIp(i)}/10 dev eth0`, 'link set lo up', 'link set eth0 up', 'route add default via 10.64.0.1 dev eth0 onlink'].join('\n') + '\n');
    script.push(`ip -n ${nsName(i)} -batch ${f}`);
  }
  const setupUs = sh('batch-setup.sh', script);
  verify(true);
  fs.writeFileSync(path.join(tmp, 'del.batch'), Array.from({ length: N }, (_, i) => `link del ${hostName(i)}`).join('\n') + '\n');
  const teardownUs = sh('batch-teardown.sh', [`ip -batch ${path.join(tmp, 'del.batch')}`]);
  verify(false);
  record('ip -batch (host file + one per ns)', setupUs, 'one `ip -batch` of link del', teardownUs);
}

async function main() {
  console.log(`${N} containers; kernel ${require('node:os').release()}; node ${process.version}; UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE}`);
  const made = [];
  for (let i = 0; i < N; i++) made.push(await lib.createNamespace(nsName(i)));
  for (const ns of made) ns.close();
  try {
    // Untimed warm-up: JIT, and the kernel's one-time work per namespace pair (netns ids).
    await libRun('(warm-up, not counted)', 8, true, '(warm-up)', () => lib.linkDelGroup(GROUP));
    results.length = 0;
    await libRun('netmodes, sequential', 1, false, 'linkDel, sequential', () => pool(1, (i) => lib.linkDel(hostName(i))));
    await libRun('netmodes, 8 in flight', 8, false, 'linkDel, 8 in flight', () => pool(8, (i) => lib.linkDel(hostName(i))));
    await libRun('netmodes pipelined, sequential', 1, true, 'one pipelined batch of linkDel', async () => {
      const r = await lib.batch(Array.from({ length: N }, (_, i) => ({ op: 'linkDel', link: hostName(i) })), { pipelined: true });
      if (r.some((x) => x.status !== 'fulfilled')) throw new Error('linkDel failed');
    });
    await libRun('netmodes pipelined, 8 in flight', 8, true, 'one linkDelGroup', () => lib.linkDelGroup(GROUP));
    if (!skipIpPerOp) await ipPerOp();
    await ipBatch();
  } finally {
    spawnSync('ip', ['link', 'del', 'group', String(GROUP)]);
    for (let i = 0; i < N; i++) spawnSync('ip', ['netns', 'del', nsName(i)]);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const by = (n) => results.find((r) => r.name.startsWith(n));
  const batchRow = by('ip -batch');
  const perOp = by('ip, one');
  console.log('\nratios (setup time / netmodes time; > 1 means netmodes is faster):');
  for (const r of results.filter((x) => x.name.startsWith('netmodes'))) {
    const parts = [`vs ip -batch ${(batchRow.setupUs / r.setupUs).toFixed(2)}x`];
    if (perOp) parts.push(`vs ip per op ${(perOp.setupUs / r.setupUs).toFixed(1)}x`);
    console.log(`  ${r.name.padEnd(34)} ${parts.join(', ')}   teardown vs ip -batch ${(batchRow.teardownUs / r.teardownUs).toFixed(2)}x`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
