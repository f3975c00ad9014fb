'use strict';
// The sandbox every peer benchmark runs in.
//
// ensureSandbox() re-executes the current script under `unshare --net --mount --fork`, so the process
// gets a brand-new network namespace (which plays the "host" for the peers) and a private mount
// namespace (so /run/netns/* bind mounts, the sysfs view and the work tmpfs never appear on the
// machine). Inside, it refuses to do anything unless its network namespace differs from the
// machine's, and on first entry it also checks the namespace is fresh (only `lo`).
//
// SAFETY: nothing in this directory touches the machine's own network namespace. Every helper that
// changes kernel state calls assertSandboxed() first.

const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync, spawn, spawnSync } = require('child_process');

const ENV_MARK = 'NETMODES_PB_SANDBOX';        // '1' once inside
const ENV_HOST_INO = 'NETMODES_PB_HOST_NETNS'; // inode of the machine's netns, recorded before unshare
const ENV_HOST_MNT = 'NETMODES_PB_HOST_MNTNS'; // inode of the machine's mount ns, recorded before unshare
const ENV_FRESH = 'NETMODES_PB_FRESH';         // one-shot: set by the re-exec, consumed by the first check
const ENV_WORK = 'NETMODES_PB_WORKDIR';        // empty dir made outside; a tmpfs is mounted on it inside

let verified = false;
let sandboxNetns = null;
let workDir = null;

function nsInode(kind, pid = 'self') {
  return fs.statSync(`/proc/${pid}/ns/${kind}`, { bigint: true }).ino;
}
function netnsInode(pid = 'self') { return nsInode('net', pid); }

function initInode(kind) {
  try { return nsInode(kind, 1); } catch { return null; } // unreadable on some VMs (PID 1 not dumpable)
}

// ---------------------------------------------------------------------------------------------
// Tools and packages

const TOOLS = [
  { name: 'ip', pkg: 'iproute2', paths: ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'] },
  { name: 'nft', pkg: 'nftables', paths: ['/usr/sbin/nft', '/sbin/nft'] },
  { name: 'iptables', pkg: 'iptables', paths: ['/usr/sbin/iptables', '/sbin/iptables'] },
  { name: 'netavark', pkg: 'netavark', paths: ['/usr/lib/podman/netavark', '/usr/libexec/podman/netavark'] },
  { name: 'cni-bridge', pkg: 'containernetworking-plugins', paths: ['/usr/lib/cni/bridge', '/opt/cni/bin/bridge'] },
  { name: 'aardvark-dns', pkg: 'aardvark-dns', paths: ['/usr/lib/podman/aardvark-dns', '/usr/libexec/podman/aardvark-dns'] },
  { name: 'unshare', pkg: 'util-linux', paths: ['/usr/bin/unshare', '/bin/unshare'] },
  { name: 'sysctl', pkg: 'procps', paths: ['/usr/sbin/sysctl', '/sbin/sysctl'] },
];

function findTool(name) {
  const t = TOOLS.find((x) => x.name === name);
  if (!t) throw new Error(`unknown tool ${name}`);
  return t.paths.find((p) => fs.existsSync(p)) || null;
}

/** Installs the peers' Debian packages when a tool is missing (must run outside the sandbox: it needs the network). */
function ensurePackages({ log = console.error, tools = null } = {}) {
  const wanted = tools ? TOOLS.filter((t) => tools.includes(t.name)) : TOOLS;
  const missing = wanted.filter((t) => !t.paths.some((p) => fs.existsSync(p)));
  if (!missing.length) return [];
  const pkgs = [...new Set(missing.map((t) => t.pkg))];
  log(`[sandbox] missing ${missing.map((t) => t.name).join(', ')}: installing ${pkgs.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'inherit', 'inherit'], env });
  execFileSync('apt-get', ['install', '-y', '-qq', ...pkgs], { stdio: ['ignore', 'inherit', 'inherit'], env });
  const still = wanted.filter((t) => !t.paths.some((p) => fs.existsSync(p)));
  if (still.length) throw new Error(`still missing after install: ${still.map((t) => t.name).join(', ')}`);
  return pkgs;
}

// ---------------------------------------------------------------------------------------------
// Sandbox entry

function isSandboxed() {
  return verified;
}

/** Throws unless this process was verified to be inside its own sandbox namespace. */
function assertSandboxed() {
  if (!verified) throw new Error('refusing: not inside the benchmark sandbox (call ensureSandbox() first)');
  // Cheap re-check: the namespaces of this process must still be the sandbox's.
  if (netnsInode() !== sandboxNetns) throw new Error('refusing: no longer in the sandbox network namespace');
}

/** Namespace inode of the oldest ancestor process (below PID 1) whose /proc entry we can read. */
function topAncestorInode(kind) {
  let pid = process.pid; let found = null;
  for (let guard = 0; guard < 256 && pid > 1; guard++) {
    try { found = nsInode(kind, pid); } catch { /* unreadable: keep the last readable one */ }
    let ppid;
    try { ppid = Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[1]); } catch { break; }
    pid = ppid;
  }
  return found;
}

function verifyInside() {
  // Both the network and the mount namespace must differ from the machine's. Compared with: the
  // inodes recorded before unshare, PID 1's (when readable) and the oldest readable ancestor's
  // (the shell that started us). Without at least one reference, refuse.
  for (const [kind, envName] of [['net', ENV_HOST_INO], ['mnt', ENV_HOST_MNT]]) {
    const self = nsInode(kind);
    const refs = {
      recorded: process.env[envName] ? BigInt(process.env[envName]) : null,
      init: initInode(kind),
      ancestor: topAncestorInode(kind),
    };
    if (refs.recorded === null && refs.init === null) {
      throw new Error(`refusing: cannot tell the machine ${kind} namespace apart (no recorded inode, /proc/1/ns/${kind} unreadable)`);
    }
    for (const [what, ino] of Object.entries(refs)) {
      if (ino !== null && ino === self) throw new Error(`refusing: ${kind} namespace ${self} is the machine's (same as ${what})`);
    }
  }
  if (initInode('mnt') === null) {
    // PID 1's mount table is often readable even when its ns links are not: same table, same namespace.
    try {
      if (fs.readFileSync('/proc/1/mountinfo', 'utf8') === fs.readFileSync('/proc/self/mountinfo', 'utf8')) {
        throw new Error('refusing: mount namespace is the machine\'s (same mount table as PID 1)');
      }
    } catch (e) { if (/refusing/.test(e.message)) throw e; }
  }
  if (process.env[ENV_FRESH] === '1') {
    // First entry after unshare: the namespace must be brand new (nothing but lo).
    const devs = fs.readFileSync('/proc/self/net/dev', 'utf8').split('\n').slice(2)
      .map((l) => l.split(':')[0].trim()).filter(Boolean);
    if (devs.length !== 1 || devs[0] !== 'lo') throw new Error(`refusing: namespace is not fresh (links: ${devs.join(',')})`);
    delete process.env[ENV_FRESH];
  }
}

function setupInside() {
  // Private mount namespace: a tmpfs on /run/netns (named namespaces stay here), sysfs of this netns
  // on /sys (so /sys/class/net shows the sandbox's links, never the machine's), a tmpfs work dir.
  const mi = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  const rootLine = mi.split('\n').find((l) => l.split(' ')[4] === '/');
  if (rootLine && / shared:/.test(rootLine.split(' - ')[0])) throw new Error('refusing: / is a shared mount (unshare did not make mounts private)');
  fs.mkdirSync('/run/netns', { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0755', 'pbench-netns', '/run/netns']);
  execFileSync('mount', ['-t', 'sysfs', 'pbench-sys', '/sys']);
  workDir = process.env[ENV_WORK];
  if (!workDir || !fs.existsSync(workDir)) {
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbench-'));
  }
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256m,mode=0700', 'pbench-work', workDir]);
  sh('ip', ['link', 'set', 'lo', 'up']);
  sh('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
}

/**
 * Makes sure this process runs inside its own sandbox. Outside, it installs missing packages,
 * then re-executes this same script under unshare and exits with the child's status (never returns).
 * Inside, it verifies the namespace and prepares it; returns { netnsInode, hostInode, workDir }.
 */
/** `tools`: the names (TOOLS) this run needs; default all of them. */
function ensureSandbox({ log = console.error, tools = null } = {}) {
  if (verified) return info();
  if (process.env[ENV_MARK] !== '1') {
    ensurePackages({ log, tools });
    const hostIno = netnsInode();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pbench-'));
    const unshare = findTool('unshare');
    const args = ['--net', '--mount', '--propagation', 'private', '--fork', '--kill-child',
      process.execPath, ...process.execArgv, ...process.argv.slice(1)];
    const env = {
      ...process.env, [ENV_MARK]: '1', [ENV_HOST_INO]: String(hostIno), [ENV_HOST_MNT]: String(nsInode('mnt')),
      [ENV_FRESH]: '1', [ENV_WORK]: dir,
    };
    const r = spawnSync(unshare, args, { stdio: 'inherit', env });
    try { fs.rmdirSync(dir); } catch { /* still mounted or not empty: leave it */ }
    if (r.error) throw r.error;
    process.exit(r.status === null ? 1 : r.status);
  }
  verifyInside();
  verified = true;
  sandboxNetns = netnsInode();
  setupInside();
  return info();
}

/**
 * For a child process of a sandboxed script (same namespaces): verifies it is inside and takes
 * the parent's work directory, without mounting anything again.
 */
function joinSandbox() {
  if (verified) return info();
  if (process.env[ENV_MARK] !== '1') throw new Error('refusing: joinSandbox() outside a sandbox (run the parent script)');
  delete process.env[ENV_FRESH];
  verifyInside();
  verified = true;
  sandboxNetns = netnsInode();
  workDir = process.env[ENV_WORK];
  return info();
}

function info() {
  return { netnsInode: String(netnsInode()), hostInode: process.env[ENV_HOST_INO], workDir };
}

/** The sandbox's tmpfs work directory (a fresh subdirectory when `name` is given). */
function workPath(name) {
  assertSandboxed();
  if (!name) return workDir;
  const p = fs.mkdtempSync(path.join(workDir, `${name}-`));
  return p;
}

// ---------------------------------------------------------------------------------------------
// Processes

function fmtCmd(file, args) { return [file, ...args].join(' '); }

/**
 * Runs a command synchronously inside the sandbox; returns its stdout (string).
 * opts: { input, env, allowFail } — allowFail returns null instead of throwing.
 */
function sh(file, args = [], opts = {}) {
  if (!verified) throw new Error('refusing: sh() outside the sandbox');
  try {
    return execFileSync(file, args, {
      input: opts.input, env: opts.env || process.env, encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 64 << 20,
    });
  } catch (e) {
    if (opts.allowFail) return null;
    const err = new Error(`${fmtCmd(file, args)}: exit ${e.status}${e.signal ? ` (${e.signal})` : ''}: ${(e.stderr || '').trim() || (e.stdout || '').trim()}`);
    err.stderr = e.stderr; err.stdout = e.stdout; err.status = e.status;
    throw err;
  }
}

/** Async variant of sh() with child_process.spawn; resolves stdout. */
function shAsync(file, args = [], opts = {}) {
  if (!verified) return Promise.reject(new Error('refusing: shAsync() outside the sandbox'));
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: opts.env || process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = ''; let errOut = '';
    child.stdout.setEncoding('utf8').on('data', (d) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { errOut += d; });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) return resolve(out);
      if (opts.allowFail) return resolve(null);
      const err = new Error(`${fmtCmd(file, args)}: exit ${code}${signal ? ` (${signal})` : ''}: ${errOut.trim() || out.trim()}`);
      err.stderr = errOut; err.stdout = out; err.status = code;
      reject(err);
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input === undefined ? '' : opts.input);
  });
}

// ---------------------------------------------------------------------------------------------
// Named namespaces (bind mounts under the sandbox's private /run/netns)

function netnsAdd(name) { assertSandboxed(); sh('ip', ['netns', 'add', name]); }
function netnsDel(name) { assertSandboxed(); sh('ip', ['netns', 'del', name]); }
function netnsAddAsync(name) { assertSandboxed(); return shAsync('ip', ['netns', 'add', name]); }
function netnsDelAsync(name) { assertSandboxed(); return shAsync('ip', ['netns', 'del', name]); }
/** Many namespaces with one `ip -batch` of `netns add` / `netns del` lines (thousands in seconds). */
function netnsAddMany(names) { assertSandboxed(); if (names.length) sh('ip', ['-batch', '-'], { input: names.map((n) => `netns add ${n}\n`).join('') }); }
function netnsDelMany(names) { assertSandboxed(); if (names.length) sh('ip', ['-batch', '-'], { input: names.map((n) => `netns del ${n}\n`).join('') }); }
function netnsList() {
  assertSandboxed();
  return fs.readdirSync('/run/netns');
}

/** Links of the sandbox "host" namespace (names). */
function sandboxLinks() {
  assertSandboxed();
  return JSON.parse(sh('ip', ['-j', 'link', 'show'])).map((l) => l.ifname);
}

/**
 * Brings the sandbox host back to a clean slate between peers: deletes every link but lo (and `keep`),
 * and flushes the whole nftables ruleset of the sandbox namespace (iptables-nft tables included).
 * Returns what it removed.
 */
function resetSandbox({ keep = [] } = {}) {
  assertSandboxed();
  const removed = { links: [], nft: false };
  for (const l of sandboxLinks()) {
    if (l === 'lo' || keep.includes(l)) continue;
    if (sh('ip', ['link', 'del', l], { allowFail: true }) !== null) removed.links.push(l);
  }
  const rules = sh('nft', ['list', 'ruleset']);
  if (rules.trim()) { sh('nft', ['flush', 'ruleset']); removed.nft = true; }
  return removed;
}

module.exports = {
  ensureSandbox, joinSandbox, ensurePackages, isSandboxed, assertSandboxed, workPath, findTool,
  sh, shAsync, netnsAdd, netnsDel, netnsAddMany, netnsDelMany, netnsAddAsync, netnsDelAsync, netnsList, sandboxLinks, resetSandbox,
};
