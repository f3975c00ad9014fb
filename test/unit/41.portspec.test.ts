import { strict as assert } from 'node:assert';
import { ConfigError, NetmodesError } from '../../lib/errors';
import {
  EPHEMERAL_PORT_RANGE,
  hostIpsConflict,
  parsePortSpec,
  parsePortSpecs,
  PortAllocator,
  PortMapping,
  PortSpec,
} from '../../lib/portspec';
import { throwsConfig, throwsPolicy } from '../helpers/assert';



const m = (containerPort: number, hostPort = 0, hostIp = '0.0.0.0', protocol: PortMapping['protocol'] = 'tcp'): PortMapping => ({
  protocol,
  hostIp,
  hostPort,
  containerPort,
});

describe('portspec', () => {
  describe('parsePortSpec (strings)', () => {
    const cases: [string, PortMapping[]][] = [
      ['80', [m(80)]],
      ['8080:80', [m(80, 8080)]],
      ['8080:80/udp', [m(80, 8080, '0.0.0.0', 'udp')]],
      ['8080:80/UDP', [m(80, 8080, '0.0.0.0', 'udp')]],
      ['5000/sctp', [m(5000, 0, '0.0.0.0', 'sctp')]],
      ['127.0.0.1:8080:80', [m(80, 8080, '127.0.0.1')]],
      ['127.0.0.1::80', [m(80, 0, '127.0.0.1')]],
      ['0.0.0.0:8080:80', [m(80, 8080)]],
      [':8080:80', [m(80, 8080)]],
      ['0:80', [m(80)]],
      ['[::1]:8080:80', [m(80, 8080, '::1')]],
      ['[::]:8080:80/udp', [m(80, 8080, '::', 'udp')]],
      ['[FD00:0::1]::80', [m(80, 0, 'fd00::1')]],
      ['[::1]::80-81', [m(80, 0, '::1'), m(81, 0, '::1')]],
      ['8000-8002:9000-9002', [m(9000, 8000), m(9001, 8001), m(9002, 8002)]],
      ['8000-8000:80', [m(80, 8000)]],
      ['80-82', [m(80), m(81), m(82)]],
      ['8000-8010:80', [{ protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 0, hostPortRange: [8000, 8010], containerPort: 80 }]],
      ['127.0.0.1:8000-8010:80/udp', [{ protocol: 'udp', hostIp: '127.0.0.1', hostPort: 0, hostPortRange: [8000, 8010], containerPort: 80 }]],
      ['65535:1', [m(1, 65535)]],
    ];
    for (const [spec, want] of cases) {
      it(JSON.stringify(spec), () => assert.deepEqual(parsePortSpec(spec), want));
    }
  });

  describe('parsePortSpec (objects)', () => {
    const cases: [PortSpec, PortMapping[]][] = [
      [{ containerPort: 80 }, [m(80)]],
      [{ containerPort: 80, hostPort: 0 }, [m(80)]],
      [{ containerPort: 80, hostPort: 8080, protocol: 'udp', hostIp: '' }, [m(80, 8080, '0.0.0.0', 'udp')]],
      [{ containerPort: 80, hostPort: 8080, hostIp: '::ffff:7f00:1' }, [m(80, 8080, '::ffff:7f00:1')]],
      [{ containerPort: [80, 81], hostPort: [8080, 8081] }, [m(80, 8080), m(81, 8081)]],
      [{ containerPort: [80, 81] }, [m(80), m(81)]],
      [{ containerPort: 80, hostPort: [8080, 8090], hostIp: '10.0.0.1' }, [{ protocol: 'tcp', hostIp: '10.0.0.1', hostPort: 0, hostPortRange: [8080, 8090], containerPort: 80 }]],
      [{ containerPort: 80, protocol: 'SCTP' as 'sctp' }, [m(80, 0, '0.0.0.0', 'sctp')]],
    ];
    for (const [spec, want] of cases) {
      it(JSON.stringify(spec), () => assert.deepEqual(parsePortSpec(spec), want));
    }
  });

  describe('errors', () => {
    const cases: [string | PortSpec, string, RegExp][] = [
      ['', 'ports[1].containerPort', /invalid port or range/],
      ['0', 'ports[1].containerPort', /1\.\.65535/],
      ['65536', 'ports[1].containerPort', /1\.\.65535/],
      ['123456', 'ports[1].containerPort', /invalid port or range/],
      ['http', 'ports[1].containerPort', /invalid port or range/],
      ['+80', 'ports[1].containerPort', /invalid port or range/],
      ['80-', 'ports[1].containerPort', /invalid port or range/],
      ['90-80', 'ports[1].containerPort', /reversed/],
      ['8080-8070:80', 'ports[1].hostPort', /reversed/],
      ['0-5:80', 'ports[1].hostPort', /1\.\.65535/],
      ['x:80', 'ports[1].hostPort', /invalid port or range/],
      ['70000:80', 'ports[1].hostPort', /0\.\.65535/],
      ['80/', 'ports[1].protocol', /unknown protocol ""/],
      ['80/icmp', 'ports[1].protocol', /unknown protocol "icmp"/],
      ['8080:80-81', 'ports[1].hostPort', /single host port \(8080\) cannot publish container port range 80-81/],
      ['8080-8082:80-81', 'ports[1].hostPort', /differ in length/],
      ['1.2.3:8080:80', 'ports[1].hostIp', /not a valid IP address/],
      ['localhost:8080:80', 'ports[1].hostIp', /not a valid IP address/],
      ['::1:8080:80', 'ports[1]', /brackets/],
      ['[::1]:80', 'ports[1]', /\[ipv6\]:hostPort:containerPort/],
      ['[::1:8080:80', 'ports[1]', /\[ipv6\]/],
      ['[::1]x:8080:80', 'ports[1]', /\[ipv6\]/],
      ['[nope]:8080:80', 'ports[1].hostIp', /not a valid IP address/],
      ['a:b:c:d', 'ports[1]', /brackets/],
      [{ containerPort: 0 }, 'ports[1].containerPort', /1\.\.65535/],
      [{ containerPort: 80.5 }, 'ports[1].containerPort', /integer/],
      [{ containerPort: '80' as unknown as number }, 'ports[1].containerPort', /"80"/],
      [{} as PortSpec, 'ports[1].containerPort', /undefined/],
      [{ containerPort: [81, 80] }, 'ports[1].containerPort', /reversed/],
      [{ containerPort: [80] as unknown as [number, number] }, 'ports[1].containerPort', /\[from, to\]/],
      [{ containerPort: 80, hostPort: -1 }, 'ports[1].hostPort', /0\.\.65535/],
      [{ containerPort: 80, hostPort: [0, 10] }, 'ports[1].hostPort', /1\.\.65535/],
      [{ containerPort: [80, 82], hostPort: [80, 81] }, 'ports[1].hostPort', /differ in length/],
      [{ containerPort: 80, protocol: 'icmp' as 'tcp' }, 'ports[1].protocol', /icmp/],
      [{ containerPort: 80, protocol: 6 as unknown as 'tcp' }, 'ports[1].protocol', /6/],
      [{ containerPort: 80, hostIp: '10.0.0.256' }, 'ports[1].hostIp', /not a valid IP/],
      [{ containerPort: 80, hostIp: 'fe80::1%eth0' }, 'ports[1].hostIp', /zone id/],
    ];
    for (const [spec, field, re] of cases) {
      it(`${JSON.stringify(spec)} → ${field}`, () => throwsConfig(() => parsePortSpecs(['80', spec]), field, re));
    }

    it('rejects non-spec values and non-arrays', () => {
      throwsConfig(() => parsePortSpecs([80 as unknown as string]), 'ports[0]', /string or object/);
      throwsConfig(() => parsePortSpecs([null as unknown as string]), 'ports[0]');
      throwsConfig(() => parsePortSpecs('80' as unknown as string[]), 'ports', /array/);
      throwsConfig(() => parsePortSpec('0'), 'port.containerPort');
      throwsConfig(() => parsePortSpecs(['0'], 'publish'), 'publish[0].containerPort');
    });
  });

  it('parsePortSpecs concatenates in order', () => {
    assert.deepEqual(parsePortSpecs(['80', '53:53/udp', { containerPort: [1, 2] }]), [
      m(80),
      m(53, 53, '0.0.0.0', 'udp'),
      m(1),
      m(2),
    ]);
    assert.deepEqual(parsePortSpecs([]), []);
  });

  describe('hostIpsConflict', () => {
    const cases: [string, string, boolean][] = [
      ['0.0.0.0', '0.0.0.0', true],
      ['0.0.0.0', '127.0.0.1', true],
      ['127.0.0.1', '0.0.0.0', true],
      ['0.0.0.0', '::1', true],
      ['0.0.0.0', '::', true],
      ['127.0.0.1', '127.0.0.1', true],
      ['127.0.0.1', '127.0.0.2', false],
      ['::', '::1', true],
      ['::1', '::', true],
      ['::', '127.0.0.1', false],
      ['::1', '::2', false],
    ];
    for (const [a, b, want] of cases) it(`${a} vs ${b} → ${want}`, () => assert.equal(hostIpsConflict(a, b), want));
  });

  describe('PortAllocator', () => {
    it('claims a port and refuses the same triple again', () => {
      const a = new PortAllocator();
      const got = a.claim(m(80, 8080));
      assert.deepEqual(got, m(80, 8080));
      assert.equal(a.size, 1);
      throwsPolicy(() => a.claim(m(81, 8080)), 'EPORTINUSE', /cannot publish tcp port 0\.0\.0\.0:8080: 0\.0\.0\.0:8080 is already allocated/);
      assert.equal(a.size, 1);
    });

    it('different protocols do not conflict', () => {
      const a = new PortAllocator();
      a.claim(m(53, 53, '0.0.0.0', 'tcp'));
      a.claim(m(53, 53, '0.0.0.0', 'udp'));
      a.claim(m(53, 53, '0.0.0.0', 'sctp'));
      assert.equal(a.size, 3);
    });

    it('0.0.0.0 conflicts with specific addresses both ways', () => {
      const a = new PortAllocator();
      a.claim(m(80, 8080, '127.0.0.1'));
      a.claim(m(80, 8080, '127.0.0.2'));
      throwsPolicy(() => a.claim(m(80, 8080)), 'EPORTINUSE', /127\.0\.0\.1:8080/);
      const b = new PortAllocator();
      b.claim(m(80, 8080));
      throwsPolicy(() => b.claim(m(80, 8080, '10.0.0.1')), 'EPORTINUSE');
      throwsPolicy(() => b.claim(m(80, 8080, '::1')), 'EPORTINUSE', /\[::1\]:8080/);
    });

    it(':: conflicts with IPv6 addresses only', () => {
      const a = new PortAllocator();
      a.claim(m(80, 8080, '::'));
      throwsPolicy(() => a.claim(m(80, 8080, 'fd00::1')), 'EPORTINUSE');
      throwsPolicy(() => a.claim(m(80, 8080)), 'EPORTINUSE');
      a.claim(m(80, 8080, '127.0.0.1'));
      assert.equal(a.size, 2);
    });

    it('canonicalises the host address and returns a new object', () => {
      const a = new PortAllocator();
      const input = { ...m(80, 8080, '0:0::1'), extra: 'kept' };
      const got = a.claim(input);
      assert.deepEqual(got, { ...m(80, 8080, '::1'), extra: 'kept' });
      assert.notEqual(got, input);
      const all = a.claim({ protocol: 'tcp', hostIp: '', hostPort: 9000 });
      assert.equal(all.hostIp, '0.0.0.0');
      throwsPolicy(() => a.claim(m(80, 8080, '::1')), 'EPORTINUSE');
    });

    it('picks a free ephemeral port for hostPort 0', () => {
      const a = new PortAllocator();
      const seen = new Set<number>();
      for (let i = 0; i < 200; i++) {
        const got = a.claim(m(80));
        assert.ok(got.hostPort >= EPHEMERAL_PORT_RANGE[0] && got.hostPort <= EPHEMERAL_PORT_RANGE[1]);
        assert.ok(!seen.has(got.hostPort));
        seen.add(got.hostPort);
      }
      assert.equal(a.size, 200);
    });

    it('picks from hostPortRange and fails with EPORTINUSE when it is full', () => {
      const a = new PortAllocator();
      const spec = parsePortSpec('8000-8002:80')[0];
      const got = [a.claim(spec), a.claim(spec), a.claim(spec)].map((x) => x.hostPort).sort();
      assert.deepEqual(got, [8000, 8001, 8002]);
      throwsPolicy(() => a.claim(spec), 'EPORTINUSE', /no free tcp port in 8000-8002 on 0\.0\.0\.0/);
      a.release(m(80, 8001));
      assert.equal(a.claim(spec).hostPort, 8001);
    });

    it('chooseFree does not claim, skips used ports, and starts at a random place', () => {
      const a = new PortAllocator();
      a.claim(m(80, 7001, '10.0.0.1'));
      for (let i = 0; i < 20; i++) {
        const p = a.chooseFree('tcp', '10.0.0.1', [7000, 7002]);
        assert.ok(p === 7000 || p === 7002);
      }
      assert.equal(a.size, 1);
      assert.equal(a.chooseFree('tcp', '10.0.0.2', [7001, 7001]), 7001);
      assert.equal(a.chooseFree('udp', '10.0.0.1', [7001, 7001]), 7001);
      const starts = new Set<number>();
      for (let i = 0; i < 50; i++) starts.add(a.chooseFree('tcp'));
      assert.ok(starts.size > 1, 'start should be randomised');
      throwsPolicy(() => a.chooseFree('tcp', '0.0.0.0', [7001, 7001]), 'EPORTINUSE');
    });

    it('exhausts the whole ephemeral range for one protocol', () => {
      const a = new PortAllocator();
      const n = EPHEMERAL_PORT_RANGE[1] - EPHEMERAL_PORT_RANGE[0] + 1;
      for (let i = 0; i < n; i++) a.claim(m(80));
      assert.equal(a.size, n);
      throwsPolicy(() => a.chooseFree('tcp'), 'EPORTINUSE', /49153-65535/);
      throwsPolicy(() => a.claim(m(80, 0, '127.0.0.1')), 'EPORTINUSE');
      assert.ok(a.chooseFree('udp') >= EPHEMERAL_PORT_RANGE[0]);
      assert.equal(a.claim(m(80, 1000)).hostPort, 1000);
    });

    it('release is exact and idempotent', () => {
      const a = new PortAllocator();
      a.claim(m(80, 8080, '127.0.0.1'));
      a.claim(m(80, 8080, '127.0.0.2'));
      assert.equal(a.release(m(80, 8080)), false, 'wildcard does not release specific claims');
      assert.equal(a.release(m(80, 8080, '127.0.0.1', 'udp')), false);
      assert.equal(a.release(m(80, 8080, '127.0.0.1')), true);
      assert.equal(a.release(m(80, 8080, '127.0.0.1')), false);
      assert.equal(a.release(m(80, 0)), false);
      assert.equal(a.size, 1);
      assert.equal(a.isFree('tcp', '127.0.0.1', 8080), true);
      assert.equal(a.isFree('tcp', '0.0.0.0', 8080), false);
      a.release(m(80, 8080, '127.0.0.2'));
      assert.equal(a.size, 0);
      assert.deepEqual(a.entries(), []);
      a.claim(m(80, 8080));
    });

    it('fromClaims rebuilds and entries() lists everything', () => {
      const claims = [m(80, 8080), m(53, 53, '10.0.0.1', 'udp'), m(80, 8080, '::1', 'sctp')];
      const a = PortAllocator.fromClaims(claims);
      assert.equal(a.size, 3);
      const byKey = (x: { protocol: string; hostIp: string; hostPort: number }) => `${x.protocol}/${x.hostIp}/${x.hostPort}`;
      assert.deepEqual(a.entries().map(byKey).sort(), claims.map(byKey).sort());
      throwsPolicy(() => a.claim(m(1, 8080, '10.9.9.9')), 'EPORTINUSE');
      const b = PortAllocator.fromClaims(a.entries());
      assert.equal(b.size, 3);
    });

    it('fromClaims rejects conflicts, port 0 and bad entries', () => {
      throwsPolicy(() => PortAllocator.fromClaims([m(80, 8080), m(80, 8080, '127.0.0.1')]), 'EPORTINUSE');
      throwsConfig(() => PortAllocator.fromClaims([m(80, 8080), m(80, 0)]), 'claims[1].hostPort', /concrete host port/);
      throwsConfig(() => PortAllocator.fromClaims([{ protocol: 'tcp', hostIp: 'x', hostPort: 1 }]), 'claims[0].hostIp');
      throwsConfig(() => PortAllocator.fromClaims([null as unknown as PortMapping]), 'claims[0]');
    });

    it('validates arguments with ConfigError', () => {
      const a = new PortAllocator();
      throwsConfig(() => a.claim({ protocol: 'icmp' as 'tcp', hostIp: '', hostPort: 1 }), 'protocol');
      throwsConfig(() => a.claim({ protocol: 'tcp', hostIp: 'nope', hostPort: 1 }), 'hostIp');
      throwsConfig(() => a.claim({ protocol: 'tcp', hostIp: '', hostPort: 70000 }), 'hostPort');
      throwsConfig(() => a.claim({ protocol: 'tcp', hostIp: '', hostPort: 0, hostPortRange: [5, 1] }), 'hostPortRange', /reversed/);
      throwsConfig(() => a.claim(undefined as unknown as PortMapping), 'mapping');
      throwsConfig(() => a.chooseFree('tcp', '0.0.0.0', [0, 10]), 'range');
      throwsConfig(() => a.chooseFree('xdp' as 'tcp'), 'protocol');
      throwsConfig(() => a.isFree('tcp', '0.0.0.0', 0), 'port');
      throwsConfig(() => a.release({ protocol: 'tcp', hostIp: '1', hostPort: 1 }), 'hostIp');
      assert.equal(a.size, 0);
    });
  });
});
