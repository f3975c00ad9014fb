import { strict as assert } from 'node:assert';
import * as ipaddr from 'ipaddr.js';
import { ConfigError } from '../../lib/errors';
import {
  assertIfname,
  bigIntToIP,
  cidrOverlaps,
  ipToBigInt,
  isValidIfname,
  macFromIPv4,
  parseCidr,
  parseIP,
  parseIPv4,
  parseMac,
  randomMac,
} from '../../lib/net/addr';
import { throwsConfig, prng } from '../helpers/assert';

/** Asserts `fn` throws a ConfigError with this field (and code EINVAL), optionally matching the message. */

/** Deterministic PRNG (mulberry32) so failures reproduce. */

describe('net/addr', () => {
  describe('parseIPv4', () => {
    it('accepts dotted quads and returns them unchanged', () => {
      for (const s of ['0.0.0.0', '10.0.0.1', '172.17.0.2', '255.255.255.255', '1.20.100.200']) {
        assert.equal(parseIPv4(s, 'ip'), s);
      }
    });

    it('rejects leading zeros, short and hex forms, bad octets and junk', () => {
      for (const s of ['010.0.0.1', '127.1', '0x7f.0.0.1', '1.2.3.256', '1.2.3', '1.2.3.4.5', '1..2.3', '1.2.3.4.', ' 1.2.3.4', '1.2.3.4 ', '', 'a.b.c.d', '1.2.3.-4', '1.2.3.4/32', '1234.1.1.1']) {
        throwsConfig(() => parseIPv4(s, 'opts.ip'), 'opts.ip', /not a valid IPv4 address/);
      }
    });

    it('says so clearly when given IPv6', () => {
      throwsConfig(() => parseIPv4('::1', 'gateway'), 'gateway', /expected an IPv4 address, got IPv6 address "::1"/);
      throwsConfig(() => parseIPv4('fd00::1', 'gateway'), 'gateway', /IPv6/);
    });

    it('rejects non-strings', () => {
      throwsConfig(() => parseIPv4(42 as unknown as string, 'ip'), 'ip', /as a string, got number/);
      throwsConfig(() => parseIPv4(undefined as unknown as string, 'ip'), 'ip');
    });
  });

  describe('parseIP', () => {
    it('parses IPv4', () => {
      assert.deepEqual(parseIP('192.168.1.1', 'ip'), { address: '192.168.1.1', family: 4 });
    });

    it('canonicalises IPv6 per RFC 5952', () => {
      const cases: [string, string][] = [
        ['::', '::'],
        ['::1', '::1'],
        ['0:0:0:0:0:0:0:1', '::1'],
        ['2001:DB8::1', '2001:db8::1'],
        ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
        ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // tie: first run
        ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // single zero group is not compressed
        ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // longest run wins
        ['fe80::', 'fe80::'],
        ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
        ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
        ['::ffff:1.2.3.4', '::ffff:102:304'],
        ['::1.2.3.4', '::102:304'], // IPv4-compatible, NOT mapped (ipaddr.js 2.x gets this wrong)
        ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
        ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
      ];
      for (const [input, want] of cases) assert.deepEqual(parseIP(input, 'ip'), { address: want, family: 6 }, input);
    });

    it('rejects malformed IPv6, zone ids and prefixes', () => {
      for (const s of [':::', '1::2::3', '1:2:3:4:5:6:7:8:9', '::1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7', '12345::', 'g::', ':1::', '1::2:', '[::1]', '::1.2.3', '::256.1.1.1', '1.2.3.4::']) {
        throwsConfig(() => parseIP(s, 'x'), 'x', /not a valid IP address/);
      }
      throwsConfig(() => parseIP('fe80::1%eth0', 'x'), 'x', /zone id/);
      throwsConfig(() => parseIP('10.0.0.0/8', 'x'), 'x', /prefix/);
      throwsConfig(() => parseIP(null as unknown as string, 'x'), 'x');
    });

    it('formats like ipaddr.js toRFC5952String and round-trips (randomised)', () => {
      const rnd = prng(43);
      for (let i = 0; i < 3000; i++) {
        const bytes: number[] = [];
        for (let b = 0; b < 16; b++) {
          /* Many zero bytes, so zero runs of every length show up. */
          bytes.push(rnd() < 0.5 ? 0 : Math.floor(rnd() * 256));
        }
        const value = bytes.reduce((v, b) => (v << 8n) | BigInt(b), 0n);
        const ours = bigIntToIP(value, 6);
        const theirs = (ipaddr.fromByteArray(bytes) as ipaddr.IPv6).toRFC5952String();
        assert.equal(ours, theirs);
        assert.equal(ipToBigInt(ours, 'x').value, value);
        const longForm = (ipaddr.fromByteArray(bytes) as ipaddr.IPv6).toNormalizedString();
        assert.equal(ipToBigInt(longForm, 'x').value, value);
      }
    });
  });

  describe('ipToBigInt / bigIntToIP', () => {
    it('converts both ways', () => {
      assert.deepEqual(ipToBigInt('10.0.0.1', 'x'), { value: 0x0a000001n, family: 4 });
      assert.deepEqual(ipToBigInt('::ff', 'x'), { value: 255n, family: 6 });
      assert.equal(bigIntToIP(0xffffffffn, 4), '255.255.255.255');
      assert.equal(bigIntToIP((1n << 128n) - 1n, 6), 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
    });

    it('throws RangeError for values that do not fit', () => {
      assert.throws(() => bigIntToIP(1n << 32n, 4), RangeError);
      assert.throws(() => bigIntToIP(-1n, 6), RangeError);
      assert.throws(() => bigIntToIP(1n << 128n, 6), RangeError);
    });
  });

  describe('parseCidr', () => {
    it('parses IPv4 prefixes, keeping host bits in address', () => {
      const c = parseCidr('172.17.0.1/16', 'subnet');
      assert.equal(c.address, '172.17.0.1');
      assert.equal(c.network, '172.17.0.0');
      assert.equal(c.last, '172.17.255.255');
      assert.equal(c.prefix, 16);
      assert.equal(c.family, 4);
      assert.equal(c.start, 0xac110000n);
      assert.equal(c.end, 0xac11ffffn);
      assert.equal(c.toString(), '172.17.0.0/16');
      assert.equal(JSON.stringify({ c }), '{"c":"172.17.0.0/16"}');
    });

    it('parses IPv6 prefixes and edge lengths', () => {
      const c = parseCidr('FD00:1::5/64', 'subnet');
      assert.equal(c.address, 'fd00:1::5');
      assert.equal(c.network, 'fd00:1::');
      assert.equal(c.last, 'fd00:1::ffff:ffff:ffff:ffff');
      assert.equal(c.family, 6);
      assert.equal(parseCidr('0.0.0.0/0', 'x').last, '255.255.255.255');
      assert.equal(parseCidr('10.1.2.3/32', 'x').network, '10.1.2.3');
      assert.equal(parseCidr('::/0', 'x').last, 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
      assert.equal(parseCidr('::1/128', 'x').toString(), '::1/128');
    });

    it('contains()', () => {
      const c = parseCidr('10.0.0.0/8', 'x');
      assert.equal(c.contains('10.255.255.255'), true);
      assert.equal(c.contains('10.0.0.0'), true);
      assert.equal(c.contains('11.0.0.0'), false);
      assert.equal(c.contains('9.255.255.255'), false);
      assert.equal(c.contains('::a00:1'), false, 'other family');
      assert.equal(parseCidr('fd00::/8', 'x').contains('fdff::1'), true);
      throwsConfig(() => c.contains('nope'), 'ip');
    });

    it('rejects bad syntax and prefix lengths', () => {
      for (const s of ['10.0.0.0', '10.0.0.0/', '10.0.0.0/33', '10.0.0.0/-1', '10.0.0.0/01', '10.0.0.0/8/8', '10.0.0.0/ 8', '::/129', 'x/8', '/8']) {
        throwsConfig(() => parseCidr(s, 'ipRange'), 'ipRange');
      }
      throwsConfig(() => parseCidr(7 as unknown as string, 'ipRange'), 'ipRange', /string/);
    });
  });

  describe('cidrOverlaps', () => {
    it('detects overlap, adjacency and containment', () => {
      const cases: [string, string, boolean][] = [
        ['10.0.0.0/8', '10.1.0.0/16', true],
        ['10.1.0.0/16', '10.0.0.0/8', true],
        ['10.0.0.0/24', '10.0.1.0/24', false],
        ['10.0.0.0/23', '10.0.1.0/24', true],
        ['192.168.1.5/24', '192.168.1.0/24', true],
        ['0.0.0.0/0', '1.2.3.4/32', true],
        ['10.0.0.0/8', '::/0', false],
        ['fd00::/64', 'fd00:0:0:1::/64', false],
        ['fd00::/63', 'fd00:0:0:1::/64', true],
      ];
      for (const [a, b, want] of cases) assert.equal(cidrOverlaps(a, b), want, `${a} vs ${b}`);
      assert.equal(cidrOverlaps(parseCidr('10.0.0.0/8', 'x'), '10.2.0.0/16'), true);
    });
  });

  describe('interface names', () => {
    it('accepts Linux-valid names', () => {
      for (const n of ['eth0', 'lo', 'veth1234567890a', 'br-abcdef123456', 'a', 'x.y', 'é', 'ééééééé', '...']) {
        assert.equal(isValidIfname(n), true, n);
        assert.equal(assertIfname(n, 'ifname'), n);
      }
    });

    it('rejects invalid names with a reason', () => {
      const cases: [string, RegExp][] = [
        ['', /empty/],
        ['veth1234567890ab', /16 bytes long/],
        ['éééééééé', /16 bytes long/], // 8 two-byte characters
        ['.', /not allowed/],
        ['..', /not allowed/],
        ['a/b', /character/],
        ['a b', /character/],
        ['a\tb', /character/],
        ['a\nb', /character/],
        ['eth0:1', /character/],
        ['eth%d', /character/],
        ['a\0b', /character/],
      ];
      for (const [n, re] of cases) {
        assert.equal(isValidIfname(n), false, JSON.stringify(n));
        throwsConfig(() => assertIfname(n, 'bridge'), 'bridge', re);
      }
      assert.equal(isValidIfname(3 as unknown as string), false);
      throwsConfig(() => assertIfname(undefined as unknown as string, 'bridge'), 'bridge', /string/);
    });
  });

  describe('MAC addresses', () => {
    it('parseMac normalises case and separators', () => {
      assert.equal(parseMac('02:42:AC:11:00:02', 'mac'), '02:42:ac:11:00:02');
      assert.equal(parseMac('02-42-ac-11-00-02', 'mac'), '02:42:ac:11:00:02');
      assert.equal(parseMac('00:16:3e:00:00:01', 'mac'), '00:16:3e:00:00:01');
    });

    it('parseMac rejects bad syntax, multicast, broadcast and zero', () => {
      for (const s of ['02:42:ac:11:00', '02:42:ac:11:00:02:03', '02:42-ac:11:00:02', '0242ac110002', '2:42:ac:11:0:2', 'zz:42:ac:11:00:02', '']) {
        throwsConfig(() => parseMac(s, 'macAddress'), 'macAddress', /not a MAC address/);
      }
      throwsConfig(() => parseMac('01:00:5e:00:00:01', 'macAddress'), 'macAddress', /multicast/);
      throwsConfig(() => parseMac('33:33:00:00:00:01', 'macAddress'), 'macAddress', /multicast/);
      throwsConfig(() => parseMac('ff:ff:ff:ff:ff:ff', 'macAddress'), 'macAddress', /multicast/);
      throwsConfig(() => parseMac('00:00:00:00:00:00', 'macAddress'), 'macAddress', /all-zero/);
      throwsConfig(() => parseMac(1 as unknown as string, 'macAddress'), 'macAddress', /string/);
    });

    it('randomMac is locally administered unicast in 02:42', () => {
      const seen = new Set<string>();
      for (let i = 0; i < 1000; i++) {
        const mac = randomMac();
        assert.match(mac, /^02:42(:[0-9a-f]{2}){4}$/);
        assert.equal(parseMac(mac, 'mac'), mac);
        seen.add(mac);
      }
      assert.ok(seen.size > 990, 'random MACs should practically never repeat');
    });

    it('macFromIPv4 follows Docker', () => {
      assert.equal(macFromIPv4('172.17.0.2'), '02:42:ac:11:00:02');
      assert.equal(macFromIPv4('10.0.255.1'), '02:42:0a:00:ff:01');
      assert.equal(macFromIPv4('0.0.0.0'), '02:42:00:00:00:00');
      throwsConfig(() => macFromIPv4('fd00::2'), 'ip', /IPv6/);
    });
  });
});
