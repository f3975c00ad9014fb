'use strict';
// Correctness check of one peer, inside the sandbox: after setup, each container has eth0 with its
// address and a default route via the gateway, and a TCP connection from a separate "outside"
// namespace to the sandbox host's published port reaches a listener in the container; after
// teardown, the container's eth0 is gone, no container link is left on the host, the port is closed
// again and no nftables element names the containers' addresses.
//
// Outside namespace `pbout`: veth pbout0 (sandbox host, 198.18.0.1/24) <-> eth0 (pbout, 198.18.0.2/24),
// default route via 198.18.0.1. Only addresses inside namespaces made here are ever contacted.

const { spawn } = require('child_process');
const sb = require('./sandbox');
const c = require('./common');

const OUTSIDE_NS = 'pbout';
const OUTSIDE_LINK = 'pbout0';
const HOST_ADDR = '198.18.0.1';
const OUTSIDE_ADDR = '198.18.0.2';

const SERVER = `
const net = require('net');
const tag = process.argv[1];
net.createServer((s) => { s.end(tag + '\\n'); }).listen(${c.CONTAINER_PORT}, '0.0.0.0', () => console.log('ready'));
`;
const CLIENT = `
const net = require('net');
const [host, port] = [process.argv[1], Number(process.argv[2])];
const s = net.connect({ host, port, timeout: 3000 });
let got = '';
s.on('data', (d) => { got += d; });
s.on('end', () => { console.log(JSON.stringify({ ok: true, got: got.trim() })); });
s.on('timeout', () => { console.log(JSON.stringify({ ok: false, err: 'ETIMEDOUT' })); process.exit(0); });
s.on('error', (e) => { console.log(JSON.stringify({ ok: false, err: e.code || e.message })); });
`;

/** Creates the outside namespace and its veth to the sandbox host (idempotent). */
function ensureOutside() {
  sb.assertSandboxed();
  if (sb.netnsList().includes(OUTSIDE_NS)) return;
  sb.netnsAdd(OUTSIDE_NS);
  sb.sh('ip', ['link', 'add', OUTSIDE_LINK, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', OUTSIDE_NS]);
  sb.sh('ip', ['addr', 'add', `${HOST_ADDR}/24`, 'dev', OUTSIDE_LINK]);
  sb.sh('ip', ['link', 'set', OUTSIDE_LINK, 'up']);
  sb.sh('ip', ['-n', OUTSIDE_NS, 'addr', 'add', `${OUTSIDE_ADDR}/24`, 'dev', 'eth0']);
  sb.sh('ip', ['-n', OUTSIDE_NS, 'link', 'set', 'lo', 'up']);
  sb.sh('ip', ['-n', OUTSIDE_NS, 'link', 'set', 'eth0', 'up']);
  sb.sh('ip', ['-n', OUTSIDE_NS, 'route', 'add', 'default', 'via', HOST_ADDR]);
}

function removeOutside() {
  sb.sh('ip', ['link', 'del', OUTSIDE_LINK], { allowFail: true });
  sb.sh('ip', ['netns', 'del', OUTSIDE_NS], { allowFail: true });
}

/** Starts a listener on port 80 in container i that answers `pbench-<i>`; resolves the child process. */
function startListener(i) {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', c.nsName(i), process.execPath, '-e', SERVER, `pbench-${i}`],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    const timer = setTimeout(() => { child.kill(); reject(new Error(`listener in ${c.nsName(i)} not ready: ${err}`)); }, 5000);
    child.stderr.on('data', (d) => { err += d; });
    child.stdout.on('data', (d) => { if (/ready/.test(String(d))) { clearTimeout(timer); resolve(child); } });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`listener exited ${code}: ${err}`)); });
  });
}

async function connectFromOutside(port) {
  const out = await sb.shAsync('ip', ['netns', 'exec', OUTSIDE_NS, process.execPath, '-e', CLIENT, HOST_ADDR, String(port)]);
  return JSON.parse(out.trim().split('\n').pop());
}

function containerState(i) {
  const ns = c.nsName(i);
  const links = JSON.parse(sb.sh('ip', ['-n', ns, '-j', 'addr', 'show']));
  const eth0 = links.find((l) => l.ifname === 'eth0');
  const routes = JSON.parse(sb.sh('ip', ['-n', ns, '-j', 'route', 'show', 'default']));
  return {
    eth0Up: !!eth0 && eth0.flags.includes('UP'),
    addrs: eth0 ? eth0.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`) : [],
    defaultVia: routes.map((r) => r.gateway).filter(Boolean),
    loUp: !!links.find((l) => l.ifname === 'lo' && l.flags.includes('UP')),
  };
}

/**
 * Verifies `peer` with containers `list` (namespaces are created and deleted here).
 * Returns { peer, ok, checks: [{ what, ok, detail }] }.
 */
async function verifyPeer(peer, { list = [0, 1], log = console.error } = {}) {
  sb.assertSandboxed();
  ensureOutside();
  const checks = [];
  const check = (what, ok, detail) => { checks.push({ what, ok: !!ok, detail }); log(`  [${ok ? 'ok' : 'FAIL'}] ${peer.name}: ${what}${detail ? ` (${JSON.stringify(detail)})` : ''}`); };
  for (const i of list) sb.netnsAdd(c.nsName(i));
  const listeners = [];
  await peer.init();
  try {
    if (peer.setupAll) await peer.setupAll(list); else for (const i of list) await peer.setup(i);
    const expected = new Map(list.map((i) => [i, (peer.addressOf && peer.addressOf(i)) || `${c.ipFor(i)}/${c.PREFIX}`]));
    for (const i of list) {
      const st = containerState(i);
      check(`c${i} eth0 up with ${expected.get(i)}`, st.eth0Up && st.addrs.includes(expected.get(i)), st.addrs);
      check(`c${i} default route via ${c.GATEWAY}`, st.defaultVia.includes(c.GATEWAY), st.defaultVia);
      check(`c${i} lo up`, st.loUp);
      listeners.push(await startListener(i));
    }
    for (const i of list) {
      const r = await connectFromOutside(c.portFor(i));
      check(`outside -> ${HOST_ADDR}:${c.portFor(i)} reaches c${i}`, r.ok && r.got === `pbench-${i}`, r);
    }
    if (peer.teardownAll) await peer.teardownAll(list); else for (const i of list) await peer.teardown(i);
    for (const i of list) {
      const st = containerState(i);
      check(`c${i} eth0 gone after teardown`, !st.addrs.length && !st.defaultVia.length, st);
      const r = await connectFromOutside(c.portFor(i));
      check(`port ${c.portFor(i)} closed after teardown`, !r.ok, r);
    }
    const links = sb.sandboxLinks().filter((l) => l !== 'lo' && l !== c.BRIDGE && l !== OUTSIDE_LINK);
    check('no container link left on the host after teardown', !links.length, links);
    const rules = sb.sh('nft', ['list', 'ruleset']);
    const addrs = list.map((i) => expected.get(i).split('/')[0]);
    const stale = addrs.filter((a) => new RegExp(`\\b${a.replace(/\./g, '\\.')}\\b`).test(rules));
    check('no nftables rule or element left for the containers', !stale.length, stale);
  } finally {
    for (const l of listeners) l.kill();
    await peer.fini();
    for (const i of list) sb.netnsDel(c.nsName(i));
    sb.resetSandbox({ keep: [OUTSIDE_LINK] });
  }
  return { peer: peer.name, ok: checks.every((x) => x.ok), checks };
}

module.exports = { verifyPeer, ensureOutside, removeOutside, containerState, startListener, connectFromOutside, OUTSIDE_NS, HOST_ADDR, OUTSIDE_ADDR };
