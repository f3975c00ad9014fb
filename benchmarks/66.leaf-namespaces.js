#!/usr/bin/env node
// Issue 20, the kernel's part of one more attach on a dense host, in two layouts (no netmodes
// policy: the same bare requests through the addon in both):
//   leafns: each leaf bridge (one per 256 containers) in a namespace of its own, holding the
//           host ends of its containers' veths;
//   rootns: every leaf bridge, and so every host end, in one namespace (today's dense layout).
// Per attach: one RTM_NEWLINK (veth, host end up on its leaf bridge, peer eth0 up straight into the
// container's namespace, one queue pair, no IPv6 on either end) and the container's address.
// One more attach is timed (p50 of --window) with ~10 containers attached and with --k attached.
// Why the layouts differ: every notification about a veth's host end names the namespace of its
// peer by its id in the host end's namespace, and the kernel finds that id by walking every id that
// namespace has given out (one per container namespace a veth reaches): with 10,000 containers
// behind one namespace, ~0.13 ms per notification, ~6 notifications per attach. A leaf namespace
// gives out at most 256.
//   node benchmarks/66.leaf-namespaces.js [--k 10000] [--window 200]
// Runs only inside its own sandbox (unshare --net --mount), like the tests.
'use strict';
const path = require('node:path');
const { sandboxed, med } = require('./common');

const { opt } = sandboxed(__filename);
const K = opt('k', 10000);
const W = opt('window', 200);
const PER = 256;
const nm = require(path.join(__dirname, '..', 'dist', 'lib'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function layout(name) {
  const host = nm.currentNamespace();
  const leaves = [];
  const leafOf = async (slot) => {
    if (leaves[slot]) return leaves[slot];
    const ns = name === 'leafns' ? await nm.createNamespace(`${name}-leaf${slot}`) : host;
    const br = name === 'leafns' ? 'br0' : `${name}b${slot}`;
    await nm.batch([{ op: 'linkAdd', ns, name: br, kind: 'bridge', up: true, bridge: { stp: false, forwardDelay: 0 } }]);
    return (leaves[slot] = { ns, br });
  };
  // The containers' namespaces (by path: 10,000 open handles would pass the fd limit).
  const cns = [];
  for (let i = 0; i < K + 2 * W; i++) {
    const c = await nm.createNamespace(`${name}-c${i}`);
    cns.push(c.path);
    c.close();
  }
  let attached = 0;
  const attach = async (i) => {
    const { ns, br } = await leafOf(Math.floor(attached++ / PER));
    const cn = await nm.openNamespace(cns[i]);
    const t0 = process.hrtime.bigint();
    await nm.batch([
      { op: 'linkAdd', ns, name: `v${i}`, kind: 'veth', master: br, queues: 1, noIpv6: true, disableIpv6: true, up: true, peer: { name: 'eth0', ns: cn, queues: 1, up: true } },
      { op: 'addrAdd', ns: cn, link: 'eth0', cidr: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/8` },
    ]);
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    cn.close();
    return us;
  };
  const at10 = [];
  for (let i = 0; i < 10; i++) await attach(i);
  for (let i = 0; i < W; i++) at10.push(await attach(K + i));
  for (let i = 10; i < K; i++) await attach(i);
  const atK = [];
  for (let i = 0; i < W; i++) atK.push(await attach(K + W + i));
  console.log(`${name}: one more attach (p50 of ${W}) with ~10 attached ${med(at10).toFixed(0)} us, with ${K} ${med(atK).toFixed(0)} us: ${(med(atK) / med(at10)).toFixed(2)}x`);
  for (const c of cns) await (await nm.openNamespace(c)).delete();
  for (const l of leaves) if (l.ns !== host) await l.ns.delete();
  else await nm.batch([{ op: 'linkDel', ns: host, link: l.br }]);
}

(async () => {
  // leafns first: its containers never get an id in this namespace, so the second layout starts
  // from the same point (the leaf namespaces' few ids go with them).
  await layout('leafns');
  await sleep(2000);
  await layout('rootns');
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
