#!/usr/bin/env node
// Bridge-mode churn: connect + disconnect of containers with one published port each, sequential
// and concurrent, and the cost of one more connect as the number attached grows. The same work done
// by one `ip`/`nft` process per operation runs in the same script for the ratio.
//   node benchmarks/40.bridge-churn.js [--n 500] [--scale 2000] [--peer 100]
// Runs only inside its own sandbox (unshare --net --mount), like the tests.
'use strict';
const path = require('node:path');
const fs = require('node:fs');
const { execFileSync } = require('node:child_process');
const { sandboxed, now, pct, med } = require('./common');

const { args, opt } = sandboxed(__filename);
const N = opt('n', 500);
const SCALE = opt('scale', 2000);
const PEER = opt('peer', 100);

const nm = require(path.join(__dirname, '..', 'dist', 'lib'));
const f = (x) => x.toFixed(3);

async function makeNs(prefix, n) {
  const t = now();
  const out = [];
  for (let i = 0; i < n; i++) out.push(await nm.createNamespace(`${prefix}${i}`));
  return { list: out, ms: (now() - t) / n };
}

async function churnSequential(net, nss, portBase) {
  const con = [];
  const dis = [];
  const eps = [];
  for (let i = 0; i < nss.length; i++) {
    const t = now();
    eps.push(await net.connect(nss[i], { ports: [`${portBase + i}:80`] }));
    con.push(now() - t);
  }
  const t0 = now();
  for (const e of eps) {
    const t = now();
    await e.disconnect();
    dis.push(now() - t);
  }
  await nm.reapDetached();
  const disTotal = (now() - t0) / eps.length; // amortized, reaping included
  return { con, dis, disTotal };
}

async function churnConcurrent(net, nss, portBase, inflight) {
  const t0 = now();
  let next = 0;
  const eps = new Array(nss.length);
  await Promise.all(Array.from({ length: inflight }, async () => {
    while (next < nss.length) {
      const i = next++;
      eps[i] = await net.connect(nss[i], { ports: [`${portBase + i}:80`] });
    }
  }));
  const con = (now() - t0) / nss.length;
  const t1 = now();
  next = 0;
  await Promise.all(Array.from({ length: inflight }, async () => {
    while (next < eps.length) await eps[next++].disconnect();
  }));
  await nm.reapDetached();
  return { con, dis: (now() - t1) / nss.length };
}

function ipPerOp(nss, n) {
  // The same kernel work, one process per operation (as pipework-style shell tools do it).
  const sh = (c, a) => execFileSync(c, a, { stdio: 'ignore' });
  sh('ip', ['link', 'add', 'pbr0', 'type', 'bridge']);
  sh('ip', ['addr', 'add', '10.99.0.1/16', 'dev', 'pbr0']);
  sh('ip', ['link', 'set', 'pbr0', 'up']);
  execFileSync('nft', ['-f', '-'], { input: 'table ip pbench { map pub { type inet_proto . inet_service : ipv4_addr . inet_service; }\n chain pre { type nat hook prerouting priority -100; dnat ip to meta l4proto . th dport map @pub; }\n}\n' });
  const con = [];
  const dis = [];
  for (let i = 0; i < n; i++) {
    const ns = nss[i].name;
    const a = `10.99.${(i >> 8) + 1}.${(i & 255) + 2}`;
    const t = now();
    sh('ip', ['link', 'add', `pv${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    sh('ip', ['link', 'set', `pv${i}`, 'master', 'pbr0', 'up']);
    sh('ip', ['-n', ns, 'addr', 'add', `${a}/16`, 'dev', 'eth0']);
    sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', ns, 'route', 'add', 'default', 'via', '10.99.0.1']);
    sh('nft', ['add', 'element', 'ip', 'pbench', 'pub', `{ tcp . ${40000 + i} : ${a} . 80 }`]);
    con.push(now() - t);
  }
  for (let i = 0; i < n; i++) {
    const a = `10.99.${(i >> 8) + 1}.${(i & 255) + 2}`;
    const t = now();
    sh('nft', ['delete', 'element', 'ip', 'pbench', 'pub', `{ tcp . ${40000 + i} : ${a} . 80 }`]);
    sh('ip', ['link', 'del', `pv${i}`]);
    dis.push(now() - t);
  }
  sh('nft', ['delete', 'table', 'ip', 'pbench']);
  sh('ip', ['link', 'del', 'pbr0']);
  return { con, dis };
}

async function main() {
  const machine = `${require('node:os').cpus().length} cores, kernel ${require('node:os').release()}`;
  console.log(`bridge churn benchmark (${machine}); N=${N}, scale=${SCALE}, per-op peer=${PEER}`);
  const lag = [];
  let last = now();
  const timer = setInterval(() => {
    const t = now();
    lag.push(t - last - 1);
    last = t;
  }, 1);

  const { list: nss, ms: nsMs } = await makeNs('bn', Math.max(N, PEER));
  console.log(`namespace creation (not included below): ${f(nsMs)} ms each`);
  const net = await nm.createBridgeNetwork({ name: 'bench', subnet: '10.200.0.0/16' });

  const seq = await churnSequential(net, nss.slice(0, N), 10000);
  const c8 = await churnConcurrent(net, nss.slice(0, N), 10000, 8);
  clearInterval(timer);

  // Scale: one more connect with k already attached (two bridges of up to 1,000 ports each).
  const scale = [];
  const net2 = await nm.createBridgeNetwork({ name: 'bench2', subnet: '10.201.0.0/16' });
  const extra = await makeNs('bs', SCALE);
  const attached = [];
  const probeNs = nss.slice(0, 20);
  const probe = async (k) => {
    const c = [];
    for (const ns of probeNs) {
      const t = now();
      const e = await net.connect(ns, { ports: [`${60000 + c.length}:80`] });
      c.push(now() - t);
      await e.disconnect();
    }
    await nm.reapDetached();
    scale.push({ attached: k, connectMs: med(c) });
  };
  await probe(0);
  for (let i = 0; i < SCALE; i++) {
    const target = i % 2 ? net : net2;
    attached.push(await target.connect(extra.list[i], { ports: [`${20000 + i}:80`] }));
    if (i + 1 === 10 || i + 1 === 1000 || i + 1 === SCALE) await probe(i + 1);
  }
  for (const e of attached) await e.disconnect();
  await nm.reapDetached();
  await net2.remove();
  await net.remove();
  for (const n of extra.list) await n.delete();

  const peer = ipPerOp(nss, PEER);
  for (const n of nss) await n.delete();

  const r = {
    machine,
    n: N,
    namespaceMs: nsMs,
    netmodes: {
      sequential: { connectP50: med(seq.con), connectP99: pct(seq.con, 99), disconnectP50: med(seq.dis), disconnectAmortized: seq.disTotal },
      concurrent8: { connect: c8.con, disconnect: c8.dis },
      eventLoopLagMs: { max: Math.max(...lag), p99: pct(lag, 99) },
      scale,
    },
    ipPerOp: { connectP50: med(peer.con), disconnectP50: med(peer.dis), n: PEER },
  };
  console.log('\n                         connect ms   disconnect ms');
  console.log(`netmodes sequential     ${f(r.netmodes.sequential.connectP50).padStart(10)}   ${f(seq.disTotal).padStart(10)} (amortized; p50 detach ${f(med(seq.dis))})`);
  console.log(`netmodes 8 in flight    ${f(c8.con).padStart(10)}   ${f(c8.dis).padStart(10)}`);
  console.log(`ip/nft per operation    ${f(r.ipPerOp.connectP50).padStart(10)}   ${f(r.ipPerOp.disconnectP50).padStart(10)}`);
  console.log(`ratio (per-op / netmodes sequential): connect ${(r.ipPerOp.connectP50 / r.netmodes.sequential.connectP50).toFixed(1)}x, disconnect ${(r.ipPerOp.disconnectP50 / seq.disTotal).toFixed(1)}x`);
  console.log(`connect p99 ${f(r.netmodes.sequential.connectP99)} ms; event-loop lag max ${f(r.netmodes.eventLoopLagMs.max)} ms, p99 ${f(r.netmodes.eventLoopLagMs.p99)} ms`);
  console.log('one more connect with k attached: ' + scale.map((s) => `k=${s.attached}: ${f(s.connectMs)} ms (${(s.connectMs / scale[0].connectMs).toFixed(2)}x)`).join(', '));
  fs.mkdirSync(path.join(__dirname, 'results'), { recursive: true });
  const out = path.join(__dirname, 'results', `bridge-churn-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(out, JSON.stringify(r, null, 1));
  console.log(`raw results: ${path.relative(process.cwd(), out)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
