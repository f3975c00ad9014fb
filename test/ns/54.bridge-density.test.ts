/**
 * Density: a bridge takes 1,023 ports; the connect beyond that fails with EBRIDGEFULL and changes
 * nothing. With permanent neighbour entries and no IPv6 on the veths, every container still
 * reaches its gateway and the host reaches every container.
 */
import { strict as assert } from 'node:assert';
import { createBridgeNetwork, createNamespace, Namespace, NetmodesError, MAX_BRIDGE_PORTS } from '../../lib';
import { sandboxed, ip, ipj, ping, nftj } from '../helpers/kernel';

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
      // At rest a full network is silent: the bridge and its 1,023 ports carry no frame in 2 s,
      // with multicast snooping on (the kernel's default, as Docker leaves it; no querier) and
      // off. No ARP: permanent neighbour entries. No STP. No IPv6 on the ports, and none on the
      // bridge of a network without it: with it, the bridge's own MLD reports, each flooded to
      // every port, made 1,002 frames in the first 2 s. Switching snooping off is not free: the
      // bridge leaves the all-snoopers group (224.0.0.106), two IGMP reports flooded to every
      // port; the window starts after them.
      const frames = (): number => {
        let n = 0;
        for (const l of [...ipj(['-s', 'link', 'show', 'dev', net.bridge]), ...ipj(['-s', 'link', 'show', 'master', net.bridge])])
          n += l.stats64.rx.packets + l.stats64.tx.packets;
        return n;
      };
      const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
      const atRest: Record<string, number> = {};
      for (const snooping of [1, 0]) {
        const s0 = frames();
        ip(['link', 'set', 'dev', net.bridge, 'type', 'bridge', 'mcast_snooping', String(snooping)]);
        if (!snooping) await sleep(1500);
        const f0 = frames();
        if (!snooping) atRest['switching snooping off'] = f0 - s0;
        await sleep(2000);
        atRest[`snooping ${snooping ? 'on' : 'off'}`] = frames() - f0;
      }
      ip(['link', 'set', 'dev', net.bridge, 'type', 'bridge', 'mcast_snooping', '1']);
      console.log(`      frames in 2 s at rest, ${MAX_BRIDGE_PORTS} containers: ${JSON.stringify(atRest)}`);
      assert.equal(atRest['snooping on'], 0, 'no frame at rest, snooping on');
      assert.equal(atRest['snooping off'], 0, 'no frame at rest, snooping off');
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
