/**
 * The embedded DNS server: one process for every network with embeddedDns of a host namespace
 * (as aardvark-dns), started detached by the library (lib/dns/control.ts) with the creator's
 * network and mount namespaces, and outliving it.
 *
 * - Config: the state store itself. Every 250 ms it stats each DNS network's endpoints directory
 *   (a record written or removed renames into it, which changes its mtime) and, for those that
 *   changed, re-reads the records whose inode, mtime or size changed; a query from an unknown source or for an unknown name makes it
 *   look at once (at most every 20 ms), so a container that was just connected is found. SIGHUP
 *   rescans everything.
 * - Listening: UDP and TCP port 53 on each network's gateway addresses only (never a wildcard
 *   address). A query is answered from the zone of the network whose gateway it arrived on, and
 *   only when its source is an endpoint of that network: anything else is dropped.
 * - Forwarding: names the zone does not hold (and no other network does: those get NXDOMAIN) go
 *   to the asking endpoint's upstreams, one at a time, from a fresh socket with a random id
 *   each; the first answer is relayed with the client's id (NXDOMAIN, SERVFAIL and truncation as they are). No answer from any: none to
 *   the client either (it times out, as the issue asks). UDP queries go out over UDP, TCP ones
 *   over TCP.
 * - Caps: at most MAX_INFLIGHT forwarded queries and MAX_TCP connections at a time, a TCP
 *   connection idles 10 s at most and carries at most 64 queries at once; a malformed query
 *   gets FORMERR (or is dropped when it has no header); nothing a packet holds can throw out
 *   of a handler.
 * - Life: holds an exclusive flock on dns/server.lock (paths.ts) while it runs; exits on
 *   SIGTERM, when no DNS network is left for a second, or when the state directory is gone.
 *
 * Run as `node dist/lib/dns/server.js`; prints `ready` (or `busy` when another server holds the
 * lock) on stdout, then never writes there again.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import * as store from '../state/store';
import { parseCidr, ipToBigInt } from '../net/addr';
import { Zone, ZoneEndpoint, decide, errorReply, RCODE } from './zone';
import { dnsDir, dnsLockFile, dnsPidFile, dnsStatusFile, DnsStatus } from './paths';

const SCAN_MS = 250;
const MAX_INFLIGHT = 1024;
const MAX_TCP = 256;
const TCP_IDLE_MS = 10_000;
const TCP_MAX_PENDING = 64;
/** Per upstream try. */
const UPSTREAM_MS = 1500;
const MAX_UPSTREAMS = 3;
const DNS_PORT = 53;

interface NetRecord {
  version: 1;
  name: string;
  id: string;
  subnet: string;
  gateway: string;
  ipv6?: { subnet: string; gateway: string };
  embeddedDns?: boolean;
}

interface Subnet {
  family: 4 | 6;
  start: bigint;
  end: bigint;
}

class NetState {
  zone = new Zone([]);
  epMtime = -1;
  /** The endpoint files last read: name -> inode:mtime:size and the record. */
  files = new Map<string, { key: string; rec?: ZoneEndpoint }>();
  readonly subnets: Subnet[] = [];
  readonly udp: dgram.Socket[] = [];
  readonly tcp: net.Server[] = [];
  listening: string[] = [];
  error?: string;
  constructor(readonly rec: NetRecord) {
    for (const s of [rec.subnet, rec.ipv6?.subnet]) {
      if (!s) continue;
      const c = parseCidr(s, 'subnet');
      this.subnets.push({ family: c.family, start: c.start, end: c.end });
    }
  }
  inSubnet(ip: string): boolean {
    try {
      const { value, family } = ipToBigInt(ip.startsWith('::ffff:') ? ip.slice(7) : ip, 'ip');
      return this.subnets.some((s) => s.family === family && value >= s.start && value <= s.end);
    } catch {
      return false;
    }
  }
  close(): void {
    for (const s of this.udp.splice(0)) s.close();
    for (const s of this.tcp.splice(0)) s.close();
    this.listening = [];
  }
}

const nets = new Map<string, NetState>();
let inflight = 0;
let tcpConns = 0;
let emptyScans = 0;
let stopping = false;

function networksDir(): string {
  return path.join(store.stateDir(), 'networks');
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await fsp.readFile(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/**
 * Re-reads a network's endpoint records when its directory changed: only files whose inode,
 * mtime or size differ from the last look are read again (a record is replaced by rename, so a
 * rewrite has a new inode), so a change costs a stat per endpoint, not a read and parse each.
 */
async function loadEndpoints(n: NetState, force: boolean): Promise<void> {
  const dir = path.join(networksDir(), n.rec.name, 'endpoints');
  const st = await fsp.stat(dir).catch(() => undefined);
  const mtime = st ? st.mtimeMs : 0;
  if (!force && mtime === n.epMtime) return;
  n.epMtime = mtime;
  const names = st ? (await fsp.readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.json') && !f.startsWith('.')) : [];
  const files = new Map<string, { key: string; rec?: ZoneEndpoint }>();
  for (let i = 0; i < names.length; i += 64) {
    await Promise.all(
      names.slice(i, i + 64).map(async (f) => {
        const fst = await fsp.stat(path.join(dir, f)).catch(() => undefined);
        if (!fst) return;
        const key = `${fst.ino}:${fst.mtimeMs}:${fst.size}`;
        const old = n.files.get(f);
        if (old && old.key === key && !force) return void files.set(f, old);
        const r = await readJson<ZoneEndpoint>(path.join(dir, f));
        let rec: ZoneEndpoint | undefined;
        if (r && typeof r.ip === 'string' && typeof r.id === 'string') {
          try {
            new Zone([r]); // a record the zone cannot take (a foreign file) is left out alone
            rec = r;
          } catch {
            /* left out */
          }
        }
        files.set(f, { key, rec });
      }),
    );
  }
  n.files = files;
  n.zone = new Zone([...files.values()].flatMap((x) => (x.rec ? [x.rec] : [])));
}

function bindUdp(n: NetState, addr: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const v6 = addr.includes(':');
    const s = dgram.createSocket(v6 ? { type: 'udp6', ipv6Only: true } : { type: 'udp4' });
    s.once('error', reject);
    s.on('message', (msg, rinfo) => onUdp(n, s, msg, rinfo));
    s.bind({ address: addr, port: DNS_PORT, exclusive: true }, () => {
      s.removeListener('error', reject);
      s.on('error', () => undefined); // e.g. ECONNREFUSED of an earlier send: never fatal
      n.udp.push(s);
      resolve();
    });
  });
}

function bindTcp(n: NetState, addr: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer({ pauseOnConnect: false }, (c) => onTcp(n, c));
    srv.maxConnections = MAX_TCP;
    srv.once('error', reject);
    srv.listen({ host: addr, port: DNS_PORT, exclusive: true, ...(addr.includes(':') ? { ipv6Only: true } : {}) }, () => {
      srv.removeListener('error', reject);
      srv.on('error', () => undefined);
      n.tcp.push(srv);
      resolve();
    });
  });
}

async function listen(n: NetState): Promise<void> {
  const addrs = [n.rec.gateway, ...(n.rec.ipv6 ? [n.rec.ipv6.gateway] : [])];
  try {
    for (const a of addrs) {
      await bindUdp(n, a);
      await bindTcp(n, a);
    }
    n.listening = addrs;
    n.error = undefined;
  } catch (err) {
    n.close();
    n.error = (err as { code?: string }).code ?? String(err);
  }
}

let lastStatus = '';
async function writeStatus(): Promise<void> {
  const st: DnsStatus = { pid: process.pid, networks: {} };
  for (const [name, n] of nets)
    st.networks[name] = { id: n.rec.id, listening: n.listening, endpoints: n.zone.size, ...(n.error ? { error: n.error } : {}) };
  const text = JSON.stringify(st);
  if (text === lastStatus) return;
  await store.writeJson(dnsStatusFile(), st);
  lastStatus = text;
}

let scanning: Promise<void> | undefined;
let scanAgain = false;
let forceAgain = false;
/** One scan of the store; calls while one runs coalesce into one more after it. */
function scan(force = false): Promise<void> {
  if (scanning) {
    scanAgain = true;
    forceAgain ||= force;
    return scanning;
  }
  scanning = (async () => {
    let f = force;
    do {
      scanAgain = false;
      await scanOnce(f);
      f = forceAgain;
      forceAgain = false;
    } while (scanAgain && !stopping);
  })().finally(() => {
    scanning = undefined;
  });
  return scanning;
}

async function scanOnce(force: boolean): Promise<void> {
  let files: string[];
  try {
    files = (await fsp.readdir(networksDir())).filter((f) => f.endsWith('.json') && !f.startsWith('.'));
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT' && !(await fsp.stat(store.stateDir()).catch(() => undefined))) return stop(0);
    files = [];
  }
  const want = new Map<string, NetRecord>();
  for (const f of files) {
    const r = await readJson<NetRecord>(path.join(networksDir(), f));
    if (r && r.version === 1 && r.embeddedDns === true && typeof r.gateway === 'string') want.set(r.name, r);
  }
  for (const [name, n] of nets)
    if (want.get(name)?.id !== n.rec.id) {
      n.close();
      nets.delete(name);
    }
  for (const [name, r] of want) {
    let n = nets.get(name);
    if (!n) {
      try {
        n = new NetState(r);
      } catch {
        continue; // a record we cannot read the subnets of
      }
      nets.set(name, n);
    }
    await loadEndpoints(n, force);
    if (!n.listening.length) await listen(n);
  }
  emptyScans = nets.size ? 0 : emptyScans + 1;
  await writeStatus().catch(() => undefined);
  if (emptyScans >= 4) stop(0);
}

/** A look at the store now, for a query that found no endpoint or name (at most every 20 ms). */
let lastQuick = 0;
async function quickScan(): Promise<void> {
  const now = Date.now();
  if (now - lastQuick < 20) return scanning ?? Promise.resolve();
  lastQuick = now;
  return scan();
}

// ---------------------------------------------------------------------------------------------
// Queries.

/** The endpoint a query comes from, looking at the store once more when unknown. */
async function sourceOf(n: NetState, ip: string): Promise<ZoneEndpoint | undefined> {
  if (!n.inSubnet(ip)) return undefined; // not from the network at all: never a reload for it
  const ep = n.zone.endpointAt(ip);
  if (ep) return ep;
  await quickScan();
  return n.zone.endpointAt(ip);
}

/**
 * Answers a query. The common case (a known endpoint asking for a name the zone holds) is
 * synchronous: a map lookup for the source, then the zone's cache or decide().
 */
function answer(n: NetState, msg: Buffer, udp: boolean, src: string, send: (b: Buffer) => void): Promise<void> {
  if (n.zone.endpointAt(src)) {
    const v = n.zone.decideCached(msg, udp);
    if (v.kind === 'reply') {
      send(v.packet);
      return Promise.resolve();
    }
    if (v.kind === 'drop') return Promise.resolve();
  }
  return answerSlow(n, msg, udp, src, send);
}

/** The rest: an unknown source or name (look at the store again first), or a name to forward. */
async function answerSlow(n: NetState, msg: Buffer, udp: boolean, src: string, send: (b: Buffer) => void): Promise<void> {
  const ep = await sourceOf(n, src);
  if (!ep) return; // only endpoints of this network are answered
  const foreign = (name: string, ptr: boolean) => [...nets.values()].some((m) => m !== n && (ptr ? m.zone.ptr(name) : m.zone.lookup(name)) !== undefined);
  let v = n.zone.decideCached(msg, udp, foreign);
  if (v.kind === 'forward') {
    await quickScan(); // perhaps a container connected a moment ago
    v = n.zone.decideCached(msg, udp, foreign);
  }
  if (v.kind === 'drop') return;
  if (v.kind === 'reply') return send(v.packet);
  const ups = (n.zone.endpointAt(src)?.dnsUpstreams ?? ep.dnsUpstreams ?? []).filter((u) => net.isIP(u)).slice(0, MAX_UPSTREAMS);
  if (!ups.length) return send(errorReply(msg, RCODE.SERVFAIL));
  if (inflight >= MAX_INFLIGHT) return send(errorReply(msg, RCODE.SERVFAIL));
  inflight++;
  try {
    for (const up of ups) {
      const r = await (udp ? forwardUdp(msg, up) : forwardTcp(msg, up)).catch(() => undefined);
      if (r) {
        r.writeUInt16BE(msg.readUInt16BE(0), 0);
        return send(r);
      }
    }
  } finally {
    inflight--;
  }
}

function forwardUdp(msg: Buffer, up: string): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const s = dgram.createSocket(up.includes(':') ? 'udp6' : 'udp4');
    const id = randomBytes(2).readUInt16BE(0);
    const q = Buffer.from(msg);
    q.writeUInt16BE(id, 0);
    const done = (r: Buffer | undefined) => {
      clearTimeout(t);
      s.close();
      resolve(r);
    };
    const t = setTimeout(() => done(undefined), UPSTREAM_MS);
    s.on('error', () => done(undefined));
    s.on('message', (m, rinfo) => {
      if (rinfo.address !== up || rinfo.port !== DNS_PORT || m.length < 12 || m.readUInt16BE(0) !== id || !(m.readUInt16BE(2) & 0x8000)) return;
      done(m);
    });
    s.send(q, DNS_PORT, up);
  });
}

function forwardTcp(msg: Buffer, up: string): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const id = randomBytes(2).readUInt16BE(0);
    const q = Buffer.alloc(msg.length + 2);
    q.writeUInt16BE(msg.length, 0);
    msg.copy(q, 2);
    q.writeUInt16BE(id, 2);
    let buf = Buffer.alloc(0);
    const c = net.connect({ host: up, port: DNS_PORT });
    const done = (r: Buffer | undefined) => {
      clearTimeout(t);
      c.destroy();
      resolve(r);
    };
    const t = setTimeout(() => done(undefined), UPSTREAM_MS);
    c.on('error', () => done(undefined));
    c.on('end', () => done(undefined));
    c.on('connect', () => c.write(q));
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length > 65537) return done(undefined);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const m = buf.subarray(2, 2 + buf.readUInt16BE(0));
        done(m.length >= 12 && m.readUInt16BE(0) === id ? Buffer.from(m) : undefined);
      }
    });
  });
}

function onUdp(n: NetState, s: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
  if (msg.length > 4096 || rinfo.port === 0) return;
  const send = (b: Buffer) => {
    try {
      s.send(b, rinfo.port, rinfo.address, () => undefined);
    } catch {
      /* the socket was closed meanwhile (its network went) */
    }
  };
  answer(n, msg, true, rinfo.address, send).catch(() => undefined);
}

function onTcp(n: NetState, c: net.Socket): void {
  if (!n.inSubnet(c.remoteAddress ?? '') || tcpConns >= MAX_TCP) {
    c.destroy();
    return;
  }
  tcpConns++;
  c.on('close', () => tcpConns--);
  c.on('error', () => undefined);
  c.setTimeout(TCP_IDLE_MS, () => c.destroy());
  let buf = Buffer.alloc(0);
  let pending = 0;
  c.on('data', (d) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    while (buf.length >= 2) {
      const len = buf.readUInt16BE(0);
      if (len < 12) return void c.destroy(); // no header: nothing to answer
      if (buf.length < 2 + len) break;
      const msg = Buffer.from(buf.subarray(2, 2 + len));
      buf = buf.subarray(2 + len);
      if (++pending > TCP_MAX_PENDING) return void c.destroy();
      answer(n, msg, false, c.remoteAddress ?? '', (b) => {
        if (c.destroyed) return;
        const h = Buffer.alloc(2);
        h.writeUInt16BE(b.length, 0);
        c.write(Buffer.concat([h, b]));
      })
        .catch(() => undefined)
        .finally(() => pending--);
    }
  });
}

// ---------------------------------------------------------------------------------------------

function stop(code: number): void {
  if (stopping) return;
  stopping = true;
  for (const n of nets.values()) n.close();
  // The pid file and the status go while the lock is still held (the exit drops the lock).
  void store
    .batch([
      { op: 'remove', file: dnsStatusFile() },
      { op: 'remove', file: dnsPidFile() },
    ])
    .catch(() => undefined)
    .finally(() => process.exit(code));
}

async function main(): Promise<void> {
  process.stdout.on('error', () => undefined); // the starter closes its end after `ready`
  await store.ensureDir(dnsDir());
  const [fd] = await store.batch([{ op: 'lock', file: dnsLockFile(), exclusive: true }]);
  if (typeof fd !== 'number') {
    process.stdout.write('busy\n');
    process.exit(0);
  }
  await store.batch([{ op: 'write', file: dnsPidFile(), data: String(process.pid) }]);
  process.on('SIGTERM', () => stop(0));
  process.on('SIGINT', () => stop(0));
  process.on('SIGHUP', () => void scan(true).catch(() => undefined));
  await scan(true);
  process.stdout.write('ready\n');
  const timer = setInterval(() => void scan().catch(() => undefined), SCAN_MS);
  timer.unref(); // the sockets keep the process alive; with none, the empty-scan exit ends it
  setInterval(() => undefined, 1 << 30); // and this, while it waits for networks
}

process.on('uncaughtException', (err) => {
  // A bug must not take every network's DNS down for good: log it and keep serving.
  try {
    process.stderr.write(`netmodes dns: ${err?.stack ?? err}\n`);
  } catch {
    /* stderr closed */
  }
});
main().catch((err) => {
  process.stderr.write(`netmodes dns: ${err?.stack ?? err}\n`);
  process.exit(1);
});
