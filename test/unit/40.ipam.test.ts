import { strict as assert } from 'node:assert';
import { ConfigError, NetmodesError } from '../../lib/errors';
import { AddressPool, Ipv4Pool, Ipv6Pool, MAX_WINDOW } from '../../lib/ipam/allocator';
import {
  checkSubnetFree,
  chooseSubnet,
  DEFAULT_ADDRESS_POOLS,
  defaultGateway,
  parseSubnet,
  reservedAddresses,
  validateGateway,
} from '../../lib/ipam/subnets';
import { bigIntToIP, ipToBigInt, parseCidr } from '../../lib/net/addr';
import { throwsConfig, throwsPolicy, prng } from '../helpers/assert';



/** Deterministic PRNG (mulberry32) so failures reproduce. */

function drain(pool: AddressPool): string[] {
  const out: string[] = [];
  for (;;) {
    try {
      out.push(pool.allocate());
    } catch (e) {
      assert.equal((e as NetmodesError).code, 'EPOOLEXHAUSTED');
      return out;
    }
  }
}

describe('ipam/allocator', () => {
  describe('Ipv4Pool basics', () => {
    it('hands out addresses in order, skipping network and gateway', () => {
      const p = new Ipv4Pool({ subnet: '172.17.0.0/16' });
      assert.equal(p.subnet, '172.17.0.0/16');
      assert.equal(p.gateway, '172.17.0.1');
      assert.equal(p.family, 4);
      assert.equal(p.ipRange, undefined);
      assert.equal(p.allocate(), '172.17.0.2');
      assert.equal(p.allocate(), '172.17.0.3');
      assert.equal(p.size, 65536 - 3);
      assert.equal(p.used, 2);
      assert.equal(p.free, 65536 - 5);
    });

    it('exhausts a /29 after 5 addresses with EPOOLEXHAUSTED', () => {
      const p = new Ipv4Pool({ subnet: '192.168.5.0/29' });
      assert.equal(p.size, 5);
      const got = drain(p);
      assert.deepEqual(got, ['192.168.5.2', '192.168.5.3', '192.168.5.4', '192.168.5.5', '192.168.5.6']);
      assert.equal(p.used, 5);
      assert.equal(p.free, 0);
      throwsPolicy(() => p.allocate(), 'EPOOLEXHAUSTED', /192\.168\.5\.0\/29/);
      assert.ok(p.release('192.168.5.4'));
      assert.equal(p.allocate(), '192.168.5.4');
    });

    it('allocates 200 distinct addresses', () => {
      const p = new Ipv4Pool({ subnet: '10.10.0.0/24' });
      const seen = new Set<string>();
      for (let i = 0; i < 200; i++) seen.add(p.allocate());
      assert.equal(seen.size, 200);
      assert.equal(p.used, 200);
      for (const ip of seen) {
        assert.ok(parseCidr('10.10.0.0/24', 'x').contains(ip));
        assert.notEqual(ip, '10.10.0.0');
        assert.notEqual(ip, '10.10.0.1');
        assert.notEqual(ip, '10.10.0.255');
        assert.ok(p.has(ip));
      }
    });

    it('does not reuse a released address before the range is used up (next-fit)', () => {
      const p = new Ipv4Pool({ subnet: '10.0.0.0/24' });
      const a = p.allocate();
      p.allocate();
      assert.equal(p.release(a), true);
      assert.equal(p.allocate(), '10.0.0.4');
      assert.equal(p.has(a), false);
    });

    it('wraps around to freed addresses at the end of the range', () => {
      const p = new Ipv4Pool({ subnet: '10.0.0.0/28' }); // .2 .. .14
      const all = drain(p);
      assert.equal(all.length, 13);
      p.release('10.0.0.9');
      p.release('10.0.0.3');
      p.release('10.0.0.14');
      // Last allocation was .14, so the search wraps and finds .3 first, then .9, then .14.
      assert.equal(p.allocate(), '10.0.0.3');
      assert.equal(p.allocate(), '10.0.0.9');
      assert.equal(p.allocate(), '10.0.0.14');
      throwsPolicy(() => p.allocate(), 'EPOOLEXHAUSTED');
    });

    it('wraps when the cursor sits at the very end of the window', () => {
      const p = new Ipv4Pool({ subnet: '10.0.0.0/30', gateway: null }); // .1 .2
      assert.equal(p.allocate(), '10.0.0.1');
      assert.equal(p.allocate(), '10.0.0.2');
      p.release('10.0.0.1');
      assert.equal(p.allocate(), '10.0.0.1');
    });

    it('release is idempotent and ignores reserved and foreign addresses', () => {
      const p = new Ipv4Pool({ subnet: '10.0.0.0/24' });
      const a = p.allocate();
      assert.equal(p.release(a), true);
      assert.equal(p.release(a), false);
      assert.equal(p.release('10.0.0.1'), false, 'gateway');
      assert.equal(p.release('10.0.0.0'), false, 'network');
      assert.equal(p.release('10.0.0.255'), false, 'broadcast');
      assert.equal(p.release('192.168.0.1'), false, 'outside');
      assert.equal(p.release('fd00::1'), false, 'other family');
      assert.equal(p.used, 0);
      // The gateway is still not handed out after a "release".
      assert.ok(drain(p).every((ip) => ip !== '10.0.0.1' && ip !== '10.0.0.0' && ip !== '10.0.0.255'));
      throwsConfig(() => p.release('garbage'), 'ip');
    });

    it('has() is false for free, reserved and foreign addresses', () => {
      const p = new Ipv4Pool({ subnet: '10.0.0.0/24' });
      assert.equal(p.has('10.0.0.2'), false);
      assert.equal(p.has('10.0.0.1'), false);
      assert.equal(p.has('10.0.0.0'), false);
      assert.equal(p.has('10.9.0.0'), false);
      p.allocate();
      assert.equal(p.has('10.0.0.2'), true);
      throwsConfig(() => p.has('10.0.0'), 'ip');
    });
  });

  describe('options', () => {
    it('validates the subnet', () => {
      throwsConfig(() => new Ipv4Pool({ subnet: '10.0.0.1/24' }), 'subnet', /it should be 10\.0\.0\.0\/24/);
      throwsConfig(() => new Ipv4Pool({ subnet: '10.0.0.0' }), 'subnet', /prefix length/);
      throwsConfig(() => new Ipv4Pool({ subnet: 'fd00::/64' }), 'subnet', /expected an IPv4 subnet/);
      throwsConfig(() => new Ipv6Pool({ subnet: '10.0.0.0/8' }), 'subnet', /expected an IPv6 subnet/);
      throwsConfig(() => new Ipv4Pool(undefined as never), 'subnet');
      throwsConfig(() => new Ipv4Pool({} as never), 'subnet');
    });

    it('custom, default and absent gateways', () => {
      const custom = new Ipv4Pool({ subnet: '10.0.0.0/29', gateway: '10.0.0.6' });
      assert.equal(custom.gateway, '10.0.0.6');
      assert.deepEqual(drain(custom), ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5']);
      const none = new Ipv4Pool({ subnet: '10.0.0.0/29', gateway: null });
      assert.equal(none.gateway, null);
      assert.equal(none.size, 6);
      assert.deepEqual(drain(none), ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
    });

    it('rejects bad gateways', () => {
      throwsConfig(() => new Ipv4Pool({ subnet: '10.0.0.0/24', gateway: '10.0.1.1' }), 'gateway', /outside subnet/);
      throwsConfig(() => new Ipv4Pool({ subnet: '10.0.0.0/24', gateway: '10.0.0.0' }), 'gateway', /network address/);
      throwsConfig(() => new Ipv4Pool({ subnet: '10.0.0.0/24', gateway: '10.0.0.255' }), 'gateway', /broadcast address/);
      throwsConfig(() => new Ipv4Pool({ subnet: '10.0.0.0/24', gateway: 'fd00::1' }), 'gateway', /IPv6 but subnet/);
      throwsConfig(() => new Ipv4Pool({ subnet: '10.0.0.0/24', gateway: 'x' }), 'gateway');
    });

    it('allocates only inside ipRange; the range may include the subnet edges', () => {
      const p = new Ipv4Pool({ subnet: '10.0.0.0/16', ipRange: '10.0.5.0/30' });
      assert.equal(p.ipRange, '10.0.5.0/30');
      assert.equal(p.size, 4);
      assert.deepEqual(drain(p), ['10.0.5.0', '10.0.5.1', '10.0.5.2', '10.0.5.3']);
      throwsPolicy(() => p.allocate(), 'EPOOLEXHAUSTED', /10\.0\.5\.0\/30 \(subnet 10\.0\.0\.0\/16\)/);

      const edge = new Ipv4Pool({ subnet: '10.0.0.0/16', ipRange: '10.0.0.0/30' });
      assert.equal(edge.size, 2, 'network and gateway are inside the range');
      assert.deepEqual(drain(edge), ['10.0.0.2', '10.0.0.3']);

      const top = new Ipv4Pool({ subnet: '10.0.0.0/16', ipRange: '10.0.255.252/30' });
      assert.deepEqual(drain(top), ['10.0.255.252', '10.0.255.253', '10.0.255.254']);
    });

    it('rejects bad ipRange', () => {
      throwsConfig(() => new Ipv4Pool({ subnet: '10.0.0.0/16', ipRange: '10.1.0.0/24' }), 'ipRange', /not inside subnet/);
      throwsConfig(() => new Ipv4Pool({ subnet: '10.0.0.0/16', ipRange: '10.0.0.0/15' }), 'ipRange', /not inside subnet/);
      throwsConfig(() => new Ipv4Pool({ subnet: '10.0.0.0/16', ipRange: 'fd00::/120' }), 'ipRange', /not inside subnet/);
      throwsConfig(() => new Ipv4Pool({ subnet: '10.0.0.0/16', ipRange: '10.0.0.5/24' }), 'ipRange', /should be 10\.0\.0\.0\/24/);
    });

    it('handles /31 and /32 (RFC 3021: no network/broadcast)', () => {
      const p31 = new Ipv4Pool({ subnet: '10.0.0.0/31', gateway: null });
      assert.deepEqual(drain(p31), ['10.0.0.0', '10.0.0.1']);
      const p31gw = new Ipv4Pool({ subnet: '10.0.0.0/31' });
      assert.equal(p31gw.gateway, '10.0.0.1');
      assert.deepEqual(drain(p31gw), ['10.0.0.0']);
      throwsConfig(() => new Ipv4Pool({ subnet: '10.0.0.7/32' }), 'subnet', /no room for a gateway/);
      assert.deepEqual(drain(new Ipv4Pool({ subnet: '10.0.0.7/32', gateway: null })), ['10.0.0.7']);
    });
  });

  describe('reserve', () => {
    it('takes a static address anywhere in the subnet, even outside ipRange', () => {
      const p = new Ipv4Pool({ subnet: '10.0.0.0/16', ipRange: '10.0.5.0/24' });
      assert.equal(p.reserve('10.0.9.9'), '10.0.9.9');
      assert.equal(p.reserve('10.0.5.7'), '10.0.5.7');
      assert.equal(p.has('10.0.9.9'), true);
      assert.equal(p.used, 2);
      assert.equal(p.free, 255, 'only in-range reservations reduce free');
      throwsPolicy(() => p.reserve('10.0.9.9'), 'EADDRINUSE', /10\.0\.9\.9 is already in use/);
      throwsPolicy(() => p.reserve('10.0.5.7'), 'EADDRINUSE');
      assert.equal(p.release('10.0.9.9'), true);
      assert.equal(p.release('10.0.9.9'), false);
      assert.equal(p.reserve('10.0.9.9'), '10.0.9.9');
    });

    it('conflicts with dynamic allocations and vice versa', () => {
      const p = new Ipv4Pool({ subnet: '10.0.0.0/29' });
      const a = p.allocate();
      throwsPolicy(() => p.reserve(a), 'EADDRINUSE');
      p.reserve('10.0.0.3');
      assert.equal(p.allocate(), '10.0.0.4', 'skips the static address');
    });

    it('does not move the next-fit position', () => {
      const p = new Ipv4Pool({ subnet: '10.0.0.0/24' });
      p.allocate(); // .2
      p.reserve('10.0.0.100');
      assert.equal(p.allocate(), '10.0.0.3');
    });

    it('rejects reserved, foreign and malformed addresses with ConfigError', () => {
      const p = new Ipv4Pool({ subnet: '10.0.0.0/24' });
      throwsConfig(() => p.reserve('10.0.0.1'), 'ip', /gateway address/);
      throwsConfig(() => p.reserve('10.0.0.0'), 'ip', /network address/);
      throwsConfig(() => p.reserve('10.0.0.255'), 'ip', /broadcast address/);
      throwsConfig(() => p.reserve('10.0.1.5'), 'ip', /not an address of subnet 10\.0\.0\.0\/24/);
      throwsConfig(() => p.reserve('fd00::5'), 'ip', /not an address of subnet/);
      throwsConfig(() => p.reserve('010.0.0.5'), 'ip');
    });

    it('returns the canonical form', () => {
      const p = new Ipv6Pool({ subnet: 'fd00::/64' });
      assert.equal(p.reserve('FD00:0:0:0::0005'), 'fd00::5');
      assert.equal(p.has('fd00::5'), true);
      assert.equal(p.release('fd00:0000::5'), true);
    });
  });

  describe('large pools', () => {
    it('a /8 allocates quickly and crosses page boundaries correctly', () => {
      const p = new Ipv4Pool({ subnet: '10.0.0.0/8' });
      assert.equal(p.size, 2 ** 24 - 3);
      let last = '';
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < 200_000; i++) last = p.allocate();
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      // .0 network, .1 gateway, so the 200000th address has offset 200001.
      assert.equal(last, bigIntToIP(0x0a000000n + 200_001n, 4));
      assert.ok(ms < 2000, `200k allocations took ${ms} ms`);
      assert.equal(p.has('10.1.0.0'), true, 'first address of the second page');
      assert.equal(p.release('10.1.0.0'), true);
      assert.equal(p.has('10.0.255.255'), true);
    });

    it('finds the one free address in an almost full /16 after wrapping', () => {
      const p = new Ipv4Pool({ subnet: '172.20.0.0/16' });
      drain(p);
      p.release('172.20.0.77');
      assert.equal(p.allocate(), '172.20.0.77');
      p.release('172.20.255.254');
      assert.equal(p.allocate(), '172.20.255.254');
      throwsPolicy(() => p.allocate(), 'EPOOLEXHAUSTED');
    });
  });

  describe('Ipv6Pool', () => {
    it('skips the subnet-router anycast address and the gateway; no broadcast', () => {
      const p = new Ipv6Pool({ subnet: 'fd00:1::/64' });
      assert.equal(p.family, 6);
      assert.equal(p.gateway, 'fd00:1::1');
      assert.equal(p.allocate(), 'fd00:1::2');
      assert.equal(p.size, MAX_WINDOW - 2, 'window capped');
      const small = new Ipv6Pool({ subnet: 'fd00:2::/120' });
      const all = drain(small);
      assert.equal(all.length, 254);
      assert.equal(all[all.length - 1], 'fd00:2::ff', 'the last address is usable in IPv6');
      throwsConfig(() => small.reserve('fd00:2::'), 'ip', /network address/);
      throwsConfig(() => small.reserve('fd00:2::1'), 'ip', /gateway address/);
    });

    it('has no reserved addresses in /127 and /128', () => {
      assert.deepEqual(drain(new Ipv6Pool({ subnet: 'fd00::/127', gateway: null })), ['fd00::', 'fd00::1']);
      assert.deepEqual(drain(new Ipv6Pool({ subnet: 'fd00::/127' })), ['fd00::']);
    });

    it('reserves static addresses beyond the bitmap window', () => {
      const p = new Ipv6Pool({ subnet: 'fd00::/64', ipRange: 'fd00::1:0/112' });
      assert.equal(p.allocate(), 'fd00::1:0');
      assert.equal(p.reserve('fd00::dead:beef:0:1'), 'fd00::dead:beef:0:1');
      assert.equal(p.reserve('fd00::5'), 'fd00::5', 'below the range');
      throwsPolicy(() => p.reserve('fd00::dead:beef:0:1'), 'EADDRINUSE');
      assert.equal(p.used, 3);
      assert.equal(p.free, 65536 - 1);
      assert.deepEqual(p.addresses(), ['fd00::5', 'fd00::1:0', 'fd00::dead:beef:0:1']);
      const q = Ipv6Pool.fromAllocations(p.toJSON(), p.toJSON().allocated, p.toJSON().last);
      assert.deepEqual(q.toJSON(), p.toJSON());
      assert.equal(q.allocate(), 'fd00::1:1');
      assert.equal(p.release('fd00::dead:beef:0:1'), true);
      assert.equal(p.has('fd00::dead:beef:0:1'), false);
    });
  });

  describe('toJSON / fromAllocations', () => {
    it('round-trips, including the next-fit position', () => {
      const p = new Ipv4Pool({ subnet: '10.0.0.0/24', ipRange: '10.0.0.0/25' });
      for (let i = 0; i < 10; i++) p.allocate();
      p.release('10.0.0.5');
      p.reserve('10.0.0.200');
      const state = JSON.parse(JSON.stringify(p));
      assert.deepEqual(state, {
        subnet: '10.0.0.0/24',
        ipRange: '10.0.0.0/25',
        gateway: '10.0.0.1',
        allocated: ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.6', '10.0.0.7', '10.0.0.8', '10.0.0.9', '10.0.0.10', '10.0.0.11', '10.0.0.200'],
        last: '10.0.0.11',
      });
      const q = Ipv4Pool.fromAllocations(state, state.allocated, state.last);
      assert.ok(q instanceof Ipv4Pool);
      assert.deepEqual(q.toJSON(), state);
      assert.equal(q.used, p.used);
      assert.equal(q.free, p.free);
      assert.equal(q.allocate(), p.allocate());
    });

    it('without `last`, resumes after the highest in-range address', () => {
      const q = Ipv4Pool.fromAllocations({ subnet: '10.0.0.0/24' }, ['10.0.0.9', '10.0.0.3', '10.0.0.1', '10.0.0.3']);
      assert.equal(q.used, 2, 'gateway and duplicate skipped');
      assert.equal(q.allocate(), '10.0.0.10');
      const empty = Ipv6Pool.fromAllocations({ subnet: 'fd00::/120' }, []);
      assert.ok(empty instanceof Ipv6Pool);
      assert.equal(empty.allocate(), 'fd00::2');
    });

    it('a pool that never allocated has no `last`', () => {
      const p = new Ipv4Pool({ subnet: '10.0.0.0/24', gateway: null });
      p.reserve('10.0.0.9');
      assert.deepEqual(p.toJSON(), { subnet: '10.0.0.0/24', gateway: null, allocated: ['10.0.0.9'] });
    });

    it('rejects addresses that cannot be held', () => {
      throwsConfig(() => Ipv4Pool.fromAllocations({ subnet: '10.0.0.0/24' }, ['10.0.0.5', '10.0.1.5']), 'allocations[1]', /not an address of subnet/);
      throwsConfig(() => Ipv4Pool.fromAllocations({ subnet: '10.0.0.0/24' }, ['10.0.0.255']), 'allocations[0]', /reserved/);
      throwsConfig(() => Ipv4Pool.fromAllocations({ subnet: '10.0.0.0/24' }, ['x']), 'allocations[0]');
      throwsConfig(() => Ipv4Pool.fromAllocations({ subnet: '10.0.0.0/24' }, [], '10.1.0.0'), 'last');
    });
  });

  describe('randomised', () => {
    /** Returns how often the pool was found exhausted. */
    function churn(pool: AddressPool, ops: number, seed: number, reserved: string[]): number {
      const rnd = prng(seed);
      let exhausted = 0;
      const held = new Set<string>();
      const list: string[] = [];
      for (let i = 0; i < ops; i++) {
        if (list.length > 0 && rnd() < 0.45) {
          const k = Math.floor(rnd() * list.length);
          const ip = list[k];
          list[k] = list[list.length - 1];
          list.pop();
          held.delete(ip);
          assert.equal(pool.release(ip), true);
          assert.equal(pool.has(ip), false);
        } else if (pool.free === 0) {
          throwsPolicy(() => pool.allocate(), 'EPOOLEXHAUSTED');
          exhausted++;
        } else {
          const ip = pool.allocate();
          assert.ok(!held.has(ip), `duplicate allocation of ${ip} at op ${i}`);
          assert.ok(!reserved.includes(ip), `reserved address ${ip} handed out`);
          held.add(ip);
          list.push(ip);
        }
        assert.equal(pool.used, held.size);
      }
      assert.deepEqual(new Set(pool.addresses()), held);
      for (const ip of held) assert.equal(pool.has(ip), true);
      return exhausted;
    }

    it('10k random allocate/release ops on a /22 never duplicate (checked against a Set)', () => {
      churn(new Ipv4Pool({ subnet: '10.4.0.0/22' }), 10_000, 1, ['10.4.0.0', '10.4.0.1', '10.4.3.255']);
    });

    it('10k random ops on a /27, exhausting it often', () => {
      const pool = new Ipv4Pool({ subnet: '10.5.0.0/27', gateway: '10.5.0.17' });
      assert.ok(churn(pool, 10_000, 2, ['10.5.0.0', '10.5.0.17', '10.5.0.31']) > 100);
    });

    it('10k random ops on an IPv6 /120 with a range', () => {
      churn(new Ipv6Pool({ subnet: 'fd00::/112', ipRange: 'fd00::/120' }), 10_000, 3, ['fd00::', 'fd00::1']);
    });
  });
});

describe('ipam/subnets', () => {
  describe('chooseSubnet', () => {
    it('follows Docker\'s pool order', () => {
      assert.equal(DEFAULT_ADDRESS_POOLS.length, 17);
      assert.equal(chooseSubnet([]), '172.17.0.0/16');
      assert.equal(chooseSubnet(['172.17.0.0/16']), '172.18.0.0/16');
      assert.equal(chooseSubnet(['172.17.0.1/16', '172.18.42.7/24']), '172.19.0.0/16');
      assert.equal(chooseSubnet(['172.16.0.0/12']), '192.168.0.0/20');
      assert.equal(chooseSubnet(['172.16.0.0/12', '192.168.0.0/20', '192.168.16.5']), '192.168.32.0/20');
      assert.equal(chooseSubnet(['172.16.0.0/12', '192.168.1.0/24']), '192.168.16.0/20');
    });

    it('falls back to 10.0.0.0/8 in /24s, skipping big blocks in one step', () => {
      assert.equal(chooseSubnet(['172.16.0.0/12', '192.168.0.0/16']), '10.0.0.0/24');
      assert.equal(chooseSubnet(['172.16.0.0/12', '192.168.0.0/16', '10.0.0.0/9', '10.128.0.0/24']), '10.128.1.0/24');
      const many = Array.from({ length: 2000 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
      assert.equal(chooseSubnet(['172.16.0.0/12', '192.168.0.0/16', ...many]), '10.7.208.0/24');
    });

    it('ignores default routes and other families', () => {
      assert.equal(chooseSubnet(['0.0.0.0/0', '::/0', 'fd00::/8']), '172.17.0.0/16');
    });

    it('throws EPOOLEXHAUSTED when everything overlaps', () => {
      throwsPolicy(() => chooseSubnet(['172.16.0.0/12', '192.168.0.0/16', '10.0.0.0/8']), 'EPOOLEXHAUSTED', /fully subnetted/);
    });

    it('accepts custom pools, IPv6 included', () => {
      assert.equal(chooseSubnet(['fd00::/64'], { pools: [{ base: 'fd00::/48', size: 64 }] }), 'fd00:0:0:1::/64');
      assert.equal(chooseSubnet(['10.98.0.0/16'], { pools: [{ base: '10.98.0.0/15', size: 16 }] }), '10.99.0.0/16');
      assert.equal(chooseSubnet([], { pools: [{ base: '10.98.0.0/15', size: 15 }] }), '10.98.0.0/15');
    });

    it('validates its input', () => {
      throwsConfig(() => chooseSubnet(['10.0.0.0/8', 'nope']), 'inUse[1]');
      throwsConfig(() => chooseSubnet('10.0.0.0/8' as unknown as string[]), 'inUse');
      throwsConfig(() => chooseSubnet([], { pools: [] }), 'pools');
      throwsConfig(() => chooseSubnet([], { pools: [{ base: '10.0.0.1/8', size: 16 }] }), 'pools[0].base', /should be/);
      throwsConfig(() => chooseSubnet([], { pools: [{ base: '10.0.0.0/8', size: 7 }] }), 'pools[0].size');
      throwsConfig(() => chooseSubnet([], { pools: [{ base: '10.0.0.0/8', size: 33 }] }), 'pools[0].size');
    });
  });

  describe('checkSubnetFree', () => {
    it('passes free subnets and returns the parsed subnet', () => {
      const c = checkSubnetFree('172.30.0.0/16', ['172.17.0.0/16', '0.0.0.0/0', 'fd00::/8', '10.0.0.1']);
      assert.equal(c.toString(), '172.30.0.0/16');
    });

    it('throws ESUBNETOVERLAP naming both prefixes', () => {
      throwsPolicy(
        () => checkSubnetFree('172.17.0.0/16', ['10.0.0.0/8', '172.17.5.0/24']),
        'ESUBNETOVERLAP',
        /172\.17\.0\.0\/16 overlaps 172\.17\.5\.0\/24/,
      );
      throwsPolicy(() => checkSubnetFree('172.17.5.0/24', ['172.16.0.0/12']), 'ESUBNETOVERLAP', /172\.16\.0\.0\/12/);
      throwsPolicy(() => checkSubnetFree('10.0.0.0/24', ['10.0.0.77']), 'ESUBNETOVERLAP');
    });

    it('validates its input', () => {
      throwsConfig(() => checkSubnetFree('172.17.0.1/16', []), 'subnet', /should be 172\.17\.0\.0\/16/);
      throwsConfig(() => checkSubnetFree('172.17.0.0', [], 'networks[0].subnet'), 'networks[0].subnet');
      throwsConfig(() => checkSubnetFree('172.17.0.0/16', ['10.0.0.0/8', '10.0.0.0/'] ), 'inUse[1]');
      throwsConfig(() => checkSubnetFree('172.17.0.0/16', null as unknown as string[]), 'inUse');
    });
  });

  describe('gateways', () => {
    it('defaultGateway is the first host address', () => {
      assert.equal(defaultGateway('172.17.0.0/16'), '172.17.0.1');
      assert.equal(defaultGateway('fd00:1::/64'), 'fd00:1::1');
      assert.equal(defaultGateway('10.0.0.0/31'), '10.0.0.1');
      assert.equal(defaultGateway(parseCidr('10.0.0.0/8', 'x')), '10.0.0.1');
      throwsConfig(() => defaultGateway('10.0.0.1/32'), 'subnet', /no room/);
      throwsConfig(() => defaultGateway('10.0.0.1/24', 'opts.subnet'), 'opts.subnet', /should be/);
    });

    it('validateGateway', () => {
      assert.equal(validateGateway('10.0.0.254', '10.0.0.0/24'), '10.0.0.254');
      assert.equal(validateGateway('FD00::FFFF', 'fd00::/112'), 'fd00::ffff');
      assert.equal(validateGateway('10.0.0.0', '10.0.0.0/31'), '10.0.0.0');
      throwsConfig(() => validateGateway('10.0.0.0', '10.0.0.0/24'), 'gateway', /network address/);
      throwsConfig(() => validateGateway('10.0.0.255', '10.0.0.0/24'), 'gateway', /broadcast address/);
      throwsConfig(() => validateGateway('fd00::', 'fd00::/64', 'ipv6.gateway'), 'ipv6.gateway', /network address/);
      throwsConfig(() => validateGateway('10.0.1.1', '10.0.0.0/24'), 'gateway', /outside subnet/);
      throwsConfig(() => validateGateway('::1', '10.0.0.0/24'), 'gateway', /IPv6 but subnet .* is IPv4/);
      throwsConfig(() => validateGateway('10.0.0.1', 'bad'), 'subnet');
    });

    it('reservedAddresses', () => {
      const v = (s: string) => ipToBigInt(s, 'x').value;
      assert.deepEqual(reservedAddresses(parseSubnet('10.0.0.0/24', 'x')), [v('10.0.0.0'), v('10.0.0.255')]);
      assert.deepEqual(reservedAddresses(parseSubnet('10.0.0.0/31', 'x')), []);
      assert.deepEqual(reservedAddresses(parseSubnet('fd00::/64', 'x')), [v('fd00::')]);
      assert.deepEqual(reservedAddresses(parseSubnet('fd00::/127', 'x')), []);
    });
  });
});
