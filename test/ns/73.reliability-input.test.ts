/**
 * Hostile input (issue 7.4): malformed, out-of-range and adversarial values to the public API and
 * the CLI give a typed error naming the field, and the kernel (ip -j link/addr/route/neigh,
 * nft -j list ruleset, inside the namespaces too) and the state store are exactly as before.
 * Permissions (issue 7.6): without CAP_NET_ADMIN, a typed EPERM and nothing changed; state files
 * are 0600 in 0700 directories.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createBridgeNetwork, createNamespace, openBridgeNetwork, BridgeNetwork, Namespace, ConfigError, NetmodesError, NetlinkError } from '../../lib';
import { sandboxed, uniq, tryRun } from '../helpers/kernel';
import { LIB, ROOT, STATE, kernelSnapshot, nodeScript } from '../helpers/reliability';

function storeSnapshot(): string {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.existsSync(d) ? fs.readdirSync(d, { withFileTypes: true }) : []) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      // temp files (.NAME.RANDOM.res/.tmp) are not state: a reconcile may sweep a dead process's
      else if (!e.name.endsWith('.lock') && e.name !== 'lock' && !e.name.startsWith('.')) out.push(`${p}=${fs.readFileSync(p, 'utf8')}`);
    }
  };
  walk(STATE);
  return out.sort().join('\n');
}

const LONG = 'x'.repeat(5000);
const UNI = 'nét\u202ework\u0000';

describe('73 reliability: hostile input and permissions', function () {
  this.timeout(120000);
  let net: BridgeNetwork;
  let ns: Namespace;
  let peer: string;
  before(async () => {
    sandboxed();
    net = await createBridgeNetwork({ name: 'hostile', subnet: '10.73.0.0/24' });
    ns = await createNamespace(uniq('h'));
    peer = (await net.connect(ns, { id: 'peer', ports: ['45000:80'] })).id;
  });
  after(async () => {
    await net?.remove({ force: true });
    await ns?.delete();
  });

  const unchanged = async (what: string, fn: () => Promise<unknown>, field?: string | RegExp) => {
    const before = [kernelSnapshot([ns.name!]), storeSnapshot()];
    let err: any;
    try {
      await fn();
    } catch (e) {
      err = e;
    }
    assert.ok(err, `${what}: accepted`);
    assert.ok(err instanceof ConfigError || err instanceof NetmodesError || err instanceof NetlinkError, `${what}: untyped ${err?.stack ?? err}`);
    if (field !== undefined && err instanceof ConfigError)
      assert.ok(typeof field === 'string' ? err.field === field : field.test(err.field ?? ''), `${what}: field ${err.field}, expected ${field}`);
    assert.deepEqual([kernelSnapshot([ns.name!]), storeSnapshot()], before, `${what}: something changed`);
    return err;
  };

  it('createBridgeNetwork: names, subnets, gateways, MTU, IPv6 where IPv4 is expected', async () => {
    const cases: Array<[any, string?]> = [
      [{ name: 'a/b' }, 'name'], [{ name: LONG }, 'name'], [{ name: UNI }, 'name'], [{ name: '' }, 'name'], [{ name: '..' }, 'name'],
      [{ name: 'ok1', subnet: '10.73.0.0/24' }], // overlaps 'hostile': ESUBNETOVERLAP
      [{ name: 'ok1', subnet: '0.0.0.0/0' }], [{ name: 'ok1', subnet: '10.0.0.0/1' }], [{ name: 'ok1', subnet: '10.74.0.0/31' }, 'subnet'],
      [{ name: 'ok1', subnet: 'fd00::/64' }, 'subnet'], [{ name: 'ok1', subnet: '10.74.0.0/33' }, 'subnet'], [{ name: 'ok1', subnet: '10.74.0.300/24' }, 'subnet'],
      [{ name: 'ok1', subnet: '10.74.0.0/24', gateway: '10.75.0.1' }, 'gateway'], [{ name: 'ok1', subnet: '10.74.0.0/24', gateway: 'fd00::1' }, 'gateway'],
      [{ name: 'ok1', subnet: '10.74.0.0/24', gateway: '10.74.0.0' }, 'gateway'], [{ name: 'ok1', subnet: '10.74.0.0/24', ipRange: '10.75.0.0/25' }, 'ipRange'],
      [{ name: 'ok1', mtu: 0 }, 'mtu'], [{ name: 'ok1', mtu: 65536 }, 'mtu'], [{ name: 'ok1', mtu: 1.5 }, 'mtu'], [{ name: 'ok1', mtu: '1500' }, 'mtu'],
      [{ name: 'ok1', vethQueues: 0 }, 'vethQueues'], [{ name: 'ok1', vethQueues: 4097 }, 'vethQueues'], [{ name: 'ok1', vethQueues: 1.5 }, 'vethQueues'],
      [{ name: 'ok1', bridge: 'a/b' }, 'bridge'], [{ name: 'ok1', bridge: 'x'.repeat(16) }, 'bridge'], [{ name: 'ok1', icc: 'yes' }, 'icc'],
      [{ name: 'ok1', ipv6: { subnet: '10.74.0.0/24' } }, 'ipv6.subnet'], [{ name: 'ok1', ipv6: { subnet: 'fd00::/127' } }, 'ipv6.subnet'],
      [{ name: 'hostile', subnet: '10.76.0.0/24' }], // duplicate name: ENETWORKEXISTS
      [{ name: 'ok1', hostIp: '1.2.3.4.5' }, 'hostIp'], [null], [{ name: 'ok1', subnet: { toString: () => '10.77.0.0/24' } }, 'subnet'],
    ];
    for (const [opts, field] of cases) await unchanged(`create ${JSON.stringify(opts)}`, () => createBridgeNetwork(opts), field);
  });

  it('connect/disconnect: ids, ports 0 and 65536, reversed ranges, IPv6 where IPv4 is expected, duplicates, unicode', async () => {
    const cases: Array<[any, string | RegExp | undefined]> = [
      [{ id: 'a/b' }, 'id'], [{ id: LONG }, 'id'], [{ id: UNI }, 'id'], [{ id: '' }, 'id'], [{ id: 'peer' }, undefined], // EENDPOINTEXISTS
      [{ ports: ['65536:80'] }, /^ports\[0\]/], [{ ports: ['80:0'] }, /^ports\[0\]/], [{ ports: ['80:65536'] }, /^ports\[0\]/],
      [{ ports: ['90-80:90-80'] }, /^ports\[0\]/], [{ ports: ['45000:80'] }, undefined], // EPORTINUSE
      [{ ports: ['80/icmp'] }, /^ports\[0\]/], [{ ports: ['::1:80:80'] }, /^ports\[0\]/], [{ ports: [80] }, /^ports\[0\]/], [{ ports: 'x' }, /^ports/],
      [{ ports: ['10.0.0.1:81:80', '10.0.0.1:81:80'] }, /^ports/],
      [{ ip: 'fd00::5' }, 'ip'], [{ ip: '10.73.1.5' }, 'ip'], [{ ip: '10.73.0.1' }, 'ip'], [{ ip: '10.73.0.255' }, 'ip'], [{ ip: '10.73.0.2' }, undefined],
      [{ ipv6: 'fd00::5' }, 'ipv6'], [{ mac: 'ff:ff:ff:ff:ff:ff' }, 'mac'], [{ mac: '00:00:00:00:00' }, 'mac'], [{ ifname: 'a/b' }, 'ifname'],
      [{ ifname: 'x'.repeat(16) }, 'ifname'], [{ ifname: 'lo' }, 'ifname'], [{}, 'ifname'] /* eth0 exists already */, [{ hostname: UNI }, 'hostname'], [{ hostname: LONG }, 'hostname'],
      [{ links: [{ endpoint: 'nope' }] }, undefined], [{ links: 'x' }, 'links'], [{ links: [{ endpoint: peer, alias: 'a b' }] }, 'links[0].alias'],
      [{ dns: { servers: ['not-an-ip'] } }, /servers\[0\]$/] /* named without its 'dns.' prefix */,
    ];
    const failures: string[] = [];
    for (const [opts, field] of cases)
      await unchanged(`connect ${JSON.stringify(opts)}`, () => net.connect(ns, opts), field).catch((e) => failures.push(e.message.split('\n')[0]));
    assert.deepEqual(failures, []);
    await unchanged('connect to a missing namespace', () => net.connect('/run/netns/does-not-exist'));
    await unchanged('connect to a relative path', () => net.connect('a/b'));
    await unchanged('connect to a non-namespace', () => net.connect(42 as any), 'ns');
    for (const t of [LONG, 'a/../b', UNI, 42, null, {}])
      await unchanged(`disconnect ${String(t).slice(0, 20)}`, () => net.disconnect(t as any));
    for (const n of ['a/b', LONG, UNI, '../hostile']) await unchanged(`open ${n.slice(0, 20)}`, () => openBridgeNetwork(n), 'name');
  });

  it('CLI: bad values exit 2 (usage) or 1 (typed error), and change nothing', async () => {
    const cli = path.join(ROOT, 'dist', 'lib', 'cli', 'main.js');
    const cases = [
      ['network', 'create', '--subnet', '10.73.0.0/24', 'dup'], ['network', 'create', '--subnet', 'fd00::/64', 'v6'], ['network', 'create', 'a/b'],
      ['network', 'create', LONG], ['network', 'create', '--subnet', '10.0.0.0/33', 'x'], ['network', 'create', '--mtu', '65536', 'x'],
      ['network', 'rm', 'nope'], ['network', 'inspect', UNI.replace('\u0000', '')], ['run', '-p', '65536:80', '--', 'true'],
      ['run', '-p', '90-80:80', '--', 'true'], ['run', '--ip', 'fd00::1', '--net', 'hostile', '--', 'true'], ['run', '--net', 'a/b', '--', 'true'],
      ['run', '--name', 'a/b', '--', 'true'], ['run', '--net', 'hostile', '--ip', '10.73.0.2', '--', 'true'], ['rm', LONG], ['nosuch'],
    ];
    for (const c of cases) {
      const args = c[0] === 'run' ? ['run', '--rm', ...c.slice(1)] : c;
      const before = [kernelSnapshot([ns.name!]), storeSnapshot()];
      const r = tryRun(process.execPath, [cli, ...args], 20000);
      assert.ok(r.status === 1 || r.status === 2 || r.status === 125, `${args.join(' ').slice(0, 60)}: exit ${r.status} ${r.stderr}`);
      assert.ok(!/TypeError|RangeError|at .*\.js:\d+/.test(r.stderr), `${args.join(' ').slice(0, 60)}: untyped failure ${r.stderr}`);
      assert.deepEqual([kernelSnapshot([ns.name!]), storeSnapshot()], before, `${args.join(' ').slice(0, 60)}: something changed`);
    }
  });

  it('state files are 0600 in 0700 directories', () => {
    const walk = (d: string) => {
      const st = fs.statSync(d);
      if (st.isDirectory()) {
        assert.equal(st.mode & 0o777, 0o700, `${d} is ${(st.mode & 0o777).toString(8)}`);
        for (const e of fs.readdirSync(d)) walk(path.join(d, e));
      } else if (!['hosts', 'resolv.conf', 'hostname'].includes(path.basename(d))) // bind-mounted into containers: 0644 on purpose
        assert.equal(st.mode & 0o077, 0, `${d} is ${(st.mode & 0o777).toString(8)}`);
    };
    for (const e of fs.readdirSync(STATE)) walk(path.join(STATE, e));
  });

  it('without CAP_NET_ADMIN: typed EPERM for create, connect, disconnect, reconcile, remove; nothing changed', async () => {
    const script = `
      const nm = require(${JSON.stringify(LIB)});
      const out = {};
      const t = async (k, f) => { try { await f(); out[k] = 'ok'; } catch (e) { out[k] = [e.name, e.code]; } };
      (async () => {
        await t('create', () => nm.createBridgeNetwork({ name: 'noperm', subnet: '10.78.0.0/24' }));
        const net = await nm.openBridgeNetwork('hostile');
        await t('connect', () => net.connect(process.argv[1], { ports: ['45001:80'] }));
        await t('disconnect', () => net.disconnect('peer'));
        await t('reconcile', () => net.reconcile());
        await t('remove', () => net.remove({ force: true }));
        console.log(JSON.stringify(out));
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const before = [kernelSnapshot([ns.name!]), storeSnapshot()];
    const r = tryRun('setpriv', ['--inh-caps=-net_admin', '--bounding-set=-net_admin', process.execPath, '-e', script, ns.path], 30000);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    for (const k of ['create', 'connect', 'disconnect', 'reconcile', 'remove']) assert.deepEqual(out[k]?.[1], 'EPERM', `${k}: ${JSON.stringify(out[k])}`);
    assert.deepEqual([kernelSnapshot([ns.name!]), storeSnapshot()], before, 'nothing changed');
    void nodeScript;
  });
});
