/** Dual stack: IPv6 addresses and routes in the container, v6 between containers, v6 published ports. */
import { strict as assert } from 'node:assert';
import { ChildProcess } from 'node:child_process';
import { createBridgeNetwork, createNamespace, Namespace } from '../../lib';
import { sandboxed, ipj, ip, nftj, ping, startServer, connect, uniq } from '../helpers/kernel';
import { makeOutside } from '../helpers/topology';

describe('55 bridge mode: IPv6 dual stack', function () {
  this.timeout(60000);
  it('containers get both families; v6 works between them, to the gateway, and through a published port', async () => {
    sandboxed();
    const outside = makeOutside();
    ip(['addr', 'add', 'fd00:198::1/64', 'dev', outside.hostIf, 'nodad']);
    ip(['addr', 'add', 'fd00:198::2/64', 'dev', 'eth0', 'nodad'], outside.ns);
    const net = await createBridgeNetwork({ name: 'dual', subnet: '10.80.0.0/24', ipv6: { subnet: 'fd00:80::/64' } });
    const nss: Namespace[] = [];
    const servers: ChildProcess[] = [];
    try {
      for (let i = 0; i < 2; i++) nss.push(await createNamespace(uniq('v6')));
      const a = await net.connect(nss[0], { ports: ['8080:80'] });
      const b = await net.connect(nss[1]);
      assert.equal(net.ipv6?.gateway, 'fd00:80::1');
      assert.match(a.ipv6 ?? '', /^fd00:80::/);
      const addrs = ipj(['addr', 'show', 'eth0'], nss[0].name)[0].addr_info.map((x: any) => `${x.local}/${x.prefixlen}`);
      assert.ok(addrs.includes(`${a.ip}/24`) && addrs.includes(`${a.ipv6}/64`), addrs.join());
      const routes = ipj(['-6', 'route', 'show', 'default'], nss[0].name);
      assert.equal(routes[0]?.gateway, 'fd00:80::1');
      assert.ok(ping(b.ipv6!, nss[0].name), 'v6 between containers');
      assert.ok(ping('fd00:80::1', nss[0].name), 'v6 to the gateway');
      servers.push(await startServer(nss[0].name, 'tcp', 80, 'six', '::'));
      assert.match(connect(outside.ns, 'tcp', 'fd00:198::1', 8080) ?? '', /^six /, 'v6 published port');
      assert.match(connect(outside.ns, 'tcp', outside.hostAddr, 8080) ?? '', /^six /, 'v4 published port, same listener');
    } finally {
      servers.forEach((s) => s.kill());
      await net.remove({ force: true });
      for (const n of nss) await n.delete();
      outside.remove();
    }
  });

  it('icc=false: a link opens its pair over IPv6 too (links6), an unlinked pair stays apart', async () => {
    sandboxed();
    const net = await createBridgeNetwork({ name: 'dual2', subnet: '10.81.0.0/24', icc: false, ipv6: { subnet: 'fd00:81::/64' } });
    const nss = await Promise.all([0, 1, 2].map(() => createNamespace(uniq('v6i'))));
    const servers: ChildProcess[] = [];
    try {
      const web = await net.connect(nss[0], { id: 'web' });
      servers.push(await startServer(nss[0].name, 'tcp', 80, 'web', '::'));
      const linked = await net.connect(nss[1], { links: [{ endpoint: 'web' }] });
      await net.connect(nss[2]);
      assert.equal(linked.links[0].ipv6, web.ipv6);
      assert.equal(connect(nss[1].name, 'tcp', web.ipv6!, 80), `web ${linked.ipv6}`, 'linked, over IPv6');
      assert.equal(connect(nss[2].name, 'tcp', web.ipv6!, 80), null, 'unlinked, over IPv6');
      assert.equal(connect(nss[2].name, 'tcp', web.ip, 80), null, 'unlinked, over IPv4');
      await linked.disconnect();
      assert.deepEqual(nftj().filter((o: any) => o.set?.name === 'links6').flatMap((o: any) => o.set.elem ?? []), []);
    } finally {
      servers.forEach((s) => s.kill());
      await net.remove({ force: true });
      for (const n of nss) await n.delete();
    }
  });
});
