/**
 * The embedded DNS server's answers, as pure functions of a network's names and a query: no
 * sockets, no files (lib/dns/server.ts does the I/O). The wire format is dns-packet's.
 *
 * One Zone per network: the names of its endpoints (id, host name, aliases; lower-cased, no
 * trailing dot) and the reverse names of their addresses. A query is answered from the zone of
 * the network whose gateway it arrived on, so records of other networks are never seen; every name
 * the zone does not hold is forwarded to the asking endpoint's upstreams, except the names and
 * addresses of other networks (NXDOMAIN, see `foreign` in decide()).
 */
import * as dnsPacket from 'dns-packet';
import { ipToBigInt } from '../net/addr';

/** What the zone needs of an endpoint record (lib/modes/bridge-types.ts EndpointRecord). */
export interface ZoneEndpoint {
  id: string;
  hostname: string;
  aliases?: string[];
  ip: string;
  ipv6?: string;
  /** Where names that are not the network's go (the endpoint's dns.servers or the host's). */
  dnsUpstreams?: string[];
}

// DNS header bits and codes (RFC 1035 4.1.1).
const QR = 0x8000;
const AA = 0x0400;
const TC = 0x0200;
const RD = 0x0100;
const RA = 0x0080;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

/** Answers' TTL: 0, so that no cache outlives a disconnect (the server follows them within a second). */
export const TTL = 0;
/** A UDP answer without EDNS fits 512 bytes (RFC 1035); with EDNS, what the client says, at most 4096. */
const UDP_PLAIN = 512;
const UDP_MAX = 4096;
/** Records in one answer at most (a name shared by many endpoints, e.g. a common alias). */
const MAX_ANSWERS = 32;
/** Cached answers per zone at most (then the cache starts over). */
const CACHE_MAX = 4096;

export function normName(name: string): string {
  return name.toLowerCase().replace(/\.+$/, '');
}

/** The reverse name of an address: 4.3.2.1.in-addr.arpa, or the 32 nibbles of ip6.arpa. */
export function reverseName(ip: string): string {
  const { value, family } = ipToBigInt(ip, 'ip');
  if (family === 4) return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
  return `${value.toString(16).padStart(32, '0').split('').reverse().join('.')}.ip6.arpa`;
}

export class Zone {
  private readonly names = new Map<string, ZoneEndpoint[]>();
  private readonly reverse = new Map<string, ZoneEndpoint>();
  private readonly bySource = new Map<string, ZoneEndpoint>();
  readonly size: number;

  constructor(endpoints: ZoneEndpoint[]) {
    this.size = endpoints.length;
    for (const ep of endpoints) {
      const own = new Set([ep.id, ep.hostname, ...(ep.aliases ?? [])].filter((n) => typeof n === 'string' && n).map(normName));
      for (const n of own) {
        const list = this.names.get(n);
        if (list) list.push(ep);
        else this.names.set(n, [ep]);
      }
      this.bySource.set(ep.ip, ep);
      this.reverse.set(reverseName(ep.ip), ep);
      if (ep.ipv6) {
        this.bySource.set(ep.ipv6, ep);
        this.reverse.set(reverseName(ep.ipv6), ep);
      }
    }
  }

  /**
   * Answers of this zone by query bytes less the id (`u`/`t` + the rest): a repeated query costs a
   * map lookup and a copy, no decode or encode. The zone is rebuilt on every change of the
   * network's endpoints, and its cache with it.
   */
  private readonly cache = new Map<string, Buffer>();

  /** decide(), through the cache of local answers. */
  decideCached(msg: Buffer, udp: boolean, foreign?: (name: string, ptr: boolean) => boolean): Verdict {
    if (msg.length < 12 || msg.length > 512) return decide(this, msg, udp, foreign);
    const key = (udp ? 'u' : 't') + msg.toString('latin1', 2);
    const hit = this.cache.get(key);
    if (hit) {
      const out = Buffer.from(hit);
      out.writeUInt16BE(msg.readUInt16BE(0), 0);
      return { kind: 'reply', packet: out };
    }
    const v = decide(this, msg, udp, foreign);
    if (v.kind === 'reply' && v.cacheable) {
      if (this.cache.size >= CACHE_MAX) this.cache.clear();
      this.cache.set(key, v.packet);
    }
    return v;
  }

  /** The endpoint that owns a source address (only they are answered). */
  endpointAt(ip: string): ZoneEndpoint | undefined {
    return this.bySource.get(ip.startsWith('::ffff:') ? ip.slice(7) : ip);
  }

  /** The endpoints a name belongs to (case-insensitive, trailing dot or not). */
  lookup(name: string): ZoneEndpoint[] | undefined {
    return this.names.get(normName(name));
  }

  /** Names for a PTR query, or undefined when the address is not one of the zone's. */
  ptr(name: string): string[] | undefined {
    const ep = this.reverse.get(normName(name));
    if (!ep) return undefined;
    return [...new Set([ep.hostname, ep.id, ...(ep.aliases ?? [])])];
  }
}

/** What to do with a query. */
export type Verdict =
  | { kind: 'reply'; packet: Buffer; cacheable?: boolean }
  | { kind: 'forward' }
  | { kind: 'drop' };

/** A header-only answer: same id and opcode, QR set, RD copied, the given rcode. */
export function errorReply(query: Buffer, rcode: number): Buffer {
  const out = Buffer.alloc(12);
  out.writeUInt16BE(query.readUInt16BE(0), 0);
  const flags = query.readUInt16BE(2);
  out.writeUInt16BE(QR | (flags & 0x7800) | (flags & RD) | RA | (rcode & 0xf), 2);
  return out;
}

/**
 * Decides what to do with one query (already known to come from an endpoint of the zone's
 * network). Work is bounded by the packet: one question, no answer or authority records, at most
 * two additional ones (EDNS OPT, TSIG), checked in the header before anything is decoded.
 * `udp`: the answer must fit the client's UDP size (else it goes out truncated, TC set).
 */
export function decide(zone: Zone, msg: Buffer, udp: boolean, foreign?: (name: string, ptr: boolean) => boolean): Verdict {
  if (msg.length < 12) return { kind: 'drop' }; // not even a header: nothing to answer to
  const flags = msg.readUInt16BE(2);
  if (flags & QR) return { kind: 'drop' }; // an answer: never answer answers (no loops)
  const opcode = (flags >> 11) & 0xf;
  if (opcode !== 0) return { kind: 'reply', packet: errorReply(msg, RCODE.NOTIMP) };
  const qd = msg.readUInt16BE(4);
  const an = msg.readUInt16BE(6);
  const ns = msg.readUInt16BE(8);
  const ar = msg.readUInt16BE(10);
  if (qd !== 1 || an !== 0 || ns !== 0 || ar > 2) return { kind: 'reply', packet: errorReply(msg, RCODE.FORMERR) };
  let p: dnsPacket.Packet;
  try {
    p = dnsPacket.decode(msg);
  } catch {
    return { kind: 'reply', packet: errorReply(msg, RCODE.FORMERR) };
  }
  const q = p.questions?.[0];
  if (!q || typeof q.name !== 'string' || q.name.length > 253) return { kind: 'reply', packet: errorReply(msg, RCODE.FORMERR) };
  const opt = (p.additionals ?? []).find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
  const limit = !udp ? 65535 : opt ? Math.min(UDP_MAX, Math.max(UDP_PLAIN, opt.udpPayloadSize ?? UDP_PLAIN)) : UDP_PLAIN;
  if (q.class !== 'IN') return { kind: 'forward' };

  const ptrNames = q.type === 'PTR' ? zone.ptr(q.name) : undefined;
  const owners = ptrNames ? undefined : zone.lookup(q.name);
  const head = { type: 'response' as const, id: p.id, questions: [q] };
  const baseFlags = AA | RA | (flags & RD);
  const additionals: dnsPacket.Answer[] = opt ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0 } as unknown as dnsPacket.Answer] : [];
  if (!ptrNames && !owners) {
    // A name (or address) of another network: NXDOMAIN here, never forwarded (the upstream
    // learns no container name either). Not cached: the other network may change on its own.
    if (foreign?.(q.name, q.type === 'PTR'))
      return { kind: 'reply', packet: dnsPacket.encode({ ...head, flags: baseFlags | RCODE.NXDOMAIN, answers: [], additionals }) };
    return { kind: 'forward' };
  }

  const answers: dnsPacket.Answer[] = [];
  if (ptrNames) {
    for (const n of ptrNames) answers.push({ type: 'PTR', name: q.name, class: 'IN', ttl: TTL, data: n });
  } else {
    const want4 = q.type === 'A' || (q.type as string) === 'ANY';
    const want6 = q.type === 'AAAA' || (q.type as string) === 'ANY';
    const seen = new Set<string>();
    for (const ep of owners!) {
      if (want4 && !seen.has(ep.ip)) {
        seen.add(ep.ip);
        answers.push({ type: 'A', name: q.name, class: 'IN', ttl: TTL, data: ep.ip });
      }
      if (want6 && ep.ipv6 && !seen.has(ep.ipv6)) {
        seen.add(ep.ipv6);
        answers.push({ type: 'AAAA', name: q.name, class: 'IN', ttl: TTL, data: ep.ipv6 });
      }
    }
    // Other types of a container's name: no data (NOERROR, no answer), not forwarded: the
    // network is authoritative for its names.
  }
  answers.splice(MAX_ANSWERS);
  let out = dnsPacket.encode({ ...head, flags: baseFlags, answers, additionals });
  if (out.length > limit) out = dnsPacket.encode({ ...head, flags: baseFlags | TC, answers: [], additionals });
  return { kind: 'reply', packet: out, cacheable: true };
}
