/** The embedded DNS server's answers (lib/dns/zone.ts), as pure functions: no sockets, no root. */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import * as dnsPacket from 'dns-packet';
import { Zone, decide, reverseName, normName } from '../../lib/dns/zone';
import { upstreamsFor } from '../../lib/dns/control';
import { ConfigError } from '../../lib';

const zone = new Zone([
  { id: 'db', hostname: 'dbhost', aliases: ['Database'], ip: '10.0.0.2', ipv6: 'fd00::2' },
  { id: 'web', hostname: 'web', aliases: ['shared'], ip: '10.0.0.3' },
  { id: 'web2', hostname: 'web2', aliases: ['shared'], ip: '10.0.0.4' },
  ...Array.from({ length: 40 }, (_, i) => ({ id: `many${i}`, hostname: `many${i}`, aliases: ['crowd'], ip: `10.0.1.${i + 1}` })),
]);

function q(name: string, type: dnsPacket.RecordType = 'A', extra: Partial<dnsPacket.Packet> = {}): Buffer {
  return dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }], ...extra });
}
function reply(buf: Buffer, udp = true): dnsPacket.DecodedPacket & { rcode?: string } {
  const v = decide(zone, buf, udp);
  assert.equal(v.kind, 'reply');
  return dnsPacket.decode((v as { packet: Buffer }).packet) as dnsPacket.DecodedPacket & { rcode?: string };
}
const data = (p: dnsPacket.DecodedPacket) => (p.answers ?? []).map((a) => (a as { data: string }).data).sort();

describe('46 embedded DNS: zone and answers', () => {
  it('answers id, host name and aliases, any case, with or without the trailing dot', () => {
    for (const n of ['db', 'DB', 'dbhost.', 'database', 'DATABASE.']) {
      const p = reply(q(n));
      assert.equal(p.id, 4242);
      assert.equal(p.rcode, 'NOERROR');
      assert.ok((p.flags ?? 0) & 0x400, 'authoritative');
      assert.ok((p.flags ?? 0) & 0x100, 'RD copied');
      assert.deepEqual(data(p), ['10.0.0.2']);
    }
    assert.deepEqual(data(reply(q('db', 'AAAA'))), ['fd00::2']);
    assert.deepEqual(data(reply(q('shared'))), ['10.0.0.3', '10.0.0.4'], 'a shared alias: every owner');
    assert.deepEqual(reply(q('web', 'AAAA')).answers, [], 'no IPv6: no data');
    assert.deepEqual(reply(q('web', 'MX')).answers, [], 'other types of a container name: no data, not forwarded');
  });

  it('PTR for the zone\'s addresses; everything else is forwarded', () => {
    assert.equal(reverseName('10.0.0.2'), '2.0.0.10.in-addr.arpa');
    assert.equal(reverseName('fd00::2'), '2.0.0.0.' + '0.'.repeat(24) + '0.0.d.f.ip6.arpa');
    assert.deepEqual(data(reply(q('2.0.0.10.in-addr.arpa', 'PTR'))), ['Database', 'db', 'dbhost']);
    assert.deepEqual(data(reply(q(reverseName('fd00::2').toUpperCase(), 'PTR'))), ['Database', 'db', 'dbhost']);
    assert.equal(decide(zone, q('9.0.0.10.in-addr.arpa', 'PTR'), true).kind, 'forward');
    assert.equal(decide(zone, q('example.com'), true).kind, 'forward');
    assert.equal(decide(zone, dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'TXT', name: 'db', class: 'CH' }] }), true).kind, 'forward');
    assert.equal(zone.endpointAt('::ffff:10.0.0.3')?.id, 'web');
    assert.equal(normName('A.B.'), 'a.b');
  });

  it('an answer too big for UDP goes truncated (512 without EDNS, the client\'s size with it); TCP gets it all', () => {
    const plain = reply(q('crowd'));
    assert.ok((plain.flags ?? 0) & 0x200, 'TC');
    assert.deepEqual(plain.answers, []);
    const edns = reply(q('crowd', 'A', { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096 } as unknown as dnsPacket.Answer] }));
    assert.equal((edns.flags ?? 0) & 0x200, 0);
    assert.equal(edns.answers!.length, 32, 'capped at 32 records');
    assert.equal(reply(q('crowd'), false).answers!.length, 32);
  });

  it('the answer cache: a repeated query gets its own id and its own spelling of the name back', () => {
    const z = new Zone([{ id: 'db', hostname: 'db', ip: '10.0.0.2' }]);
    const ask = (name: string, id: number) => {
      const v = z.decideCached(dnsPacket.encode({ type: 'query', id, flags: 0x100, questions: [{ type: 'A', name }] }), true);
      assert.equal(v.kind, 'reply');
      return dnsPacket.decode((v as { packet: Buffer }).packet);
    };
    for (const [name, id] of [['db', 1], ['db', 2], ['dB', 3], ['db', 65535]] as const) {
      const p = ask(name, id);
      assert.equal(p.id, id);
      assert.equal(p.questions![0].name, name);
      assert.deepEqual(data(p), ['10.0.0.2']);
    }
    assert.equal(z.decideCached(q('other'), true).kind, 'forward', 'forwards are not cached');
    // A name another network holds: NXDOMAIN with the question echoed, and not cached.
    const foreign = (name: string) => name.toLowerCase() === 'other';
    const v = z.decideCached(q('Other'), true, foreign);
    assert.equal(v.kind, 'reply');
    const p = dnsPacket.decode((v as { packet: Buffer }).packet) as dnsPacket.DecodedPacket & { rcode?: string };
    assert.equal(p.rcode, 'NXDOMAIN');
    assert.equal(p.questions![0].name, 'Other');
    assert.equal(z.decideCached(q('Other'), true).kind, 'forward', 'not cached: the other network may change');
  });

  it('malformed queries: FORMERR, NOTIMP, or dropped; never a throw', () => {
    const good = q('db');
    assert.equal(decide(zone, Buffer.alloc(5), true).kind, 'drop');
    const resp = Buffer.from(good);
    resp[2] |= 0x80;
    assert.equal(decide(zone, resp, true).kind, 'drop', 'answers are never answered');
    const two = Buffer.from(good);
    two.writeUInt16BE(2, 4);
    assert.equal(reply(two).rcode, 'FORMERR');
    assert.equal(reply(good.subarray(0, good.length - 2)).rcode, 'FORMERR');
    const upd = Buffer.from(good);
    upd[2] = (5 << 3) | 1;
    assert.equal(reply(upd).rcode, 'NOTIMP');
    for (let i = 0; i < 5000; i++) {
      const b = i % 2 ? randomBytes(i % 300) : Buffer.from(good);
      if (!(i % 2)) for (let k = 0; k < 3; k++) b[Math.floor(Math.random() * b.length)] = Math.floor(Math.random() * 256);
      decide(zone, b, true);
    }
  });

  it('upstreams: dns.servers, else the host\'s nameservers (loopback kept), else the defaults', () => {
    assert.deepEqual(upstreamsFor('nameserver 127.0.0.53\nnameserver 10.1.1.1\n', undefined), ['127.0.0.53', '10.1.1.1']);
    assert.deepEqual(upstreamsFor('nameserver 127.0.0.53\n', ['198.18.0.2']), ['198.18.0.2']);
    assert.deepEqual(upstreamsFor('', undefined), ['8.8.8.8', '8.8.4.4']);
    assert.throws(() => upstreamsFor('', ['nope']), (e: ConfigError) => e.field === 'servers[0]');
  });
});
