import { strict as assert } from 'node:assert';
import { listSandboxes, listNamespaces } from '../../lib';
import { sandboxed, ipj, uniq } from '../helpers/kernel';
import { cli } from '../helpers/sandbox';

describe('61 cli: bridge networks', function () {
  before(function () {
    sandboxed();
  });
  after(async () => {
    const left = (await listSandboxes()).map((s) => s.name);
    if (left.length) await cli(['rm', ...left]);
    await cli(['network', 'rm', '-f', 'bridge']);
  });

  it('network create, ls (table and --json), inspect, rm', async () => {
    const name = uniq('nmc');
    const c = await cli(['network', 'create', '--subnet', '10.78.0.0/24', '--bridge', `${name}br`, name]);
    assert.deepEqual([c.code, c.stdout], [0, `${name}\n`], c.stderr);
    assert.ok(ipj(['link']).some((l) => l.ifname === `${name}br`));

    const ls = await cli(['network', 'ls', '--json']);
    assert.equal(ls.code, 0);
    const info = JSON.parse(ls.stdout).find((n: any) => n.name === name);
    assert.deepEqual([info.subnet, info.gateway, info.bridge, info.endpoints], ['10.78.0.0/24', '10.78.0.1', `${name}br`, 0]);
    assert.match((await cli(['network', 'ls'])).stdout, new RegExp(`^${name}\\s+${name}br\\s+10\\.78\\.0\\.0/24\\s+10\\.78\\.0\\.1\\s+0$`, 'm'));
    assert.ok((await cli(['network', 'ls', '-q'])).stdout.split('\n').includes(name));

    const ins = await cli(['network', 'inspect', name]);
    assert.equal(ins.code, 0, ins.stderr);
    const [detail] = JSON.parse(ins.stdout);
    assert.equal(detail.Name, name);

    const missing = await cli(['network', 'inspect', name, 'nosuchnet']);
    assert.equal(missing.code, 1);
    assert.equal(JSON.parse(missing.stdout).length, 1);
    assert.match(missing.stderr, /ENONETWORK/);

    const rm = await cli(['network', 'rm', name]);
    assert.deepEqual([rm.code, rm.stdout], [0, `${name}\n`], rm.stderr);
    assert.ok(!ipj(['link']).some((l) => l.ifname === `${name}br`));
    assert.equal((await cli(['network', 'rm', name])).code, 1);
  });

  it('run on the default network and on a named one, with --ip, -p and --link; ps shows address and ports', async () => {
    const r = await cli(['run', '--rm', '--', 'ip', '-j', 'route', 'show', 'default']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout)[0].dev, 'eth0');

    const net = uniq('nmc');
    assert.equal((await cli(['network', 'create', '--subnet', '10.79.0.0/24', net])).code, 0);
    const db = uniq('cli');
    assert.equal((await cli(['run', '--name', db, '--net', net, '--ip', '10.79.0.20', '-p', '18081:80', '--', 'true'])).code, 0);
    const [info] = JSON.parse((await cli(['ps', '--json'])).stdout).filter((s: any) => s.name === db);
    assert.deepEqual([info.mode, info.network, info.ip], ['bridge', net, '10.79.0.20']);
    assert.deepEqual(info.ports, [{ protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 18081, containerPort: 80 }]);
    assert.match((await cli(['ps'])).stdout, new RegExp(`^${db}\\s+${net}\\s+10\\.79\\.0\\.20\\s+0\\.0\\.0\\.0:18081->80/tcp`, 'm'));

    const linked = await cli(['run', '--rm', '--net', net, '--link', `${db}:database`, '--', 'sh', '-c', 'grep -w database /etc/hosts']);
    assert.equal(linked.code, 0, linked.stderr);
    assert.match(linked.stdout, /^10\.79\.0\.20\t/);

    // A network with a sandbox on it is refused; once the sandbox is gone it can go.
    assert.equal((await cli(['network', 'rm', net])).code, 1);
    assert.equal((await cli(['rm', db])).code, 0);
    assert.equal((await cli(['network', 'rm', net])).code, 0);
    assert.deepEqual(await listNamespaces(), []);
  });

  it('bad bridge arguments are usage errors (exit 2)', async () => {
    for (const args of [
      ['network', 'create', '--subnet', 'nonsense', uniq('nmc')],
      ['run', '--rm', '--ip', 'not-an-ip', '--', 'true'],
      ['run', '--rm', '-p', '80:80:80:80', '--', 'true'],
    ]) {
      const r = await cli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^Usage: netmodes /m);
    }
  });
});
