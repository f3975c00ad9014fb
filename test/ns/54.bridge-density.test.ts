/**
 * Density: a bridge takes 1,023 ports; the connect beyond that fails with EBRIDGEFULL and changes
 * nothing. With permanent neighbour entries and no IPv6 on the veths, every container still
 * reaches its gateway and the host reaches every container.
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
      // Permanent neighbour entries on both sides: no ARP broadcast is needed between a container
      // and its gateway, so even a full bridge resolves every container. (Container-to-container
      // ARP is still a broadcast copied to 1,023 ports, which overflows the per-CPU backlog on a
      // small machine: not something a library may change, see docs.)
      for (const i of [0, 511, MAX_BRIDGE_PORTS - 1]) {
        assert.ok(ping(net.gateway, nss[i].name!), `container ${i} reaches its gateway`);
        assert.ok(ping(eps[i].ip), `the host reaches container ${i}`);
      }
      for (let i = 0; i < eps.length; i += 64) await Promise.all(eps.slice(i, i + 64).map((e) => e.disconnect()));
      await net.remove();
    } finally {
      await net.remove({ force: true });
      for (let i = 0; i < nss.length; i += 64) await Promise.all(nss.slice(i, i + 64).map((n) => n.delete()));
    }
  });
});
