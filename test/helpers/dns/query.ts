/**
 * A small DNS client for the embedded DNS tests, run inside a container's namespace:
 * `node query.js JSON` (or `-`: the JSON on stdin) with { server, timeout?, queries: [{ name?, type?, proto?, raw?, edns? }] }
 * (raw: hex bytes sent as they are). Prints one JSON array: per query { rcode, tc, aa, answers:
 * [{ type, data }] } or { timeout: true } or { undecodable: true }.
 * With { bench: { name, seconds, concurrency } } instead of queries: UDP A queries in a closed loop,
 * printing { count, timeouts, p50, p99 } (latencies in microseconds).
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as dnsPacket from 'dns-packet';

interface Q {
  name?: string;
  type?: dnsPacket.RecordType;
  proto?: 'udp' | 'tcp';
  raw?: string;
  edns?: number;
}
const spec = JSON.parse(process.argv[2] === '-' ? require('node:fs').readFileSync(0, 'utf8') : process.argv[2]) as { server: string; timeout?: number; queries?: Q[]; bench?: { name: string; seconds: number; concurrency: number } };
const server = spec.server;
const timeout = spec.timeout ?? 2000;
let nextId = 1;

function build(q: Q): Buffer {
  if (q.raw !== undefined) return Buffer.from(q.raw, 'hex');
  const additionals = q.edns ? [{ type: 'OPT', name: '.', udpPayloadSize: q.edns, flags: 0 } as unknown as dnsPacket.Answer] : [];
  return dnsPacket.encode({ type: 'query', id: nextId++ & 0xffff, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: q.type ?? 'A', name: q.name ?? 'x' }], additionals });
}

function result(m: Buffer): unknown {
  try {
    const p = dnsPacket.decode(m);
    const flags = p.flags ?? 0;
    return { rcode: (p as { rcode?: string }).rcode, tc: !!(flags & 0x200), aa: !!(flags & 0x400), answers: (p.answers ?? []).map((a) => ({ type: a.type, data: (a as { data: unknown }).data })) };
  } catch {
    return { undecodable: true, length: m.length };
  }
}

function udpQuery(buf: Buffer): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const s = dgram.createSocket(server.includes(':') ? 'udp6' : 'udp4');
    const t = setTimeout(() => done(undefined), timeout);
    const done = (m: Buffer | undefined) => {
      clearTimeout(t);
      s.close();
      resolve(m);
    };
    s.on('message', (m) => done(m));
    s.on('error', () => done(undefined));
    s.send(buf, 53, server);
  });
}

function tcpQuery(buf: Buffer): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const c = net.connect(53, server);
    let got = Buffer.alloc(0);
    const t = setTimeout(() => done(undefined), timeout);
    const done = (m: Buffer | undefined) => {
      clearTimeout(t);
      c.destroy();
      resolve(m);
    };
    c.on('error', () => done(undefined));
    c.on('close', () => done(undefined));
    c.on('connect', () => {
      const h = Buffer.alloc(2);
      h.writeUInt16BE(buf.length);
      c.write(Buffer.concat([h, buf]));
    });
    c.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) done(got.subarray(2, 2 + got.readUInt16BE(0)));
    });
  });
}

async function bench(b: { name: string; seconds: number; concurrency: number }): Promise<void> {
  const lat: number[] = [];
  let timeouts = 0;
  const end = Date.now() + b.seconds * 1000;
  const s = dgram.createSocket(server.includes(':') ? 'udp6' : 'udp4');
  const waiting = new Map<number, { t0: bigint; timer: NodeJS.Timeout; go: () => void }>();
  s.on('message', (m) => {
    if (m.length < 2) return;
    const w = waiting.get(m.readUInt16BE(0));
    if (!w) return;
    waiting.delete(m.readUInt16BE(0));
    clearTimeout(w.timer);
    lat.push(Number(process.hrtime.bigint() - w.t0) / 1000);
    w.go();
  });
  await new Promise<void>((r) => s.bind(0, () => r()));
  let id = 0;
  await Promise.all(
    Array.from({ length: b.concurrency }, () => {
      return new Promise<void>((resolve) => {
        const go = (): void => {
          if (Date.now() >= end) return resolve();
          id = (id + 1) & 0xffff;
          const q = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: b.name }] });
          const myId = id;
          const timer = setTimeout(() => {
            waiting.delete(myId);
            timeouts++;
            go();
          }, 1000);
          waiting.set(myId, { t0: process.hrtime.bigint(), timer, go });
          s.send(q, 53, server);
        };
        go();
      });
    }),
  );
  s.close();
  lat.sort((a, b2) => a - b2);
  const pct = (p: number) => (lat.length ? Math.round(lat[Math.min(lat.length - 1, Math.floor(lat.length * p))]) : null);
  process.stdout.write(JSON.stringify({ count: lat.length, timeouts, seconds: b.seconds, p50: pct(0.5), p99: pct(0.99) }));
}

async function main(): Promise<void> {
  if (spec.bench) return bench(spec.bench);
  const out: unknown[] = [];
  for (const q of spec.queries ?? []) {
    const m = await (q.proto === 'tcp' ? tcpQuery : udpQuery)(build(q));
    out.push(m ? result(m) : { timeout: true });
  }
  process.stdout.write(JSON.stringify(out));
}
void main();
