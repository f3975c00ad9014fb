/**
 * The library's side of the embedded DNS server (lib/dns/server.ts): start it when a network
 * needs it and none runs, stop it with the last network, tell whether it runs.
 *
 * "Runs" means "holds the exclusive flock on dns/server.lock" (paths.ts): the kernel drops it
 * with the process, so a SIGKILLed server is seen as gone at once and the next connect() or
 * reconcile() starts another. The server is a node process running our script, detached (its
 * own session, no terminal, stdio closed once it said `ready`), in this process's network and
 * mount namespaces; nothing else is ever spawned.
 */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { NetmodesError } from '../errors';
import { DEFAULT_NAMESERVERS } from '../dnsfiles';
import { parseIP } from '../net/addr';
import { native } from '../native';
import * as store from '../state/store';
import { DnsStatus, dnsLockFile, dnsPidFile, dnsServerScript, dnsStatusFile } from './paths';

export type { DnsStatus } from './paths';

const START_MS = 5000;

/**
 * The op to append (last) to a batch to learn whether the server runs: its result is false when
 * it does, or an fd when nobody held the lock (pass it to {@link lockProbeResult}).
 */
export function lockProbeOp(): store.FsOp {
  return { op: 'lock', file: dnsLockFile(), exclusive: true };
}

/** Interprets a lockProbeOp result (releasing the lock it may hold): true when the server runs. */
export function lockProbeResult(r: store.FsResult): boolean {
  if (typeof r === 'number') {
    native().unlock(r);
    return false;
  }
  return r === false;
}

/** True when a DNS server runs for this state directory (and namespace). */
export async function dnsServerRunning(): Promise<boolean> {
  const [r] = await store.batch([lockProbeOp()]);
  return lockProbeResult(r);
}

/** What the server serves, or undefined when none runs. */
export async function dnsServerStatus(): Promise<DnsStatus | undefined> {
  if (!(await dnsServerRunning())) return undefined;
  return store.readJson<DnsStatus>(dnsStatusFile());
}

/** Starts a server; resolves once it said `ready` (or `busy`: another one won the race). */
function startServer(): Promise<void> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, NETMODES_STATE_DIR: store.stateDir() };
    delete env.NETMODES_FAULT; // the test-only fault hook is the creator's, not the server's
    const child = spawn(process.execPath, [dnsServerScript()], { detached: true, stdio: ['ignore', 'pipe', 'ignore'], env });
    let out = '';
    const t = setTimeout(() => finish(new NetmodesError('EDNSSTART', `the DNS server did not get ready within ${START_MS} ms`)), START_MS);
    const finish = (err?: Error) => {
      clearTimeout(t);
      child.stdout!.destroy();
      child.unref();
      if (err) reject(err);
      else resolve();
    };
    child.on('error', (e) => finish(new NetmodesError('EDNSSTART', `cannot start the DNS server: ${e.message}`, { cause: e })));
    child.on('exit', (code) => {
      if (!/^(ready|busy)\n/.test(out)) finish(new NetmodesError('EDNSSTART', `the DNS server exited (${code}) before it was ready`));
    });
    child.stdout!.on('data', (d) => {
      out += d;
      if (/^(ready|busy)\n/.test(out)) finish();
    });
  });
}

/**
 * The server's pid from its pid file, when that process is a DNS server indeed: a pid file left by
 * a killed server may name a process that took the pid over since (it must get no signal).
 */
async function readPid(): Promise<number | undefined> {
  const t = await fsp.readFile(dnsPidFile(), 'utf8').catch(() => '');
  const pid = Number(t.trim());
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  const cmd = await fsp.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return cmd.split('\0').includes(dnsServerScript()) ? pid : undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Makes sure a server runs and, when `network` (and its id) is given, that it listens for it.
 * Throws NetmodesError EDNSSTART when the server cannot start, or cannot listen on the
 * network's gateway (port 53 taken there by another program, say).
 */
export async function ensureDnsServer(network?: { name: string; id: string }, timeoutMs = START_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let nudged = false;
  for (;;) {
    if (!(await dnsServerRunning())) {
      await startServer();
      nudged = true; // a new server has scanned the store already
    }
    if (!network) return;
    const st = await store.readJson<DnsStatus>(dnsStatusFile());
    const n = st?.networks[network.name];
    if (n && n.id === network.id) {
      if (n.listening.length) return;
      if (n.error) throw new NetmodesError('EDNSSTART', `the DNS server cannot listen on network ${network.name}'s gateway: ${n.error}`);
    }
    if (!nudged) {
      // A running server looks at the store every 250 ms; a SIGHUP makes it look now.
      const pid = await readPid();
      if (pid) {
        try {
          process.kill(pid, 'SIGHUP');
        } catch {
          /* exited meanwhile: the next round starts another */
        }
      }
      nudged = true;
    }
    if (Date.now() > deadline) throw new NetmodesError('EDNSSTART', `the DNS server did not take up network ${network.name} within ${timeoutMs} ms`);
    await sleep(20);
  }
}

/**
 * Stops the server (SIGTERM, then SIGKILL after 3 s) and waits until it is gone. Resolves false
 * when none ran. Networks with embeddedDns stay as they are: their next connect() or
 * reconcile() starts a server again.
 */
export async function stopDnsServer(): Promise<boolean> {
  if (!(await dnsServerRunning())) return false;
  const pid = await readPid();
  let deadline = Date.now() + 3000;
  let sig: NodeJS.Signals = 'SIGTERM';
  for (;;) {
    if (pid) {
      try {
        process.kill(pid, sig);
      } catch {
        /* gone */
      }
    }
    await sleep(20);
    if (!(await dnsServerRunning())) return true;
    if (Date.now() > deadline) {
      // Only a process stuck in the kernel outlives SIGKILL for seconds, or a lock held by a
      // process the pid file does not name.
      if (sig === 'SIGKILL') throw new NetmodesError('EDNSSTOP', `the DNS server (pid ${pid ?? '?'}) did not stop`);
      sig = 'SIGKILL';
      deadline = Date.now() + 2000;
    }
  }
}

/**
 * The upstreams of an endpoint: `servers` when given, else the nameservers of the host's
 * resolv.conf text, loopback ones included (the server runs in the host's namespace, where
 * 127.0.0.53 answers), else DEFAULT_NAMESERVERS.
 */
export function upstreamsFor(hostResolvConfText: string, servers: string[] | undefined): string[] {
  if (servers && servers.length) return servers.map((s, i) => parseIP(s, `servers[${i}]`).address);
  const out: string[] = [];
  for (const raw of hostResolvConfText.split('\n')) {
    const [k, a] = raw.trim().split(/\s+/);
    if (k !== 'nameserver' || !a) continue;
    try {
      out.push(parseIP(a, 'nameserver').address);
    } catch {
      /* a zone id or garbage: not usable */
    }
  }
  return out.length ? out : [...DEFAULT_NAMESERVERS];
}
