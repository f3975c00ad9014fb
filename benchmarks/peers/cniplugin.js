'use strict';
// Peer: the netmodes CNI plugin, run exactly as a runtime runs a plugin: one process per call, CNI_*
// in the environment, the network configuration on stdin, the result parsed from stdout; DEL gets the
// ADD's result as prevResult (as libcni passes its cached result). The configuration is the one the
// `cni` peer gives the reference chain (bridge pbbr0, isGateway, ipMasq, host-local ranges on
// 10.88.0.0/16 with a default route, one published port). Two ways:
//   cniplugin          the installed plugin (native executable) hands each call to the resident server,
//                      started once by init() (its start-up is not timed: the steady state of a host);
//   cniplugin-process  NETMODES_CNI_MODE=process: every call runs the verb in a Node process of its own
//                      (the plugin's fallback when no server can be reached).
// The plugin is installed with `netmodes cni install --bin-dir` into the sandbox's work tmpfs.

const path = require('path');
const { execFileSync } = require('child_process');
const sb = require('./sandbox');
const c = require('./common');

const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'lib', 'cli', 'main.js');
const CNI_VERSION = '1.0.0';

function makePeer(name, mode) {
  let plugin = null;
  let binDir = null;
  let baseEnv = null;
  const results = new Map();

  function conf(i, prev) {
    const out = {
      cniVersion: CNI_VERSION, name: c.NETWORK, type: 'netmodes', bridge: c.BRIDGE, isGateway: true, ipMasq: true,
      ipam: { type: 'host-local', ranges: [[{ subnet: c.SUBNET, gateway: c.GATEWAY }]], routes: [{ dst: '0.0.0.0/0' }] },
      capabilities: { portMappings: true },
      runtimeConfig: { portMappings: [{ hostPort: c.portFor(i), containerPort: c.CONTAINER_PORT, protocol: 'tcp' }] },
    };
    if (prev) out.prevResult = prev;
    return out;
  }
  function envFor(cmd, i) {
    return { ...baseEnv, CNI_COMMAND: cmd, CNI_CONTAINERID: c.containerId(i), CNI_NETNS: c.nsPath(i), CNI_IFNAME: 'eth0', CNI_PATH: binDir };
  }
  const parse = (out) => (out && out.trim() ? JSON.parse(out) : undefined);
  const args = (cmd, i) => [plugin, [], { env: envFor(cmd, i), input: JSON.stringify(conf(i, cmd === 'DEL' ? results.get(i) : undefined)) }];

  function stopServer() {
    execFileSync(process.execPath, [CLI, 'cni', 'stop'], { env: process.env, stdio: 'ignore' });
  }

  return {
    name,
    init() {
      sb.assertSandboxed();
      binDir = sb.workPath('cni-bin');
      plugin = execFileSync(process.execPath, [CLI, 'cni', 'install', '--bin-dir', binDir], { env: process.env }).toString().trim();
      baseEnv = { ...process.env, NETMODES_CNI_MODE: mode };
      delete baseEnv.NETMODES_FAULT;
      results.clear();
      // The resident server's start (Node + the library, ~200 ms) once, before the clock runs.
      if (mode === 'server') sb.sh(plugin, [], { env: { ...baseEnv, CNI_COMMAND: 'VERSION' }, input: '{"cniVersion":"1.0.0"}' });
      return this.info();
    },
    setup(i) { results.set(i, parse(sb.sh(...args('ADD', i)))); },
    teardown(i) { sb.sh(...args('DEL', i)); results.delete(i); },
    async setupAsync(i) { results.set(i, parse(await sb.shAsync(...args('ADD', i)))); },
    async teardownAsync(i) { await sb.shAsync(...args('DEL', i)); results.delete(i); },
    addressOf(i) {
      const r = results.get(i);
      return r && r.ips && r.ips[0] ? r.ips[0].address : null;
    },
    fini() {
      // The network is a netmodes network: the library's own remove takes the bridge and rules down.
      const script = `const nm=require(${JSON.stringify(path.join(ROOT, 'dist', 'lib', 'index.js'))});` +
        `nm.openBridgeNetwork(${JSON.stringify(c.NETWORK)}).then((n)=>n.remove({force:true})).catch((e)=>{if(e.code!=='ENONETWORK')throw e;});`;
      execFileSync(process.execPath, ['-e', script], { env: process.env, stdio: 'inherit' });
      stopServer();
      results.clear();
    },
    info() {
      return { version: require('../../package.json').version, cniVersion: CNI_VERSION, how: mode === 'server' ? 'plugin executable + resident server' : 'plugin executable, a Node process per call' };
    },
  };
}

module.exports = { cniplugin: makePeer('cniplugin', 'server'), cniprocess: makePeer('cniplugin-process', 'process') };
