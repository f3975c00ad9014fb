/**
 * The rtnetlink decoder against malformed replies: truncated, bit-flipped and random messages must
 * never crash the process or read outside the buffer (scripts/sanitize.sh runs this under ASan).
 * Every result is either a parsed message or an error value; nothing throws out of the addon.
 */
import { strict as assert } from 'node:assert';
import { rtnl, NativeOp } from '../../lib/netlink/native';
import { prng } from '../helpers/assert';

const SAMPLES: NativeOp[][] = [
  [{ op: 'linkAdd', name: 'vh', kind: 'veth', up: true, mtu: 1400, mac: '02:00:00:00:00:01', alias: 'x', peer: { name: 'eth0', ns: 7, up: true } } as NativeOp],
  [{ op: 'addrAdd', link: 3, address: '10.0.0.2', prefix: 24 } as NativeOp, { op: 'addrAdd', link: 3, address: 'fd00::2', prefix: 64, noDad: true } as NativeOp],
  [{ op: 'routeAdd', dst: 'default', gateway: '10.0.0.1', link: 3, table: 254, metric: 10 } as NativeOp],
  [{ op: 'neighAdd', link: 3, address: '10.0.0.9', lladdr: '02:00:00:00:00:09', family: 4 } as NativeOp],
];

function decodeSafely(buf: Buffer): void {
  let out: unknown;
  try {
    out = rtnl().rtnlDecode(buf);
  } catch (err) {
    // A clean JS error for garbage is acceptable; a crash is not (it would end the process).
    assert.ok(err instanceof Error);
    return;
  }
  assert.ok(Array.isArray(out));
}

describe('21 rtnl decoder against malformed input (no root)', () => {
  const valid = SAMPLES.map((ops) => rtnl().rtnlEncode(ops, 1));

  it('the samples decode (the fuzz starts from real messages)', () => {
    for (const b of valid) assert.ok(rtnl().rtnlDecode(b).length >= 1);
  });

  it('every truncation of every sample', () => {
    for (const b of valid) for (let n = 0; n < b.length; n++) decodeSafely(b.subarray(0, n));
  });

  it('20,000 random bit flips, length and attribute-length corruptions', () => {
    const rnd = prng(0x6e6d);
    for (let i = 0; i < 20000; i++) {
      const b = Buffer.from(valid[i % valid.length]);
      const flips = 1 + Math.floor(rnd() * 4);
      for (let k = 0; k < flips; k++) {
        const at = Math.floor(rnd() * b.length);
        if (rnd() < 0.5) b[at] ^= 1 << Math.floor(rnd() * 8);
        else b[at] = rnd() < 0.5 ? 0xff : 0x00; // extreme lengths
      }
      decodeSafely(b);
    }
  });

  it('random buffers of every small size', () => {
    const rnd = prng(7);
    for (let n = 0; n < 600; n++) decodeSafely(Buffer.from(Array.from({ length: n % 300 }, () => Math.floor(rnd() * 256))));
  });
});
