import { strict as assert } from 'node:assert';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { ConfigError, NetmodesError, SandboxOptions, listSandboxes, openSandbox, HOST_NETNS } from '../../lib';
import { sandboxed, uniq } from '../helpers/kernel';
import { Sandboxes, runIn, serveIn, connectIn } from '../helpers/sandbox';

describe('60 sandbox: container mode', () => {
  before(sandboxed);
  const sbs = new Sandboxes();
  afterEach(() => sbs.cleanup());

  it("joins another sandbox's namespace: same interfaces, and localhost reaches the other's listener", async () => {
    const a = await sbs.create({ name: uniq('sbc'), network: 'none', hostname: 'owner' });
    const b = await sbs.create({ name: uniq('sbc'), network: `container:${a.name}` });
    assert.equal(b.mode, 'container');
    assert.equal(b.container, a.name);
    assert.equal(b.namespacePath, a.namespacePath);

    const inoA = (await runIn(a, 'stat', ['-L', '-c', '%i', '/proc/self/ns/net'])).stdout;
    const inoB = (await runIn(b, 'stat', ['-L', '-c', '%i', '/proc/self/ns/net'])).stdout;
    assert.equal(inoA, inoB);
    assert.equal(Number(inoA), statSync(a.namespacePath).ino);
    const linksA = JSON.parse((await runIn(a, 'ip', ['-j', 'link'])).stdout);
    const linksB = JSON.parse((await runIn(b, 'ip', ['-j', 'link'])).stdout);
    assert.deepEqual(linksB, linksA);

    sbs.track(await serveIn(a, 9090, 'from-a'));
    assert.equal(await connectIn(b, 'localhost', 9090), 'from-a 127.0.0.1');
    // ... and the other way round.
    sbs.track(await serveIn(b, 9091, 'from-b'));
    assert.equal(await connectIn(a, '127.0.0.1', 9091), 'from-b 127.0.0.1');

    // Host name, hosts and resolv.conf are the joined sandbox's, as in Docker.
    assert.equal(b.hostname, 'owner');
    assert.equal((await runIn(b, 'hostname')).stdout.trim(), 'owner');
    assert.equal(b.hosts, a.hosts);
    assert.equal((await runIn(b, 'cat', ['/etc/hosts'])).stdout, a.hosts);
  });

  it('the joined sandbox cannot be removed while others share its namespace (ESANDBOXINUSE)', async () => {
    const a = await sbs.create({ name: uniq('sbc'), network: 'none' });
    const b = await sbs.create({ name: uniq('sbc'), network: `container:${a.name}` });
    const c = await sbs.create({ name: uniq('sbc'), network: `container:${b.name}` }); // a chain ends in a's namespace
    assert.equal(c.namespacePath, a.namespacePath);
    const info = await listSandboxes();
    assert.deepEqual(info.find((s) => s.name === a.name)!.sharedBy, [b.name]);
    assert.deepEqual(info.find((s) => s.name === b.name)!.sharedBy, [c.name]);
    const ino = statSync(a.namespacePath).ino;

    await assert.rejects(a.remove(), (e: NetmodesError) => e instanceof NetmodesError && e.code === 'ESANDBOXINUSE' && e.message.includes(b.name));
    await assert.rejects(b.remove(), (e: NetmodesError) => e.code === 'ESANDBOXINUSE');
    // a is untouched: still usable.
    assert.equal((await runIn(a, 'true')).code, 0);
    await c.remove();
    await b.remove();
    // Removing the sharers leaves the shared namespace in place.
    assert.equal(statSync(a.namespacePath).ino, ino);
    assert.equal((await runIn(a, 'ip', ['link'])).code, 0);
    await a.remove();
    await assert.rejects(openSandbox(a.name), (e: NetmodesError) => e.code === 'ENOSANDBOX');
  });

  it('the joined sandbox keeps an index of its sharers; an entry a crash left behind does not block removal', async () => {
    const a = await sbs.create({ name: uniq('sbc'), network: 'none' });
    const b = await sbs.create({ name: uniq('sbc'), network: `container:${a.name}` });
    const c = await sbs.create({ name: uniq('sbc'), network: `container:${a.name}` });
    const record = (n: string) => JSON.parse(readFileSync(`/run/netmodes/sandboxes/${n}/sandbox.json`, 'utf8'));
    assert.deepEqual(record(a.name).sharedBy, [b.name, c.name]);
    await b.remove();
    assert.deepEqual(record(a.name).sharedBy, [c.name]);
    // As if the process removing c died between deleting c's record and updating a's.
    rmSync(`/run/netmodes/sandboxes/${c.name}`, { recursive: true });
    assert.deepEqual(record(a.name).sharedBy, [c.name]);
    await a.remove();
    await c.remove(); // its record is gone: a no-op
  });

  it('refuses options that belong to the joined sandbox, a missing one, and itself', async () => {
    const a = await sbs.create({ name: uniq('sbc'), network: 'none' });
    const net = `container:${a.name}`;
    for (const [field, extra] of [
      ['ports', { ports: ['80'] }],
      ['ip', { ip: '10.0.0.2' }],
      ['mac', { mac: '02:00:00:00:00:01' }],
      ['links', { links: [a.name] }],
      ['hostname', { hostname: 'x' }],
      ['dns', { dns: { servers: ['192.0.2.1'] } }],
    ] as [string, Partial<SandboxOptions>][]) {
      await assert.rejects(sbs.create({ name: uniq('sbc'), network: net, ...extra }), (e: ConfigError) => e instanceof ConfigError && e.field === field);
    }
    await assert.rejects(sbs.create({ name: uniq('sbc'), network: 'container:nosuch' }), (e: NetmodesError) => e.code === 'ENOSANDBOX');
    await assert.rejects(sbs.create({ name: 'selfish', network: 'container:selfish' }), (e: ConfigError) => e.field === 'network');
    await assert.rejects(sbs.create({ name: uniq('sbc'), network: 'container:bad/name' }), (e: ConfigError) => e.field === 'network');
  });

  it("joining a host-mode sandbox runs in the host's namespace", async () => {
    const h = await sbs.create({ name: uniq('sbc'), network: 'host' });
    const b = await sbs.create({ name: uniq('sbc'), network: `container:${h.name}` });
    assert.equal(b.namespacePath, HOST_NETNS);
    const ino = (await runIn(b, 'stat', ['-L', '-c', '%i', '/proc/self/ns/net'])).stdout.trim();
    assert.equal(Number(ino), statSync('/proc/self/ns/net').ino);
    await assert.rejects(h.remove(), (e: NetmodesError) => e.code === 'ESANDBOXINUSE');
  });
});
