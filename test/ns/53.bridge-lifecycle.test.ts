/** Concurrency, disconnect edge cases, restart from another process, reconcile, every error code. */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  createBridgeNetwork, openBridgeNetwork, createNamespace, BridgeNetwork, Namespace, NetmodesError, ConfigError, REAP_GROUP,
  REAP_QUIET_MS, REAP_MAX_WAIT_MS, linkList, reapDetached, batch,
} from '../../lib';
import { sandboxed, ipj, nftj, ping, uniq, ip, sh } from '../helpers/kernel';
import { ipLink } from '../helpers/rtnl';

const root = path.resolve(__dirname, '..', '..', '..');

function hostVeths(): string[] {
  return ipj(['link', 'show', 'type', 'veth']).map((l: any) => l.ifname);
}

describe('53 bridge mode: lifecycle', function () {
  this.timeout(120000);
  before(sandboxed);

  it('200 concurrent connects get 200 distinct addresses; all disconnect cleanly', async () => {
    const net = await createBridgeNetwork({ name: 'conc', subnet: '10.60.0.0/22' });
    const nss = await Promise.all(Array.from({ length: 200 }, () => createNamespace(uniq('c'))));
    try {
      const eps = await Promise.all(nss.map((ns, i) => net.connect(ns, { ports: [`${30000 + i}:80`] })));
      assert.equal(new Set(eps.map((e) => e.ip)).size, 200);
      assert.equal(new Set(eps.map((e) => e.hostVeth)).size, 200);
      assert.equal(ipj(['link', 'show', 'master', net.bridge]).length, 200);
      assert.ok(ping(eps[199].ip, nss[0].name!));
      await Promise.all(eps.map((e) => e.disconnect()));
      await net.remove();
      assert.deepEqual(hostVeths(), []);
    } finally {
      await net.remove({ force: true });
      await Promise.all(nss.map((n) => n.delete()));
    }
  });

  it('an endpoint is a frozen object of own fields (the record, the gateways); its disconnect works detached from it', async () => {
    const net = await createBridgeNetwork({ name: 'shape', subnet: '10.62.0.0/24' });
    const [a, b] = [await createNamespace(uniq('s')), await createNamespace(uniq('s'))];
    try {
      const ep = await net.connect(a, { id: 'one', ports: ['8080:80'] });
      const ep2 = await net.connect(b, { id: 'two' });
      assert.ok(Object.isFrozen(ep));
      assert.throws(() => { (ep as any).ip = '10.62.0.99'; }, TypeError);
      const keys = ['id', 'network', 'namespace', 'ifname', 'ip', 'mac', 'hostVeth', 'ports', 'links', 'hostname', 'resolvConf', 'hosts', 'created', 'gateway'];
      for (const k of keys) assert.ok(Object.prototype.hasOwnProperty.call(ep, k), k);
      const json = JSON.parse(JSON.stringify(ep));
      assert.equal(json.ip, ep.ip);
      assert.equal(json.gateway, '10.62.0.1');
      assert.deepEqual(json.ports, [{ protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80 }]);
      assert.deepEqual({ ...ep }.hostVeth, ep.hostVeth);
      // endpoints() hands out the same fields
      const listed = (await net.endpoints()).find((e) => e.id === 'one')!;
      assert.deepEqual(JSON.parse(JSON.stringify(listed)), json);
      // One resolv.conf text for both, each its own hosts text.
      assert.equal(ep.resolvConf, ep2.resolvConf);
      assert.notEqual(ep.hosts, ep2.hosts);
      // disconnect taken off the object (as a callback) still disconnects that endpoint
      const { disconnect } = ep;
      await disconnect();
      assert.deepEqual((await net.endpoints()).map((e) => e.id), ['two']);
      await ep2.disconnect();
    } finally {
      await net.remove({ force: true });
      await a.delete();
      await b.delete();
    }
  });

  it("each connect's resolv.conf follows the host's: the text derived once is used again only while the host's stays the same", async () => {
    const net = await createBridgeNetwork({ name: 'resolv', subnet: '10.63.0.0/24' });
    const nss = [await createNamespace(uniq('r')), await createNamespace(uniq('r')), await createNamespace(uniq('r'))];
    // This test's own mount namespace (the harness's unshare --mount): the bind mount is seen here only.
    const target = fs.realpathSync('/etc/resolv.conf');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-resolv-'));
    const file = path.join(dir, 'resolv.conf');
    fs.writeFileSync(file, 'search one.test\nnameserver 198.18.0.53\n');
    sh('mount', ['--bind', file, target]);
    try {
      await new Promise((r) => setTimeout(r, 1100)); // the host's file is re-read at most once a second
      const a = await net.connect(nss[0]);
      const b = await net.connect(nss[1]);
      assert.equal(a.resolvConf, 'search one.test\nnameserver 198.18.0.53\n');
      assert.equal(b.resolvConf, a.resolvConf);
      fs.writeFileSync(file, 'search two.test\nnameserver 198.18.0.54\n');
      await new Promise((r) => setTimeout(r, 1100));
      const c = await net.connect(nss[2]);
      assert.equal(c.resolvConf, 'search two.test\nnameserver 198.18.0.54\n');
    } finally {
      sh('umount', [target]);
      fs.rmSync(dir, { recursive: true, force: true });
      await net.remove({ force: true });
      for (const n of nss) await n.delete();
    }
  });

  it('disconnect works when the container namespace is already gone', async () => {
    const net = await createBridgeNetwork({ name: 'gone', subnet: '10.61.0.0/24' });
    const ns = await createNamespace(uniq('g'));
    const ep = await net.connect(ns, { ports: ['80'] });
    await ns.delete();
    await ep.disconnect();
    assert.deepEqual(await net.endpoints(), []);
    await net.remove();
    assert.deepEqual(hostVeths(), []);
  });

  it('disconnected veths wait detached in the reap group; one request deletes them all', async () => {
    const net = await createBridgeNetwork({ name: 'reap3', subnet: '10.69.0.0/24' });
    const nss = await Promise.all([0, 1, 2].map(() => createNamespace(uniq('q'))));
    try {
      const eps = await Promise.all(nss.map((ns) => net.connect(ns)));
      for (const e of eps) await e.disconnect();
      // Immediately after (the reaper waits for a pause in disconnects or 256 veths), all three wait in the reap group,
      // unmarked, their bridge ports cut off: locked, learning nothing, flooded nothing.
      const waiting = (await linkList()).filter((l) => eps.some((e) => e.hostVeth === l.name));
      assert.deepEqual(waiting.map((l) => [l.group, l.alias ?? null, l.locked, l.learning, l.unicastFlood, l.mcastFlood, l.bcastFlood]),
        eps.map(() => [REAP_GROUP, null, true, false, false, false, false]));
      await reapDetached();
      assert.deepEqual(hostVeths(), []);
      await net.remove();
    } finally {
      await net.remove({ force: true });
      await Promise.all(nss.map((n) => n.delete()));
    }
  });

  it('the reaper runs by itself: after a pause in disconnects, and during a steady stream at the latest REAP_MAX_WAIT_MS after the first', async () => {
    const net = await createBridgeNetwork({ name: 'reapt', subnet: '10.70.0.0/24' });
    const nss = await Promise.all(Array.from({ length: 60 }, () => createNamespace(uniq('rt'))));
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    try {
      await reapDetached();
      const eps = [];
      for (const ns of nss) eps.push(await net.connect(ns));
      // A pause: three disconnects, nothing asked of the reaper, gone once the pause is long enough.
      for (const e of eps.slice(0, 3)) await e.disconnect();
      const left = () => new Set(hostVeths());
      assert.ok(eps.slice(0, 3).every((e) => left().has(e.hostVeth)), 'waiting just after');
      await sleep(REAP_QUIET_MS + 250);
      assert.ok(eps.slice(0, 3).every((e) => !left().has(e.hostVeth)), 'reaped after the pause');
      // A stream with shorter gaps than the pause (it never comes): the first ones are reaped
      // anyway, once REAP_MAX_WAIT_MS has passed since the first of them.
      const stream = eps.slice(3);
      const gap = Math.floor(REAP_QUIET_MS * 0.8);
      const t0 = Date.now();
      let i = 0;
      while (Date.now() - t0 < REAP_MAX_WAIT_MS + 200 && i < stream.length) {
        await stream[i++].disconnect();
        await sleep(gap);
      }
      assert.ok(Date.now() - t0 >= REAP_MAX_WAIT_MS + 200, `the stream lasted past the cap (${i} disconnects)`);
      assert.ok(!left().has(stream[0].hostVeth), 'the first of the stream is reaped while the stream goes on');
      for (const e of stream.slice(i)) await e.disconnect();
      await reapDetached();
      assert.deepEqual(hostVeths(), []);
      await net.remove();
    } finally {
      await net.remove({ force: true });
      await Promise.all(nss.map((n) => n.delete()));
    }
  });

  it('a disconnected veth is detached at once, then reaped in one request', async () => {
    const net = await createBridgeNetwork({ name: 'reap', subnet: '10.62.0.0/24' });
    const ns = await createNamespace(uniq('r'));
    const other = await createNamespace(uniq('r'));
    try {
      const ep = await net.connect(ns);
      const ep0 = await net.connect(other);
      assert.ok(ping(ep.ip, other.name!) && ping(ep0.ip, ns.name!), 'both ways before');
      const learned = () => JSON.parse(sh('bridge', ['-j', 'fdb', 'show', 'br', net.bridge])).filter((e: any) => e.ifname === ep.hostVeth && e.state !== 'permanent' && !(e.flags ?? []).includes('self'));
      assert.ok(learned().length > 0, 'the bridge learned its MAC');
      await ep.disconnect();
      const left = ipj(['-d', 'link', 'show', 'type', 'veth']).filter((l: any) => l.ifname === ep.hostVeth);
      assert.equal(left.length, 1, 'waits for the reaper');
      const d0 = left[0].linkinfo.info_slave_data;
      assert.deepEqual([d0.locked, d0.learning, d0.flood, d0.mcast_flood, d0.bcast_flood], [true, false, false, false, false], 'the port is cut off');
      assert.deepEqual(learned(), [], 'the MACs it taught the bridge are forgotten');
      assert.ok(!ping(ep.ip, undefined), 'the address no longer answers the host');
      assert.ok(!ping(ep.ip, other.name!), 'nor the other container');
      assert.ok(!ping(ep0.ip, ns.name!), 'and the detached one reaches nobody');
      await ep0.disconnect();
      // Reconnecting the same namespace (eth0 of the detached pair may still exist) works.
      const ep2 = await net.connect(ns);
      assert.equal(ipj(['link', 'show', 'eth0'], ns.name).length, 1);
      await ep2.disconnect();
      await net.remove();
      assert.deepEqual(hostVeths(), []);
    } finally {
      await net.remove({ force: true });
      await Promise.all([ns.delete(), other.delete()]);
    }
  });

  it('a detached port stays cut off when its process dies before reaping and the container flaps its eth0', async () => {
    const net = await createBridgeNetwork({ name: 'flap', subnet: '10.67.0.0/24' });
    const ns = await createNamespace(uniq('f'));
    const other = await createNamespace(uniq('f'));
    try {
      const ep = await net.connect(ns, { id: 'flapper' });
      const ep0 = await net.connect(other);
      assert.ok(ping(ep0.ip, ns.name!));
      // Another process disconnects it and dies at once: nobody reaps the veth.
      const script = `
        const m = require(${JSON.stringify(path.join(root, 'dist/lib'))});
        m.openBridgeNetwork('flap').then((n) => n.disconnect('flapper')).then(() => process.kill(process.pid, 'SIGKILL'));`;
      assert.throws(() => execFileSync(process.execPath, ['-e', script]), /SIGKILL/);
      const port = () => ipj(['-d', 'link', 'show', 'dev', ep.hostVeth])[0];
      assert.equal(port().linkinfo.info_slave_data.locked, true);
      // The container takes its carrier away and back: the bridge disables, then re-enables the port.
      ip(['link', 'set', 'eth0', 'down'], ns.name!);
      ip(['link', 'set', 'eth0', 'up'], ns.name!);
      for (let i = 0; i < 100 && port().linkinfo.info_slave_data.state !== 'forwarding'; i++) await new Promise((r) => setTimeout(r, 20));
      const d = port().linkinfo.info_slave_data;
      assert.deepEqual([d.state, d.locked, d.learning, d.flood, d.mcast_flood, d.bcast_flood], ['forwarding', true, false, false, false, false]);
      assert.ok(!ping(ep0.ip, ns.name!), 'the detached container reaches nobody');
      assert.ok(!ping(ep.ip, other.name!), 'nobody reaches it');
      assert.ok(!ping(ep.ip, undefined), 'not even the host');
      await net.reconcile(); // reaps what the dead process detached
      assert.ok(!ipj(['link', 'show', 'type', 'veth']).some((l: any) => l.ifname === ep.hostVeth));
      await ep0.disconnect();
      await net.remove();
    } finally {
      await net.remove({ force: true });
      await Promise.all([ns.delete(), other.delete()]);
    }
  });

  it('disconnect works when the container set its eth0 down (no carrier on the bridge port)', async () => {
    const net = await createBridgeNetwork({ name: 'nocarrier', subnet: '10.68.0.0/24' });
    const ns = await createNamespace(uniq('d'));
    try {
      const ep = await net.connect(ns);
      ip(['link', 'set', 'eth0', 'down'], ns.name!);
      await ep.disconnect();
      const left = ipj(['-d', 'link', 'show', 'type', 'veth']).filter((l: any) => l.ifname === ep.hostVeth);
      // Cut off where it is (locked, nothing learned or flooded), waiting for the reaper.
      assert.deepEqual(left.map((l: any) => [Number(l.group), l.linkinfo.info_slave_data.locked, l.linkinfo.info_slave_data.flood]), [[REAP_GROUP, true, false]]);
      ip(['link', 'set', 'eth0', 'up'], ns.name!); // the carrier returns: the bridge forwards on the port again, but it stays cut off
      for (let i = 0; i < 100 && ipj(['-d', 'link', 'show', 'dev', ep.hostVeth])[0].linkinfo.info_slave_data.state !== 'forwarding'; i++) await new Promise((r) => setTimeout(r, 20));
      assert.ok(!ping(ep.ip, undefined), 'the host does not reach it');
      assert.ok(!ping(net.gateway, ns.name!), 'it does not reach the gateway');
      await reapDetached();
      assert.deepEqual(hostVeths(), []);
      await net.remove();
    } finally {
      await net.remove({ force: true });
      await ns.delete();
    }
  });

  it('a second process opens the network, sees the endpoints and disconnects them', async () => {
    const net = await createBridgeNetwork({ name: 'twoproc', subnet: '10.63.0.0/24' });
    const nss = await Promise.all([0, 1, 2].map(() => createNamespace(uniq('t'))));
    try {
      const eps = await Promise.all(nss.map((ns, i) => net.connect(ns, { id: `c${i}`, ports: [`${31000 + i}:80`] })));
      const script = `
        const m = require(${JSON.stringify(path.join(root, 'dist/lib'))});
        (async () => {
          const net = await m.openBridgeNetwork('twoproc');
          const eps = await net.endpoints();
          console.log(JSON.stringify(eps.map(e => [e.id, e.ip, e.ports[0].hostPort]).sort()));
          for (const e of eps) await net.disconnect(e.id);
          await m.reapDetached();
        })().catch(e => { console.error(e); process.exit(1); });`;
      const out = execFileSync(process.execPath, ['-e', script]).toString().trim();
      assert.deepEqual(JSON.parse(out), eps.map((e, i) => [e.id, e.ip, 31000 + i]));
      assert.deepEqual(hostVeths(), []);
      assert.deepEqual(await net.endpoints(), []);
      const again = await net.connect(nss[0], { id: 'c0', ports: ['31000:80'] }); // address and port were freed
      assert.equal(again.ports[0].hostPort, 31000);
      await again.disconnect();
      await net.remove();
    } finally {
      await net.remove({ force: true });
      await Promise.all(nss.map((n) => n.delete()));
    }
  });

  it('reconcile removes half-made endpoints and repairs a deleted bridge and nftables table', async () => {
    const net = await createBridgeNetwork({ name: 'recon', subnet: '10.64.0.0/24' });
    const nss = await Promise.all([0, 1].map(() => createNamespace(uniq('x'))));
    try {
      const e0 = await net.connect(nss[0], { id: 'keep', ports: ['32000:80'] });
      const e1 = await net.connect(nss[1], { id: 'lost' });
      ip(['link', 'del', e1.hostVeth]); // someone else deletes a veth
      ip(['link', 'del', net.bridge]); // and the bridge
      sh('nft', ['flush', 'ruleset']); // and our tables
      const rep = await net.reconcile();
      assert.deepEqual(rep.removedEndpoints, ['lost']);
      assert.ok(rep.repaired.some((r) => r.startsWith('bridge')));
      assert.ok(ping(e0.ip), 'the kept endpoint works again');
      assert.equal(ipj(['link', 'show', e0.hostVeth])[0].master, net.bridge);
      assert.ok(JSON.stringify(nftj()).includes(e0.ip), 'its published port is back');
      const again = await net.reconcile();
      assert.deepEqual([again.removedEndpoints, again.removedVeths, again.freedReservations, again.removedElements], [[], [], [], 0]);
      await e0.disconnect();
      await net.remove();
    } finally {
      await net.remove({ force: true });
      await Promise.all(nss.map((n) => n.delete()));
    }
  });
});

describe('53 bridge mode: every documented error', function () {
  this.timeout(60000);
  let net: BridgeNetwork;
  let ns: Namespace;
  before(async () => {
    sandboxed();
    net = await createBridgeNetwork({ name: 'errs', subnet: '10.65.0.0/29' }); // 5 usable addresses
    ns = await createNamespace(uniq('e'));
  });
  after(async () => {
    await net.remove({ force: true });
    await ns.delete();
  });

  const unchanged = async (fn: () => Promise<unknown>, check: (e: any) => boolean) => {
    const before = [JSON.stringify(nftj()), hostVeths().join(), ip(['-o', 'addr'], ns.name)];
    await assert.rejects(fn(), check);
    assert.deepEqual([JSON.stringify(nftj()), hostVeths().join(), ip(['-o', 'addr'], ns.name)], before, 'nothing changed');
  };

  it('ConfigError (EINVAL) names the field', async () => {
    const bad: Array<[any, string]> = [
      [{ id: 'a/b' }, 'id'], [{ ifname: 'x'.repeat(16) }, 'ifname'], [{ ip: '10.65.1.9' }, 'ip'], [{ ip: 'fe80::1' }, 'ip'],
      [{ mac: 'zz:00:00:00:00:00' }, 'mac'], [{ ports: ['70000:80'] }, 'ports[0].hostPort'], [{ ports: ['90-80:90-80'] }, 'ports[0].hostPort'],
      [{ hostname: 'bad_host!' }, 'hostname'], [{ ipv6: '::1' }, 'ipv6'],
    ];
    for (const [opts, field] of bad)
      await unchanged(() => net.connect(ns, opts), (e: ConfigError) => e instanceof ConfigError && e.code === 'EINVAL' && String(e.field).startsWith(field.split('[')[0]));
    await assert.rejects(createBridgeNetwork({ name: 'x', subnet: '10.0.0.0/33' }), (e: ConfigError) => e.field === 'subnet');
    await assert.rejects(createBridgeNetwork({ name: 'x', subnet: '10.9.0.0/24', gateway: '10.8.0.1' }), (e: ConfigError) => e.field === 'gateway');
    await assert.rejects(createBridgeNetwork({ name: 'bad/name' }), (e: ConfigError) => e.field === 'name');
    await assert.rejects(createBridgeNetwork({ name: 'x', bridge: 'waytoolongbridgename' }), (e: ConfigError) => e.field === 'bridge');
  });

  it('ENETWORKEXISTS, ENONETWORK, EEXIST (foreign bridge)', async () => {
    await assert.rejects(createBridgeNetwork({ name: 'errs', subnet: '10.66.0.0/24' }), (e: NetmodesError) => e.code === 'ENETWORKEXISTS');
    await assert.rejects(openBridgeNetwork('nosuch'), (e: NetmodesError) => e.code === 'ENONETWORK');
    ip(['link', 'add', 'foreignbr', 'type', 'bridge']);
    try {
      await assert.rejects(createBridgeNetwork({ name: 'f', bridge: 'foreignbr', subnet: '10.67.0.0/24' }), (e: NetmodesError) => e.code === 'EEXIST');
      assert.equal(ipj(['link', 'show', 'foreignbr']).length, 1, 'a bridge that is not ours is left alone');
    } finally {
      ip(['link', 'del', 'foreignbr']);
    }
  });

  it('EEXIST (ConfigError, ifname) when the namespace already has an interface of that name; its claims and elements are undone', async () => {
    const taken = await createNamespace(uniq('e'));
    const other = await createNamespace(uniq('e'));
    try {
      await batch([{ op: 'linkAdd', ns: taken, name: 'eth0', kind: 'veth', peer: { name: 'eth0peer', ns: taken } }]);
      const eps = (await net.endpoints()).length;
      // The claims, the firewall elements and the veth go in one trip: the veth's create fails
      // after the elements went in, and they must go again.
      await unchanged(() => net.connect(taken, { id: 'dup', ports: ['8080:80'] }), (e: ConfigError) => e instanceof ConfigError && e.code === 'EEXIST' && e.field === 'ifname');
      assert.equal((await net.endpoints()).length, eps);
      assert.equal(ipLink('eth0', taken.name)?.linkinfo?.info_kind, 'veth', 'that eth0 is untouched');
      // The address, the host port and the endpoint id are free again.
      const ep = await net.connect(other, { id: 'dup', ports: ['8080:80'] });
      assert.equal(ep.ports[0].hostPort, 8080);
      await ep.disconnect();
      await reapDetached(); // the next test compares the host's veths before and after
    } finally {
      await taken.delete();
      await other.delete();
    }
  });

  it('EENDPOINTEXISTS, EADDRINUSE, ENOLINK, EPOOLEXHAUSTED', async () => {
    const made = [];
    const extra: Namespace[] = [];
    try {
      made.push(await net.connect(ns, { id: 'one', ip: '10.65.0.2' }));
      const ns2 = await createNamespace(uniq('e'));
      extra.push(ns2);
      await unchanged(() => net.connect(ns2, { id: 'one' }), (e: NetmodesError) => e.code === 'EENDPOINTEXISTS');
      await unchanged(() => net.connect(ns2, { id: 'two', ip: '10.65.0.2' }), (e: NetmodesError) => e.code === 'EADDRINUSE');
      await unchanged(() => net.connect(ns2, { id: 'two', links: [{ endpoint: 'nobody' }] }), (e: NetmodesError) => e.code === 'ENOLINK');
      for (let i = 0; i < 4; i++) {
        const n = await createNamespace(uniq('e'));
        extra.push(n);
        made.push(await net.connect(n));
      }
      await unchanged(() => net.connect(ns2, { id: 'six' }), (e: NetmodesError) => e.code === 'EPOOLEXHAUSTED');
    } finally {
      for (const m of made) await m.disconnect();
      for (const n of extra) await n.delete();
    }
  });

});
