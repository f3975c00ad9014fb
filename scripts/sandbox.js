// The sandbox every test, benchmark and demo runs in: a private network namespace (the "host"
// of the tests) and a private mount namespace with tmpfs over /run/netns and /run/netmodes, so
// nothing can appear in the machine's own network or in its `ip netns list`.
'use strict';
const fs = require('node:fs');
const { spawnSync, execFileSync } = require('node:child_process');

function nsIno(p) {
  return fs.statSync(p).ino;
}

/**
 * True when this process runs in the sandbox namespace that enterSandbox() made: the namespace
 * whose inode the sandbox recorded after checking it was fresh (not the parent's, nothing but lo).
 */
function inSandbox() {
  const ino = process.env.NETMODES_SANDBOX_INO;
  return !!ino && String(nsIno('/proc/self/ns/net')) === ino;
}

/** Refuses to go on unless sandboxed (for code that must never run on the real host). */
function assertSandboxed() {
  if (!inSandbox()) {
    console.error('refusing to run outside the netmodes sandbox (unshare --net --mount)');
    process.exit(3);
  }
}

/** Re-runs `script args` under unshare; returns the exit code. A sandbox that cannot be made fails. */
function enterSandbox(script, args) {
  if (process.env.NETMODES_SANDBOX_PARENT_INO) {
    console.error('the sandbox did not take (still in the namespace it was started from): refusing');
    return 3;
  }
  const r = spawnSync(
    'unshare',
    ['--net', '--mount', '--propagation', 'private', '--fork', '--kill-child', process.execPath, ...process.execArgv, script, ...args],
    {
      stdio: 'inherit',
      env: {
        ...process.env,
        NETMODES_SANDBOX_PARENT_PID: String(process.pid),
        NETMODES_SANDBOX_PARENT_INO: String(nsIno('/proc/self/ns/net')),
        NETMODES_SANDBOX_PARENT_MNT: String(nsIno('/proc/self/ns/mnt')),
        // scripts/sanitize.sh: sanitizer runtimes for the sandboxed node only (see prepareSandbox)
        ...(process.env.NETMODES_ASAN_PRELOAD ? { LD_PRELOAD: process.env.NETMODES_ASAN_PRELOAD } : {}),
      },
    },
  );
  if (r.error || r.status === null) {
    console.error(`cannot create the sandbox (unshare --net --mount): ${r.error ? r.error.message : 'killed by ' + r.signal}`);
    console.log('0 passed, 1 failed');
    return 1;
  }
  return r.status;
}

/** Inside the new namespace: check it is fresh, then private tmpfs for namespace and state files, lo up. */
function prepareSandbox() {
  const own = String(nsIno('/proc/self/ns/net'));
  // /proc/self/net/dev lists the interfaces of this process's network namespace (no `ip` needed).
  const links = fs.readFileSync('/proc/self/net/dev', 'utf8').split('\n').slice(2).map((l) => l.split(':')[0].trim()).filter(Boolean);
  // Both namespaces must be new: a private network namespace alone would still let the tmpfs
  // mounts below land in the machine's mount namespace.
  const mnt = String(nsIno('/proc/self/ns/mnt'));
  const parent = Number(process.env.NETMODES_SANDBOX_PARENT_PID); // the process that ran unshare
  let parentNet = process.env.NETMODES_SANDBOX_PARENT_INO;
  let parentMnt = process.env.NETMODES_SANDBOX_PARENT_MNT;
  try {
    parentNet = String(nsIno(`/proc/${parent}/ns/net`));
    parentMnt = String(nsIno(`/proc/${parent}/ns/mnt`));
  } catch {
    /* the parent is gone: fall back to what it recorded */
  }
  if (!parentMnt || own === process.env.NETMODES_SANDBOX_PARENT_INO || own === parentNet || mnt === parentMnt ||
      mnt === process.env.NETMODES_SANDBOX_PARENT_MNT || links.some((l) => l !== 'lo')) {
    console.error('refusing: this is not a fresh network namespace (the sandbox did not take)');
    process.exit(3);
  }
  process.env.NETMODES_SANDBOX_INO = own;
  // The sanitizer runtimes are loaded in this process already; the tools it runs (ip, nft) must
  // not inherit them.
  if (process.env.NETMODES_ASAN_PRELOAD) delete process.env.LD_PRELOAD;
  for (const dir of ['/run/netns', '/run/netmodes']) {
    fs.mkdirSync(dir, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'mode=755,size=64m', 'netmodes-sandbox', dir]);
  }
}

/**
 * What the suite left behind in the sandbox: named namespaces, non-lo links, nftables tables.
 * The kernel destroys a deleted namespace's devices asynchronously, so a leak must persist for a
 * few seconds before it counts.
 */
function leakCheck() {
  // A process the suite left running is a leak; kill it first, since it may hold what follows.
  let strays = strayProcesses();
  for (let i = 0; i < 25 && strays.length; i++) {
    spawnSync('sleep', ['0.2']);
    strays = strayProcesses();
  }
  const killed = strays.length ? killStrays() : [];
  let out = leaksNow();
  for (let i = 0; i < 30 && out.length; i++) {
    spawnSync('sleep', ['0.2']);
    out = leaksNow();
  }
  if (killed.length) out.unshift(`processes (killed): ${killed.join('; ')}`);
  return out;
}

/**
 * Processes other than this one and its ancestors that live in this sandbox's network namespace
 * (servers a test started, such as the CNI plugin's resident server, and did not stop): listed,
 * then killed, so that nothing outlives the sandbox.
 */
function strayProcesses() {
  const own = fs.statSync('/proc/self/ns/net').ino;
  const ancestors = new Set();
  for (let pid = process.pid; pid > 1; ) {
    ancestors.add(pid);
    try {
      pid = Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[1]);
    } catch {
      break;
    }
  }
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    const pid = Number(d);
    if (!pid || ancestors.has(pid)) continue;
    try {
      if (fs.statSync(`/proc/${pid}/ns/net`).ino !== own) continue;
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (/\) Z /.test(stat)) continue; // a zombie waiting for its parent
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
      out.push({ pid, cmd });
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/** Kills what strayProcesses() found; returns their descriptions. */
function killStrays() {
  const strays = strayProcesses();
  for (const s of strays) {
    try {
      process.kill(s.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  return strays.map((s) => `${s.pid} ${s.cmd.slice(0, 120)}`);
}

function leaksNow() {
  const out = [];
  const ns = fs.existsSync('/run/netns') ? fs.readdirSync('/run/netns') : [];
  if (ns.length) out.push(`namespaces: ${ns.join(' ')}`);
  const links = JSON.parse(execFileSync('ip', ['-j', 'link', 'show']).toString()).filter((l) => l.ifname !== 'lo');
  if (links.length) out.push(`links: ${links.map((l) => l.ifname).join(' ')}`);
  const tables = execFileSync('nft', ['list', 'tables']).toString().trim();
  if (tables) out.push(`nftables: ${tables.replace(/\n/g, ', ')}`);
  return out;
}

if (process.env.NETMODES_SANDBOX_PARENT_INO && !process.env.NETMODES_SANDBOX_INO) prepareSandbox();

module.exports = { inSandbox, assertSandboxed, enterSandbox, leakCheck, strayProcesses, killStrays };
