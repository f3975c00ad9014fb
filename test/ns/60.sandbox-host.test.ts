import { strict as assert } from 'node:assert';
import { readFileSync, statSync, existsSync } from 'node:fs';
import { ConfigError, HOST_NETNS, SandboxOptions, listNamespaces } from '../../lib';
import { sandboxed, sh, ip, ipj, uniq, connect, tryRun } from '../helpers/kernel';
import { Sandboxes, runIn, serveIn } from '../helpers/sandbox';

describe('60 sandbox: host mode', () => {
  before(sandboxed);
  const sbs = new Sandboxes();
  afterEach(() => sbs.cleanup());

  it("runs in the caller's namespace: same inode, the host's links, no namespace of its own", async () => {
    const veth = uniq('nmh');
    ip(['link', 'add', veth, 'type', 'veth', 'peer', 'name', `${veth}p`]);
    try {
      const sb = await sbs.create({ name: uniq('sbh'), network: 'host' });
      assert.equal(sb.mode, 'host');
      assert.equal(sb.namespacePath, HOST_NETNS);
      assert.deepEqual(await listNamespaces(), []);
      const r = await runIn(sb, 'ip', ['-j', 'link']);
      assert.equal(r.code, 0, r.stderr);
      const names = JSON.parse(r.stdout).map((l: any) => l.ifname).sort();
      assert.deepEqual(names, ipj(['link']).map((l) => l.ifname).sort());
      assert.ok(names.includes(veth) && names.includes(`${veth}p`));
      const ino = (await runIn(sb, 'stat', ['-L', '-c', '%i', '/proc/self/ns/net'])).stdout.trim();
      assert.equal(Number(ino), statSync('/proc/self/ns/net').ino);
      // Without hostname or dns, processes see the host's own files.
      assert.equal(sb.hostname, undefined);
      assert.equal((await runIn(sb, 'cat', ['/etc/resolv.conf'])).stdout, readFileSync('/etc/resolv.conf', 'utf8'));
      assert.equal(sb.hosts, readFileSync('/etc/hosts', 'utf8'));
    } finally {
      tryRun('ip', ['link', 'del', veth]);
    }
  });

  it('a listener inside is reachable from the host on 127.0.0.1', async () => {
    const sb = await sbs.create({ name: uniq('sbh'), network: 'host' });
    sbs.track(await serveIn(sb, 8081, 'hostmode', '127.0.0.1'));
    assert.equal(connect(undefined, 'tcp', '127.0.0.1', 8081), 'hostmode 127.0.0.1');
  });

  it('published ports are discarded with a warning, as Docker does', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const sb = await sbs.create({ name: uniq('sbh'), network: 'host', ports: ['8080:80'] });
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
      assert.equal(sb.endpoint, undefined);
      const w = warnings.find((x) => (x as any).code === 'NETMODES_PORTS_DISCARDED');
      assert.ok(w, 'expected a NETMODES_PORTS_DISCARDED warning');
      assert.equal(w!.name, 'NetmodesWarning');
      assert.match(w!.message, /discarded/);
    } finally {
      process.off('warning', onWarning);
    }
    // Still checked: a bad spec is an error even though ports are discarded.
    await assert.rejects(sbs.create({ name: uniq('sbh'), network: 'host', ports: ['80:x'] }), (e: ConfigError) => e instanceof ConfigError && /^ports\[0\]/.test(e.field!));
  });

  it("host name and resolv.conf overrides apply to the sandbox's processes only", async () => {
    const sb = await sbs.create({ name: uniq('sbh'), network: 'host', hostname: 'hosty', dns: { servers: ['192.0.2.1'] } });
    assert.equal((await runIn(sb, 'hostname')).stdout.trim(), 'hosty');
    assert.equal((await runIn(sb, 'cat', ['/etc/resolv.conf'])).stdout, 'nameserver 192.0.2.1\n');
    assert.equal(sb.resolvConf, 'nameserver 192.0.2.1\n');
    assert.notEqual(sh('hostname', []).trim(), 'hosty');
    const dir = `/run/netmodes/sandboxes/${sb.name}`;
    assert.ok(existsSync(`${dir}/resolv.conf`));
    await sb.remove();
    assert.ok(!existsSync(dir));
  });

  it('refuses what needs an interface of its own (ip, mac, links), as Docker does', async () => {
    for (const [field, extra] of [
      ['ip', { ip: '172.17.0.9' }],
      ['mac', { mac: '02:42:ac:11:00:09' }],
      ['links', { links: ['other'] }],
    ] as [string, Partial<SandboxOptions>][]) {
      await assert.rejects(
        sbs.create({ name: uniq('sbh'), network: 'host', ...extra }),
        (e: ConfigError) => e instanceof ConfigError && e.field === field,
      );
    }
  });
});
