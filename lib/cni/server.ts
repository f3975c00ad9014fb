/**
 * The resident CNI server: one Node process per host network namespace that serves the plugin
 * executable's calls over a unix socket, so that a call costs a small C program's start and one
 * round trip instead of starting Node and loading the library (about 165 ms here).
 *
 * The plugin executable (native/cni/cni.c) starts it when it is absent and falls back to running
 * the verb in a Node process of its own when it cannot reach one: the server is never needed for
 * correctness. It keeps nothing that the state store does not: killed at any moment, the next
 * call starts a new one; what a call in flight left half-made is what the library's rollback,
 * DEL, GC and reconcile() finish (docs/reliability.md).
 *
 * Files, in STATE/cni/ (STATE = NETMODES_STATE_DIR or /run/netmodes), per network namespace
 * inode INO (a server serves only callers of its own namespace):
 *   server-INO.sock  the socket
 *   server-INO.lock  flock'ed by the running server (so two never run), holds its pid
 *   server-INO.log   its stderr
 *
 * Frames (integers little-endian u32):
 *   request   "NMC1" envLen env stdinLen stdin   env: NUL-separated KEY=VALUE (CNI_*, NETMODES_CNI_*)
 *   response  "NMR1" status outLen out
 * A request whose env has NETMODES_CNI_CONTROL=stop makes the server reply and exit; =ping only
 * replies. A caller from another network namespace (NETMODES_CNI_NETNS_INO) gets status 255 and
 * runs the verb itself.
 */
import * as net from 'node:net';
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as store from '../state/store';
import { stateDir } from '../state/store';
import { handle } from './plugin';
import { listBridgeNetworks, openBridgeNetwork, reapDetached } from '../modes/bridge';
import { native } from '../native';

const MAX_ENV = 64 * 1024;
const MAX_STDIN = 8 * 1024 * 1024;
/** Status of a reply to a caller of another network namespace. */
export const WRONG_NAMESPACE = 255;

export function netnsIno(): string {
  return String(fs.statSync('/proc/self/ns/net').ino);
}

/** The server's files for this process's network namespace. */
export function serverPaths(ino = netnsIno()): { dir: string; sock: string; lock: string; log: string } {
  const dir = path.join(stateDir(), 'cni');
  return { dir, sock: path.join(dir, `server-${ino}.sock`), lock: path.join(dir, `server-${ino}.lock`), log: path.join(dir, `server-${ino}.log`) };
}

function frame(status: number, out: string): Buffer {
  const body = Buffer.from(out);
  const b = Buffer.alloc(12 + body.length);
  b.write('NMR1', 0, 'latin1');
  b.writeUInt32LE(status >>> 0, 4);
  b.writeUInt32LE(body.length, 8);
  body.copy(b, 12);
  return b;
}

/** Parses a request once it is whole: undefined while bytes are missing; throws on a bad frame. */
export function parseRequest(buf: Buffer): { env: Record<string, string>; stdin: string } | undefined {
  if (buf.length < 8) return undefined;
  if (buf.toString('latin1', 0, 4) !== 'NMC1') throw new Error('bad magic');
  const envLen = buf.readUInt32LE(4);
  if (envLen > MAX_ENV) throw new Error('environment too large');
  if (buf.length < 12 + envLen) return undefined;
  const stdinLen = buf.readUInt32LE(8 + envLen);
  if (stdinLen > MAX_STDIN) throw new Error('stdin too large');
  if (buf.length < 12 + envLen + stdinLen) return undefined;
  const env: Record<string, string> = {};
  for (const kv of buf.toString('utf8', 8, 8 + envLen).split('\0')) {
    const eq = kv.indexOf('=');
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return { env, stdin: buf.toString('utf8', 12 + envLen, 12 + envLen + stdinLen) };
}

export interface ServerOptions {
  /** Exit after this long without a call (ms; 0: never). Default NETMODES_CNI_IDLE_MS or 10 minutes. */
  idleMs?: number;
}

/**
 * Runs the server in this process until it is stopped (a stop request, SIGTERM, or idleness).
 * Resolves false at once when another server of this namespace holds the lock.
 */
export async function serve(opts: ServerOptions = {}): Promise<boolean> {
  const ino = netnsIno();
  const p = serverPaths(ino);
  await fsp.mkdir(p.dir, { recursive: true, mode: 0o700 });
  // The lock without waiting: another server of this namespace holds it, or does not.
  const [lockFd, previous] = await store.batch([
    { op: 'lock', file: p.lock, exclusive: true },
    { op: 'read', file: p.lock },
  ]).catch(() => [false, null]);
  if (typeof lockFd !== 'number') return false;
  await fsp.writeFile(p.lock, `${process.pid}\n`);
  await fsp.rm(p.sock, { force: true });
  const envIdle = process.env.NETMODES_CNI_IDLE_MS;
  // 0: never exit for idleness (a server run by an init system).
  const idleMs = opts.idleMs ?? (envIdle !== undefined && envIdle !== '' && Number.isFinite(Number(envIdle)) ? Number(envIdle) : 10 * 60_000);
  let inFlight = 0;
  let timer: NodeJS.Timeout | undefined;
  let stopping = false;
  const server = net.createServer({ allowHalfOpen: true });
  const done = new Promise<void>((resolve) => server.once('close', resolve));
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.close();
  };
  const arm = () => {
    if (timer) clearTimeout(timer);
    timer = inFlight || idleMs <= 0 ? undefined : setTimeout(stop, idleMs);
  };
  server.on('connection', (sock) => {
    let buf = Buffer.alloc(0);
    let answered = false;
    sock.setTimeout(30_000, () => sock.destroy()); // until the request is whole
    sock.on('error', () => undefined);
    sock.on('data', (d) => {
      if (answered) return;
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      let req;
      try {
        req = parseRequest(buf);
      } catch {
        answered = true;
        sock.destroy();
        return;
      }
      if (!req) return;
      answered = true;
      sock.setTimeout(0); // a verb may wait for a network's lock (a reconcile) as long as it takes
      const reply = (status: number, out: string) => {
        if (!sock.destroyed) sock.end(frame(status, out));
      };
      const control = req.env.NETMODES_CNI_CONTROL;
      if (req.env.NETMODES_CNI_NETNS_INO && req.env.NETMODES_CNI_NETNS_INO !== ino) return reply(WRONG_NAMESPACE, '');
      if (control === 'ping') return reply(0, JSON.stringify({ pid: process.pid }));
      if (control === 'stop') {
        reply(0, '');
        return stop();
      }
      inFlight++;
      arm();
      handle(req).then(
        (r) => reply(r.code, r.stdout),
        (err) => reply(1, JSON.stringify({ cniVersion: '1.1.0', code: 999, msg: String(err) })),
      ).finally(() => {
        inFlight--;
        arm();
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(p.sock, () => resolve());
  });
  fs.chmodSync(p.sock, 0o600);
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  arm();
  // A server that did not exit cleanly may have died with calls in flight: finish or undo what
  // they left half-made (each network's reconcile takes its lock; calls wait for it).
  if (typeof previous === 'string' && previous.trim()) void recoverAll();
  await done;
  if (timer) clearTimeout(timer);
  await reapDetached().catch(() => undefined);
  // Only our own files: a new server may already have taken over the lock (it unlinks and binds
  // the socket after taking it), so the socket goes only while the lock is still ours.
  await fsp.rm(p.sock, { force: true });
  await fsp.writeFile(p.lock, ''); // a clean exit: the next server has nothing to recover
  native().unlock(lockFd);
  return true;
}

async function recoverAll(): Promise<void> {
  for (const info of await listBridgeNetworks().catch(() => [])) {
    try {
      const n = await openBridgeNetwork(info.name);
      await n.reconcile();
    } catch (err) {
      process.stderr.write(`netmodes cni server: reconcile ${info.name}: ${(err as Error).message}\n`);
    }
  }
}

/** A request frame (what native/cni/cni.c sends): `env` as KEY=VALUE entries, then stdin. */
export function requestFrame(env: Record<string, string>, stdin = ''): Buffer {
  const e = Buffer.from(Object.entries(env).map(([k, v]) => `${k}=${v}`).join('\0'));
  const body = Buffer.from(stdin);
  const req = Buffer.alloc(12 + e.length + body.length);
  req.write('NMC1', 0, 'latin1');
  req.writeUInt32LE(e.length, 4);
  e.copy(req, 8);
  req.writeUInt32LE(body.length, 8 + e.length);
  body.copy(req, 12 + e.length);
  return req;
}

/** Sends one control request to this namespace's server; resolves its reply, or undefined if none runs. */
export function control(what: 'stop' | 'ping', ino = netnsIno()): Promise<string | undefined> {
  const p = serverPaths(ino);
  return new Promise((resolve) => {
    const req = requestFrame({ NETMODES_CNI_CONTROL: what, NETMODES_CNI_NETNS_INO: ino });
    const sock = net.connect(p.sock);
    let buf = Buffer.alloc(0);
    sock.on('error', () => resolve(undefined));
    sock.on('data', (d) => (buf = Buffer.concat([buf, d])));
    sock.on('end', () => {
      if (buf.length < 12 || buf.toString('latin1', 0, 4) !== 'NMR1') return resolve(undefined);
      resolve(buf.toString('utf8', 12, 12 + buf.readUInt32LE(8)));
    });
    sock.write(req);
  });
}

if (require.main === module) {
  process.chdir('/');
  serve().then(
    () => {
      // Not running because another server holds the lock is fine too: that one serves.
      process.exitCode = 0;
    },
    (err) => {
      process.stderr.write(`netmodes cni server: ${(err as Error).stack ?? err}\n`);
      process.exitCode = 1;
    },
  );
}
