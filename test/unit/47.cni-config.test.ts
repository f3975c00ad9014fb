/** The CNI front end without a kernel: environment and configuration parsing, results, ranges. */
import { strict as assert } from 'node:assert';
import { ConfigError } from '../../lib/errors';
import { Ipv4Pool } from '../../lib/ipam/allocator';
import { parseRange } from '../../lib/ipam/subnets';
import { endpointId, hostnameOf, parseConf, parseEnv, parseStdin, SUPPORTED_VERSIONS } from '../../lib/cni/config';
import { CniError, toCniError } from '../../lib/cni/errors';
import { buildResult } from '../../lib/cni/result';
import { NetmodesError, NetlinkError } from '../../lib/errors';
import { throwsConfig } from '../helpers/assert';

const env = (e: Record<string, string>) => parseEnv({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', ...e });
const cniCode = (fn: () => unknown): number => {
  try {
    fn();
  } catch (err) {
    return toCniError(err).code;
  }
  return 0;
};

describe('47 CNI configuration (unit)', () => {
  it('parseEnv: the verbs need what the specification says', () => {
    assert.deepEqual(env({ CNI_ARGS: 'IgnoreUnknown=1;IP=10.0.0.5' }).args, { IgnoreUnknown: '1', IP: '10.0.0.5' });
    assert.equal(parseEnv({ CNI_COMMAND: 'VERSION' }).command, 'VERSION');
    assert.equal(parseEnv({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c', CNI_IFNAME: 'eth0' }).netns, undefined);
    for (const bad of <Array<Record<string, string>>>[{ CNI_COMMAND: '' }, { CNI_COMMAND: 'add' }, { CNI_CONTAINERID: '' }, { CNI_CONTAINERID: '.x' }, { CNI_IFNAME: 'x'.repeat(16) }, { CNI_IFNAME: 'a b' }, { CNI_NETNS: 'rel/path' }, { CNI_ARGS: 'x' }])
      assert.equal(cniCode(() => env(bad)), 4, JSON.stringify(bad));
  });

  it('parseStdin: decode failures are 6', () => {
    assert.equal(cniCode(() => parseStdin('')), 6);
    assert.equal(cniCode(() => parseStdin('null')), 6);
    assert.deepEqual(parseStdin('{"a":1}'), { a: 1 });
  });

  it('parseConf: reference fields become bridge options', () => {
    const c = parseConf(
      {
        cniVersion: '1.0.0', name: 'n1', type: 'netmodes', bridge: 'br9', mtu: 1400, icc: false,
        ipam: { type: 'host-local', ranges: [[{ subnet: '10.9.0.0/24', rangeStart: '10.9.0.10', rangeEnd: '10.9.0.20' }], [{ subnet: 'fd09::/64', gateway: 'fd09::1' }]] },
        runtimeConfig: { portMappings: [{ hostPort: 80, containerPort: 8080, protocol: 'UDP', hostIP: '127.0.0.1' }], ips: ['10.9.0.15/24'], mac: '02:00:00:00:00:01' },
        unknownField: { anything: true },
      },
      env({}),
    );
    assert.deepEqual(c.network, { name: 'n1', bridge: 'br9', masquerade: false, mtu: 1400, icc: false, subnet: '10.9.0.0/24', ipRange: '10.9.0.10-10.9.0.20', ipv6: { subnet: 'fd09::/64', gateway: 'fd09::1' } });
    assert.deepEqual(c.ports, [{ containerPort: 8080, hostPort: 80, protocol: 'udp', hostIp: '127.0.0.1' }]);
    assert.deepEqual(c.ips, ['10.9.0.15']);
    assert.equal(c.mac, '02:00:00:00:00:01');
    assert.equal(parseConf({ cniVersion: '1.0.0', name: 'n', ipMasq: true }, env({})).network.masquerade, true);
    assert.equal(parseConf({ cniVersion: '1.0.0', name: 'n', portsPerBridge: 256 }, env({})).network.portsPerBridge, 256);
    // A dense network with IPv6 (README "Dense networks"): both go to the library as they are.
    const d6 = parseConf({ cniVersion: '1.0.0', name: 'n', portsPerBridge: 8, ipam: { ranges: [[{ subnet: '10.9.0.0/24' }], [{ subnet: 'fd09::/64' }]] } }, env({})).network;
    assert.deepEqual([d6.portsPerBridge, d6.ipv6], [8, { subnet: 'fd09::/64' }]);
  });

  it('parseConf: bad values are ConfigErrors naming the field (CNI 7); unsupported versions are 1', () => {
    const base = { cniVersion: '1.0.0', name: 'n' };
    throwsConfig(() => parseConf({ ...base, isGateway: false }, env({})), 'isGateway');
    throwsConfig(() => parseConf({ ...base, portsPerBridge: '256' }, env({})), 'portsPerBridge');
    throwsConfig(() => parseConf({ ...base, ipam: { subnet: '10.0.0.0/24', ranges: [[{ subnet: '10.0.1.0/24' }]] } }, env({})), 'ipam.subnet');
    throwsConfig(() => parseConf({ ...base, ipam: { ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: '10.0.1.0/24' }]] } }, env({})), 'ipam.ranges[0]');
    throwsConfig(() => parseConf({ ...base, ipam: { ranges: [[{ subnet: 'fd00::/64' }]] } }, env({})), 'ipam.ranges[0][0]');
    throwsConfig(() => parseConf({ ...base, ipam: { ranges: [[{ gateway: '10.0.0.1' }]] } }, env({})), 'ipam.ranges[0][0].subnet');
    throwsConfig(() => parseConf({ ...base, runtimeConfig: { portMappings: [{ containerPort: 0, hostPort: 1 }] } }, env({})), 'runtimeConfig.portMappings[0].containerPort');
    throwsConfig(() => parseConf({ ...base, runtimeConfig: { ips: ['bogus'] } }, env({})), 'runtimeConfig.ips[0]');
    throwsConfig(() => parseConf({ ...base, name: 'bad name' }, env({})), 'name');
    assert.equal(cniCode(() => parseConf({ ...base, cniVersion: '2.0.0' }, env({}))), 1);
    assert.ok(SUPPORTED_VERSIONS.includes('1.1.0'));
  });

  it('endpointId is one endpoint per (container id, ifname), at most 64 characters', () => {
    const long = 'a'.repeat(64);
    assert.equal(endpointId(long, 'eth0'), long);
    assert.notEqual(endpointId(long, 'net1'), endpointId(long, 'net2'));
    assert.notEqual(endpointId('a.b', 'c'), endpointId('a', 'b.c'));
    assert.ok(endpointId('x'.repeat(200), 'eth0').length <= 64);
    assert.match(endpointId('cni-abc', 'eth0'), /^cni-[0-9a-f]{48}$/); // never taken for a digest of another
    assert.equal(hostnameOf('ab_cd.ef-1234567'), 'ab-cd-ef-123');
    assert.equal(hostnameOf('___'), 'container');
  });

  it('buildResult: the shapes of 0.4.0, 1.0.0 and 1.1.0; prevResult carried through', () => {
    const a = {
      bridge: { name: 'br0', mac: '02:00:00:00:00:aa', mtu: 1500 },
      hostVeth: { name: 'veth1', mac: '02:00:00:00:00:bb', mtu: 1500 },
      container: { name: 'eth0', mac: '02:00:00:00:00:cc', mtu: 1500, sandbox: '/run/netns/x' },
      ips: [{ address: '10.0.0.2/24', gateway: '10.0.0.1' }, { address: 'fd00::2/64', gateway: 'fd00::1' }],
    };
    const r1 = buildResult('1.0.0', a, undefined, { nameservers: ['198.18.0.53'] });
    assert.deepEqual(r1.ips, [{ address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 2 }, { address: 'fd00::2/64', gateway: 'fd00::1', interface: 2 }]);
    assert.deepEqual(r1.routes, [{ dst: '0.0.0.0/0', gw: '10.0.0.1' }, { dst: '::/0', gw: 'fd00::1' }]);
    assert.equal(r1.interfaces![2].mtu, undefined);
    assert.deepEqual(r1.dns, { nameservers: ['198.18.0.53'] });
    assert.equal(buildResult('1.1.0', a, undefined, undefined).interfaces![2].mtu, 1500);
    const prev = { cniVersion: '0.4.0', interfaces: [{ name: 'lo' }], ips: [{ version: '4', address: '127.0.0.1/8', interface: 0 }], routes: [{ dst: '0.0.0.0/0', gw: '192.0.2.1' }] };
    const r0 = buildResult('0.4.0', a, prev, undefined);
    assert.deepEqual(r0.ips!.map((i) => [i.version, i.interface]), [['4', 0], ['4', 3], ['6', 3]]);
    assert.deepEqual(r0.routes, [{ dst: '0.0.0.0/0', gw: '192.0.2.1' }, { dst: '::/0', gw: 'fd00::1' }]); // an earlier default route stays
    assert.deepEqual(prev.ips[0], { version: '4', address: '127.0.0.1/8', interface: 0 }); // not changed in place
  });

  it('toCniError maps the library codes', () => {
    assert.equal(toCniError(new ConfigError('x', 'f')).code, 7);
    assert.equal(toCniError(new NetmodesError('EPOOLEXHAUSTED', 'x')).code, 101);
    assert.equal(toCniError(new NetmodesError('ESOMETHING', 'x')).code, 999);
    assert.equal(toCniError(new NetlinkError('x', 'EBUSY', 16, 'RTM_NEWLINK')).code, 11);
    const k = toCniError(new NetlinkError('x', 'EPERM', 1, 'RTM_NEWLINK', 'not allowed'));
    assert.equal(k.code, 120);
    assert.match(k.details!, /EPERM in RTM_NEWLINK: not allowed/);
    assert.ok(toCniError(new CniError(50, 'x')) instanceof CniError);
  });

  it('parseRange and pools take FIRST-LAST ranges', () => {
    assert.deepEqual(parseRange('10.0.0.5-10.0.0.7', 'r').text, '10.0.0.5-10.0.0.7');
    assert.equal(parseRange('10.0.0.0/30', 'r').text, '10.0.0.0/30');
    throwsConfig(() => parseRange('10.0.0.7-10.0.0.5', 'r'), 'r');
    throwsConfig(() => parseRange('10.0.0.1-fd00::1', 'r'), 'r');
    throwsConfig(() => parseRange('10.0.0.1-10.0.0.2-10.0.0.3', 'r'), 'r');
    const pool = new Ipv4Pool({ subnet: '10.0.0.0/24', ipRange: '10.0.0.5-10.0.0.7' });
    assert.equal(pool.ipRange, '10.0.0.5-10.0.0.7');
    assert.deepEqual([pool.allocate(), pool.allocate(), pool.allocate()], ['10.0.0.5', '10.0.0.6', '10.0.0.7']);
    assert.throws(() => pool.allocate(), { code: 'EPOOLEXHAUSTED' });
    throwsConfig(() => new Ipv4Pool({ subnet: '10.0.0.0/24', ipRange: '10.0.1.5-10.0.1.7' }), 'ipRange');
  });
});
