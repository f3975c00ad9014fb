/**
 * The seed article's scenario, end to end: docker0 on 172.17.0.0/16 with the gateway 172.17.42.1,
 * a "web" container published as -p 80:80, an outside host reaching it through the host, the
 * container reaching the outside (which sees the host's address), two containers talking,
 * icc=false with a link, and the kernel state read back with `ip -j` and `nft -j`.
 */
import { strict as assert } from 'node:assert';
import { ChildProcess } from 'node:child_process';
import { createBridgeNetwork, createNamespace, BridgeNetwork, Namespace, Endpoint } from '../../lib';
import { sandboxed, ipj, nftj, nftText, startServer, connect, ping, uniq } from '../helpers/kernel';
import { makeOutside, Outside } from '../helpers/topology';

describe('50 bridge mode: the seed scenario', function () {
  this.timeout(60000);
  let net: BridgeNetwork;
  let outside: Outside;
  let webNs: Namespace;
  let web: Endpoint;
  const servers: ChildProcess[] = [];

  before(async () => {
    sandboxed();
    outside = makeOutside();
    net = await createBridgeNetwork({ name: 'docker0net', bridge: 'docker0', subnet: '172.17.0.0/16', gateway: '172.17.42.1' });
    webNs = await createNamespace(uniq('web'));
    web = await net.connect(webNs, { id: 'web', ports: ['80:80'] });
    servers.push(await startServer(webNs.name, 'tcp', 80, 'web'));
  });

  after(async () => {
    servers.forEach((s) => s.kill());
    await net?.remove({ force: true });
    await webNs?.delete();
    outside?.remove();
  });

  it('docker0 is a bridge, up, with 172.17.42.1/16', () => {
    const [br] = ipj(['-d', 'addr', 'show', 'docker0']);
    assert.equal(br.linkinfo.info_kind, 'bridge');
    assert.ok(br.flags.includes('UP'));
    assert.deepEqual(br.addr_info.filter((a: any) => a.family === 'inet').map((a: any) => `${a.local}/${a.prefixlen}`), ['172.17.42.1/16']);
    assert.equal(br.linkinfo.info_data.stp_state, 0);
  });

  it('the container has eth0 with an address from 172.17.0.0/16, a default route via 172.17.42.1, lo up', () => {
    assert.match(web.ip, /^172\.17\./);
    const links = ipj(['-d', 'addr', 'show'], webNs.name);
    const eth0 = links.find((l: any) => l.ifname === 'eth0');
    const lo = links.find((l: any) => l.ifname === 'lo');
    assert.ok(eth0 && lo);
    assert.equal(eth0.linkinfo.info_kind, 'veth');
    assert.equal(eth0.address, web.mac);
    assert.deepEqual(eth0.addr_info.map((a: any) => `${a.local}/${a.prefixlen}`), [`${web.ip}/16`]); // no IPv6 at all
    assert.ok(lo.flags.includes('UP'));
    const routes = ipj(['route', 'show'], webNs.name);
    assert.ok(routes.some((r: any) => r.dst === 'default' && r.gateway === '172.17.42.1' && r.dev === 'eth0'));
  });

  it('the host end is vethXXXX, attached to docker0 and up (brctl show)', () => {
    const [v] = ipj(['-d', 'link', 'show', web.hostVeth]);
    assert.match(web.hostVeth, /^veth[0-9a-f]{11}$/);
    assert.equal(v.master, 'docker0');
    assert.ok(v.flags.includes('UP'));
    const ports = ipj(['link', 'show', 'master', 'docker0']).map((l: any) => l.ifname);
    assert.deepEqual(ports, [web.hostVeth]);
  });

  it('nftables holds the seed rules: MASQUERADE for 172.17.0.0/16 leaving by another interface, DNAT for port 80', () => {
    const text = nftText();
    assert.match(text, /ip saddr 172\.17\.0\.0\/16 oifname != "docker0" masquerade/);
    const elems = nftj().filter((o: any) => o.map || o.set);
    const flat = JSON.stringify(elems);
    assert.ok(flat.includes(web.ip), 'a map element sends port 80 to the container');
  });

  it('an outside host reaches the web container through the host\'s port 80 (DNAT)', () => {
    const reply = connect(outside.ns, 'tcp', outside.hostAddr, 80);
    assert.equal(reply, `web ${outside.addr}`);
  });

  it('the container reaches an outside server, which sees the host\'s address (MASQUERADE)', async () => {
    const s = await startServer(outside.ns, 'tcp', 8080, 'outside');
    servers.push(s);
    assert.equal(connect(webNs.name, 'tcp', outside.addr, 8080), `outside ${outside.hostAddr}`);
    assert.ok(ping(outside.addr, webNs.name));
  });

  it('resolv.conf and hosts texts: host resolvers without loopback ones, the container\'s own name and address', async () => {
    assert.match(web.resolvConf, /^nameserver /m);
    assert.doesNotMatch(web.resolvConf, /^nameserver 127\./m);
    assert.match(web.hosts, /^127\.0\.0\.1\s+localhost$/m);
    assert.match(web.hosts, new RegExp(`^${web.ip.replace(/\./g, '\\.')}\\s+web$`, 'm'));
    const ns2 = await createNamespace(uniq('dns'));
    try {
      const ep = await net.connect(ns2, { hostname: 'box', dns: { servers: ['198.18.0.53'], search: ['example.test'], options: ['ndots:2'] } });
      assert.equal(ep.resolvConf, 'search example.test\nnameserver 198.18.0.53\noptions ndots:2\n');
      assert.match(ep.hosts, new RegExp(`^${ep.ip.replace(/\./g, '\\.')}\\s+box$`, 'm'));
      await ep.disconnect();
    } finally {
      await ns2.delete();
    }
  });

  it('two containers on docker0 talk to each other', async () => {
    const ns2 = await createNamespace(uniq('c2'));
    try {
      const ep2 = await net.connect(ns2);
      assert.ok(ping(web.ip, ns2.name!, 3)); // (the first contact needs ARP: up to three tries)
      assert.equal(connect(ns2.name, 'tcp', web.ip, 80), `web ${ep2.ip}`);
      await ep2.disconnect();
    } finally {
      await ns2.delete();
    }
  });
});

describe('50 bridge mode: icc=false and links (the seed\'s --icc=false / --link)', function () {
  this.timeout(60000);
  it('containers cannot talk except through a link; the link alias is in hosts', async () => {
    sandboxed();
    const net = await createBridgeNetwork({ name: 'noicc', subnet: '10.77.0.0/24', icc: false });
    const nss = await Promise.all([1, 2, 3].map(() => createNamespace(uniq('icc'))));
    const servers: ChildProcess[] = [];
    try {
      const a = await net.connect(nss[0], { id: 'db' });
      const b = await net.connect(nss[1], { id: 'app', links: [{ endpoint: 'db', alias: 'database' }] });
      const c = await net.connect(nss[2], { id: 'other' });
      for (const [i, ns] of nss.entries()) servers.push(await startServer(ns.name, 'tcp', 5432, `s${i}`));
      assert.equal(connect(nss[1].name, 'tcp', a.ip, 5432), `s0 ${b.ip}`, 'linked app -> db');
      assert.equal(connect(nss[0].name, 'tcp', b.ip, 5432), `s1 ${a.ip}`, 'linked db -> app');
      assert.equal(connect(nss[2].name, 'tcp', a.ip, 5432), null, 'unlinked other -> db is blocked');
      assert.equal(connect(nss[2].name, 'tcp', b.ip, 5432), null, 'unlinked other -> app is blocked');
      assert.ok(!ping(a.ip, nss[2].name!));
      assert.match(b.hosts, new RegExp(`^${a.ip.replace(/\./g, '\\.')}\\s+database\\s+db$`, 'm'));
      // The gateway still answers everyone.
      assert.ok(ping(net.gateway, nss[2].name!));
      await c.disconnect();
      await b.disconnect();
      // After the link's endpoint is gone, its exception is gone too.
      const b2 = await net.connect(nss[1], { id: 'app2' });
      assert.equal(connect(nss[1].name, 'tcp', a.ip, 5432), null);
      await b2.disconnect();
    } finally {
      servers.forEach((s) => s.kill());
      await net.remove({ force: true });
      await Promise.all(nss.map((n) => n.delete()));
    }
  });

  it('a link ends with the linked container: a newcomer on its address stays isolated, also after reconcile', async () => {
    sandboxed();
    const net = await createBridgeNetwork({ name: 'noicc2', subnet: '10.77.1.0/24', icc: false });
    const nss = await Promise.all([1, 2, 3].map(() => createNamespace(uniq('lnk'))));
    const servers: ChildProcess[] = [];
    const pairsWith = (ip: string) =>
      nftj().filter((o: any) => o.element === undefined && o.set?.name === 'links4').flatMap((o: any) => o.set.elem ?? [])
        .filter((e: any) => JSON.stringify(e).includes(`"${ip}"`));
    try {
      const db = await net.connect(nss[0], { id: 'db' });
      const app = await net.connect(nss[1], { id: 'app', links: [{ endpoint: 'db' }] });
      servers.push(await startServer(nss[1].name, 'tcp', 5432, 'app'));
      assert.equal(connect(nss[0].name, 'tcp', app.ip, 5432), `app ${db.ip}`, 'db -> app through the link');
      assert.equal(pairsWith(db.ip).length, 2);
      await db.disconnect();
      assert.deepEqual(pairsWith(db.ip), [], 'the link\'s elements went with db');
      const intruder = await net.connect(nss[2], { id: 'intruder', ip: db.ip });
      assert.equal(intruder.ip, db.ip);
      assert.equal(connect(nss[2].name, 'tcp', app.ip, 5432), null, 'a newcomer on db\'s old address does not inherit the link');
      await net.reconcile();
      assert.deepEqual(pairsWith(db.ip), [], 'reconcile does not bring the link back');
      assert.equal(connect(nss[2].name, 'tcp', app.ip, 5432), null);
      await app.disconnect();
      await intruder.disconnect();
      assert.deepEqual(pairsWith(app.ip), []);
    } finally {
      servers.forEach((s) => s.kill());
      await net.remove({ force: true });
      await Promise.all(nss.map((n) => n.delete()));
    }
  });
});
