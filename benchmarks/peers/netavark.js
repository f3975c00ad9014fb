'use strict';
// Peer: netavark (Debian 12: 1.4.0), driven as podman drives it: one process per container and verb,
//   netavark --config DIR setup|teardown /run/netns/C < c.json
// The caller does IPAM (static IP 10.88.x.y from i). One published TCP port 10000+i -> 80, bridge pbbr0.
//
// Firewall driver: netavark 1.4 picks it from NETAVARK_FW, else firewalld if its D-Bus name answers,
// else iptables. NETAVARK_FW=nftables is rejected by 1.4 ("nftables support presently not available";
// the nftables driver arrived in 1.9). We force NETAVARK_FW=iptables: that runs `iptables` from PATH,
// which on Debian 12 is iptables-nft, so its rules land as nf_tables tables `ip nat` / `ip filter` in
// the sandbox namespace. Forcing it also guarantees it never talks to a firewalld over D-Bus, which
// would change the *machine's* firewall whatever network namespace netavark runs in.

const fs = require('fs');
const sb = require('./sandbox');
const c = require('./common');

const name = 'netavark';
let bin = null;
let configDir = null;
let env = null;
let driverInfo = null;

function config(i) {
  return JSON.stringify({
    container_id: c.containerId(i),
    container_name: `c${i}`,
    port_mappings: [{ host_ip: '', container_port: c.CONTAINER_PORT, host_port: c.portFor(i), range: 1, protocol: 'tcp' }],
    networks: { [c.NETWORK]: { static_ips: [c.ipFor(i)], aliases: [], interface_name: 'eth0' } },
    network_info: {
      [c.NETWORK]: {
        name: c.NETWORK, id: c.NETWORK_ID, driver: 'bridge', network_interface: c.BRIDGE,
        created: '2024-01-01T00:00:00Z', subnets: [{ subnet: c.SUBNET, gateway: c.GATEWAY }],
        ipv6_enabled: false, internal: false, dns_enabled: false, ipam_options: { driver: 'host-local' },
      },
    },
  });
}

/** Prepares the config dir and environment; returns info about the driver used. */
function init() {
  sb.assertSandboxed();
  bin = sb.findTool('netavark');
  if (!bin) throw new Error('netavark not found');
  configDir = sb.workPath('netavark');
  env = { ...process.env, NETAVARK_FW: 'iptables' };
  delete env.RUST_LOG;
  const iptables = sb.sh('iptables', ['--version']).trim();
  driverInfo = {
    version: sb.sh(bin, ['--version']).trim(),
    firewallDriver: 'iptables',
    selectedBy: 'NETAVARK_FW=iptables (NETAVARK_FW=nftables is refused by 1.4: "nftables support presently not available")',
    iptables,
    iptablesBackend: /nf_tables/.test(iptables) ? 'iptables-nft' : 'iptables-legacy',
  };
  return driverInfo;
}

function args(verb, i) { return ['--config', configDir, verb, c.nsPath(i)]; }

/** Sets up container i (its namespace must exist). */
function setup(i) { sb.sh(bin, args('setup', i), { input: config(i), env }); }
/** Tears down container i. */
function teardown(i) { sb.sh(bin, args('teardown', i), { input: config(i), env }); }

function setupUnlocked(i) { return sb.shAsync(bin, args('setup', i), { input: config(i), env }).then(() => {}); }
function teardownUnlocked(i) { return sb.shAsync(bin, args('teardown', i), { input: config(i), env }).then(() => {}); }

// Podman never runs two netavark processes at once for a network: containers/common holds its network
// lock around each `netavark setup|teardown` (libnetwork/netavark/run.go, Setup/Teardown: n.lock.Lock()).
// Run unlocked, netavark 1.4 races: concurrent setups fail with "iptables: Chain already exists", and a
// teardown that sees no other veth deletes the bridge under the others ("failed to get bridge interface").
// So the async forms queue behind one lock, as under podman; the unlocked ones are exported separately.
let tail = Promise.resolve();
function locked(fn) {
  const run = tail.then(fn, fn);
  tail = run.catch(() => {});
  return run;
}
function setupAsync(i) { return locked(() => setupUnlocked(i)); }
function teardownAsync(i) { return locked(() => teardownUnlocked(i)); }

/** Removes the config dir; netavark deletes the bridge and its chains itself with the last container. */
function fini() {
  if (configDir) fs.rmSync(configDir, { recursive: true, force: true });
  configDir = null;
}

function info() { return driverInfo; }

module.exports = { name, init, setup, teardown, setupAsync, teardownAsync, fini, info, config, setupUnlocked, teardownUnlocked };

/** The same peer without podman's lock (to show the races); not in the default peer list. */
module.exports.unlocked = {
  name: 'netavark-unlocked', init, setup, teardown, setupAsync: setupUnlocked, teardownAsync: teardownUnlocked, fini, info,
};
