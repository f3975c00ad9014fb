import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import { ConfigError, NetmodesError, createSandbox, listSandboxes, listNamespaces, openSandbox } from '../../lib';
import * as bridge from '../../lib/modes/bridge';
import { sandboxed, ipj, uniq, connect } from '../helpers/kernel';
import { Sandboxes, runIn, serveIn, connectIn } from '../helpers/sandbox';

/** Removes a bridge network if it exists (tests make and drop their own). */
async function dropNetwork(name: string): Promise<void> {
  try {
    await (await bridge.openBridgeNetwork(name)).remove({ force: true });
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENONETWORK') throw err;
  }
}

function inSubnet(ip: string, prefix: string): boolean {
  return ip.startsWith(prefix);
}

describe('60 sandbox: bridge mode', function () {
  before(function () {
    sandboxed();
  });
  const sbs = new Sandboxes();
  afterEach(() => sbs.cleanup());
  after(async () => {
    await dropNetwork('bridge');
  });

  it('the default network `bridge` is made on first use (172.17.0.0/16, bridge netmodes0); eth0 gets an address from it', async () => {
    const sb = await sbs.create({ name: uniq('sbb') });
    assert.equal(sb.mode, 'bridge');
    assert.equal(sb.network, 'bridge');
    const net = (await bridge.listBridgeNetworks()).find((n) => n.name === 'bridge')!;
    assert.ok(net, 'the default network exists');
    assert.equal(net.subnet, '172.17.0.0/16');
    assert.equal(net.bridge, 'netmodes0');
    assert.equal(ipj(['-d', 'link', 'show', 'netmodes0'])[0].linkinfo.info_kind, 'bridge');

    const ep = sb.endpoint!;
    assert.ok(ep, 'bridge sandboxes have an endpoint');
    assert.ok(inSubnet(ep.ip, '172.17.'), ep.ip);
    assert.equal(ep.namespace, sb.namespacePath);
    // Checked with ip, inside the namespace: lo up, eth0 with the address, default route via the gateway.
    const links = ipj(['addr'], sb.name);
    assert.deepEqual(links.map((l) => l.ifname).sort(), ['eth0', 'lo']);
    const eth0 = links.find((l) => l.ifname === 'eth0');
    assert.ok(eth0.addr_info.some((a: any) => a.local === ep.ip && a.prefixlen === 16));
    assert.ok(links.find((l) => l.ifname === 'lo').flags.includes('UP'));
    assert.equal(ipj(['route', 'show', 'default'], sb.name)[0].gateway, net.gateway);
    // The same, as a process inside sees it.
    const inside = JSON.parse((await runIn(sb, 'ip', ['-j', 'addr', 'show', 'eth0'])).stdout);
    assert.equal(inside[0].addr_info.find((a: any) => a.family === 'inet').local, ep.ip);

    assert.match(sb.hosts, new RegExp(`^${ep.ip.replace(/\./g, '\\.')}\\t${sb.hostname}\\b`, 'm'));
    assert.equal((await runIn(sb, 'cat', ['/etc/hosts'])).stdout, sb.hosts);
    assert.equal((await runIn(sb, 'cat', ['/etc/resolv.conf'])).stdout, sb.resolvConf);
    assert.equal((await listSandboxes()).find((s) => s.name === sb.name)!.ip, ep.ip);

    // A second sandbox reuses the network.
    const sb2 = await sbs.create({ name: uniq('sbb'), network: 'bridge' });
    assert.equal((await bridge.listBridgeNetworks()).filter((n) => n.name === 'bridge').length, 1);
    assert.notEqual(sb2.endpoint!.ip, ep.ip);
  });

  it('a TCP listener inside is reachable from the host and from another sandbox on the network', async () => {
    const a = await sbs.create({ name: uniq('sbb') });
    const b = await sbs.create({ name: uniq('sbb') });
    sbs.track(await serveIn(a, 8080, 'bridged'));
    const fromHost = connect(undefined, 'tcp', a.endpoint!.ip, 8080);
    assert.equal(fromHost, `bridged ${a.endpoint!.gateway}`);
    assert.equal(await connectIn(b, a.endpoint!.ip, 8080), `bridged ${b.endpoint!.ip}`);
  });

  it('a named network, by name or object; fixed ip; links put the alias in hosts and it resolves', async () => {
    const name = uniq('nmn');
    const net = await bridge.createBridgeNetwork({ name, subnet: '10.77.0.0/24' });
    try {
      const a = await sbs.create({ name: uniq('sbb'), network: name, ip: '10.77.0.50' });
      assert.equal(a.endpoint!.ip, '10.77.0.50');
      assert.equal(a.network, name);
      const b = await sbs.create({ name: uniq('sbb'), network: net, links: [`${a.name}:db`] });
      assert.equal(b.network, name);
      assert.match(b.hosts, /^10\.77\.0\.50\t.*\bdb\b/m);
      sbs.track(await serveIn(a, 5432, 'db'));
      assert.equal(await connectIn(b, 'db', 5432), `db ${b.endpoint!.ip}`);

      await assert.rejects(sbs.create({ name: uniq('sbb'), network: 'nosuchnet' }), (e: NetmodesError) => e.code === 'ENONETWORK');
      const none = await sbs.create({ name: uniq('sbb'), network: 'none' });
      await assert.rejects(sbs.create({ name: uniq('sbb'), network: name, links: [none.name] }), (e: ConfigError) => e instanceof ConfigError && e.field === 'links[0]');
      await assert.rejects(sbs.create({ name: uniq('sbb'), network: name, links: ['nosuchsandbox'] }), (e: NetmodesError) => e.code === 'ENOSANDBOX');
    } finally {
      await sbs.cleanup();
      await net.remove();
    }
  });

  it('published ports: reachable on the host, listed, and freed by remove', async () => {
    const a = await sbs.create({ name: uniq('sbb'), ports: ['18080:80'] });
    assert.deepEqual(a.endpoint!.ports, [{ protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 18080, containerPort: 80 }]);
    assert.deepEqual((await listSandboxes()).find((s) => s.name === a.name)!.ports, a.endpoint!.ports);
    sbs.track(await serveIn(a, 80, 'published'));
    // From the host to its own address on the bridge (the DNAT for locally generated traffic, as Docker's OUTPUT rule).
    assert.match(connect(undefined, 'tcp', a.endpoint!.gateway, 18080) ?? 'no answer', /^published /);
    await sbs.cleanup();
    const again = await sbs.create({ name: uniq('sbb'), ports: ['18080:80'] });
    assert.equal(again.endpoint!.ports[0].hostPort, 18080);
  });

  it('container:NAME on a bridge sandbox shares its eth0 and address', async () => {
    const a = await sbs.create({ name: uniq('sbb') });
    const b = await sbs.create({ name: uniq('sbb'), network: `container:${a.name}` });
    assert.equal(b.endpoint, undefined);
    const eth0 = JSON.parse((await runIn(b, 'ip', ['-j', 'addr', 'show', 'eth0'])).stdout)[0];
    assert.equal(eth0.addr_info.find((x: any) => x.family === 'inet').local, a.endpoint!.ip);
    sbs.track(await serveIn(b, 7070, 'sharer'));
    assert.equal(connect(undefined, 'tcp', a.endpoint!.ip, 7070), `sharer ${a.endpoint!.gateway}`);
    await assert.rejects(a.remove(), (e: NetmodesError) => e.code === 'ESANDBOXINUSE');
  });

  it('remove takes down the veth and the namespace; twice is a no-op; a failed create leaves nothing', async () => {
    const sb = await createSandbox({ name: uniq('sbb') });
    const veth = sb.endpoint!.hostVeth;
    assert.ok(ipj(['link']).some((l) => l.ifname === veth));
    const opened = await openSandbox(sb.name);
    assert.equal(opened.endpoint?.ip, sb.endpoint!.ip);
    await opened.remove();
    assert.ok(!ipj(['link']).some((l) => l.ifname === veth));
    assert.ok(!existsSync(sb.namespacePath));
    await sb.remove();

    const before = ipj(['link']).length;
    await assert.rejects(createSandbox({ name: uniq('sbb'), ip: '192.168.254.9' })); // outside the subnet
    await assert.rejects(createSandbox({ name: uniq('sbb'), ports: ['18090:80', '18090:81'] })); // one host port twice
    assert.equal(ipj(['link']).length, before);
    assert.deepEqual(await listNamespaces(), []);
    assert.deepEqual(await listSandboxes(), []);
  });
});
