'use strict';
// Peers `cfloor`, `cfloorgroup` and `cfloorv4`: the C floor. benchmarks/floor/floor.c, compiled here with `cc -O2`
// into the sandbox's work directory, does each container's kernel work (the same as the ip/ipbatch
// peers: veth with its peer straight into the namespace, on pbbr0 and up; in the namespace the
// address, lo and eth0 up, the default route; one element in the ipbatch peer's map) over raw
// rtnetlink and nf_tables sockets, one acknowledged request at a time, and times every container
// itself (CLOCK_MONOTONIC). One process attaches all containers and one detaches them, so there is
// no per-container process, library or state: what is left approximates the kernel's own cost.
//
//   cfloor:      detach = per container: delete the element, RTM_DELLINK the veth (one RCU grace
//                period per veth, as the ipbatch floor pays)
//   cfloorgroup: detach = per container: delete the element, move the veth into link group 4242;
//                then one RTM_DELLINK for the group (as the floorgroup peer and netmodes' reaper)
//   cfloorv4:    cfloorgroup with IPv6 address generation off on both veth ends (addrgenmode none,
//                2 more requests per container), as netmodes does on an IPv4-only network. The
//                other peers leave IPv6 on: each veth then gets a fe80:: address, DAD, router
//                solicitations and MLD reports, kernel work (much of it under the RTNL lock, and
//                flooded over the bridge) that grows with the containers attached.
//
// The bridge and the table are made by the ipbatch peer's init() (not timed). Batch peers: the runner
// times setupAll/teardownAll over the wall clock (one exec included) and takes p50/p99 from the
// per-container times the program reports (`latencies`).

const fs = require('fs');
const path = require('path');
const sb = require('./sandbox');
const c = require('./common');
const iproute = require('./iproute');

const binaries = {}; // compiled once per sandbox (its work directory lives as long as the sandbox)
let compiler = null;

/**
 * Compiles benchmarks/floor/NAME.c (floor.c, or probe.c for the dense section) with `cc -O2`;
 * throws a clear error without a C compiler.
 */
function compile(name = 'floor') {
  sb.assertSandboxed();
  if (binaries[name]) return binaries[name];
  const version = sb.sh('cc', ['--version'], { allowFail: true });
  if (version === null) {
    throw new Error(`${name}.c: no C compiler: \`cc --version\` failed. Install one (Debian: apt-get install build-essential) or leave cfloor/cfloorgroup out of --peers`);
  }
  const out = path.join(sb.workPath('cfloor'), name);
  sb.sh('cc', ['-O2', '-Wall', '-o', out, path.join(__dirname, '..', 'floor', `${name}.c`)]);
  compiler = version.split('\n')[0].trim();
  binaries[name] = out;
  return out;
}

function lines(list, ipOf) {
  return list.map((i) => `${c.nsPath(i)} ${c.vethName(i)} ${ipOf(i)} ${c.portFor(i)}\n`).join('');
}

/** The floor's command line for `mode` (`extra`: more options) on the peers' bridge, table and map. */
function floorArgs(mode, extra) {
  return [mode, ...extra, '--bridge', c.BRIDGE, '--gateway', c.GATEWAY, '--prefix', String(c.PREFIX), '--table', iproute.TABLE,
    '--map', iproute.MAP, '--port', String(c.CONTAINER_PORT), '--group', String(c.LINK_GROUP)];
}

/**
 * Runs `floor MODE` for the containers of `list` (`extra`: more options; `ipOf`: their addresses);
 * returns its JSON report.
 */
function run(mode, list, extra = [], ipOf = c.ipFor) {
  sb.assertSandboxed();
  const args = floorArgs(mode, extra);
  const r = JSON.parse(sb.sh(compile(), args, { input: lines(list, ipOf) }));
  if (r.count !== list.length || r.ms.length !== list.length) throw new Error(`cfloor ${mode}: ${r.count} of ${list.length} containers`);
  return r;
}

/**
 * `run` for `list` split into `procs` contiguous slices, one floor process each, all at once: the
 * kernel's own throughput with that many requests in flight (the concurrent section's floor). Each
 * process of detach-group ends with its group delete, which takes every veth moved into the group
 * by then (the last one's takes the rest). Returns the parts of all of them together.
 */
async function runParallel(mode, list, procs, extra = [], ipOf = c.ipFor) {
  sb.assertSandboxed();
  const args = floorArgs(mode, extra);
  const size = Math.ceil(list.length / procs);
  const slices = [];
  for (let a = 0; a < list.length; a += size) slices.push(list.slice(a, a + size));
  const bin = compile();
  const rs = (await Promise.all(slices.map((sl) => sb.shAsync(bin, args, { input: lines(sl, ipOf) })))).map((t) => JSON.parse(t));
  const count = rs.reduce((a, r) => a + r.count, 0);
  if (count !== list.length) throw new Error(`cfloor ${mode} in ${slices.length} processes: ${count} of ${list.length} containers`);
  return { programMs: Math.max(...rs.map((r) => r.totalMs)), latencies: rs.flatMap((r) => r.ms), processes: slices.length };
}

function parts(r) {
  const p = { programMs: r.totalMs, latencies: r.ms, processes: 1 };
  if (r.bulkDeleteMs !== undefined) p.bulkDeleteMs = r.bulkDeleteMs;
  return p;
}

/** Where the floor pins the leaf namespaces of the layout with --leaf-ns (the sandbox's work tmpfs). */
function leafNsDir() { return path.join(sb.workPath(), 'cfloor-leafns'); }

function peer(name, detachMode, { ipv6 = true, queues, portNoIpv6 = false, perBridge = 0, leafNs = false, ipOf = c.ipFor } = {}) {
  // Built when the floor runs: the directory of the leaf namespaces is known inside the sandbox only.
  const layout = () => (perBridge ? ['--ports-per-bridge', String(perBridge), '--leaf-prefix', c.LEAF_PREFIX, '--mtu', '1500',
    ...(leafNs ? ['--leaf-ns', leafNsDir()] : [])] : []);
  const flags = () => [...(ipv6 ? [] : ['--no-ipv6']), ...(queues ? ['--queues', String(queues)] : []), ...(portNoIpv6 ? ['--disable-ipv6'] : []), ...layout()];
  // With leaf namespaces a veth's host end is in its slot's namespace: detach finds it by the layout.
  const detachFlags = () => (leafNs ? layout() : []);
  const setupAll = (list) => parts(run('attach', list, flags(), ipOf));
  const teardownAll = (list) => parts(run(detachMode, list, detachFlags(), ipOf));
  return {
    name, batch: true, selfTimed: true, setupAll, teardownAll,
    // The concurrent section: `procs` processes at once, each on its slice of the containers.
    setupParallel: (list, procs) => runParallel('attach', list, procs, flags(), ipOf),
    teardownParallel: (list, procs) => runParallel(detachMode, list, procs, detachFlags(), ipOf),
    init() {
      compile();
      return { ...iproute.init(), compiler, detach: detachMode, ipv6, queues: queues ?? 'kernel default', hostEndIpv6Disabled: portNoIpv6,
        ...(perBridge ? { portsPerBridge: perBridge, leafNamespaces: leafNs } : {}) };
    },
    fini: iproute.fini,
    // Single-container forms (verify, or a caller that wants them): one process each.
    setup: (i) => { setupAll([i]); },
    teardown: (i) => { teardownAll([i]); },
    info: () => ({ processesPerSetupOfN: 1, processesPerTeardownOfN: 1, compiler }),
  };
}

/**
 * `cfloorv4` on the layout of one dense netmodes network (root pbbr0 + routed leaf bridges of
 * `perBridge` ports with proxy ARP, benchmarks/floor/floor.c), with the dense addresses: the floor of the scaling
 * section's one network at any K. With `leafNs` each leaf is a namespace of its own (issue 20:
 * br0 in it, a trunk veth to the host, the containers' host ends in it; floor.c --leaf-ns), pinned
 * under the sandbox's work directory. fini deletes the leaves: the leaf bridges, or the trunks'
 * host ends (each takes its peer along) and the leaf namespaces' mounts (the last reference to each
 * namespace: the kernel then removes it with the host ends in it and their peers).
 */
function layoutPeer(perBridge = c.PORTS_PER_BRIDGE, { leafNs = false } = {}) {
  const base = peer('cfloorv4', 'detach-group', { ipv6: false, queues: 1, portNoIpv6: true, perBridge, leafNs, ipOf: c.ipDense });
  const leafRe = new RegExp(`^${c.LEAF_PREFIX}b\\d+$`); // a leaf bridge or a trunk's host end (its route goes with it)
  return {
    ...base,
    layout: true,
    fini() {
      const links = sb.sandboxLinks().filter((l) => leafRe.test(l));
      if (links.length) sb.sh('ip', ['-batch', '-'], { input: links.map((l) => `link del ${l}\n`).join('') });
      const dir = leafNs && leafNsDir();
      if (dir && fs.existsSync(dir)) {
        // A file left empty by a run that stopped before its mount is no mount point: umount fails on it.
        for (const f of fs.readdirSync(dir)) sb.sh('umount', [path.join(dir, f)], { allowFail: true });
        fs.rmSync(dir, { recursive: true, force: true });
      }
      base.fini();
    },
  };
}

module.exports = {
  compile, run, layoutPeer,
  peers: {
    cfloor: peer('cfloor', 'detach'),
    cfloorgroup: peer('cfloorgroup', 'detach-group'),
    // Like for like with netmodes' veths: no IPv6 address generation, one queue pair per end, no
    // IPv6 at all on the host end (a bridge port).
    cfloorv4: peer('cfloorv4', 'detach-group', { ipv6: false, queues: 1, portNoIpv6: true }),
  },
};
