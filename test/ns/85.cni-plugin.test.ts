/**
 * The CNI plugin, run exactly as a runtime runs it (a new process per call, CNI_* environment,
 * configuration on stdin): every verb and error of the specification, through the resident
 * server and through a Node process of its own, against the kernel (`ip -j`, `nft -j`) and real
 * traffic, and beside the reference bridge + host-local + portmap chain on the same configuration.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, ChildProcess } from 'node:child_process';
import { sandboxed, ipj, nftj, ip, sh, uniq, addNs, delNs, ping, startServer, connect, tryRun } from '../helpers/kernel';
import { makeOutside, Outside } from '../helpers/topology';
import { inconsistencies, records, kernelSnapshot, STATE, FAULT_POINTS } from '../helpers/reliability';
import { waitUntil } from '../helpers/rtnl';
import { runPlugin, installNetmodes, tempDir, serverPid, stopServer, CLI, REFERENCE_DIR, CniCall } from '../helpers/cni';
import { openBridgeNetwork, listBridgeNetworks } from '../../lib';
import { control } from '../../lib/cni/server';

const NET = 'nmcni';
const BRIDGE = 'nmcni0';
const SUBNET = '10.88.7.0/24';
const GW = '10.88.7.1';

function conf(extra: Record<string, unknown> = {}, version = '1.0.0'): Record<string, unknown> {
  return { cniVersion: version, name: NET, type: 'netmodes', bridge: BRIDGE, isGateway: true, ipMasq: true, ipam: { subnet: SUBNET }, capabilities: { portMappings: true }, ...extra };
}
const withPorts = (c: Record<string, unknown>, ports: Array<Record<string, unknown>>) => ({ ...c, runtimeConfig: { portMappings: ports } });

async function removeNetwork(name: string): Promise<void> {
  try {
    await (await openBridgeNetwork(name)).remove({ force: true });
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENONETWORK') throw err;
  }
}

/** No veth, record, reservation or element left for the network (detached veths reaped). */
async function assertClean(net = NET, bridge = BRIDGE, nsPaths: string[] = []): Promise<void> {
  await waitUntil(() => ipj(['link', 'show', 'type', 'veth']).filter((l: any) => /^veth/.test(l.ifname)).length === 0, 3000);
  assert.deepEqual(records(net), []);
  assert.deepEqual(inconsistencies(net, bridge, nsPaths), []);
}

describe('85 CNI plugin', function () {
  this.timeout(180000);
  let bin: string;
  let plugin: string;
  const nss: string[] = [];
  const newNs = () => {
    const n = addNs(uniq('cni'));
    nss.push(n);
    return n;
  };
  const nsPath = (n: string) => `/run/netns/${n}`;

  before(async () => {
    sandboxed();
    bin = tempDir('nmcni-bin-');
    plugin = await installNetmodes(bin);
  });
  after(async () => {
    await stopServer();
    await removeNetwork(NET);
    delNs(...nss);
    fs.rmSync(bin, { recursive: true, force: true });
  });

  it('cni install writes an executable that names node and the package by absolute path', () => {
    assert.equal(plugin, path.join(bin, 'netmodes'));
    const st = fs.statSync(plugin);
    assert.ok(st.mode & 0o111, 'executable');
    const tail = fs.readFileSync(plugin).subarray(-600).toString('latin1');
    assert.ok(tail.endsWith('NMCNI\0T1'), 'trailer');
    assert.ok(tail.includes(`node=${process.execPath}\0`), tail);
    assert.ok(tail.includes(`root=${path.resolve(__dirname, '..', '..', '..')}\0`), tail);
  });

  it('works from another directory with no node on PATH (the trailer names both)', async () => {
    const r = await runPlugin(plugin, { command: 'VERSION', env: { PATH: '/nonexistent', NETMODES_CNI_MODE: 'process' } }, { cniVersion: '1.0.0' });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.json.cniVersion, '1.0.0');
  });

  for (const mode of ['server', 'process'] as const) {
    describe(`through ${mode === 'server' ? 'the resident server' : 'a Node process of its own'}`, () => {
      const call = (c: CniCall, cfg: unknown) => runPlugin(plugin, { ...c, env: { NETMODES_CNI_MODE: mode, ...c.env } }, cfg);
      let out: Outside;
      before(() => {
        out = makeOutside();
      });
      after(async () => {
        out.remove();
        await removeNetwork(NET);
      });

      it('VERSION lists 0.4.0, 1.0.0 and 1.1.0', async () => {
        for (const v of ['0.4.0', '1.0.0', '1.1.0']) {
          const r = await call({ command: 'VERSION' }, { cniVersion: v });
          assert.equal(r.code, 0);
          assert.equal(r.json.cniVersion, v);
          for (const s of ['0.4.0', '1.0.0', '1.1.0']) assert.ok(r.json.supportedVersions.includes(s));
        }
      });

      it('ADD: the result in the 1.0.0 shape, the container has its address and default route, port published, masquerade, containers reach each other', async () => {
        const a = newNs();
        const b = newNs();
        const ra = await call({ command: 'ADD', containerId: `ctr-a-${mode}`, netns: nsPath(a), ifname: 'eth0' }, withPorts(conf(), [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]));
        assert.equal(ra.code, 0, ra.stdout + ra.stderr);
        const res = ra.json;
        assert.equal(res.cniVersion, '1.0.0');
        assert.equal(res.interfaces.length, 3);
        assert.deepEqual(res.interfaces.map((i: any) => i.name).slice(0, 1), [BRIDGE]);
        assert.equal(res.interfaces[2].name, 'eth0');
        assert.equal(res.interfaces[2].sandbox, nsPath(a));
        assert.match(res.interfaces[2].mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
        assert.match(res.interfaces[1].mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
        assert.equal(res.ips.length, 1);
        assert.equal(res.ips[0].interface, 2);
        assert.equal(res.ips[0].gateway, GW);
        assert.equal(res.ips[0].version, undefined);
        assert.match(res.ips[0].address, /^10\.88\.7\.\d+\/24$/);
        assert.deepEqual(res.routes, [{ dst: '0.0.0.0/0', gw: GW }]);
        const ipA = res.ips[0].address.split('/')[0];
        // The kernel agrees.
        const eth0 = ipj(['addr', 'show', 'dev', 'eth0'], a)[0];
        assert.equal(eth0.address, res.interfaces[2].mac);
        assert.ok(eth0.addr_info.some((i: any) => i.local === ipA && i.prefixlen === 24));
        assert.deepEqual(ipj(['route', 'show', 'default'], a).map((r: any) => r.gateway), [GW]);
        assert.equal(ipj(['link', 'show', res.interfaces[1].name])[0].master, BRIDGE);
        assert.ok(ipj(['addr', 'show', 'dev', BRIDGE])[0].addr_info.some((i: any) => i.local === GW));
        // Published port from an outside namespace; masquerade seen by an outside server.
        const srv = await startServer(a, 'tcp', 80, 'A');
        const outSrv = await startServer(out.ns, 'tcp', 9000, 'OUT');
        try {
          assert.equal(connect(out.ns, 'tcp', out.hostAddr, 8080), `A ${out.addr}`);
          assert.equal(connect(a, 'tcp', out.addr, 9000), `OUT ${out.hostAddr}`);
          const rb = await call({ command: 'ADD', containerId: `ctr-b-${mode}`, netns: nsPath(b), ifname: 'eth0' }, conf());
          assert.equal(rb.code, 0, rb.stdout);
          const ipB = rb.json.ips[0].address.split('/')[0];
          assert.notEqual(ipA, ipB);
          assert.equal(connect(b, 'tcp', ipA, 80), `A ${ipB}`);
          assert.ok(ping(ipA, b));
        } finally {
          srv.kill();
          outSrv.kill();
        }
        assert.deepEqual(inconsistencies(NET, BRIDGE, [nsPath(a), nsPath(b)]), []);
        // The network is a netmodes network like any other.
        assert.ok((await listBridgeNetworks()).some((n) => n.name === NET && n.bridge === BRIDGE && n.endpoints === 2));
        const ls = sh(process.execPath, [CLI, 'network', 'ls', '-q']);
        assert.ok(ls.split('\n').includes(NET));
        for (const [c, n] of [[`ctr-a-${mode}`, a], [`ctr-b-${mode}`, b]]) {
          const d = await call({ command: 'DEL', containerId: c, netns: nsPath(n), ifname: 'eth0' }, conf());
          assert.equal(d.code, 0, d.stdout);
          assert.equal(d.stdout, '');
        }
        await assertClean(NET, BRIDGE, [nsPath(a), nsPath(b)]);
      });

      it('ADD of an attachment that exists fails (code 100) and leaves the first intact', async () => {
        const a = newNs();
        const c = { command: 'ADD', containerId: `dup-${mode}`, netns: nsPath(a), ifname: 'eth0' };
        const first = await call(c, conf());
        assert.equal(first.code, 0, first.stdout);
        const before = kernelSnapshot([a]);
        const second = await call(c, conf());
        assert.equal(second.code, 1);
        assert.equal(second.json.code, 100);
        assert.equal(second.json.cniVersion, '1.0.0');
        assert.match(second.json.msg, /already attached/);
        assert.equal(kernelSnapshot([a]), before);
        assert.ok(ping(first.json.ips[0].address.split('/')[0]));
        // The same container on a second interface is a second attachment.
        const other = await call({ ...c, ifname: 'net1' }, conf());
        assert.equal(other.code, 0, other.stdout);
        assert.equal(ipj(['addr'], a).filter((l: any) => l.ifname !== 'lo').length, 2);
        for (const ifname of ['eth0', 'net1']) assert.equal((await call({ ...c, command: 'DEL', ifname }, conf())).code, 0);
        await assertClean();
      });

      it('DEL is idempotent, works without CNI_NETNS and after the namespace is gone (veth, address, ports and record go)', async () => {
        const a = newNs();
        const c = { containerId: `del-${mode}`, netns: nsPath(a), ifname: 'eth0' };
        const cfg = withPorts(conf(), [{ hostPort: 8181, containerPort: 80, protocol: 'tcp' }, { hostPort: 8182, containerPort: 81, protocol: 'udp' }]);
        const r = await call({ ...c, command: 'ADD' }, cfg);
        assert.equal(r.code, 0, r.stdout);
        assert.equal(records(NET).length, 1);
        delNs(a);
        const d1 = await call({ ...c, command: 'DEL' }, { ...cfg, prevResult: r.json });
        assert.equal(d1.code, 0, d1.stdout);
        await assertClean();
        const d2 = await call({ ...c, command: 'DEL', netns: undefined }, cfg);
        assert.equal(d2.code, 0, d2.stdout);
        const d3 = await call({ command: 'DEL', containerId: 'never-added', ifname: 'eth0' }, cfg);
        assert.equal(d3.code, 0, d3.stdout);
        // The address and the host ports are free again.
        const b = newNs();
        const again = await call({ ...c, netns: nsPath(b), command: 'ADD' }, cfg);
        assert.equal(again.code, 0, again.stdout);
        assert.equal((await call({ ...c, netns: nsPath(b), command: 'DEL' }, cfg)).code, 0);
        await assertClean();
      });

      it('CHECK prints nothing when all is in place and names what is missing', async () => {
        const a = newNs();
        const c = { containerId: `chk-${mode}`, netns: nsPath(a), ifname: 'eth0' };
        const cfg = withPorts(conf(), [{ hostPort: 8282, containerPort: 80, protocol: 'tcp' }]);
        const r = await call({ ...c, command: 'ADD' }, cfg);
        assert.equal(r.code, 0, r.stdout);
        const ok = await call({ ...c, command: 'CHECK' }, { ...cfg, prevResult: r.json });
        assert.equal(ok.code, 0, ok.stdout);
        assert.equal(ok.stdout, '');
        const noPrev = await call({ ...c, command: 'CHECK' }, cfg);
        assert.equal(noPrev.json.code, 7);
        assert.match(noPrev.json.msg, /prevResult/);
        // A prevResult that lists another address.
        const wrong = JSON.parse(JSON.stringify(r.json));
        wrong.ips[0].address = '10.88.7.250/24';
        const w = await call({ ...c, command: 'CHECK' }, { ...cfg, prevResult: wrong });
        assert.equal(w.json.code, 110);
        assert.match(w.json.msg, /10\.88\.7\.250/);
        // The default route goes.
        ip(['route', 'del', 'default'], a);
        const noRoute = await call({ ...c, command: 'CHECK' }, { ...cfg, prevResult: r.json });
        assert.equal(noRoute.code, 1);
        assert.equal(noRoute.json.code, 110);
        assert.match(noRoute.json.msg, /default route via 10\.88\.7\.1 is missing/);
        ip(['route', 'add', 'default', 'via', GW], a);
        // The published port's element goes.
        sh('nft', ['delete', 'element', 'inet', 'netmodes', 'pub4any', '{', 'tcp', '.', '8282', '}']);
        const noPort = await call({ ...c, command: 'CHECK' }, { ...cfg, prevResult: r.json });
        assert.equal(noPort.json.code, 110);
        assert.match(noPort.json.msg, /8282.*pub4any/);
        // The address goes.
        ip(['addr', 'flush', 'dev', 'eth0'], a);
        const noAddr = await call({ ...c, command: 'CHECK' }, { ...cfg, prevResult: r.json });
        assert.match(noAddr.json.msg, /address 10\.88\.7\.\d+\/24 is missing/);
        // Not attached at all.
        const none = await call({ ...c, containerId: 'nobody', command: 'CHECK' }, { ...cfg, prevResult: r.json });
        assert.equal(none.json.code, 110);
        assert.match(none.json.msg, /not attached/);
        // The library's check of an unknown endpoint.
        await assert.rejects((await openBridgeNetwork(NET)).check('nobody'), { code: 'ENOENDPOINT' });
        // CHECK needs 0.4.0 or later.
        const old = await call({ ...c, command: 'CHECK' }, { ...cfg, cniVersion: '0.3.1', prevResult: r.json });
        assert.equal(old.json.code, 1);
        assert.equal((await call({ ...c, command: 'DEL' }, cfg)).code, 0);
        await assertClean();
      });

      it('GC removes every attachment that is not in cni.dev/valid-attachments', async () => {
        const ids = ['gc-1', 'gc-2', 'gc-3'].map((x) => `${x}-${mode}`);
        const spaces = ids.map(() => newNs());
        for (const [i, id] of ids.entries()) {
          const r = await call({ command: 'ADD', containerId: id, netns: nsPath(spaces[i]), ifname: 'eth0' }, withPorts(conf(), [{ hostPort: 8300 + i, containerPort: 80 }]));
          assert.equal(r.code, 0, r.stdout);
        }
        const gc = await call({ command: 'GC' }, { ...conf({}, '1.1.0'), 'cni.dev/valid-attachments': [{ containerID: ids[1], ifname: 'eth0' }] });
        assert.equal(gc.code, 0, gc.stdout);
        assert.equal(gc.stdout, '');
        assert.deepEqual(records(NET).map((r) => r.id), [ids[1]]);
        assert.deepEqual(inconsistencies(NET, BRIDGE, spaces.map(nsPath)), []);
        const gc2 = await call({ command: 'GC' }, { ...conf({}, '1.1.0'), 'cni.dev/valid-attachments': [] });
        assert.equal(gc2.code, 0, gc2.stdout);
        await assertClean(NET, BRIDGE, spaces.map(nsPath));
        // GC needs 1.1.0.
        assert.equal((await call({ command: 'GC' }, conf())).json.code, 1);
      });

      it('STATUS succeeds while an ADD can be served and fails with 50 when the pool is exhausted', async () => {
        const small = { cniVersion: '1.1.0', name: `tiny${mode}`, type: 'netmodes', bridge: `nmtiny${mode[0]}`, ipam: { subnet: '10.88.9.0/30' } };
        assert.equal((await call({ command: 'STATUS' }, small)).code, 0);
        const a = newNs();
        const r = await call({ command: 'ADD', containerId: 'only', netns: nsPath(a), ifname: 'eth0' }, small);
        assert.equal(r.code, 0, r.stdout);
        assert.equal((r.json.interfaces[2] as any).mtu, 1500); // 1.1.0 gives interfaces their MTU
        const st = await call({ command: 'STATUS' }, small);
        assert.equal(st.code, 1);
        assert.equal(st.json.code, 50);
        assert.match(st.json.msg, /no free address/);
        const b = newNs();
        const full = await call({ command: 'ADD', containerId: 'second', netns: nsPath(b), ifname: 'eth0' }, small);
        assert.equal(full.json.code, 101);
        // Another process (this one, through the library) frees the address: the server, which
        // keeps the network open, must not go on calling the pool exhausted.
        await (await openBridgeNetwork(`tiny${mode}`)).disconnect('only');
        assert.equal((await call({ command: 'STATUS' }, small)).code, 0);
        const second = await call({ command: 'ADD', containerId: 'second', netns: nsPath(b), ifname: 'eth0' }, small);
        assert.equal(second.code, 0, second.stdout);
        assert.equal((await call({ command: 'DEL', containerId: 'second', netns: nsPath(b), ifname: 'eth0' }, small)).code, 0);
        assert.equal((await call({ command: 'STATUS' }, { ...small, cniVersion: '1.0.0' })).json.code, 1);
        await removeNetwork(`tiny${mode}`);
      });

      it('0.4.0 results carry ips[].version; a prevResult from an earlier plugin is carried through', async () => {
        const a = newNs();
        const prev = {
          cniVersion: '0.4.0',
          interfaces: [{ name: 'lo', sandbox: nsPath(a) }],
          ips: [{ version: '4', address: '127.0.0.1/8', interface: 0 }],
          routes: [],
          dns: { nameservers: ['198.18.0.53'] },
        };
        const r = await call({ command: 'ADD', containerId: `prev-${mode}`, netns: nsPath(a), ifname: 'eth0' }, { ...conf({}, '0.4.0'), prevResult: prev });
        assert.equal(r.code, 0, r.stdout);
        assert.equal(r.json.cniVersion, '0.4.0');
        assert.deepEqual(r.json.interfaces.map((i: any) => i.name).slice(0, 2), ['lo', BRIDGE]);
        assert.equal(r.json.interfaces[3].sandbox, nsPath(a));
        assert.deepEqual(r.json.ips.map((i: any) => [i.version, i.interface]), [['4', 0], ['4', 3]]);
        assert.deepEqual(r.json.dns, prev.dns);
        assert.equal((await call({ command: 'DEL', containerId: `prev-${mode}`, netns: nsPath(a), ifname: 'eth0' }, { ...conf({}, '0.4.0'), prevResult: r.json })).code, 0);
        await assertClean();
      });

      it('20 parallel ADDs (the first ones racing to make the network) get 20 distinct addresses; 20 parallel DELs leave nothing behind', async () => {
        await removeNetwork(NET);
        const spaces = Array.from({ length: 20 }, () => newNs());
        const adds = await Promise.all(
          spaces.map((n, i) => call({ command: 'ADD', containerId: `par-${i}-${mode}`, netns: nsPath(n), ifname: 'eth0' }, withPorts(conf(), [{ hostPort: 8400 + i, containerPort: 80 }]))),
        );
        for (const r of adds) assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.equal(new Set(adds.map((r) => r.json.ips[0].address)).size, 20);
        assert.deepEqual(inconsistencies(NET, BRIDGE, spaces.map(nsPath)), []);
        const dels = await Promise.all(spaces.map((n, i) => call({ command: 'DEL', containerId: `par-${i}-${mode}`, netns: nsPath(n), ifname: 'eth0' }, conf())));
        for (const r of dels) assert.equal(r.code, 0, r.stdout + r.stderr);
        await assertClean(NET, BRIDGE, spaces.map(nsPath));
      });
    });
  }

  describe('configuration', () => {
    const call = (c: CniCall, cfg: unknown) => runPlugin(plugin, { ...c, env: { NETMODES_CNI_MODE: 'server', ...c.env } }, cfg);
    afterEach(async () => {
      for (const n of ['dual', 'ranged', NET]) await removeNetwork(n);
    });

    it('host-local ranges with an IPv6 range: dual stack, rangeStart/rangeEnd, runtimeConfig.ips and .mac', async () => {
      const a = newNs();
      const dual = {
        cniVersion: '1.0.0', name: 'dual', type: 'netmodes', bridge: 'nmdual0', isGateway: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: '10.88.10.0/24', rangeStart: '10.88.10.100', rangeEnd: '10.88.10.110' }], [{ subnet: 'fd00:88:10::/64' }]], routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }] },
      };
      const r = await call({ command: 'ADD', containerId: 'd1', netns: nsPath(a), ifname: 'eth0' }, dual);
      assert.equal(r.code, 0, r.stdout);
      const [v4, v6] = r.json.ips;
      assert.match(v4.address, /^10\.88\.10\.1(0\d|10)\/24$/);
      assert.match(v6.address, /^fd00:88:10::[0-9a-f]+\/64$/);
      assert.deepEqual(r.json.routes.map((x: any) => x.dst).sort(), ['0.0.0.0/0', '::/0']);
      const got = ipj(['addr', 'show', 'dev', 'eth0'], a)[0].addr_info.map((i: any) => `${i.local}/${i.prefixlen}`);
      assert.ok(got.includes(v4.address) && got.includes(v6.address), got.join());
      assert.equal(ipj(['-6', 'route', 'show', 'default'], a).length, 1);
      // A static address and MAC asked for by the runtime.
      const b = newNs();
      const s = await call({ command: 'ADD', containerId: 'd2', netns: nsPath(b), ifname: 'eth0' }, { ...dual, runtimeConfig: { ips: ['10.88.10.50/24'], mac: '02:00:00:88:10:50' } });
      assert.equal(s.code, 0, s.stdout);
      assert.equal(s.json.ips[0].address, '10.88.10.50/24');
      assert.equal(ipj(['link', 'show', 'eth0'], b)[0].address, '02:00:00:88:10:50');
      // The same address again is taken (102).
      const c2 = newNs();
      const taken = await call({ command: 'ADD', containerId: 'd3', netns: nsPath(c2), ifname: 'eth0', args: 'IgnoreUnknown=1;IP=10.88.10.50' }, dual);
      assert.equal(taken.json.code, 102, taken.stdout);
      for (const [id, n] of [['d1', a], ['d2', b]]) assert.equal((await call({ command: 'DEL', containerId: id, netns: nsPath(n), ifname: 'eth0' }, dual)).code, 0);
    });

    it('portsPerBridge: a container on a leaf is named on that leaf in the result (its host end in the leaf\'s namespace), and talks to one on the root', async () => {
      const dense = {
        cniVersion: '1.0.0', name: 'densecni', type: 'netmodes', bridge: 'nmdense0', isGateway: true, portsPerBridge: 16,
        ipam: { type: 'host-local', ranges: [[{ subnet: '10.88.20.0/24' }]], routes: [{ dst: '0.0.0.0/0' }] },
      };
      const a = newNs();
      const b = newNs();
      try {
        const ra = await call({ command: 'ADD', containerId: 'r1', netns: nsPath(a), ifname: 'eth0' }, { ...dense, runtimeConfig: { ips: ['10.88.20.5/24'] } });
        assert.equal(ra.code, 0, ra.stdout);
        const rb = await call({ command: 'ADD', containerId: 'l1', netns: nsPath(b), ifname: 'eth0' }, { ...dense, runtimeConfig: { ips: ['10.88.20.20/24'] } });
        assert.equal(rb.code, 0, rb.stdout);
        // The kernel's view: which bridge each host veth is on (a leaf's: in the leaf's namespace,
        // which the result gives as the host end's sandbox; the result's bridge is the leaf's trunk).
        const masterOf = (r: any, ns?: string) => ipj(['link', 'show', 'dev', r.json.interfaces[1].name], ns)[0].master;
        assert.equal(ra.json.interfaces[0].name, 'nmdense0');
        assert.equal(masterOf(ra), 'nmdense0');
        assert.equal(ra.json.interfaces[1].sandbox, undefined, 'slot 0: in the host');
        const leaf = rb.json.interfaces[0].name;
        assert.match(leaf, /^nm[0-9a-f]{8}b1$/, 'slot 1 is a leaf');
        assert.equal(rb.json.interfaces[1].sandbox, `/run/netns/${leaf}`);
        assert.equal(masterOf(rb, leaf), 'br0');
        assert.equal(ipj(['link', 'show', 'dev', leaf])[0].address, rb.json.interfaces[0].mac);
        assert.equal(rb.json.interfaces[0].mac, ra.json.interfaces[0].mac, 'a leaf has the network bridge\'s MAC');
        assert.ok(ping('10.88.20.5', b), 'leaf to root');
        for (const [id, n] of [['r1', a], ['l1', b]]) assert.equal((await call({ command: 'DEL', containerId: id, netns: nsPath(n), ifname: 'eth0' }, dense)).code, 0);
      } finally {
        await removeNetwork('densecni');
      }
    });

    it('embeddedDns: containers find each other by container id, host name, runtimeConfig.aliases and K8S_POD_NAME; the result names the gateway', async () => {
      const dnsNet = { cniVersion: '1.0.0', name: 'cnidns', type: 'netmodes', bridge: 'nmcnidns0', embeddedDns: true, ipam: { subnet: '10.88.13.0/24' },
        capabilities: { aliases: true }, dns: { nameservers: ['198.18.0.53'], search: ['example.test'], options: ['ndots:1'] } };
      const a = newNs();
      const b = newNs();
      try {
        const ra = await call({ command: 'ADD', containerId: 'dbcontainer0001', netns: nsPath(a), ifname: 'eth0', args: 'IgnoreUnknown=1;K8S_POD_NAME=db' },
          { ...dnsNet, runtimeConfig: { aliases: { cnidns: ['database'], other: ['not-ours'] } } });
        assert.equal(ra.code, 0, ra.stdout);
        assert.deepEqual(ra.json.dns, { search: ['example.test'], options: ['ndots:1'], nameservers: ['10.88.13.1'] });
        const rb = await call({ command: 'ADD', containerId: 'webcontainer001', netns: nsPath(b), ifname: 'eth0' }, dnsNet);
        assert.equal(rb.code, 0, rb.stdout);
        const ipA = ra.json.ips[0].address.split('/')[0];
        const QUERY = path.join(__dirname, '..', 'helpers', 'dns', 'query.js');
        const names = ['db', 'database', 'DB.', 'dbcontainer0001', 'dbcontainer0', 'not-ours'];
        const out = JSON.parse(sh('ip', ['netns', 'exec', b, process.execPath, QUERY, '-'], { input: JSON.stringify({ server: '10.88.13.1', timeout: 2000, queries: names.map((name) => ({ name })) }) }));
        assert.deepEqual(out.slice(0, 5).map((x: any) => x.answers.map((y: any) => y.data)), [[ipA], [ipA], [ipA], [ipA], [ipA]]);
        // Another network's alias is no name here: forwarded to the configuration's nameserver
        // (198.18.0.53, which nothing in the sandbox routes to), so no answer.
        assert.ok(out[5].timeout || !(out[5].answers ?? []).length, JSON.stringify(out[5]));
        // A configuration that disagrees about embeddedDns is refused.
        const c = newNs();
        const no = await call({ command: 'ADD', containerId: 'x', netns: nsPath(c), ifname: 'eth0' }, { ...dnsNet, embeddedDns: false });
        assert.equal(no.json.code, 7);
        assert.match(no.json.msg, /embeddedDns/);
        for (const [id, n] of [['dbcontainer0001', a], ['webcontainer001', b]]) assert.equal((await call({ command: 'DEL', containerId: id, netns: nsPath(n), ifname: 'eth0' }, dnsNet)).code, 0);
      } finally {
        await removeNetwork('cnidns'); // the last network with embedded DNS: its server stops
      }
    });

    it('an ADD never finds a network half-made: a network is opened only when no create or remove holds the networks\' lock', async () => {
      const a = newNs();
      const cfg = { cniVersion: '1.0.0', name: 'ranged', type: 'netmodes', bridge: 'nmranged0', ipam: { subnet: '10.88.15.0/24' } };
      // The network exists (made by a first ADD); then a create or remove holds the lock, as a
      // create does between its record and its bridge.
      assert.equal((await call({ command: 'ADD', containerId: 'first', netns: nsPath(a), ifname: 'net1' }, cfg)).code, 0);
      assert.equal((await call({ command: 'DEL', containerId: 'first', netns: nsPath(a), ifname: 'net1' }, cfg)).code, 0);
      const store = await import('../../lib/state/store');
      const held = await store.FileLock.acquire(path.join(STATE, 'networks.lock'), true);
      let done = false;
      const add = runPlugin(plugin, { command: 'ADD', containerId: 'waiter', netns: nsPath(a), ifname: 'eth0', env: { NETMODES_CNI_MODE: 'process' } }, cfg).then((r) => {
        done = true;
        return r;
      });
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(done, false, 'the ADD waited for the lock');
      held.release();
      const r = await add;
      assert.equal(r.code, 0, r.stdout);
      assert.equal((await call({ command: 'DEL', containerId: 'waiter', netns: nsPath(a), ifname: 'eth0' }, cfg)).code, 0);
    });

    it('every error has the specification\'s code and changes nothing', async () => {
      const a = newNs();
      const ok = { command: 'ADD', containerId: 'err', netns: nsPath(a), ifname: 'eth0' };
      // The network exists first, so that "changes nothing" covers it too.
      assert.equal((await call(ok, conf())).code, 0);
      assert.equal((await call({ ...ok, command: 'DEL' }, conf())).code, 0);
      await waitUntil(() => ipj(['link', 'show', 'type', 'veth']).length === 0);
      const before = kernelSnapshot([a]);
      const files = () => JSON.stringify(sh('find', [STATE, '-path', `${STATE}/cni`, '-prune', '-o', '-print']).split('\n').sort());
      const filesBefore = files();
      const fresh = conf({ name: 'freshnet', bridge: 'nmfresh0', ipam: { subnet: '10.88.16.0/24' } });
      const cases: Array<[string, CniCall, unknown, number, RegExp]> = [
        ['unsupported version', ok, conf({}, '0.2.0'), 1, /incompatible CNI version 0\.2\.0/],
        ['no CNI_COMMAND', { ...ok, command: '' }, conf(), 4, /CNI_COMMAND/],
        ['unknown CNI_COMMAND', { ...ok, command: 'FROB' }, conf(), 4, /CNI_COMMAND/],
        ['no CNI_CONTAINERID', { ...ok, containerId: '' }, conf(), 4, /CNI_CONTAINERID/],
        ['bad CNI_CONTAINERID', { ...ok, containerId: '-x/y' }, conf(), 4, /CNI_CONTAINERID/],
        ['no CNI_NETNS', { ...ok, netns: '' }, conf(), 4, /CNI_NETNS/],
        ['bad CNI_IFNAME', { ...ok, ifname: 'a/b' }, conf(), 4, /CNI_IFNAME/],
        ['bad CNI_ARGS', { ...ok, args: 'novalue' }, conf(), 4, /CNI_ARGS/],
        ['not JSON', ok, '{"cniVersion": ', 6, /not JSON/],
        ['not an object', ok, '[1]', 6, /object/],
        ['bad subnet', ok, conf({ ipam: { subnet: 'nonsense' } }), 7, /ipam\.subnet/],
        ['isGateway false', ok, conf({ isGateway: false }), 7, /isGateway/],
        ['ipMasq not a boolean', ok, conf({ ipMasq: 'yes' }), 7, /ipMasq/],
        ['another ipam type', ok, conf({ ipam: { type: 'dhcp' } }), 7, /ipam\.type/],
        ['a route other than the default', ok, conf({ ipam: { subnet: SUBNET, routes: [{ dst: '10.0.0.0/8' }] } }), 7, /ipam\.routes\[0\]\.dst/],
        ['bad port', ok, withPorts(conf(), [{ hostPort: 70000, containerPort: 80 }]), 7, /portMappings\[0\]/],
        ['bad protocol', ok, withPorts(conf(), [{ hostPort: 8080, containerPort: 80, protocol: 'icmp' }]), 7, /protocol/],
        ['bad mac', ok, conf({ runtimeConfig: { mac: 'zz' } }), 7, /runtimeConfig\.mac/],
        ['address outside the subnet', ok, conf({ runtimeConfig: { ips: ['10.99.0.5/24'] } }), 7, /ip/],
        ['a network that exists with another subnet', ok, conf({ ipam: { subnet: '10.88.70.0/24' } }), 7, /ipam\.subnet: network nmcni exists with subnet 10\.88\.7\.0\/24/],
        ['a network that exists with another masquerade', ok, conf({ ipMasq: false }), 7, /ipMasq/],
        ['no name', ok, { cniVersion: '1.0.0', type: 'netmodes' }, 7, /name/],
        ['a namespace that does not exist', { ...ok, netns: '/run/netns/does-not-exist' }, conf(), 3, /does not exist/],
        ['a file that is not a namespace', { ...ok, netns: '/etc/hostname' }, conf(), 4, /not a network namespace/],
        // The first ADD of a network that fails leaves no network behind either.
        ['a new network, a namespace that does not exist', { ...ok, netns: '/run/netns/does-not-exist' }, fresh, 3, /does not exist/],
        ['a new network, an address outside its subnet', ok, { ...fresh, runtimeConfig: { ips: ['10.99.0.5/24'] } }, 7, /ip/],
        ['a new network, two IPv4 addresses', ok, { ...fresh, runtimeConfig: { ips: ['10.88.16.5', '10.88.16.6'] } }, 7, /one IPv4 address/],
      ];
      for (const [what, c, cfg, code, msg] of cases) {
        const r = await call(c, cfg);
        assert.equal(r.code, 1, `${what}: ${r.stdout}`);
        assert.equal(r.json?.code, code, `${what}: ${r.stdout}`);
        assert.match(r.json.msg, msg, what);
        assert.equal(typeof r.json.cniVersion, 'string', what);
      }
      // stdin that cannot be read (a directory): 5.
      const dirFd = fs.openSync('/tmp', 'r');
      try {
        const child = spawn(plugin, [], { env: { ...process.env, CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'err', CNI_NETNS: nsPath(a), CNI_IFNAME: 'eth0', CNI_PATH: bin }, stdio: [dirFd, 'pipe', 'pipe'] });
        let out = '';
        child.stdout!.on('data', (d) => (out += d));
        const code = await new Promise((r) => child.once('close', r));
        assert.equal(code, 1, out);
        assert.equal(JSON.parse(out).code, 5, out);
      } finally {
        fs.closeSync(dirFd);
      }
      // A bridge of that name that is not ours (106) and a subnet that overlaps the host's (104).
      ip(['link', 'add', 'foreign0', 'type', 'bridge']);
      try {
        const f = await call(ok, { ...conf(), name: 'foreignnet', bridge: 'foreign0', ipam: { subnet: '10.88.71.0/24' } });
        assert.equal(f.json.code, 106, f.stdout);
      } finally {
        ip(['link', 'del', 'foreign0']);
      }
      const o = await call(ok, { ...conf(), name: 'overlap', bridge: 'nmover0', ipam: { subnet: '10.88.7.128/25' } });
      assert.equal(o.json.code, 104, o.stdout);
      assert.equal(kernelSnapshot([a]), before);
      assert.equal(files(), filesBefore);
    });
  });

  describe('crashes', () => {
    afterEach(async () => {
      await stopServer();
      await removeNetwork(NET);
    });

    it('a plugin process killed with SIGKILL at each point of an ADD leaves what the next DEL, GC or reconcile() cleans completely', async () => {
      let k = 0;
      for (const point of FAULT_POINTS.filter((p) => p.startsWith('connect:'))) {
        for (const cleaner of ['DEL', 'GC', 'reconcile']) {
          const a = newNs();
          const c = { containerId: `kill-${k++}`, netns: nsPath(a), ifname: 'eth0' };
          const cfg = withPorts(conf(), [{ hostPort: 8500, containerPort: 80 }]);
          const r = await runPlugin(plugin, { ...c, command: 'ADD', env: { NETMODES_CNI_MODE: 'process', NETMODES_FAULT: point } }, cfg);
          assert.equal(r.signal, 'SIGKILL', `${point}: ${r.stdout} ${r.stderr}`);
          if (cleaner === 'reconcile') await (await openBridgeNetwork(NET)).reconcile();
          else {
            const cfgFor = cleaner === 'GC' ? { ...conf({}, '1.1.0'), 'cni.dev/valid-attachments': [] } : cfg;
            const d = await runPlugin(plugin, { ...c, command: cleaner, env: { NETMODES_CNI_MODE: 'process' } }, cfgFor);
            assert.equal(d.code, 0, `${point}, ${cleaner}: ${d.stdout}`);
          }
          await assertClean(NET, BRIDGE, [nsPath(a)]);
        }
      }
    });

    it('a plugin process killed at random moments: DEL, or else GC, cleans completely', async () => {
      const cfg = withPorts(conf(), [{ hostPort: 8501, containerPort: 80 }]);
      const spaces: string[] = [];
      for (let i = 0; i < 8; i++) {
        const a = newNs();
        spaces.push(a);
        const child = spawn(plugin, [], {
          env: { ...process.env, NETMODES_CNI_MODE: 'process', CNI_COMMAND: 'ADD', CNI_CONTAINERID: `rnd-${i}`, CNI_NETNS: nsPath(a), CNI_IFNAME: 'eth0', CNI_PATH: bin },
          stdio: ['pipe', 'ignore', 'ignore'],
        });
        child.stdin!.end(JSON.stringify(cfg));
        await new Promise((r) => setTimeout(r, 80 + Math.random() * 200));
        if (child.exitCode === null && child.signalCode === null) {
          const gone = new Promise((r) => child.once('exit', r));
          child.kill('SIGKILL');
          await gone;
        }
        // Half of them get a DEL, the others only the GC at the end.
        if (i % 2 === 0) assert.equal((await runPlugin(plugin, { command: 'DEL', containerId: `rnd-${i}`, netns: nsPath(a), ifname: 'eth0', env: { NETMODES_CNI_MODE: 'process' } }, cfg)).code, 0);
      }
      const gc = await runPlugin(plugin, { command: 'GC', env: { NETMODES_CNI_MODE: 'process' } }, { ...conf({}, '1.1.0'), 'cni.dev/valid-attachments': [] });
      assert.ok(gc.code === 0 || gc.json?.code === undefined, gc.stdout); // the network may not exist yet
      await assertClean(NET, BRIDGE, spaces.map(nsPath));
    });

    it('the server killed at each point of an ADD: the plugin undoes the half-made ADD and does it again on a new server', async () => {
      for (const point of FAULT_POINTS.filter((p) => p.startsWith('connect:'))) {
        await stopServer();
        const srv: ChildProcess = spawn(process.execPath, [CLI, 'cni', 'server'], { env: { ...process.env, NETMODES_FAULT: point }, stdio: 'ignore' });
        assert.ok(await waitUntil(() => serverPid() === srv.pid, 5000), 'server up');
        const a = newNs();
        const c = { containerId: `srvkill-${point.replace(/\W/g, '')}`, netns: nsPath(a), ifname: 'eth0' };
        const r = await runPlugin(plugin, { ...c, command: 'ADD', env: { NETMODES_CNI_MODE: 'server' } }, withPorts(conf(), [{ hostPort: 8600, containerPort: 80 }]));
        assert.equal(srv.signalCode ?? (await new Promise((res) => srv.once('exit', (_c, s) => res(s)))), 'SIGKILL', point);
        assert.equal(r.code, 0, `${point}: ${r.stdout} ${r.stderr}`);
        assert.notEqual(serverPid(), undefined);
        assert.deepEqual(inconsistencies(NET, BRIDGE, [nsPath(a)]), [], point);
        assert.equal(records(NET).length, 1);
        assert.equal((await runPlugin(plugin, { ...c, command: 'DEL', env: { NETMODES_CNI_MODE: 'server' } }, conf())).code, 0);
        await assertClean(NET, BRIDGE, [nsPath(a)]);
      }
    });

    it('the server killed at random moments of a churn: every call succeeds or says try again (11); nothing is left', async () => {
      const spaces = Array.from({ length: 6 }, () => newNs());
      let kills = 0;
      let stop = false;
      const killer = (async () => {
        while (!stop) {
          await new Promise((r) => setTimeout(r, 100 + Math.random() * 250));
          const pid = serverPid();
          if (pid !== undefined && !stop) {
            try {
              process.kill(pid, 'SIGKILL');
              kills++;
            } catch {
              /* gone */
            }
          }
        }
      })();
      const codes: number[] = [];
      for (let round = 0; round < 4; round++) {
        const rs = await Promise.all(
          spaces.map(async (n, i) => {
            const c = { containerId: `churn-${i}`, netns: nsPath(n), ifname: 'eth0', env: { NETMODES_CNI_MODE: 'server' } };
            const a = await runPlugin(plugin, { ...c, command: 'ADD' }, withPorts(conf(), [{ hostPort: 8700 + i, containerPort: 80 }]));
            const codes = [a.code === 0 ? 0 : a.json?.code];
            // DEL, and again after "try again later", as a runtime does before it adds the container again.
            for (let k = 0; k < 5; k++) {
              const d = await runPlugin(plugin, { ...c, command: 'DEL' }, conf());
              codes.push(d.code === 0 ? 0 : d.json?.code);
              if (d.code === 0) break;
            }
            return codes;
          }),
        );
        codes.push(...rs.flat());
      }
      stop = true;
      await killer;
      assert.ok(kills > 0, 'the server was killed');
      for (const c of codes) assert.ok(c === 0 || c === 11, `code ${c}`);
      // Whatever a call that said "try again" left: one more DEL each, as a runtime would.
      for (const [i, n] of spaces.entries())
        assert.equal((await runPlugin(plugin, { command: 'DEL', containerId: `churn-${i}`, netns: nsPath(n), ifname: 'eth0', env: { NETMODES_CNI_MODE: 'server' } }, conf())).code, 0);
      await assertClean(NET, BRIDGE, spaces.map(nsPath));
    });

    it('without a reachable server the plugin still works, in a Node process of its own', async () => {
      // A state directory whose socket path is too long for a unix socket: no server can listen.
      const deep = path.join(tempDir('nmcni-state-'), 'x'.repeat(100));
      fs.mkdirSync(deep, { recursive: true });
      const a = newNs();
      try {
        const env = { NETMODES_STATE_DIR: deep };
        const cfg = conf({ name: 'nosrv', bridge: 'nmnosrv0', ipam: { subnet: '10.88.11.0/24' } });
        const c = { containerId: 'nosrv', netns: nsPath(a), ifname: 'eth0', env };
        try {
          const r = await runPlugin(plugin, { ...c, command: 'ADD' }, cfg);
          assert.equal(r.code, 0, r.stdout + r.stderr);
          assert.ok(ping(r.json.ips[0].address.split('/')[0], undefined, 3));
          const strict = await runPlugin(plugin, { command: 'VERSION', env: { ...env, NETMODES_CNI_MODE: 'server' } }, { cniVersion: '1.0.0' });
          assert.equal(strict.json.code, 11);
        } finally {
          const d = await runPlugin(plugin, { ...c, command: 'DEL' }, cfg);
          assert.equal(d.code, 0, d.stdout);
          const nm = await import('../../lib');
          process.env.NETMODES_STATE_DIR = deep;
          try {
            await (await nm.openBridgeNetwork('nosrv')).remove();
          } finally {
            delete process.env.NETMODES_STATE_DIR;
          }
        }
      } finally {
        fs.rmSync(path.dirname(deep), { recursive: true, force: true });
      }
    });

    it('the server answers a caller of another network namespace with 255 (the caller then runs the verb itself)', async () => {
      const r = await runPlugin(plugin, { command: 'VERSION', env: { NETMODES_CNI_MODE: 'server' } }, { cniVersion: '1.0.0' });
      assert.equal(r.code, 0);
      assert.equal(await control('ping', '1'), undefined); // no server file for that namespace
      // A hand-made request that claims another namespace, on this namespace's socket.
      const net = await import('node:net');
      const { serverPaths, requestFrame } = await import('../../lib/cni/server');
      const req = requestFrame({ CNI_COMMAND: 'VERSION', NETMODES_CNI_NETNS_INO: '1' });
      const reply: Buffer = await new Promise((resolve, reject) => {
        const s = net.connect(serverPaths().sock);
        let b = Buffer.alloc(0);
        s.on('data', (d) => (b = Buffer.concat([b, d])));
        s.on('end', () => resolve(b));
        s.on('error', reject);
        s.write(req);
      });
      assert.equal(reply.readUInt32LE(4), 255);
    });
  });

  describe('beside the reference bridge + host-local + portmap chain', () => {
    let out: Outside;
    let ipamDir: string;
    const ref = (type: string) => path.join(REFERENCE_DIR, type);
    before(() => {
      out = makeOutside();
      ipamDir = tempDir('nmcni-ipam-');
    });
    after(async () => {
      out.remove();
      fs.rmSync(ipamDir, { recursive: true, force: true });
      await removeNetwork(NET);
    });

    it('same configuration: the same result shape, the same connectivity', async () => {
      const refBridge = { cniVersion: '1.0.0', name: 'refnet', type: 'bridge', bridge: 'refbr0', isGateway: true, ipMasq: true, ipam: { type: 'host-local', subnet: '10.88.8.0/24', routes: [{ dst: '0.0.0.0/0' }], dataDir: ipamDir } };
      const refPortmap = { cniVersion: '1.0.0', name: 'refnet', type: 'portmap', capabilities: { portMappings: true }, snat: true, runtimeConfig: { portMappings: [{ hostPort: 8801, containerPort: 80, protocol: 'tcp' }] } };
      const a = newNs();
      const b = newNs();
      const rc = { command: 'ADD', containerId: 'refctr', netns: nsPath(a), ifname: 'eth0' };
      const rb = await runPlugin(ref('bridge'), rc, refBridge, REFERENCE_DIR);
      assert.equal(rb.code, 0, rb.stdout + rb.stderr);
      const rp = await runPlugin(ref('portmap'), rc, { ...refPortmap, prevResult: rb.json }, REFERENCE_DIR);
      assert.equal(rp.code, 0, rp.stdout + rp.stderr);
      const nc = { command: 'ADD', containerId: 'nmctr', netns: nsPath(b), ifname: 'eth0', env: { NETMODES_CNI_MODE: 'server' } };
      const nr = await runPlugin(plugin, nc, withPorts(conf(), [{ hostPort: 8802, containerPort: 80, protocol: 'tcp' }]));
      assert.equal(nr.code, 0, nr.stdout);
      // Shape: the same keys, three interfaces (bridge, host veth, container end in the sandbox),
      // the address on interface 2 with the gateway, a default route.
      const shape = (r: any) => ({
        keys: Object.keys(r).filter((k) => k !== 'dns').sort(),
        ifaces: r.interfaces.map((i: any) => [Object.keys(i).sort().join(), !!i.sandbox]),
        ips: r.ips.map((i: any) => [Object.keys(i).sort().join(), i.interface]),
        routes: r.routes.map((x: any) => x.dst),
      });
      const refShape = shape(rp.json);
      const ourShape = shape(nr.json);
      assert.deepEqual(ourShape.keys, refShape.keys);
      assert.deepEqual(ourShape.ifaces, refShape.ifaces);
      assert.deepEqual(ourShape.ips, refShape.ips);
      assert.deepEqual(ourShape.routes, refShape.routes);
      // Connectivity, both ways, for both.
      const sa = await startServer(a, 'tcp', 80, 'REF');
      const sb = await startServer(b, 'tcp', 80, 'NM');
      const so = await startServer(out.ns, 'tcp', 9001, 'OUT');
      try {
        assert.equal(connect(out.ns, 'tcp', out.hostAddr, 8801)?.split(' ')[0], 'REF');
        assert.equal(connect(out.ns, 'tcp', out.hostAddr, 8802)?.split(' ')[0], 'NM');
        assert.equal(connect(a, 'tcp', out.addr, 9001), `OUT ${out.hostAddr}`);
        assert.equal(connect(b, 'tcp', out.addr, 9001), `OUT ${out.hostAddr}`);
      } finally {
        sa.kill();
        sb.kill();
        so.kill();
      }
      // DEL in reverse order for the reference; ours in one.
      assert.equal((await runPlugin(ref('portmap'), { ...rc, command: 'DEL' }, { ...refPortmap, prevResult: rp.json }, REFERENCE_DIR)).code, 0);
      assert.equal((await runPlugin(ref('bridge'), { ...rc, command: 'DEL' }, { ...refBridge, prevResult: rp.json }, REFERENCE_DIR)).code, 0);
      assert.equal((await runPlugin(plugin, { ...nc, command: 'DEL' }, conf())).code, 0);
      tryRun('ip', ['link', 'del', 'refbr0']);
      // The reference leaves its iptables chains and the bridge's masquerade rules: ours leaves nothing.
      tryRun('iptables', ['-t', 'nat', '-F']);
      tryRun('iptables', ['-t', 'nat', '-X']);
      tryRun('iptables', ['-t', 'filter', '-F']);
      tryRun('iptables', ['-t', 'filter', '-X']);
      tryRun('ip6tables', ['-t', 'nat', '-F']);
      tryRun('ip6tables', ['-t', 'nat', '-X']);
      for (const fam of ['ip', 'ip6']) for (const t of ['nat', 'filter']) tryRun('nft', ['delete', 'table', fam, t]);
      await assertClean(NET, BRIDGE, [nsPath(b)]);
      void nftj;
    });
  });
});
