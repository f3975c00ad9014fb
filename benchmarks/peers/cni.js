'use strict';
// Peer: the reference CNI plugins (Debian 12: containernetworking-plugins 1.1.1), chained by hand the
// way a runtime (libcni: containerd, CRI-O, podman < 4) chains them:
//   ADD:  loopback (its own network, CNI_IFNAME=lo), then bridge (host-local IPAM), then portmap with
//         prevResult = bridge's result;
//   DEL:  portmap, bridge (both with prevResult = the chain's final ADD result, as libcni passes its
//         cached result), then loopback (prevResult = its own ADD result).
// Environment variables + JSON on stdin, one process per plugin and verb. The plugins call
// `iptables` from PATH (iptables-nft on Debian 12) for ipMasq and portmap; all of it lands in the
// sandbox namespace the process runs in. host-local keeps its leases under the sandbox's work tmpfs.
// libcni would also write its result cache to /var/lib/cni; we keep the results in memory instead.

const fs = require('fs');
const path = require('path');
const sb = require('./sandbox');
const c = require('./common');

const name = 'cni';
const CNI_VERSION = '1.0.0';
let cniPath = null;
let dataDir = null;
let baseEnv = null;
const results = new Map(); // i -> { lo: result, final: result }
let driverInfo = null;

function loopbackConf() {
  return { cniVersion: CNI_VERSION, name: 'cni-loopback', type: 'loopback' };
}
function bridgeConf() {
  return {
    cniVersion: CNI_VERSION, name: c.NETWORK, type: 'bridge', bridge: c.BRIDGE, isGateway: true, ipMasq: true,
    ipam: {
      type: 'host-local', ranges: [[{ subnet: c.SUBNET, gateway: c.GATEWAY }]],
      routes: [{ dst: '0.0.0.0/0' }], dataDir,
    },
  };
}
function portmapConf(i) {
  return {
    cniVersion: CNI_VERSION, name: c.NETWORK, type: 'portmap', capabilities: { portMappings: true }, snat: true,
    runtimeConfig: { portMappings: [{ hostPort: c.portFor(i), containerPort: c.CONTAINER_PORT, protocol: 'tcp' }] },
  };
}

function envFor(cmd, i, ifname) {
  return {
    ...baseEnv, CNI_COMMAND: cmd, CNI_CONTAINERID: c.containerId(i), CNI_NETNS: c.nsPath(i),
    CNI_IFNAME: ifname, CNI_PATH: cniPath,
  };
}

function withPrev(conf, prev) { return prev ? { ...conf, prevResult: prev } : conf; }

function init() {
  sb.assertSandboxed();
  const bridge = sb.findTool('cni-bridge');
  if (!bridge) throw new Error('CNI plugins not found');
  cniPath = path.dirname(bridge);
  dataDir = sb.workPath('cni-ipam');
  baseEnv = { ...process.env };
  results.clear();
  const iptables = sb.sh('iptables', ['--version']).trim();
  driverInfo = {
    version: (sb.sh('dpkg-query', ['-W', '-f', '${Version}', 'containernetworking-plugins'], { allowFail: true }) || 'unknown').trim(),
    cniVersion: CNI_VERSION,
    cniPath, iptables, iptablesBackend: /nf_tables/.test(iptables) ? 'iptables-nft' : 'iptables-legacy',
  };
  return driverInfo;
}

// The plugin steps, each given a runner (sync or async) so both variants share the exact same work.
function* addSteps(i) {
  const lo = yield ['loopback', 'ADD', i, 'lo', loopbackConf()];
  const br = yield ['bridge', 'ADD', i, 'eth0', bridgeConf()];
  const pm = yield ['portmap', 'ADD', i, 'eth0', withPrev(portmapConf(i), br)];
  results.set(i, { lo, final: pm });
}
function* delSteps(i) {
  const r = results.get(i) || {};
  yield ['portmap', 'DEL', i, 'eth0', withPrev(portmapConf(i), r.final)];
  yield ['bridge', 'DEL', i, 'eth0', withPrev(bridgeConf(), r.final)];
  yield ['loopback', 'DEL', i, 'lo', withPrev(loopbackConf(), r.lo)];
  results.delete(i);
}

function stepArgs([plugin, cmd, i, ifname, conf]) {
  return [path.join(cniPath, plugin), [], { env: envFor(cmd, i, ifname), input: JSON.stringify(conf) }];
}
function parse(out) { return out && out.trim() ? JSON.parse(out) : undefined; }

function runSync(gen) {
  let r = gen.next();
  while (!r.done) r = gen.next(parse(sb.sh(...stepArgs(r.value))));
}
async function runAsync(gen) {
  let r = gen.next();
  while (!r.done) r = gen.next(parse(await sb.shAsync(...stepArgs(r.value))));
}

/** Sets up container i (its namespace must exist). */
function setup(i) { runSync(addSteps(i)); }
/** Tears down container i (reverse order, with the cached results). */
function teardown(i) { runSync(delSteps(i)); }
function setupAsync(i) { return runAsync(addSteps(i)); }
function teardownAsync(i) { return runAsync(delSteps(i)); }

/** Removes host-local's lease dir. The bridge plugin never deletes the bridge: fini() does. */
function fini() {
  sb.assertSandboxed();
  sb.sh('ip', ['link', 'del', c.BRIDGE], { allowFail: true });
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  dataDir = null;
  results.clear();
}

function info() { return driverInfo; }

/** Address (CIDR) host-local gave container i, from the ADD result (CNI allocates; no static IPs here). */
function addressOf(i) {
  const r = results.get(i);
  const ip = r && r.final && r.final.ips && r.final.ips[0];
  return ip ? ip.address : null;
}

module.exports = { name, init, setup, teardown, setupAsync, teardownAsync, fini, info, addressOf };
