/** Published ports: TCP/UDP, ranges, random host ports, host IP binding, from every direction. */
import { strict as assert } from 'node:assert';
import { ChildProcess } from 'node:child_process';
import { createBridgeNetwork, createNamespace, BridgeNetwork, Namespace, NetmodesError } from '../../lib';
import { sandboxed, startServer, connect, nftj, uniq, ip } from '../helpers/kernel';
import { makeOutside, Outside } from '../helpers/topology';

function ruleCount(): number {
  return nftj().filter((o: any) => o.rule).length;
}

describe('51 bridge mode: published ports', function () {
  this.timeout(60000);
  let net: BridgeNetwork;
  let outside: Outside;
  const nss: Namespace[] = [];
  const servers: ChildProcess[] = [];
  const mkns = async () => {
    const n = await createNamespace(uniq('p'));
    nss.push(n);
    return n;
  };

  before(async () => {
    sandboxed();
    outside = makeOutside();
    net = await createBridgeNetwork({ name: 'ports', subnet: '10.66.0.0/24' });
  });
  after(async () => {
    servers.forEach((s) => s.kill());
    await net?.remove({ force: true });
    await Promise.all(nss.map((n) => n.delete()));
    outside?.remove();
  });

  it('TCP and UDP published ports work from an outside host', async () => {
    const ns = await mkns();
    await net.connect(ns, { id: 'tu', ports: ['8080:80', '5353:53/udp'] });
    servers.push(await startServer(ns.name, 'tcp', 80, 'tcp80'), await startServer(ns.name, 'udp', 53, 'udp53'));
    assert.equal(connect(outside.ns, 'tcp', outside.hostAddr, 8080), `tcp80 ${outside.addr}`);
    assert.equal(connect(outside.ns, 'udp', outside.hostAddr, 5353), `udp53 ${outside.addr}`);
    assert.equal(connect(outside.ns, 'tcp', outside.hostAddr, 8081), null, 'an unpublished port stays closed');
  });

  it('works from the host itself, including 127.0.0.1 (no userland proxy), and from another container', async () => {
    const ns = await mkns();
    const ep = await net.connect(ns, { id: 'lh', ports: ['9090:90'] });
    servers.push(await startServer(ns.name, 'tcp', 90, 'lh'));
    assert.match(connect(undefined, 'tcp', '127.0.0.1', 9090) ?? '', /^lh /);
    assert.match(connect(undefined, 'tcp', outside.hostAddr, 9090) ?? '', /^lh /);
    const other = await mkns();
    const ep2 = await net.connect(other, { id: 'lh-client' });
    assert.match(connect(other.name, 'tcp', outside.hostAddr, 9090) ?? '', /^lh /);
    assert.match(connect(other.name, 'tcp', net.gateway, 9090) ?? '', /^lh /);
    // hairpin: the container reaches its own published port through the host's address
    assert.match(connect(ns.name, 'tcp', outside.hostAddr, 9090) ?? '', /^lh /);
    await ep2.disconnect();
    await ep.disconnect();
    assert.equal(connect(undefined, 'tcp', '127.0.0.1', 9090), null, 'closed again after disconnect');
  });

  it('a host port left to the library is chosen from the ephemeral range and reported', async () => {
    const ns = await mkns();
    const ep = await net.connect(ns, { id: 'rnd', ports: ['80', { containerPort: 81, protocol: 'udp' }] });
    servers.push(await startServer(ns.name, 'tcp', 80, 'rnd'));
    assert.equal(ep.ports.length, 2);
    for (const p of ep.ports) assert.ok(p.hostPort >= 49153 && p.hostPort <= 65535, `port ${p.hostPort}`);
    assert.equal(connect(outside.ns, 'tcp', outside.hostAddr, ep.ports[0].hostPort), `rnd ${outside.addr}`);
  });

  it('ranges map port to port; host IP binding limits the address', async () => {
    const ns = await mkns();
    const ep = await net.connect(ns, { id: 'rng', ports: ['7000-7002:7000-7002', `${outside.hostAddr}:7100:80`] });
    assert.deepEqual(ep.ports.map((p) => `${p.hostIp}:${p.hostPort}->${p.containerPort}`), [
      '0.0.0.0:7000->7000', '0.0.0.0:7001->7001', '0.0.0.0:7002->7002', `${outside.hostAddr}:7100->80`,
    ]);
    servers.push(await startServer(ns.name, 'tcp', 7001, 'r7001'), await startServer(ns.name, 'tcp', 80, 'r80'));
    assert.equal(connect(outside.ns, 'tcp', outside.hostAddr, 7001), `r7001 ${outside.addr}`);
    assert.equal(connect(outside.ns, 'tcp', outside.hostAddr, 7100), `r80 ${outside.addr}`);
    assert.equal(connect(undefined, 'tcp', '127.0.0.1', 7100), null, 'bound to one address only');
  });

  it('a second publish of the same host IP, port and protocol fails with EPORTINUSE and changes nothing', async () => {
    const ns = await mkns();
    await net.connect(ns, { id: 'first', ports: ['6000:80'] });
    const before = JSON.stringify(nftj());
    const ns2 = await mkns();
    await assert.rejects(net.connect(ns2, { id: 'second', ports: ['6000:80'] }), (e: NetmodesError) => e.code === 'EPORTINUSE');
    await assert.rejects(net.connect(ns2, { id: 'third', ports: [`${outside.hostAddr}:6000:80`] }), (e: NetmodesError) => e.code === 'EPORTINUSE');
    assert.equal(JSON.stringify(nftj()), before);
    assert.deepEqual(ip(['-o', 'link', 'show'], ns2.name).trim().split('\n').length, 1, 'no eth0 left in the namespace');
    const ok = await net.connect(ns2, { id: 'fourth', ports: ['6000:80/udp'] }); // other protocol: fine
    await ok.disconnect();
  });

  it('SCTP ports are published as map elements like TCP and UDP', async () => {
    const ns = await mkns();
    const ep = await net.connect(ns, { id: 'sctp', ports: ['3868:3868/sctp'] });
    const map = nftj().find((o: any) => o.map?.name === 'pub4any').map;
    assert.ok(JSON.stringify(map.elem).includes('"sctp"') && JSON.stringify(map.elem).includes(ep.ip), JSON.stringify(map.elem));
    await ep.disconnect();
    assert.ok(!JSON.stringify(nftj().find((o: any) => o.map?.name === 'pub4any').map.elem ?? []).includes('"sctp"'));
  });

  it('the rule count does not grow with containers or ports', async () => {
    const base = ruleCount();
    const eps = [];
    for (let i = 0; i < 10; i++) {
      const ns = await mkns();
      eps.push(await net.connect(ns, { ports: [`${20000 + i}:80`, `${21000 + i}:81/udp`] }));
    }
    assert.equal(ruleCount(), base);
    await Promise.all(eps.map((e) => e.disconnect()));
    assert.equal(ruleCount(), base);
  });
});
