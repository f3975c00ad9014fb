'use strict';
// Peers: the same kernel work done with iproute2 and nft, as a shell script would do it.
//
// Shared, created once by init(): bridge pbbr0 (10.88.0.1/16, up) and the table
//   table inet pbench {
//     map pfwd { type inet_service : ipv4_addr . inet_service; }      # host port -> addr . port
//     chain prerouting { type nat hook prerouting priority dstnat; fib daddr type local dnat ip to tcp dport map @pfwd }
//     chain postrouting { type nat hook postrouting priority srcnat; ip saddr 10.88.0.0/16 oifname != "pbbr0" masquerade }
//   }
// so a published port is one map element: the rule set does not grow with the containers.
//
// `ip` peer (setup/teardown): one process per operation, 8 to set up a container:
//   ip link add pbv<i> type veth peer name eth0 netns pbc<i>
//   ip link set pbv<i> master pbbr0 ; ip link set pbv<i> up
//   ip -n pbc<i> addr add 10.88.x.y/16 dev eth0 ; ip -n pbc<i> link set lo up ; ip -n pbc<i> link set eth0 up
//   ip -n pbc<i> route add default via 10.88.0.1
//   nft add element inet pbench pfwd { 10000+i : 10.88.x.y . 80 }
// and 2 to tear it down: nft delete element ..., ip link del pbv<i> (the peer in the container goes with it).
//
// `ipbatch` floor (setupAll/teardownAll): as few processes as iproute2 allows for N containers:
//   one `ip -batch` (every veth add/master/up in the sandbox host), one `nft -f` (all N elements), and one
//   `ip -n pbc<i> -batch` per container for the inside (addr, lo up, eth0 up, default route): `ip -batch`
//   cannot switch namespace per line (`-n` is a global option, and `netns exec` in a batch forks a
//   process anyway), and an address or route set before the move into the namespace is lost by the move.
//   Teardown is truly one `nft -f` + one `ip -batch` of `link del`.

const fs = require('fs');
const path = require('path');
const sb = require('./sandbox');
const c = require('./common');

const TABLE = 'pbench';
const MAP = 'pfwd';
let work = null;

function tableScript() {
  return `table inet ${TABLE} {
  map ${MAP} { type inet_service : ipv4_addr . inet_service; }
  chain prerouting { type nat hook prerouting priority dstnat; policy accept; fib daddr type local dnat ip to tcp dport map @${MAP}; }
  chain output { type nat hook output priority -100; policy accept; fib daddr type local dnat ip to tcp dport map @${MAP}; }
  chain postrouting { type nat hook postrouting priority srcnat; policy accept; ip saddr ${c.SUBNET} oifname != "${c.BRIDGE}" masquerade; }
}
`;
}

function element(i) { return `${c.portFor(i)} : ${c.ipFor(i)} . ${c.CONTAINER_PORT}`; }

/** Creates the bridge and the nftables table (once, shared by `ip` and `ipbatch`). */
function init() {
  sb.assertSandboxed();
  work = sb.workPath('iproute');
  sb.sh('ip', ['link', 'add', c.BRIDGE, 'type', 'bridge']);
  sb.sh('ip', ['addr', 'add', `${c.GATEWAY}/${c.PREFIX}`, 'dev', c.BRIDGE]);
  sb.sh('ip', ['link', 'set', c.BRIDGE, 'up']);
  sb.sh('nft', ['-f', '-'], { input: tableScript() });
  return { ip: sb.sh('ip', ['-V']).trim(), nft: sb.sh('nft', ['--version']).trim(), table: `inet ${TABLE}` };
}

/** Deletes the table and the bridge. */
function fini() {
  sb.assertSandboxed();
  sb.sh('nft', ['delete', 'table', 'inet', TABLE], { allowFail: true });
  sb.sh('ip', ['link', 'del', c.BRIDGE], { allowFail: true });
  if (work) fs.rmSync(work, { recursive: true, force: true });
  work = null;
}

// --- one process per operation ------------------------------------------------------------------

function setupCmds(i) {
  const ns = c.nsName(i); const v = c.vethName(i);
  return [
    ['ip', ['link', 'add', v, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]],
    ['ip', ['link', 'set', v, 'master', c.BRIDGE]],
    ['ip', ['link', 'set', v, 'up']],
    ['ip', ['-n', ns, 'addr', 'add', `${c.ipFor(i)}/${c.PREFIX}`, 'dev', 'eth0']],
    ['ip', ['-n', ns, 'link', 'set', 'lo', 'up']],
    ['ip', ['-n', ns, 'link', 'set', 'eth0', 'up']],
    ['ip', ['-n', ns, 'route', 'add', 'default', 'via', c.GATEWAY]],
    ['nft', ['add', 'element', 'inet', TABLE, MAP, `{ ${element(i)} }`]],
  ];
}
function teardownCmds(i) {
  return [
    ['nft', ['delete', 'element', 'inet', TABLE, MAP, `{ ${c.portFor(i)} }`]],
    ['ip', ['link', 'del', c.vethName(i)]],
  ];
}

/** Sets up container i with one ip/nft process per operation (its namespace must exist). */
function setup(i) { for (const [f, a] of setupCmds(i)) sb.sh(f, a); }
/** Tears down container i: nft delete element, ip link del. */
function teardown(i) { for (const [f, a] of teardownCmds(i)) sb.sh(f, a); }
async function setupAsync(i) { for (const [f, a] of setupCmds(i)) await sb.shAsync(f, a); }
async function teardownAsync(i) { for (const [f, a] of teardownCmds(i)) await sb.shAsync(f, a); }

// --- batch floor -----------------------------------------------------------------------------------

function writeFile(name, text) {
  const p = path.join(work, name);
  fs.writeFileSync(p, text);
  return p;
}

/**
 * Sets up every container in `list` with 1 `ip -batch` + N `ip -n C -batch` + 1 `nft -f`.
 * Returns the time (ms) of each part: { hostBatchMs, nsBatchMs, nftMs, processes }.
 */
function setupAll(list) {
  sb.assertSandboxed();
  const host = list.map((i) => {
    const v = c.vethName(i);
    return `link add ${v} type veth peer name eth0 netns ${c.nsName(i)}\nlink set ${v} master ${c.BRIDGE}\nlink set ${v} up\n`;
  }).join('');
  const nsFiles = list.map((i) => writeFile(`ns-${i}.batch`,
    `addr add ${c.ipFor(i)}/${c.PREFIX} dev eth0\nlink set lo up\nlink set eth0 up\nroute add default via ${c.GATEWAY}\n`));
  const hostFile = writeFile('host-setup.batch', host);
  const nftFile = writeFile('setup.nft', `add element inet ${TABLE} ${MAP} { ${list.map(element).join(', ')} }\n`);
  let t = process.hrtime.bigint();
  sb.sh('ip', ['-batch', hostFile]);
  const hostBatchMs = c.hrms(t);
  t = process.hrtime.bigint();
  list.forEach((i, k) => sb.sh('ip', ['-n', c.nsName(i), '-batch', nsFiles[k]]));
  const nsBatchMs = c.hrms(t);
  t = process.hrtime.bigint();
  sb.sh('nft', ['-f', nftFile]);
  const nftMs = c.hrms(t);
  for (const f of [hostFile, nftFile, ...nsFiles]) fs.unlinkSync(f);
  return { hostBatchMs, nsBatchMs, nftMs, processes: list.length + 2 };
}

/**
 * Tears down every container in `list` with 1 `nft -f` + 1 `ip -batch` of link deletes; with
 * `{ group }`, the batch moves the veths into that link group instead and one `ip link del group G`
 * (a single RTM_DELLINK: one RCU grace period for all) deletes them.
 */
function teardownAll(list, { group } = {}) {
  sb.assertSandboxed();
  const nftFile = writeFile('teardown.nft', `delete element inet ${TABLE} ${MAP} { ${list.map((i) => c.portFor(i)).join(', ')} }\n`);
  const line = (i) => (group === undefined ? `link del ${c.vethName(i)}\n` : `link set ${c.vethName(i)} group ${group}\n`);
  const hostFile = writeFile('host-teardown.batch', list.map(line).join(''));
  let t = process.hrtime.bigint();
  sb.sh('nft', ['-f', nftFile]);
  const nftMs = c.hrms(t);
  t = process.hrtime.bigint();
  sb.sh('ip', ['-batch', hostFile]);
  const hostBatchMs = c.hrms(t);
  fs.unlinkSync(nftFile); fs.unlinkSync(hostFile);
  if (group === undefined) return { nftMs, hostBatchMs, processes: 2 };
  t = process.hrtime.bigint();
  sb.sh('ip', ['link', 'del', 'group', String(group)]);
  return { nftMs, hostBatchMs, delGroupMs: c.hrms(t), processes: 3 };
}

const ip = { name: 'ip', init, fini, setup, teardown, setupAsync, teardownAsync, info: () => ({ processesPerSetup: 8, processesPerTeardown: 2 }) };
const ipbatch = {
  name: 'ipbatch', init, fini, setupAll, teardownAll: (list) => teardownAll(list), batch: true,
  // Single-container forms, so the scaling and verify code can treat it like the others.
  setup: (i) => { setupAll([i]); }, teardown: (i) => { teardownAll([i]); },
  info: () => ({ processesPerSetupOfN: 'N + 2', processesPerTeardownOfN: 2 }),
};

module.exports = {
  name: 'ip', init, fini, setup, teardown, setupAsync, teardownAsync, setupAll, teardownAll,
  tableScript, TABLE, MAP, peers: { ip, ipbatch },
};
