import { strict as assert } from 'node:assert';
import { ConfigError, NetlinkError, Namespace, batch, linkAdd, linkDel, BatchError, BatchOp } from '../../lib';
import { sandboxed, ipj, uniq } from '../helpers/kernel';
import { withNamespaces, delLinks, ipLink, ipAddrs, ipRoutes, linkNames } from '../helpers/rtnl';

/** A container's setup as the bridge mode will do it: veth into c as eth0, address, lo up, default route. */
function containerOps(c: Namespace, host: string, ip: string): BatchOp[] {
  return [
    { op: 'linkAdd', name: host, kind: 'veth', up: true, peer: { name: 'eth0', ns: c, up: true } },
    { op: 'addrAdd', ns: c, link: 'eth0', cidr: `${ip}/24` },
    { op: 'linkSet', ns: c, link: 'lo', up: true },
    { op: 'routeAdd', ns: c, dst: 'default', gateway: '10.70.0.1', link: 'eth0', onlink: true },
  ];
}

function checkContainer(c: Namespace, ip: string): void {
  assert.ok(ipLink('eth0', c.name).flags.includes('UP'));
  assert.ok(ipLink('lo', c.name).flags.includes('UP'));
  assert.deepEqual(ipAddrs('eth0', c.name).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`), [`${ip}/24`]);
  const def = ipRoutes(c.name).find((r) => r.dst === 'default');
  assert.deepEqual([def.gateway, def.dev], ['10.70.0.1', 'eth0']);
}

describe('22 rtnl batches', () => {
  before(sandboxed);

  for (const pipelined of [false, true]) {
    it(`a container's whole setup across two namespaces in one call (pipelined: ${pipelined})`, async () => {
      await withNamespaces(1, async ([c]) => {
        const host = uniq('vb');
        try {
          const r = await batch([...containerOps(c, host, '10.70.0.2'), { op: 'linkGet', ns: c, link: 'eth0' }], { pipelined });
          checkContainer(c, '10.70.0.2');
          const results = pipelined ? (r as PromiseSettledResult<unknown>[]).map((x) => (x as PromiseFulfilledResult<unknown>).value) : (r as unknown[]);
          if (pipelined) assert.ok((r as PromiseSettledResult<unknown>[]).every((x) => x.status === 'fulfilled'));
          const created = results[0] as { index: number; peerIndex: number };
          assert.equal(created.index, ipLink(host).ifindex);
          assert.equal(created.peerIndex, ipLink('eth0', c.name).ifindex);
          assert.equal((results[4] as { name: string; index: number }).index, created.peerIndex);
          assert.deepEqual(results.slice(1, 4), [undefined, undefined, undefined]);
        } finally {
          delLinks([host]);
        }
      });
    });
  }

  it('typed results: each op resolves to its own kind of value', async () => {
    const br = uniq('bt');
    try {
      const [added, got, nothing] = await batch([
        { op: 'linkAdd', name: br, kind: 'bridge', mtu: 1400 },
        { op: 'linkGet', link: br },
        { op: 'linkSet', link: br, up: true },
      ]);
      // (compile-time: added is LinkAddResult, got is Link, nothing is undefined)
      assert.equal(got.mtu, 1400);
      assert.equal(got.index, added.index);
      assert.equal(nothing, undefined);
      assert.deepEqual(await batch([]), []);
    } finally {
      delLinks([br]);
    }
  });

  it('failing at op k: rejects with index k; ops before it applied, ops after it not attempted', async () => {
    const [a, b, c] = [uniq('ka'), uniq('kb'), uniq('kc')];
    try {
      const err = await batch([
        { op: 'linkAdd', name: a, kind: 'bridge' },
        { op: 'linkAdd', name: b, kind: 'veth', peer: { name: `${b}p` } },
        { op: 'linkSet', link: b, master: a },
        { op: 'linkDel', link: 'nosuchlink1' },
        { op: 'linkAdd', name: c, kind: 'bridge' },
        { op: 'addrAdd', link: a, cidr: '10.71.0.1/24' },
      ]).then(() => null, (e: BatchError) => e);
      assert.ok(err instanceof NetlinkError);
      assert.equal(err.index, 3);
      assert.equal(err.code, 'ENODEV');
      assert.equal(err.op, 'RTM_DELLINK');
      assert.match(err.message, /operation 3/);
      assert.equal(err.results.length, 3);
      assert.equal((err.results[0] as { index: number }).index, ipLink(a).ifindex);
      assert.equal(ipLink(b).master, a, 'op 2 applied');
      assert.equal(ipLink(c), undefined, 'op 4 not attempted');
      assert.deepEqual(ipAddrs(a), [], 'op 5 not attempted');
    } finally {
      delLinks([a, b, c]);
    }
  });

  it('pipelined: every op attempted even after a failure, one settled result each', async () => {
    const [a, c] = [uniq('pa'), uniq('pc')];
    try {
      const r = await batch(
        [
          { op: 'linkAdd', name: a, kind: 'bridge' },
          { op: 'linkDel', link: 'nosuchlink2' },
          { op: 'linkAdd', name: c, kind: 'bridge', up: true },
          { op: 'addrAdd', link: a, cidr: '10.72.0.1/24' },
          { op: 'addrAdd', link: a, cidr: '10.72.0.1/24' },
        ],
        { pipelined: true },
      );
      assert.deepEqual(r.map((x) => x.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'rejected']);
      const e1 = (r[1] as PromiseRejectedResult).reason as NetlinkError;
      assert.deepEqual([e1 instanceof NetlinkError, e1.code, e1.index, e1.op], [true, 'ENODEV', 1, 'RTM_DELLINK']);
      const e4 = (r[4] as PromiseRejectedResult).reason as NetlinkError;
      assert.deepEqual([e4.code, e4.index, e4.op], ['EEXIST', 4, 'RTM_NEWADDR']);
      assert.ok(ipLink(c).flags.includes('UP'));
      assert.deepEqual(ipAddrs(a).map((x) => x.local), ['10.72.0.1']);
    } finally {
      delLinks([a, c]);
    }
  });

  it('a failed create never lets its follow-ups touch the existing link of that name (both modes)', async () => {
    const x = uniq('fx');
    try {
      await linkAdd({ name: x, kind: 'veth', peer: { name: `${x}p` } });
      for (const pipelined of [false, true]) {
        const r = await batch(
          [{ op: 'linkAdd', name: x, kind: 'veth', up: true, noIpv6: true, alias: 'not mine', peer: { name: uniq('fy'), up: true } }],
          { pipelined },
        ).then((v) => v, (e: NetlinkError) => e);
        const err = pipelined ? ((r as PromiseSettledResult<unknown>[])[0] as PromiseRejectedResult).reason : r;
        assert.equal((err as NetlinkError).code, 'EEXIST');
        const l = ipLink(x);
        assert.ok(!l.flags.includes('UP'));
        assert.equal(l.ifalias, undefined);
        assert.equal(l.inet6_addr_gen_mode, 'eui64');
      }
    } finally {
      delLinks([x]);
    }
  });

  it('names are looked up after what the batch did to them: rename, delete and re-create (both modes)', async () => {
    for (const pipelined of [false, true]) {
      const [x, y] = [uniq('nx'), uniq('ny')];
      try {
        await batch(
          [
            { op: 'linkAdd', name: x, kind: 'bridge' },
            { op: 'addrAdd', link: x, cidr: '10.73.0.1/24' },
            { op: 'linkSet', link: x, name: y },
            { op: 'addrAdd', link: y, cidr: '10.73.1.1/24' },
            { op: 'linkDel', link: y },
            { op: 'linkAdd', name: y, kind: 'bridge', mtu: 1300 },
            { op: 'addrAdd', link: y, cidr: '10.73.2.1/24' },
          ],
          { pipelined },
        );
        assert.equal(ipLink(x), undefined);
        assert.equal(ipLink(y).mtu, 1300);
        assert.deepEqual(ipAddrs(y).map((a) => a.local), ['10.73.2.1'], `pipelined ${pipelined}`);
      } finally {
        delLinks([x, y]);
      }
    }
  });

  it("a failure's error carries the frames of the async functions that awaited the call", async () => {
    async function deleteForCaller(): Promise<void> {
      await linkDel(uniq('nosuch'));
    }
    const err = await deleteForCaller().then(() => null, (e: NetlinkError) => e);
    assert.ok(err instanceof NetlinkError);
    assert.equal(err.code, 'ENODEV');
    assert.match(err.stack ?? '', /^NetlinkError: /);
    assert.match(err.stack ?? '', /at async deleteForCaller /);
    assert.doesNotMatch(err.stack ?? '', /withStack|withCallerStack/);
  });

  it('a ConfigError anywhere means nothing is sent', async () => {
    const a = uniq('ca');
    const before = linkNames();
    await assert.rejects(
      batch([
        { op: 'linkAdd', name: a, kind: 'bridge' },
        { op: 'linkSet', link: a, up: true },
        { op: 'addrAdd', link: a, cidr: '10.74.0.1/24' },
        { op: 'routeAdd', dst: '10.75.0.0/16', gateway: '10.74.0.300' },
      ]),
      (e: ConfigError) => e instanceof ConfigError && e.field === 'ops[3].gateway',
    );
    assert.deepEqual(linkNames(), before);
  });

  it('pipelined batches larger than one sendmsg group (600 ops in one namespace)', async () => {
    await withNamespaces(1, async ([c]) => {
      await linkAdd({ name: 'br0', kind: 'bridge' }, c);
      const cidrs = Array.from({ length: 600 }, (_, i) => `10.76.${(i + 1) >> 8}.${(i + 1) & 255}/16`);
      const added = await batch(cidrs.map((cidr) => ({ op: 'addrAdd' as const, ns: c, link: 'br0', cidr })), { pipelined: true });
      assert.equal(added.filter((r) => r.status === 'fulfilled').length, 600);
      assert.equal(ipAddrs('br0', c.name).filter((a) => a.family === 'inet').length, 600);
      const again = await batch(cidrs.map((cidr) => ({ op: 'addrAdd' as const, ns: c, link: 'br0', cidr })), { pipelined: true });
      assert.ok(again.every((r, i) => r.status === 'rejected' && (r.reason as NetlinkError).code === 'EEXIST' && (r.reason as NetlinkError).index === i));
      const removed = await batch(cidrs.map((cidr) => ({ op: 'addrDel' as const, ns: c, link: 'br0', cidr })), { pipelined: true });
      // Deleting a primary address also deletes the secondaries of its subnet (the kernel's
      // default, net.ipv4.conf.*.promote_secondaries=0): every later delete finds nothing.
      assert.equal(removed[0].status, 'fulfilled');
      assert.ok(removed.slice(1).every((r) => r.status === 'fulfilled' || (r.reason as NetlinkError).code === 'EADDRNOTAVAIL'));
      assert.deepEqual(ipAddrs('br0', c.name).filter((a) => a.family === 'inet'), []);
    });
  });

  it('100 linkAdd and then 100 linkDel in flight at once across 10 namespaces', async function () {
    this.timeout(60000);
    await withNamespaces(10, async (nss) => {
      const jobs = Array.from({ length: 100 }, (_, i) => ({ ns: nss[i % 10], name: `cv${i}` }));
      const added = await Promise.all(jobs.map((j) => linkAdd({ name: j.name, kind: 'veth', up: true, peer: { name: `${j.name}p`, up: true } }, j.ns)));
      assert.equal(new Set(added.map((r, i) => `${i % 10}:${r.index}`)).size, 100);
      for (let k = 0; k < 10; k++) {
        const want = jobs.filter((_, i) => i % 10 === k).flatMap((j) => [j.name, `${j.name}p`]);
        assert.deepEqual(linkNames(nss[k].name), ['lo', ...want].sort());
        assert.ok(ipj(['link', 'show', 'type', 'veth'], nss[k].name).every((l) => l.flags.includes('UP')));
      }
      await Promise.all(jobs.map((j) => linkDel(j.name, j.ns)));
      for (const ns of nss) assert.deepEqual(linkNames(ns.name), ['lo']);
    });
  });
});
