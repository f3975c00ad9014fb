/** Several networks: isolation, default subnets, overlap refusal, internal networks. */
import { strict as assert } from 'node:assert';
import { ChildProcess } from 'node:child_process';
import { createBridgeNetwork, createNamespace, listBridgeNetworks, openBridgeNetwork, NetmodesError, ConfigError } from '../../lib';
import { sandboxed, startServer, connect, ping, uniq, ipj, nftj, ip, sh } from '../helpers/kernel';
import { makeOutside } from '../helpers/topology';

describe('52 bridge mode: networks', function () {
  this.timeout(60000);
  before(sandboxed);

  it('containers of two networks cannot reach each other; both reach the outside', async () => {
    const outside = makeOutside();
    const a = await createBridgeNetwork({ name: 'neta' });
    const b = await createBridgeNetwork({ name: 'netb' });
    const na = await createNamespace(uniq('a'));
    const nb = await createNamespace(uniq('b'));
    const servers: ChildProcess[] = [];
    try {
      assert.equal(a.subnet, '172.17.0.0/16', 'the first network gets Docker\'s default subnet');
      assert.equal(b.subnet, '172.18.0.0/16', 'the next one the next free range');
      const ea = await a.connect(na);
      const eb = await b.connect(nb);
      servers.push(await startServer(na.name, 'tcp', 80, 'a'), await startServer(nb.name, 'tcp', 80, 'b'), await startServer(outside.ns, 'tcp', 80, 'out'));
      assert.equal(connect(na.name, 'tcp', eb.ip, 80), null);
      assert.equal(connect(nb.name, 'tcp', ea.ip, 80), null);
      assert.ok(!ping(eb.ip, na.name!));
      assert.equal(connect(na.name, 'tcp', outside.addr, 80), `out ${outside.hostAddr}`);
      assert.equal(connect(nb.name, 'tcp', outside.addr, 80), `out ${outside.hostAddr}`);
      assert.deepEqual((await listBridgeNetworks()).map((n) => [n.name, n.endpoints]), [['neta', 1], ['netb', 1]]);
    } finally {
      servers.forEach((s) => s.kill());
      await a.remove({ force: true });
      await b.remove({ force: true });
      await na.delete();
      await nb.delete();
      outside.remove();
    }
  });

  it('a subnet overlapping another network or a host route is refused with ESUBNETOVERLAP', async () => {
    const outside = makeOutside(); // the host now has 198.18.x.0/24
    const a = await createBridgeNetwork({ name: 'ov1', subnet: '10.50.0.0/16' });
    try {
      await assert.rejects(createBridgeNetwork({ name: 'ov2', subnet: '10.50.3.0/24' }), (e: NetmodesError) => e.code === 'ESUBNETOVERLAP');
      await assert.rejects(createBridgeNetwork({ name: 'ov3', subnet: `${outside.hostAddr.replace(/\.1$/, '.0')}/24` }), (e: NetmodesError) => e.code === 'ESUBNETOVERLAP');
      assert.deepEqual((await listBridgeNetworks()).map((n) => n.name), ['ov1']);
    } finally {
      await a.remove();
      outside.remove();
    }
  });

  it('an internal network has no way out and publishes nothing', async () => {
    const outside = makeOutside();
    const net = await createBridgeNetwork({ name: 'intern', subnet: '10.51.0.0/24', internal: true });
    const n1 = await createNamespace(uniq('i'));
    const n2 = await createNamespace(uniq('i'));
    try {
      const e1 = await net.connect(n1);
      await net.connect(n2);
      assert.ok(ping(e1.ip, n2.name!), 'members still talk');
      assert.ok(!ping(outside.addr, n1.name!), 'no way out');
      await assert.rejects(net.connect(n2, { id: 'x', ports: ['80'] }), (e: ConfigError) => e.code === 'EINVAL' && e.field === 'ports');
      assert.ok(!nftj().some((o: any) => o.rule && JSON.stringify(o.rule).includes('10.51.0.0') && JSON.stringify(o.rule).includes('masquerade')));
    } finally {
      await net.remove({ force: true });
      await n1.delete();
      await n2.delete();
      outside.remove();
    }
  });

  it('remove refuses while endpoints are attached (ENETWORKINUSE), then leaves nothing behind', async () => {
    const net = await createBridgeNetwork({ name: 'rm1', subnet: '10.52.0.0/24', mtu: 1400 });
    const ns = await createNamespace(uniq('r'));
    try {
      const ep = await net.connect(ns, { ports: ['80'] });
      const eth0 = ipj(['-d', 'link', 'show', 'eth0'], ns.name)[0];
      assert.equal(eth0.mtu, 1400);
      assert.deepEqual([eth0.num_tx_queues, eth0.num_rx_queues], [1, 1], 'one queue pair by default');
      const host = ipj(['-d', 'link', 'show', ep.hostVeth])[0];
      assert.deepEqual([host.num_tx_queues, host.num_rx_queues], [1, 1]);
      assert.equal(sh('sysctl', ['-n', `net.ipv6.conf.${ep.hostVeth}.disable_ipv6`]).trim(), '1', 'the bridge port has no IPv6 of its own');
      await assert.rejects(net.remove(), (e: NetmodesError) => e.code === 'ENETWORKINUSE');
      await ep.disconnect();
      await ep.disconnect(); // idempotent
      await net.remove();
      await net.remove(); // twice is a no-op
      assert.deepEqual(ipj(['link', 'show']).map((l: any) => l.ifname).filter((n: string) => n !== 'lo'), []);
      assert.deepEqual(nftj().filter((o: any) => o.table), [], 'the library\'s tables go with the last network');
      assert.deepEqual(ip(['-o', 'link', 'show'], ns.name).trim().split('\n').length, 1);
      await assert.rejects(openBridgeNetwork('rm1'), (e: NetmodesError) => e.code === 'ENONETWORK');
    } finally {
      await ns.delete();
    }
  });

  it('vethQueues: both ends of every veth get the queues asked for, and pings still pass', async () => {
    const net = await createBridgeNetwork({ name: 'q3', subnet: '10.52.3.0/24', vethQueues: 3 });
    const n1 = await createNamespace(uniq('q'));
    const n2 = await createNamespace(uniq('q'));
    try {
      assert.equal(net.vethQueues, 3);
      const e1 = await net.connect(n1);
      await net.connect(n2);
      for (const [name, ns] of [['eth0', n1.name], [e1.hostVeth, undefined]] as const) {
        const l = ipj(['-d', 'link', 'show', name], ns)[0];
        assert.deepEqual([l.num_tx_queues, l.num_rx_queues], [3, 3], name);
      }
      assert.equal(((await net.inspect()).Options as Record<string, string>)['netmodes.veth_queues'], '3');
      assert.equal((await openBridgeNetwork('q3')).vethQueues, 3, 'kept in the network record');
      assert.ok(ping(e1.ip, n2.name!));
    } finally {
      await net.remove({ force: true });
      await n1.delete();
      await n2.delete();
    }
  });
});
