import { strict as assert } from 'node:assert';
import { existsSync, statSync } from 'node:fs';
import { listSandboxes, openSandbox, HOST_NETNS } from '../../lib';
import { sandboxed, sh, ipj, uniq, connect } from '../helpers/kernel';
import { Sandboxes, runIn, serveIn, connectIn } from '../helpers/sandbox';

describe('60 sandbox: none mode', () => {
  before(sandboxed);
  const sbs = new Sandboxes();
  afterEach(() => sbs.cleanup());

  it('a named namespace `ip netns` sees, with only lo, up; remove takes it down; twice is a no-op', async () => {
    const name = uniq('sbn');
    const sb = await sbs.create({ name, network: 'none' });
    assert.equal(sb.mode, 'none');
    assert.equal(sb.namespacePath, `/run/netns/${name}`);
    assert.equal(sb.endpoint, undefined);
    assert.ok(sh('ip', ['netns', 'list']).split('\n').some((l) => l.split(' ')[0] === name));
    const links = ipj(['link', 'show'], name);
    assert.deepEqual(links.map((l) => l.ifname), ['lo']);
    assert.ok(links[0].flags.includes('UP'), `lo flags: ${links[0].flags}`);
    const addrs = ipj(['addr', 'show', 'lo'], name)[0].addr_info.map((a: any) => a.local);
    assert.ok(addrs.includes('127.0.0.1'));
    assert.ok(existsSync(`/run/netmodes/sandboxes/${name}/sandbox.json`));
    assert.equal(statSync(`/run/netmodes/sandboxes/${name}/sandbox.json`).mode & 0o777, 0o600);

    await sb.remove();
    assert.ok(!existsSync(`/run/netns/${name}`));
    assert.ok(!sh('ip', ['netns', 'list']).includes(name));
    assert.ok(!existsSync(`/run/netmodes/sandboxes/${name}`));
    await sb.remove(); // no-op
  });

  it('processes inside see only lo (netlink and /sys), and talk TCP over 127.0.0.1 among themselves only', async () => {
    const sb = await sbs.create({ name: uniq('sbn'), network: 'none' });
    const r = await runIn(sb, 'ip', ['-j', 'addr']);
    assert.equal(r.code, 0, r.stderr);
    const inside = JSON.parse(r.stdout);
    assert.deepEqual(inside.map((l: any) => l.ifname), ['lo']);
    assert.deepEqual(inside[0].addr_info.filter((a: any) => a.family === 'inet').map((a: any) => a.local), ['127.0.0.1']);
    assert.equal((await runIn(sb, 'ls', ['/sys/class/net'])).stdout.trim(), 'lo');
    // The namespace is the sandbox's, not the caller's.
    const ino = (await runIn(sb, 'stat', ['-L', '-c', '%i', '/proc/self/ns/net'])).stdout.trim();
    assert.equal(Number(ino), statSync(sb.namespacePath).ino);
    assert.notEqual(Number(ino), statSync(HOST_NETNS).ino);

    sbs.track(await serveIn(sb, 8080, 'none'));
    assert.equal(await connectIn(sb, '127.0.0.1', 8080), 'none 127.0.0.1');
    assert.equal(connect(undefined, 'tcp', '127.0.0.1', 8080), null, 'the host must not reach the sandbox listener');
  });

  it('generated hosts and resolv.conf are what processes inside see; host name is the id prefix or the one asked for', async () => {
    const a = await sbs.create({ name: uniq('sbn'), network: 'none' });
    assert.equal(a.hostname, a.id.slice(0, 12));
    assert.match(a.hosts, /^127\.0\.0\.1\tlocalhost$/m);
    assert.equal((await runIn(a, 'cat', ['/etc/hosts'])).stdout, a.hosts);
    assert.equal((await runIn(a, 'cat', ['/etc/resolv.conf'])).stdout, a.resolvConf);
    assert.equal((await runIn(a, 'hostname')).stdout.trim(), a.hostname);

    const b = await sbs.create({
      name: uniq('sbn'),
      network: 'none',
      hostname: 'web.example',
      dns: { servers: ['192.0.2.53'], search: ['example.org'], options: ['ndots:2'] },
    });
    assert.equal(b.resolvConf, 'search example.org\nnameserver 192.0.2.53\noptions ndots:2\n');
    assert.equal((await runIn(b, 'cat', ['/etc/resolv.conf'])).stdout, b.resolvConf);
    assert.equal((await runIn(b, 'hostname')).stdout.trim(), 'web.example');
    // Nothing leaked to the caller's view.
    assert.notEqual(sh('hostname', []).trim(), 'web.example');
    assert.ok(!sh('cat', ['/etc/resolv.conf']).includes('192.0.2.53'));
  });

  it('openSandbox and listSandboxes read what createSandbox wrote', async () => {
    const name = uniq('sbn');
    const sb = await sbs.create({ name, network: 'none', hostname: 'h1' });
    const o = await openSandbox(name);
    assert.equal(o.id, sb.id);
    assert.equal(o.mode, 'none');
    assert.equal(o.namespacePath, sb.namespacePath);
    assert.equal(o.hosts, sb.hosts);
    assert.equal(o.resolvConf, sb.resolvConf);
    assert.equal((await runIn(o, 'hostname')).stdout.trim(), 'h1');
    const info = (await listSandboxes()).find((s) => s.name === name)!;
    assert.deepEqual(
      { mode: info.mode, state: info.state, ports: info.ports, sharedBy: info.sharedBy, hostname: info.hostname, id: info.id },
      { mode: 'none', state: 'ready', ports: [], sharedBy: [], hostname: 'h1', id: sb.id },
    );
  });
});
