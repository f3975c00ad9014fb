/**
 * Density: a bridge takes 1,023 ports; the connect beyond that fails with EBRIDGEFULL and changes
 * nothing. With permanent neighbour entries and no IPv6 on the veths, the last container still
 * reaches the gateway and the first one.
 */
import { strict as assert } from 'node:assert';
import { createBridgeNetwork, createNamespace, Namespace, NetmodesError, MAX_BRIDGE_PORTS } from '../../lib';
import { sandboxed, ipj, ping, nftj } from '../helpers/kernel';

describe('54 bridge mode: a full bridge', function () {
  this.timeout(600000);
  it(`holds ${MAX_BRIDGE_PORTS} containers; one more is EBRIDGEFULL and changes nothing`, async () => {
    sandboxed();
    const net = await createBridgeNetwork({ name: 'full', subnet: '10.70.0.0/20' });
    const nss: Namespace[] = [];
    try {
      for (let i = 0; i <= MAX_BRIDGE_PORTS; i++) nss.push(await createNamespace(`full${i}`));
      const eps = [];
      for (let i = 0; i < MAX_BRIDGE_PORTS; i += 32)
        eps.push(...(await Promise.all(nss.slice(i, Math.min(i + 32, MAX_BRIDGE_PORTS)).map((ns) => net.connect(ns)))));
      assert.equal(ipj(['link', 'show', 'master', net.bridge]).length, MAX_BRIDGE_PORTS);
      const before = JSON.stringify(nftj());
      await assert.rejects(net.connect(nss[MAX_BRIDGE_PORTS], { ports: ['80'] }), (e: NetmodesError) => e.code === 'EBRIDGEFULL');
      assert.equal(ipj(['link', 'show', 'master', net.bridge]).length, MAX_BRIDGE_PORTS);
      assert.equal(JSON.stringify(nftj()), before);
      assert.equal(ipj(['link', 'show'], nss[MAX_BRIDGE_PORTS].name).length, 1, 'only lo in the refused namespace');
      const last = nss[MAX_BRIDGE_PORTS - 1].name!;
      assert.ok(ping(net.gateway, last), 'the last container reaches its gateway');
      assert.ok(ping(eps[0].ip, last), 'and the first container');
      assert.ok(ping(eps[MAX_BRIDGE_PORTS - 1].ip), 'the host reaches the last container');
      for (let i = 0; i < eps.length; i += 64) await Promise.all(eps.slice(i, i + 64).map((e) => e.disconnect()));
      await net.remove();
    } finally {
      await net.remove({ force: true });
      for (let i = 0; i < nss.length; i += 64) await Promise.all(nss.slice(i, i + 64).map((n) => n.delete()));
    }
  });
});
