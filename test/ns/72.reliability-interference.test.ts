/**
 * External interference (issue 7.3): somebody else deletes the container namespace, the host
 * veth, the bridge, or flushes/deletes our nftables tables. Each ends in a repair by reconcile()
 * or a typed error, never a crash. Another program's own table (`table ip foreign`, rules, a set
 * with elements) is present throughout and is never changed.
 */
import { strict as assert } from 'node:assert';
import { createBridgeNetwork, createNamespace, BridgeNetwork, Namespace, NetmodesError, NetlinkError, reapDetached, openBridgeNetwork } from '../../lib';
import { sandboxed, ping, uniq, ip, ipj, sh, tryRun } from '../helpers/kernel';
import { inconsistencies } from '../helpers/reliability';

const FOREIGN = `
table ip foreign {
  set blocked { type ipv4_addr; elements = { 192.0.2.1, 192.0.2.2 } }
  chain input { type filter hook input priority 10; policy accept; ip saddr @blocked counter drop comment "theirs"; }
  chain post { type nat hook postrouting priority 50; ip daddr 198.51.100.0/24 masquerade; }
}`;

function foreign(): string {
  return sh('nft', ['-j', 'list', 'table', 'ip', 'foreign']).replace(/"handle":\d+,?/g, '');
}

describe('72 reliability: external interference', function () {
  this.timeout(60000);
  let net: BridgeNetwork;
  const nss: Namespace[] = [];
  let theirs: string;
  const mk = async () => {
    const n = await createNamespace(uniq('i'));
    nss.push(n);
    return n;
  };
  const consistent = () => assert.deepEqual(inconsistencies(net.name, net.bridge, nss.map((n) => n.path)), []);

  before(async () => {
    sandboxed();
    sh('nft', ['-f', '-'], { input: FOREIGN });
    theirs = foreign();
    net = await createBridgeNetwork({ name: 'interf', subnet: '10.72.0.0/24' });
  });
  afterEach(() => assert.equal(foreign(), theirs, "another program's table is unchanged"));
  after(async () => {
    await net?.remove({ force: true });
    await Promise.all(nss.map((n) => n.delete().catch(() => undefined)));
    if (theirs) {
      assert.equal(foreign(), theirs, "another program's table survives the last network's removal");
      sh('nft', ['delete', 'table', 'ip', 'foreign']);
    }
  });

  it('container namespace deleted before disconnect: disconnect and reconcile clean up', async () => {
    const a = await mk();
    const b = await mk();
    const ea = await net.connect(a, { ports: ['44000:80'] });
    const eb = await net.connect(b, { ports: ['44001:80'] });
    await a.delete();
    await ea.disconnect(); // typed success: idempotent
    await b.delete();
    const rep = await net.reconcile();
    assert.deepEqual(rep.removedEndpoints, [eb.id]);
    nss.splice(0, 2);
    consistent();
  });

  it('host veth deleted by someone else: reconcile removes the endpoint; disconnect of it is a no-op', async () => {
    const a = await mk();
    const e = await net.connect(a, { ports: ['44002:80'] });
    ip(['link', 'del', e.hostVeth]);
    await e.disconnect();
    const again = await net.connect(a, { ports: ['44002:80'] }); // its port and address were freed
    ip(['link', 'del', again.hostVeth]);
    const rep = await net.reconcile();
    assert.deepEqual(rep.removedEndpoints, [again.id]);
    consistent();
  });

  it('bridge deleted under a running network: connect fails typed; reconcile rebuilds and re-attaches', async () => {
    const a = await mk();
    const b = await mk();
    const e = await net.connect(a, { ports: ['44003:80'] });
    ip(['link', 'del', net.bridge]);
    await assert.rejects(net.connect(b), (err: any) => err instanceof NetlinkError || err instanceof NetmodesError);
    const rep = await net.reconcile();
    assert.ok(rep.repaired.some((r) => r.startsWith('bridge')), JSON.stringify(rep));
    consistent();
    assert.ok(ping(e.ip));
    const eb = await net.connect(b);
    assert.ok(ping(eb.ip, a.name!));
  });

  it('bridge rebuilt by another handle: this one finds it by name again (connect and disconnect)', async () => {
    const a = await mk();
    const b = await mk();
    const e = await net.connect(a); // this handle now knows the bridge's ifindex
    ip(['link', 'del', net.bridge]);
    const other = await openBridgeNetwork(net.name);
    await other.reconcile(); // a new bridge, with another ifindex
    const eb = await net.connect(b);
    assert.ok(ping(eb.ip, a.name!) && ping(e.ip, b.name!));
    await eb.disconnect();
    // Its neighbour entry went from the new bridge (the stale index named nothing).
    assert.ok(!ipj(['neigh', 'show', 'dev', net.bridge]).some((n: any) => n.dst === eb.ip), 'neighbour entry removed');
    await reapDetached();
    consistent();
  });

  it('our nftables tables flushed, then deleted: connect/disconnect fail typed or work; reconcile restores', async () => {
    const c = await mk();
    sh('nft', ['flush', 'table', 'inet', 'netmodes']);
    const rep = await net.reconcile();
    assert.ok(rep.repaired.length > 0);
    consistent();
    sh('nft', ['delete', 'table', 'inet', 'netmodes']);
    sh('nft', ['delete', 'table', 'bridge', 'netmodes']);
    const r = await net.connect(c, { ports: ['44004:80'] }).then(
      (e) => e,
      (err) => {
        assert.ok(err instanceof NetlinkError || err instanceof NetmodesError, String(err));
        return undefined;
      },
    );
    const rep2 = await net.reconcile();
    assert.ok(rep2.repaired.includes('nftables tables'), JSON.stringify(rep2));
    consistent();
    if (r) await r.disconnect();
    for (const e of await net.endpoints()) await e.disconnect();
    await reapDetached();
    consistent();
  });

  it("another program's tables never break ours: a full cycle with them present", async () => {
    const d = await mk();
    const e = await net.connect(d, { ports: ['44005:80'], id: 'fg' });
    assert.ok(ping(e.ip));
    await e.disconnect();
    await reapDetached();
    const tmp = await createBridgeNetwork({ name: 'interf2', subnet: '10.72.1.0/24' });
    await tmp.remove();
    consistent();
    assert.equal(tryRun('nft', ['list', 'table', 'ip', 'foreign']).status, 0);
  });
});
