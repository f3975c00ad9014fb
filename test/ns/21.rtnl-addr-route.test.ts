import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import {
  ConfigError, NetlinkError, Namespace, addrAdd, addrDel, addrList, batch, linkAdd, linkGet, neighAdd, neighDel, neighList,
  routeAdd, routeDel, routeList, routeReplace,
} from '../../lib';
import { sandboxed, ipj, ping, sh, uniq } from '../helpers/kernel';
import { withNamespaces, delLinks, ipAddrs, ipRoutes } from '../helpers/rtnl';
import { rtnl } from '../../lib/netlink/native';

/** A veth from the sandbox host into `c` as eth0, both ends up, addresses on both. */
async function wire(c: Namespace, host: string, hostCidr: string, ctrCidr: string): Promise<void> {
  await linkAdd({ name: host, kind: 'veth', up: true, peer: { name: 'eth0', ns: c, up: true } });
  await addrAdd(host, hostCidr);
  await addrAdd('eth0', ctrCidr, {}, c);
}

describe('21 rtnl addresses, routes, neighbours', () => {
  before(sandboxed);

  it('IPv4 and IPv6 addresses: add with options, list, delete, as `ip -j addr` sees them', async () => {
    await withNamespaces(1, async ([c]) => {
      await linkAdd({ name: 'eth0', kind: 'veth', up: true, peer: { name: 'peer0', up: true } }, c);
      await addrAdd('eth0', '10.20.0.2/24', { label: 'eth0:web', broadcast: '10.20.0.255' }, c);
      await addrAdd('eth0', 'fd00:20::2/64', { noDad: true }, c);
      await addrAdd('lo', '127.0.0.9/8', {}, c);
      const ip = ipAddrs('eth0', c.name);
      const v4 = ip.find((a) => a.family === 'inet');
      assert.deepEqual([v4.local, v4.prefixlen, v4.label, v4.broadcast, v4.scope], ['10.20.0.2', 24, 'eth0:web', '10.20.0.255', 'global']);
      const v6 = ip.find((a) => a.family === 'inet6' && a.local === 'fd00:20::2');
      assert.equal(v6.prefixlen, 64);
      assert.equal(v6.nodad, true);
      assert.equal(v6.tentative, undefined, 'no DAD: usable at once');
      assert.equal(ipAddrs('lo', c.name).find((a) => a.local === '127.0.0.9').scope, 'host', 'as ip addr add: 127/8 is host scope');

      const eth0 = await linkGet('eth0', c);
      const ours = await addrList(c, { link: 'eth0' });
      assert.ok(ours.every((a) => a.index === eth0.index));
      const v4l = ours.find((a) => a.family === 4)!;
      assert.deepEqual(v4l, { index: eth0.index, family: 4, address: '10.20.0.2', prefix: 24, scope: 'universe', flags: ['PERMANENT'], label: 'eth0:web', broadcast: '10.20.0.255' });
      assert.deepEqual(ours.find((a) => a.address === 'fd00:20::2')!.flags.sort(), ['NODAD', 'PERMANENT']);
      const all = await addrList(c, { family: 4 });
      assert.deepEqual(all.map((a) => a.address).sort(), ['10.20.0.2', '127.0.0.1', '127.0.0.9']);
      const ipAll = ipj(['-4', 'addr', 'show'], c.name).flatMap((l) => l.addr_info.map((a: any) => a.local));
      assert.deepEqual(all.map((a) => a.address).sort(), ipAll.sort());

      await assert.rejects(addrAdd('eth0', '10.20.0.2/24', {}, c), (e: NetlinkError) => e.code === 'EEXIST' && e.op === 'RTM_NEWADDR');
      await addrDel('eth0', '10.20.0.2/24', c);
      await addrDel(eth0.index, 'fd00:20::2/64', c);
      assert.deepEqual(ipAddrs('eth0', c.name).filter((a) => !a.local.startsWith('fe80')), []);
      await assert.rejects(addrDel('eth0', '10.20.0.2/24', c), (e: NetlinkError) => e.code === 'EADDRNOTAVAIL' && e.op === 'RTM_DELADDR');
      await assert.rejects(addrAdd('nosuch0', '10.1.1.1/24', {}, c), (e: NetlinkError) => e.code === 'ENODEV');
      await assert.rejects(addrAdd('eth0', '10.20.0.256/24', {}, c), (e: ConfigError) => e instanceof ConfigError && e.field === 'cidr');
    });
  });

  it('routes: default, networks in other tables, IPv6, blackhole/unreachable, replace, delete', async () => {
    await withNamespaces(1, async ([c]) => {
      const n = c.name!;
      await linkAdd({ name: 'eth0', kind: 'veth', up: true, peer: { name: 'peer0', up: true } }, c);
      await addrAdd('eth0', '10.30.0.2/24', {}, c);
      await addrAdd('eth0', 'fd00:30::2/64', { noDad: true }, c);
      await routeAdd({ dst: 'default', gateway: '10.30.0.1' }, c);
      await routeAdd({ dst: '10.8.0.0/16', gateway: '10.30.0.5', link: 'eth0', metric: 50, table: 100 }, c);
      await routeAdd({ dst: '10.9.0.0/16', link: 'eth0', src: '10.30.0.2' }, c);
      await routeAdd({ dst: 'fd00:99::/64', gateway: 'fd00:30::1' }, c);
      await routeAdd({ dst: '192.0.2.0/24', type: 'blackhole' }, c);
      await routeAdd({ dst: '198.51.100.7', type: 'unreachable', protocol: 'static' }, c);

      const r4 = ipRoutes(n);
      const find = (dst: string, table = 'main') => r4.find((r) => r.dst === dst && r.table === table);
      assert.deepEqual([find('default').gateway, find('default').dev, find('default').protocol], ['10.30.0.1', 'eth0', 'boot']);
      const t100 = find('10.8.0.0/16', '100');
      assert.deepEqual([t100.gateway, t100.metric, t100.dev], ['10.30.0.5', 50, 'eth0']);
      const direct = find('10.9.0.0/16');
      assert.deepEqual([direct.scope, direct.prefsrc, direct.gateway], ['link', '10.30.0.2', undefined], 'no gateway: scope link, as ip route');
      assert.equal(find('192.0.2.0/24').type, 'blackhole');
      assert.deepEqual([find('198.51.100.7').type, find('198.51.100.7').protocol], ['unreachable', 'static']);
      const r6 = ipRoutes(n, '-6').find((r) => r.dst === 'fd00:99::/64');
      assert.equal(r6.gateway, 'fd00:30::1');

      await routeReplace({ dst: 'default', gateway: '10.30.0.254' }, c);
      assert.deepEqual(ipRoutes(n).filter((r) => r.dst === 'default').map((r) => r.gateway), ['10.30.0.254']);
      await assert.rejects(routeAdd({ dst: 'default', gateway: '10.30.0.1' }, c), (e: NetlinkError) => e.code === 'EEXIST' && e.op === 'RTM_NEWROUTE');

      // Our dump, compared with ip's.
      const ours = await routeList(c, { family: 4, table: 'main' });
      const ipMain = r4.filter((r) => r.table === 'main').map((r) => r.dst).sort();
      assert.deepEqual(ours.map((r) => (r.dst === 'default' || r.prefix === 32 ? r.dst : `${r.dst}/${r.prefix}`)).sort(), ipMain);
      const def = ours.find((r) => r.dst === 'default')!;
      const eth0 = await linkGet('eth0', c);
      assert.deepEqual(def, { family: 4, dst: 'default', prefix: 0, gateway: '10.30.0.254', oif: eth0.index, table: 254, scope: 'universe', protocol: 'boot', type: 'unicast', flags: [] });
      assert.deepEqual((await routeList(c, { table: 100 })).map((r) => [r.dst, r.prefix, r.metric]), [['10.8.0.0', 16, 50]]);
      assert.deepEqual((await routeList(c, { type: 'blackhole' })).map((r) => r.dst), ['192.0.2.0']);
      assert.deepEqual((await routeList(c, { protocol: 'static', family: 4 })).map((r) => r.dst), ['198.51.100.7']);
      assert.ok((await routeList(c, { link: 'eth0' })).every((r) => r.oif === eth0.index));
      assert.deepEqual(await routeList(c, { table: 12345, family: 4 }), [], 'a table that does not exist has no routes');
      assert.ok((await routeList(c, { family: 6 })).some((r) => r.dst === 'fd00:99::' && r.gateway === 'fd00:30::1'));

      await routeDel({ dst: '10.8.0.0/16', table: 100 }, c);
      await routeDel({ dst: 'fd00:99::/64' }, c);
      await routeDel({ dst: '192.0.2.0/24' }, c);
      assert.equal(ipRoutes(n).find((r) => r.dst === '10.8.0.0/16'), undefined);
      assert.equal(ipRoutes(n).find((r) => r.dst === '192.0.2.0/24'), undefined);
      assert.equal(ipRoutes(n, '-6').find((r) => r.dst === 'fd00:99::/64'), undefined);
      await assert.rejects(routeDel({ dst: '10.8.0.0/16', table: 100 }, c), (e: NetlinkError) => e.code === 'ESRCH' && e.op === 'RTM_DELROUTE');
    });
  });

  it('route errors the kernel annotates arrive as extack', async () => {
    await withNamespaces(1, async ([c]) => {
      await linkAdd({ name: 'eth0', kind: 'veth', up: true, peer: { name: 'peer0', up: true } }, c);
      await addrAdd('eth0', '10.31.0.2/24', {}, c);
      await assert.rejects(
        routeAdd({ dst: 'default', gateway: '10.99.0.1' }, c),
        (e: NetlinkError) => e.code === 'ENETUNREACH' && e.extack === 'Nexthop has invalid gateway',
      );
      await assert.rejects(
        routeAdd({ dst: '192.0.2.0/24', type: 'blackhole', link: 'eth0' }, c),
        (e: NetlinkError) => e.code === 'EINVAL' && e.extack === 'Gateway, device and multipath can not be specified for this route type',
      );
      // onlink takes the gateway on trust.
      await routeAdd({ dst: 'default', gateway: '10.99.0.1', link: 'eth0', onlink: true }, c);
      assert.ok(ipRoutes(c.name).find((r) => r.dst === 'default').flags.includes('onlink'));
    });
  });

  it('permanent neighbour entries, IPv4 and IPv6', async () => {
    await withNamespaces(1, async ([c]) => {
      await linkAdd({ name: 'br0', kind: 'bridge', up: true }, c);
      await neighAdd({ link: 'br0', address: '10.40.0.7', lladdr: '02:00:00:00:40:07' }, c);
      await neighAdd({ link: 'br0', address: 'fd00:40::7', lladdr: '02:00:00:00:40:08' }, c);
      await neighAdd({ link: 'br0', address: '10.40.0.8', lladdr: '02:00:00:00:40:09', permanent: false }, c);
      const ip = ipj(['neigh', 'show', 'dev', 'br0'], c.name);
      const e7 = ip.find((e) => e.dst === '10.40.0.7');
      assert.deepEqual([e7.lladdr, e7.state], ['02:00:00:00:40:07', ['PERMANENT']]);
      assert.deepEqual(ip.find((e) => e.dst === 'fd00:40::7').state, ['PERMANENT']);
      assert.deepEqual(ip.find((e) => e.dst === '10.40.0.8').state, ['REACHABLE']);
      const br = await linkGet('br0', c);
      const ours = await neighList(c, { link: 'br0', family: 4 });
      assert.deepEqual(
        // (the kernel may add a NOARP entry for a multicast group the bridge joined: not ours)
        ours.filter((e) => e.address.startsWith('10.40.')).map((e) => [e.address, e.lladdr, e.state, e.index]).sort(),
        [['10.40.0.7', '02:00:00:00:40:07', ['PERMANENT'], br.index], ['10.40.0.8', '02:00:00:00:40:09', ['REACHABLE'], br.index]],
      );
      assert.ok((await neighList(c)).some((e) => e.address === 'fd00:40::7' && e.family === 6));
      await assert.rejects(neighAdd({ link: 'br0', address: '10.40.0.7', lladdr: '02:00:00:00:40:07' }, c), (e: NetlinkError) => e.code === 'EEXIST');
      await neighDel({ link: 'br0', address: '10.40.0.7' }, c);
      await neighDel({ link: br.index, address: 'fd00:40::7' }, c);
      assert.equal(ipj(['neigh', 'show', 'dev', 'br0'], c.name).filter((e) => e.dst !== '10.40.0.8').length, 0);
      await assert.rejects(neighDel({ link: 'br0', address: '10.40.0.7' }, c), (e: NetlinkError) => e.code === 'ENOENT');
    });
  });

  it('traffic: two namespaces joined by a library-made veth ping each other', async () => {
    await withNamespaces(2, async ([a, b]) => {
      await linkAdd({ name: 'eth0', kind: 'veth', up: true, peer: { name: 'eth0', ns: b, up: true } }, a);
      await addrAdd('eth0', '10.50.0.1/24', {}, a);
      await addrAdd('eth0', '10.50.0.2/24', {}, b);
      await addrAdd('eth0', 'fd00:50::1/64', { noDad: true }, a);
      await addrAdd('eth0', 'fd00:50::2/64', { noDad: true }, b);
      assert.ok(ping('10.50.0.2', a.name, 2));
      assert.ok(ping('10.50.0.1', b.name, 2));
      assert.ok(ping('fd00:50::2', a.name, 2));
      assert.ok(!ping('10.50.0.9', a.name), 'and a missing host does not answer');
    });
  });

  it('traffic: a library-made bridge with three veths, peers in three namespaces, forwards between all pairs', async () => {
    await withNamespaces(3, async (ctrs) => {
      const br = uniq('brt');
      const hosts = ctrs.map(() => uniq('vt'));
      try {
        const r = await batch([
          { op: 'linkAdd', name: br, kind: 'bridge', up: true, noIpv6: true, bridge: { stp: false, forwardDelay: 0 } },
          ...ctrs.flatMap((c, i) => [
            { op: 'linkAdd' as const, name: hosts[i], kind: 'veth' as const, master: br, up: true, noIpv6: true, peer: { name: 'eth0', ns: c, up: true } },
            { op: 'addrAdd' as const, ns: c, link: 'eth0', cidr: `10.60.0.${i + 2}/24` },
            { op: 'routeAdd' as const, ns: c, dst: '10.61.0.0/16', link: 'eth0' },
          ]),
        ]);
        assert.equal(r.length, 10);
        for (const h of hosts) assert.equal(ipj(['-d', 'link', 'show', 'dev', h])[0].master, br);
        for (let i = 0; i < 3; i++)
          for (let j = 0; j < 3; j++) if (i !== j) assert.ok(ping(`10.60.0.${j + 2}`, ctrs[i].name, 2), `ns${i} -> ns${j}`);
      } finally {
        delLinks([...hosts, br]);
      }
    });
  });

  it('large dumps: 20,000 routes, exact also while other tables change', async function () {
    this.timeout(120000);
    await withNamespaces(1, async ([c]) => {
      const n = c.name!;
      sh('ip', ['-n', n, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'p0']);
      sh('ip', ['-n', n, 'link', 'set', 'eth0', 'up']);
      const lines: string[] = [];
      for (let i = 0; i < 20000; i++) lines.push(`route add 10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32 dev eth0 table 100`);
      sh('ip', ['-n', n, '-batch', '-'], { input: lines.join('\n') + '\n', timeout: 60000 });
      const routes = await routeList(c, { table: 100 });
      assert.equal(routes.length, 20000);
      assert.equal(new Set(routes.map((r) => r.dst)).size, 20000);
      assert.ok(routes.every((r) => r.table === 100 && r.prefix === 32 && r.scope === 'link'));
      assert.equal(routes.filter((r) => r.dst === '10.100.78.31').length, 1);
      assert.equal((await routeList(c)).filter((r) => r.table === 100).length, 20000, 'unfiltered too');
      // (IPv4 FIB dumps never set NLM_F_DUMP_INTR; churn in another table must simply not disturb them.)
      const stop = churn(n, (k) => `route add 10.200.0.${k & 255}/32 dev eth0 table 101\nroute del 10.200.0.${k & 255}/32 dev eth0 table 101\n`);
      try {
        for (let k = 0; k < 5; k++) assert.equal((await routeList(c, { table: 100 })).length, 20000);
      } finally {
        await stop();
      }
    });
  });

  it('link dumps interrupted by concurrent changes (NLM_F_DUMP_INTR) start over and stay exact', async function () {
    this.timeout(120000);
    await withNamespaces(1, async ([c]) => {
      const n = c.name!;
      const lines = Array.from({ length: 300 }, (_, i) => `link add v${i} type veth peer name v${i}p`);
      sh('ip', ['-n', n, '-batch', '-'], { input: lines.join('\n') + '\n', timeout: 60000 });
      const want = new Set(['lo', ...Array.from({ length: 300 }, (_, i) => [`v${i}`, `v${i}p`]).flat()]);
      const stop = churn(n, (k) => `link add c${k} type veth peer name c${k}p\nlink del c${k}\n`);
      let restarts = 0;
      try {
        for (let k = 0; k < 30 && (restarts < 2 || k < 5); k++) {
          const links = await rtnl().rtnlDump(c.handle, 'link');
          restarts += links.restarts ?? 0;
          const names = (links as Array<{ name: string }>).map((l) => l.name);
          assert.equal(new Set(names).size, names.length, 'no link twice');
          const ours = names.filter((x) => want.has(x));
          assert.equal(ours.length, want.size, 'every link that stays is there');
          assert.ok(names.length - ours.length <= 2, 'at most the one churning pair');
        }
      } finally {
        await stop();
      }
      assert.ok(restarts > 0, 'the kernel interrupted at least one dump');
    });
  });
});

/** Feeds `ip -n NS -batch -` with lines(k) for k = 0, 1, ... until the returned stop() is called. */
function churn(ns: string, lines: (k: number) => string): () => Promise<void> {
  const child = spawn('ip', ['-n', ns, '-batch', '-'], { stdio: ['pipe', 'ignore', 'ignore'] });
  child.stdin.on('error', () => {}); // EPIPE once it is killed
  let k = 0;
  const timer = setInterval(() => {
    for (let i = 0; i < 20; i++) child.stdin.write(lines(k++));
  }, 2);
  const exited = new Promise((r) => child.on('exit', r));
  return async () => {
    clearInterval(timer);
    // Not stdin.end(): ip would first work through the backlog (each link delete waits for an
    // RCU grace period). What it leaves behind goes with the namespace.
    child.kill();
    await exited;
  };
}
