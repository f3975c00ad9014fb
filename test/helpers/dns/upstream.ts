/**
 * A fake upstream DNS server for the embedded DNS tests, run in a namespace of its own on an
 * address in 198.18.0.0/15 (`node upstream.js ADDR`). Prints `ready`, then one line per query it
 * gets: `Q udp|tcp NAME TYPE`. Its zone:
 *   example.test   A 198.18.200.1
 *   nx.test        NXDOMAIN
 *   fail.test      SERVFAIL
 *   slow.test      no answer at all
 *   big.test       over UDP: truncated (TC, no answer); over TCP: 40 A records 198.18.201.1-40
 *   anything else  NXDOMAIN
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as dnsPacket from 'dns-packet';

const addr = process.argv[2];
const TC = 0x0200;

function reply(msg: Buffer, proto: 'udp' | 'tcp'): Buffer | undefined {
  let q: dnsPacket.Packet;
  try {
    q = dnsPacket.decode(msg);
  } catch {
    return undefined;
  }
  const question = q.questions![0];
  const name = question.name.toLowerCase();
  process.stdout.write(`Q ${proto} ${name} ${question.type}\n`);
  const base = { type: 'response' as const, id: q.id, questions: q.questions };
  const RA = 0x80 | 0x100;
  if (name === 'slow.test') return undefined;
  if (name === 'example.test' && question.type === 'A')
    return dnsPacket.encode({ ...base, flags: RA, answers: [{ type: 'A', name: question.name, ttl: 60, data: '198.18.200.1' }] });
  if (name === 'fail.test') return dnsPacket.encode({ ...base, flags: RA | 2 });
  if (name === 'big.test') {
    if (proto === 'udp') return dnsPacket.encode({ ...base, flags: RA | TC });
    const answers = Array.from({ length: 40 }, (_, i) => ({ type: 'A' as const, name: question.name, ttl: 60, data: `198.18.201.${i + 1}` }));
    return dnsPacket.encode({ ...base, flags: RA, answers });
  }
  if (name === 'example.test') return dnsPacket.encode({ ...base, flags: RA });
  return dnsPacket.encode({ ...base, flags: RA | 3 });
}

const udp = dgram.createSocket('udp4');
udp.on('message', (m, r) => {
  const out = reply(m, 'udp');
  if (out) udp.send(out, r.port, r.address);
});
const tcp = net.createServer((c) => {
  let buf = Buffer.alloc(0);
  c.on('error', () => undefined);
  c.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const m = buf.subarray(2, 2 + buf.readUInt16BE(0));
      buf = buf.subarray(2 + m.length);
      const out = reply(Buffer.from(m), 'tcp');
      if (out) {
        const h = Buffer.alloc(2);
        h.writeUInt16BE(out.length);
        c.write(Buffer.concat([h, out]));
      }
    }
  });
});
udp.bind(53, addr, () => tcp.listen(53, addr, () => process.stdout.write('ready\n')));
