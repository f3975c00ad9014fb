/**
 * IPv6 on dense networks (portsPerBridge + ipv6): blocks of 4 addresses, so 17 containers span
 * the network's bridge and four leaves (more come later). A container's IPv6 address follows its
 * IPv4 slot; IPv6 is routed between the bridges (no proxy NDP). Checked against `ip -j` and
 * `nft -j` and with real traffic: v6 between containers on one bridge and across bridges (one
 * hop), to the gateway, through a published port and out (masqueraded) to an outside host;
 * icc=false over v6 with a link exception, and isolation from another network; no frame at
 * rest; the ConfigErrors change nothing; reconcile() repairs a leaf's v6 route, neighbour
 * entries and the leaf itself, and finishes what a SIGKILL left (growing the network, making a
 * leaf); remove() leaves no route, neighbour entry or element behind; the embedded DNS server
 * answers a leaf's container over both families.
 */
import { strict as assert } from 'node:assert';
import { ChildProcess } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';
import * as path from 'node:path';
import { createBridgeNetwork, createNamespace, openBridgeNetwork, BridgeNetwork, Endpoint, Namespace, ConfigError, reapDetached } from '../../lib';
import * as store from '../../lib/state/store';
import { sandboxed, ip, ipj, nftj, ping, connect, startServer, uniq } from '../helpers/kernel';
import { makeOutside, Outside } from '../helpers/topology';
import { reconcileFresh } from '../helpers/reliability';
import { bridgesOf, framesAtRest, growInChild } from '../helpers/dense';

const L = 4;
const leafOf = (net: BridgeNetwork, s: number) => (s === 0 ? net.bridge : `nm${net.id.slice(0, 8)}b${s}`);
const slot = (e: Endpoint) => Math.floor(Number(e.ip.split('.')[3]) / L);
const setElems = (name: string, ns?: string) => nftj(ns).filter((o: any) => o.set?.name === name).flatMap((o: any) => o.set.elem ?? []);
const v6neigh = (dev: string) => ipj(['-6', 'neigh', 'show', 'dev', dev, 'nud', 'permanent']);
const hopLimit = (ns: string, addr: string) => /ttl=(\d+)/.exec(ip(['netns', 'exec', ns, 'ping', '-6', '-c', '1', '-W', '1', addr]))?.[1];

describe('59 bridge mode: IPv6 on a dense network', function () {
  this.timeout(300000);
  let net: BridgeNetwork;
  let outside: Outside;
  const nss: Namespace[] = [];
  const eps: Endpoint[] = [];
  const servers: ChildProcess[] = [];

  before(async () => {
    sandboxed();
    outside = makeOutside();
    ip(['addr', 'add', 'fd00:198::1/64', 'dev', outside.hostIf, 'nodad']);
    ip(['addr', 'add', 'fd00:198::2/64', 'dev', 'eth0', 'nodad'], outside.ns);
    net = await createBridgeNetwork({ name: 'dense6', subnet: '10.59.0.0/24', portsPerBridge: L, ipv6: { subnet: 'fd59::/64' } });
    for (let i = 0; i < 30; i++) nss.push(await createNamespace(uniq('d6')));
  });

  after(async () => {
    servers.forEach((s) => s.kill());
    outside?.remove();
    await net?.remove({ force: true });
    for (const n of nss) await n.delete();
  });

  it('refuses a too small IPv6 subnet, an IPv6 gateway at another offset and an address outside its slot (ConfigError), changing nothing', async () => {
    const snapshot = () => JSON.stringify([ipj(['link']), ipj(['-6', 'route']), ipj(['-6', 'neigh']), nftj(), readdirSync(path.join(store.stateDir(), 'networks')).sort()]);
    const before = snapshot();
    for (const [o, field] of [
      [{ ipv6: { subnet: 'fd5a::/121' } }, 'ipv6.subnet'], // 128 addresses for 256
      [{ ipv6: { subnet: 'fd5a::/64', gateway: 'fd5a::2' } }, 'ipv6.gateway'],
      [{ gateway: '10.60.0.254', ipv6: { subnet: 'fd5a::/64', gateway: 'fd5a::1' } }, 'ipv6.gateway'],
    ] as const)
      await assert.rejects(createBridgeNetwork({ name: 'bad59', subnet: '10.60.0.0/24', portsPerBridge: L, ...o }), (e: ConfigError) => e instanceof ConfigError && e.field === field);
    // The IPv6 gateway follows an IPv4 gateway at another offset (checked here, then removed).
    const g = await createBridgeNetwork({ name: 'gw59', subnet: '10.60.0.0/24', gateway: '10.60.0.254', portsPerBridge: L, ipv6: { subnet: 'fd5a::/120' } });
    assert.equal(g.ipv6?.gateway, 'fd5a::fe');
    await g.remove();
    assert.equal(snapshot(), before);
    const beforeEp = snapshot();
    const stateIp = () => (existsSync(path.join(store.stateDir(), 'networks', 'dense6', 'ip')) ? readdirSync(path.join(store.stateDir(), 'networks', 'dense6', 'ip')).sort() : []);
    const ips = stateIp();
    for (const o of [{ ip: '10.59.0.5', ipv6: 'fd59::9' }, { ip: '10.59.0.5', ipv6: 'fd59:1::5' }, { ipv6: 'fd59::1:5' }, { ip: '10.59.0.5', ipv6: '10.59.0.6' }])
      await assert.rejects(net.connect(nss[29], o), (e: ConfigError) => e instanceof ConfigError && e.field === 'ipv6', JSON.stringify(o));
    assert.equal(snapshot(), beforeEp);
    assert.deepEqual(stateIp(), ips);
  });

  it('a container\'s IPv6 address follows its IPv4 slot; the layout in the container and on the host', async () => {
    for (let i = 0; i < 14; i++) eps.push(await net.connect(nss[i]));
    assert.deepEqual(eps.map((e) => e.ipv6), eps.map((e) => `fd59::${Number(e.ip.split('.')[3]).toString(16)}`));
    // ipv6 alone: the IPv4 address at its offset; both, in one slot: as given.
    const a = await net.connect(nss[14], { ipv6: 'fd59::11' });
    assert.equal(a.ip, '10.59.0.17');
    const b = await net.connect(nss[15], { ip: '10.59.0.18', ipv6: 'fd59::13' });
    assert.equal(b.ipv6, 'fd59::13');
    // The next container at offset 19 finds its own IPv6 address taken: the first free one of its slot.
    const c = await net.connect(nss[16], { ip: '10.59.0.19' });
    assert.equal(c.ipv6, 'fd59::10');
    eps.push(a, b, c);
    const bridges = bridgesOf(net);
    assert.equal(bridges.size, 5);
    for (const [br, ports] of bridges) assert.ok(ports.length <= L, `${br}: ${ports.length}`);
    const routes = ipj(['-6', 'route']);
    for (let s = 1; s <= 4; s++) {
      const leaf = leafOf(net, s);
      const dst = `fd59::${(s * L).toString(16)}/126`;
      assert.ok(routes.some((r: any) => r.dst === dst && r.dev === leaf && r.prefsrc === 'fd59::1'), `route ${dst} dev ${leaf}`);
      assert.equal(ip(['-6', 'addr', 'show', 'dev', leaf]).trim(), '', 'the leaf has no IPv6 address of its own');
    }
    for (const e of eps) {
      const nb = v6neigh(leafOf(net, slot(e))).find((n: any) => n.dst === e.ipv6);
      assert.equal(nb?.lladdr, e.mac, `host neighbour ${e.ipv6}`);
      assert.deepEqual(await net.check(e.id), [], e.ip);
    }
    // In a container of slot 2: the /64 without its prefix route, its block on-link, the rest via the gateway.
    const ns = nss[eps.findIndex((e) => slot(e) === 2)].name!;
    const e2 = eps.find((e) => slot(e) === 2)!;
    const addr = ipj(['-6', 'addr', 'show', 'dev', 'eth0'], ns)[0].addr_info;
    assert.deepEqual(addr.map((x: any) => [x.local, x.prefixlen, !!x.noprefixroute]), [[e2.ipv6, 64, true]], 'no link-local either');
    const r6 = ipj(['-6', 'route'], ns).map((r: any) => `${r.dst} ${r.gateway ?? ''}`.trim()).sort();
    assert.deepEqual(r6, ['default fd59::1', 'fd59::/64 fd59::1', 'fd59::8/126'].sort());
    assert.equal(ipj(['-6', 'neigh', 'show', 'fd59::1'], ns)[0]?.lladdr, net.bridgeMac);
  });

  it('v6 between containers on one bridge and across bridges (one hop), to the gateway; at rest no bridge or port carries a frame', async () => {
    for (const e of eps) assert.ok(ping('fd59::1', nss[eps.indexOf(e)].name), `${e.ipv6} -> gateway`);
    for (const e of eps) assert.ok(ping(e.ipv6!), `host -> ${e.ipv6}`);
    for (const [i, ns] of nss.slice(0, eps.length).entries()) servers.push(await startServer(ns.name, 'tcp', 80, `c${i}`, '::'));
    for (const [x, y] of [[0, 1], [0, 13], [13, 0], [3, 9], [4, 5], [9, 10], [2, 16], [16, 15]]) {
      assert.equal(connect(nss[x].name, 'tcp', eps[y].ipv6!, 80), `c${y} ${eps[x].ipv6}`, `${eps[x].ipv6} -> ${eps[y].ipv6}`);
      assert.ok(ping(eps[y].ipv6!, nss[x].name), `ping ${eps[x].ipv6} -> ${eps[y].ipv6}`);
    }
    assert.equal(hopLimit(nss[2].name!, eps[3].ipv6!), '64', 'one bridge: switched');
    assert.equal(hopLimit(nss[2].name!, eps[9].ipv6!), '63', 'across bridges: routed by the host');
    assert.equal(await framesAtRest(net, 3000, 3000), 0, 'frames in 3 s at rest');
  });

  it('a published port over v6 on a leaf, and a leaf container reaching an outside v6 host (masqueraded)', async () => {
    const i = eps.length;
    const ep = await net.connect(nss[i], { ip: '10.59.0.22', ports: ['8059:80'] });
    servers.push(await startServer(nss[i].name, 'tcp', 80, 'pub', '::'));
    assert.equal(slot(ep), 5);
    assert.equal(connect(outside.ns, 'tcp', 'fd00:198::1', 8059), 'pub fd00:198::2');
    assert.equal(connect(outside.ns, 'tcp', outside.hostAddr, 8059), `pub ${outside.addr}`);
    servers.push(await startServer(outside.ns, 'tcp', 81, 'out', '::'));
    assert.equal(connect(nss[i].name, 'tcp', 'fd00:198::2', 81), 'out fd00:198::1', 'masqueraded to the host\'s address');
    await ep.disconnect();
  });

  it('reconcile() puts back a leaf\'s v6 route, a container\'s v6 neighbour entry and a whole leaf deleted from outside', async () => {
    const e = eps.find((x) => slot(x) === 3)!;
    const leaf = leafOf(net, 3);
    ip(['-6', 'route', 'del', 'fd59::c/126', 'dev', leaf]);
    ip(['-6', 'neigh', 'del', e.ipv6!, 'dev', leaf]);
    assert.ok((await net.check(e.id)).some((p) => p.includes(`neighbour entry ${e.ipv6}`)));
    const rep = await net.reconcile();
    assert.ok(rep.repaired.includes('route fd59::c/126 restored'), JSON.stringify(rep));
    assert.ok(rep.repaired.includes(`neighbour ${e.ipv6} restored`), JSON.stringify(rep));
    assert.deepEqual(await net.check(e.id), []);
    assert.equal(connect(nss[0].name, 'tcp', e.ipv6!, 80), `c${eps.indexOf(e)} ${eps[0].ipv6}`);
    const again = await net.reconcile();
    assert.deepEqual(again.repaired, []);
    // A whole leaf deleted from outside: made again, its veths back on it, reached over v6.
    const leaf2 = leafOf(net, 2);
    ip(['link', 'del', leaf2]);
    // (its namespace, with the containers' host ends on its bridge, stays: a new trunk joins it)
    const rep2 = await net.reconcile();
    assert.ok(rep2.repaired.includes(`leaf ${leaf2} made whole again`), JSON.stringify(rep2));
    assert.ok(ipj(['-6', 'route']).some((r: any) => r.dst === 'fd59::8/126' && r.dev === leaf2));
    for (const x of eps.filter((y) => slot(y) === 2)) {
      assert.deepEqual(await net.check(x.id), [], x.ip);
      assert.equal(connect(nss[0].name, 'tcp', x.ipv6!, 80), `c${eps.indexOf(x)} ${eps[0].ipv6}`);
    }
    assert.deepEqual((await net.reconcile()).repaired, []);
  });

  it('SIGKILL while growing the network, and while making a leaf: reconcile() leaves every endpoint whole over v6', async () => {
    const names = nss.slice(18, 28).map((n) => n.name!);
    const ips = names.map((_, k) => (k === 9 ? '10.59.0.53' : `10.59.0.${40 + k}`)); // slots 10-12, then 13
    const child = await growInChild('dense6', names.slice(0, 8), ips.slice(0, 8), { killAfter: 5 });
    assert.equal(child.signalCode, 'SIGKILL', child.err());
    const leaf13 = leafOf(net, 13);
    const child2 = await growInChild('dense6', [names[9]], [ips[9]], { env: { NETMODES_FAULT: 'leaf:after-create' } });
    assert.equal(child2.signalCode, 'SIGKILL', child2.err());
    const linkNamed = (n: string) => ipj(['link', 'show']).find((l: any) => l.ifname === n);
    assert.match(linkNamed(leaf13)?.ifalias ?? '', /^netmodes-pending:leaf:/);
    const { first, second } = await reconcileFresh('dense6');
    assert.ok(first.repaired.some((r: string) => r.includes(`half-made leaf ${leaf13}`)), JSON.stringify(first));
    assert.deepEqual([second.removedEndpoints, second.removedVeths, second.repaired, second.freedReservations], [[], [], [], []]);
    assert.equal(linkNamed(leaf13), undefined);
    assert.ok(!ipj(['-6', 'route']).some((r: any) => r.dst === 'fd59::34/126'), 'its v6 route went with it');
    const fresh = await openBridgeNetwork('dense6');
    const all = await fresh.endpoints();
    for (const e of all) assert.deepEqual(await fresh.check(e.id), [], e.ip);
    // Exactly one permanent v6 neighbour entry per endpoint, on its bridge.
    const v6n = [...bridgesOf(net).keys()].flatMap((b) => v6neigh(b).map((n: any) => `${n.dst} ${b}`)).sort();
    assert.deepEqual(v6n, all.map((e) => `${e.ipv6} ${leafOf(net, slot(e))}`).sort());
    for (const [k, n] of names.entries()) {
      const ns = nss.find((x) => x.name === n)!;
      if (all.some((e) => e.namespace === ns.path)) continue;
      const e = await net.connect(ns, { ip: ips[k] });
      assert.ok(ping(e.ipv6!, nss[0].name), e.ipv6);
    }
    assert.equal(linkNamed(leaf13)?.ifalias, `netmodes:leaf:${net.id.slice(0, 12)}:13`);
  });

  it('removing the network leaves no leaf, v6 route, v6 neighbour entry or element behind', async () => {
    await net.remove({ force: true });
    await reapDetached();
    assert.equal(bridgesOf(net).size, 0);
    assert.deepEqual(ipj(['-6', 'route']).filter((r: any) => String(r.dst).startsWith('fd59:')), []);
    assert.deepEqual(ipj(['-6', 'neigh']).filter((n: any) => String(n.dst).startsWith('fd59:')), []);
    assert.ok(!JSON.stringify(nftj()).includes(`nm${net.id.slice(0, 8)}b`), 'no leaf in the ruleset');
    assert.ok(!JSON.stringify(nftj()).includes('fd59:'), 'no v6 element or rule');
  });
});

describe('59 bridge mode: icc=false over IPv6 on a dense network', function () {
  this.timeout(120000);
  it('unlinked pairs on different bridges and on one bridge do not talk over v6; a link opens its pair, at both layers, until it ends; another network stays out of reach', async () => {
    sandboxed();
    const net = await createBridgeNetwork({ name: 'noicc6', subnet: '10.61.0.0/24', portsPerBridge: L, icc: false, ipv6: { subnet: 'fd61::/64' } });
    const nss = await Promise.all(Array.from({ length: 8 }, () => createNamespace(uniq('i6'))));
    const servers: ChildProcess[] = [];
    try {
      // .2 .3 on the bridge, .4-.7 on leaf 1, .8 .9 on leaf 2
      const web = await net.connect(nss[0], { id: 'web', ip: '10.61.0.9' });
      servers.push(await startServer(nss[0].name, 'tcp', 80, 'web', '::'));
      const other = await net.connect(nss[1], { id: 'other', ip: '10.61.0.5' });
      servers.push(await startServer(nss[1].name, 'tcp', 80, 'other', '::'));
      await net.connect(nss[2], { ip: '10.61.0.2' });
      await net.connect(nss[3], { ip: '10.61.0.8' });
      assert.ok(ping('fd61::1', nss[2].name), 'the gateway answers');
      assert.equal(connect(nss[2].name, 'tcp', web.ipv6!, 80), null, 'across bridges, unlinked');
      assert.ok(!ping(web.ipv6!, nss[2].name), 'no ping6 across bridges either');
      assert.equal(connect(nss[3].name, 'tcp', web.ipv6!, 80), null, 'one bridge, unlinked');
      // Linked, from the network's bridge, from leaf 1 and from web's own leaf.
      const linked = [
        await net.connect(nss[4], { ip: '10.61.0.3', links: [{ endpoint: 'web' }] }),
        await net.connect(nss[5], { ip: '10.61.0.6', links: [{ endpoint: 'web' }] }),
        await net.connect(nss[6], { ip: '10.61.0.10', links: [{ endpoint: 'web' }] }),
      ];
      assert.deepEqual(linked.map((e) => e.links[0].ipv6), [web.ipv6, web.ipv6, web.ipv6]);
      for (const [k, e] of linked.entries()) {
        assert.equal(connect(nss[4 + k].name, 'tcp', web.ipv6!, 80), `web ${e.ipv6}`, `linked ${e.ipv6}`);
        assert.ok(ping(web.ipv6!, nss[4 + k].name), `linked ping6 ${e.ipv6}`);
        assert.equal(connect(nss[4 + k].name, 'tcp', other.ipv6!, 80), null, 'a link opens one pair only');
        assert.equal(connect(nss[4 + k].name, 'tcp', web.ip, 80), `web ${e.ip}`, 'and IPv4 as before');
      }
      // Layer 3 in the host: all three pairs, both ways; layer 2 only within a leaf (web's and
      // 10.61.0.10's, in leaf 2's namespace).
      const leaf2 = `nm${net.id.slice(0, 8)}b2`;
      assert.equal(setElems('ilinks6').length, 6);
      assert.equal(setElems('links6').length, 0);
      assert.equal(setElems('links6', leaf2).length, 2);
      assert.equal(setElems('links4', leaf2).length, 2);
      assert.equal(setElems('ilinks4').length, 6);
      for (const e of await net.endpoints()) assert.deepEqual(await net.check(e.id), [], e.ip);
      // Another dense dual-stack network's containers (on its bridge and a leaf) are out of reach over v6.
      const other6 = await createBridgeNetwork({ name: 'other6', subnet: '10.62.0.0/24', portsPerBridge: L, ipv6: { subnet: 'fd62::/64' } });
      try {
        const oe = await other6.connect(nss[7], { ip: '10.62.0.5' });
        servers.push(await startServer(nss[7].name, 'tcp', 81, 'o', '::'));
        assert.equal(connect(nss[2].name, 'tcp', oe.ipv6!, 81), null, 'from another network, over v6');
        assert.equal(connect(nss[2].name, 'tcp', oe.ip, 81), null, 'and over IPv4');
        assert.ok(!ping(oe.ipv6!, nss[2].name));
      } finally {
        await other6.remove({ force: true });
      }
      // The target leaving ends every link, v6 too; reconcile() finds nothing to do.
      await web.disconnect();
      for (const s of ['ilinks6', 'links6', 'ilinks4', 'links4']) assert.deepEqual(setElems(s), [], s);
      for (const s of ['links6', 'links4']) assert.deepEqual(setElems(s, `nm${net.id.slice(0, 8)}b2`), [], `${s} in leaf 2`);
      const rep = await net.reconcile();
      assert.equal(rep.removedElements, 0);
    } finally {
      servers.forEach((s) => s.kill());
      await net.remove({ force: true });
      for (const n of nss) await n.delete();
    }
  });
});

describe('59 bridge mode: the embedded DNS server on a dense dual-stack network', function () {
  this.timeout(60000);
  it('a container on a leaf asks the gateway over either family and gets A and AAAA of a container on the network\'s bridge', async () => {
    sandboxed();
    const net = await createBridgeNetwork({ name: 'dns59', subnet: '10.63.0.0/24', portsPerBridge: L, embeddedDns: true, ipv6: { subnet: 'fd63::/64' } });
    const nss = await Promise.all([0, 1].map(() => createNamespace(uniq('n6'))));
    try {
      const a = await net.connect(nss[0], { id: 'alpha', ip: '10.63.0.2' });
      const b = await net.connect(nss[1], { id: 'beta', ip: '10.63.0.9' });
      const resolve = (ns: string, server: string, name: string, type: string) =>
        ip(['netns', 'exec', ns, process.execPath, '-e',
          `const r=new (require('dns').promises.Resolver)({timeout:1000,tries:3});r.setServers([${JSON.stringify(server)}]);` +
          `r.resolve(${JSON.stringify(name)},${JSON.stringify(type)}).then(x=>console.log(x.join()),e=>console.log('ERR',e.code))`]).trim();
      assert.equal(resolve(nss[1].name!, '10.63.0.1', 'alpha', 'A'), a.ip);
      assert.equal(resolve(nss[1].name!, 'fd63::1', 'alpha', 'AAAA'), a.ipv6);
      assert.equal(resolve(nss[0].name!, 'fd63::1', 'beta', 'AAAA'), b.ipv6);
    } finally {
      await net.remove({ force: true });
      for (const n of nss) await n.delete();
    }
  });
});
