import { strict as assert } from 'node:assert';
import { createNamespace, Namespace, nftTransaction, nftList, NftSet } from '../../lib';
import { sandboxed, nftj, nftText, uniq, sh } from '../helpers/kernel';

/** `nft -j list ruleset` objects of one kind. */
const of = (ns: Namespace, kind: string) => nftj(ns.name).filter((o) => o[kind]).map((o) => o[kind]);

describe('30 nft objects (tables, chains, sets, elements)', () => {
  let ns: Namespace;
  before(sandboxed);
  beforeEach(async () => {
    ns = await createNamespace(uniq('nft'));
  });
  afterEach(async () => {
    await ns.delete();
  });

  it('tables of every family, with flags and comments; nft lists them; delete and destroy', async () => {
    const tx = nftTransaction(ns);
    for (const family of ['inet', 'ip', 'ip6', 'bridge', 'netdev', 'arp'] as const) tx.addTable({ family, name: `t_${family}` });
    assert.deepEqual(await tx.commit(), Array(6).fill({ op: 'addTable' }));
    const tables = of(ns, 'table');
    assert.deepEqual(tables.map((t) => `${t.family} ${t.name}`).sort(), [
      'arp t_arp', 'bridge t_bridge', 'inet t_inet', 'ip t_ip', 'ip6 t_ip6', 'netdev t_netdev',
    ]);
    // (nft 1.0.6 -j prints table flags from freed memory, so flags are checked in the text form)
    const tx2 = nftTransaction(ns);
    tx2.addTable({ family: 'inet', name: 'sleepy', flags: ['dormant'], comment: 'asleep' });
    await tx2.commit();
    assert.match(nftText(ns.name), /table inet sleepy \{\n\tflags dormant\n\tcomment "asleep"\n\}/);
    const rs = await nftList(ns);
    assert.deepEqual(rs.tables.find((t) => t.name === 'sleepy'), { family: 'inet', name: 'sleepy', flags: ['dormant'], comment: 'asleep', handle: rs.tables.find((t) => t.name === 'sleepy')!.handle });
    assert.equal((await nftList(ns, { family: 'ip6' })).tables.length, 1);

    // adding again is fine (nft add), creating again is not (nft create)
    const again = nftTransaction(ns);
    again.addTable({ family: 'ip', name: 't_ip' });
    await again.commit();
    const del = nftTransaction(ns);
    for (const family of ['inet', 'ip', 'ip6', 'bridge', 'netdev', 'arp'] as const) del.deleteTable({ family, name: `t_${family}` });
    del.destroyTable({ family: 'inet', name: 'sleepy' });
    del.destroyTable({ family: 'inet', name: 'never-existed' });
    await del.commit();
    assert.equal(nftText(ns.name), '');
  });

  it('chains: regular, base chains of each type with signed priorities and policies, netdev ingress; flush and delete', async () => {
    const tx = nftTransaction(ns);
    const T = { family: 'inet' as const, table: 'nm' };
    tx.addTable({ family: 'inet', name: 'nm' });
    tx.addChain({ ...T, name: 'plain', comment: 'jump here' });
    tx.addChain({ ...T, name: 'pre', type: 'nat', hook: 'prerouting', priority: 'dstnat' });
    tx.addChain({ ...T, name: 'post', type: 'nat', hook: 'postrouting', priority: 100, policy: 'accept' });
    tx.addChain({ ...T, name: 'fwd', type: 'filter', hook: 'forward', priority: -5, policy: 'drop' });
    tx.addChain({ ...T, name: 'out', type: 'route', hook: 'output', priority: -150 });
    tx.addTable({ family: 'netdev', name: 'nd' });
    tx.addChain({ family: 'netdev', table: 'nd', name: 'ing', type: 'filter', hook: 'ingress', priority: -500, device: 'lo' });
    await tx.commit();
    const chains = of(ns, 'chain');
    const byName = Object.fromEntries(chains.map((c) => [c.name, c]));
    assert.equal(byName.plain.hook, undefined);
    assert.deepEqual([byName.pre.type, byName.pre.hook, byName.pre.prio, byName.pre.policy], ['nat', 'prerouting', -100, 'accept']);
    assert.deepEqual([byName.post.hook, byName.post.prio], ['postrouting', 100]);
    assert.deepEqual([byName.fwd.type, byName.fwd.hook, byName.fwd.prio, byName.fwd.policy], ['filter', 'forward', -5, 'drop']);
    assert.deepEqual([byName.out.type, byName.out.hook, byName.out.prio], ['route', 'output', -150]);
    assert.deepEqual([byName.ing.hook, byName.ing.prio], ['ingress', -500]);
    const text = nftText(ns.name);
    assert.match(text, /chain ing \{\n\t\ttype filter hook ingress device "lo" priority -500; policy accept;\n/);
    assert.match(text, /chain plain \{\n\t\tcomment "jump here"\n\t\}/);
    assert.match(text, /chain fwd \{\n\t\ttype filter hook forward priority filter - 5; policy drop;\n/);
    // typed read-back
    const rs = await nftList(ns, { table: 'nm' });
    const fwd = rs.chains.find((c) => c.name === 'fwd')!;
    assert.deepEqual({ ...fwd, handle: 0 }, { family: 'inet', table: 'nm', name: 'fwd', type: 'filter', hook: 'forward', priority: -5, policy: 'drop', handle: 0 });
    assert.deepEqual(rs.chains.find((c) => c.family === 'inet' && c.name === 'plain')!.comment, 'jump here');
    assert.equal(rs.chains.some((c) => c.family === 'netdev'), false, 'filtered by table');

    const del = nftTransaction(ns);
    del.deleteChain({ ...T, name: 'plain' });
    del.destroyChain({ ...T, name: 'nope' });
    await del.commit();
    assert.ok(!of(ns, 'chain').some((c) => c.name === 'plain'));
    const d2 = nftTransaction(ns);
    d2.deleteTable({ family: 'inet', name: 'nm' });
    d2.deleteTable({ family: 'netdev', name: 'nd' });
    await d2.commit();
  });

  it('sets and maps of every key type, concatenations, interval/constant/timeout; comments visible in nft list', async () => {
    const T = { family: 'inet' as const, table: 'nm' };
    const sets: NftSet[] = [
      { ...T, name: 'v4', type: 'ipv4_addr', comment: 'addresses', elements: [{ key: '10.0.0.1', comment: 'one' }, { key: '10.0.0.2' }] },
      { ...T, name: 'v6', type: 'ipv6_addr', elements: [{ key: 'fd00::1' }] },
      { ...T, name: 'proto', type: 'inet_proto', flags: ['constant'], elements: [{ key: 'tcp' }, { key: 'udp' }, { key: 132 }] },
      { ...T, name: 'ports', type: 'inet_service', flags: ['interval'], elements: [{ key: { from: 1000, to: 2000 } }, { key: 22 }] },
      { ...T, name: 'ifs', type: 'ifname', elements: [{ key: 'eth0' }, { key: 'docker0' }] },
      { ...T, name: 'macs', type: 'ether_addr', elements: [{ key: '02:42:ac:11:00:05' }] },
      { ...T, name: 'marks', type: 'mark', flags: ['timeout'], timeout: 3600000, elements: [{ key: 0x10 }, { key: 0x20, timeout: 600000 }] },
      { ...T, name: 'nets', type: 'ipv4_addr', flags: ['interval'], elements: [{ key: '172.17.0.0/16', comment: 'docker0' }, { key: { from: '192.168.1.10', to: '192.168.1.20' } }] },
      { ...T, name: 'flows', type: 'ipv4_addr . inet_proto . inet_service', elements: [{ key: ['172.17.0.5', 'tcp', 80] }] },
      { ...T, name: 'cidrports', type: 'ipv4_addr . inet_service', flags: ['interval'], elements: [{ key: ['10.0.0.0/8', { from: 80, to: 90 }], comment: 'web' }] },
      { ...T, name: 'dispatch', type: 'ifname', dataType: 'verdict', elements: [{ key: 'br0', data: { jump: 'br0_fwd' } }, { key: 'eth9', data: 'drop' }] },
      { ...T, name: 'published', type: 'ipv4_addr . inet_proto . inet_service', dataType: 'ipv4_addr . inet_service', comment: 'ports',
        elements: [{ key: ['198.18.0.1', 'tcp', 8080], data: ['172.17.0.5', 80], comment: 'ctr1 80/tcp' }] },
      { ...T, name: 'macmap', type: 'ether_addr . ifname', dataType: 'mark', elements: [{ key: ['02:00:00:00:00:01', 'veth1'], data: 7 }] },
    ];
    const tx = nftTransaction(ns);
    tx.addTable({ family: 'inet', name: 'nm' });
    tx.addChain({ ...T, name: 'br0_fwd' });
    for (const s of sets) tx.addSet(s);
    await tx.commit();

    const text = nftText(ns.name);
    for (const line of [
      'set v4 {\n\t\ttype ipv4_addr\n\t\tcomment "addresses"\n\t\telements = { 10.0.0.1 comment "one", 10.0.0.2 }',
      'set proto {\n\t\ttype inet_proto\n\t\tflags constant\n\t\telements = { tcp, udp, sctp }',
      'set ports {\n\t\ttype inet_service\n\t\tflags interval\n\t\telements = { 22, 1000-2000 }',
      'set nets {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 172.17.0.0/16 comment "docker0", 192.168.1.10-192.168.1.20 }',
      'set flows {\n\t\ttype ipv4_addr . inet_proto . inet_service\n\t\telements = { 172.17.0.5 . tcp . 80 }',
      'set cidrports {\n\t\ttype ipv4_addr . inet_service\n\t\tflags interval\n\t\telements = { 10.0.0.0/8 . 80-90 comment "web" }',
      'map published {\n\t\ttype ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service\n\t\tcomment "ports"\n\t\telements = { 198.18.0.1 . tcp . 8080 comment "ctr1 80/tcp" : 172.17.0.5 . 80 }',
      'map macmap {\n\t\ttype ether_addr . ifname : mark\n\t\telements = { 02:00:00:00:00:01 . "veth1" : 0x00000007 }',
    ])
      assert.ok(text.includes(line), `nft list ruleset lacks:\n${line}\n---- in ----\n${text}`);
    assert.match(text, /map dispatch \{\n\t\ttype ifname : verdict\n\t\telements = \{ "br0" : jump br0_fwd,\n\t+\s*"eth9" : drop \}/);
    assert.match(text, /set marks \{\n\t\ttype mark\n\t\ttimeout 1h\n\t\telements = \{ 0x00000010 expires \S+, 0x00000020 timeout 10m expires \S+ \}/);
    assert.match(text, /set v6 \{\n\t\ttype ipv6_addr\n\t\telements = \{ fd00::1 \}/);
    assert.match(text, /set macs \{\n\t\ttype ether_addr\n\t\telements = \{ 02:42:ac:11:00:05 \}/);
    // nft -j as an independent reader of types and flags
    const js = Object.fromEntries([...of(ns, 'set'), ...of(ns, 'map')].map((s) => [s.name, s]));
    assert.deepEqual(js.flows.type, ['ipv4_addr', 'inet_proto', 'inet_service']);
    assert.deepEqual([js.published.type, js.published.map], [['ipv4_addr', 'inet_proto', 'inet_service'], 'ipv4_addr . inet_service']);
    assert.deepEqual(js.ports.flags, ['interval']);
    assert.deepEqual([...js.ifs.elem].sort(), ['docker0', 'eth0']);

    // typed read-back: what was written (timeouts aside: they tick)
    const rs = await nftList(ns, { table: 'nm' });
    for (const s of sets) {
      const got = rs.sets.find((x) => x.name === s.name)!;
      assert.ok(got, s.name);
      assert.equal(got.type, s.type);
      assert.equal(got.dataType, s.dataType);
      const strip = (e: any) => ({ ...e, timeout: undefined, expires: undefined });
      const sortKey = (e: any) => JSON.stringify(e.key);
      assert.deepEqual(
        got.elements!.map(strip).sort((a, b) => sortKey(a).localeCompare(sortKey(b))),
        s.elements!.map(strip).map((e) => (s.name === 'proto' && e.key === 132 ? { ...e, key: 'sctp' } : e)).sort((a, b) => sortKey(a).localeCompare(sortKey(b))),
        s.name,
      );
    }
    assert.equal(rs.sets.find((x) => x.name === 'marks')!.timeout, 3600000);
    assert.ok(rs.sets.find((x) => x.name === 'marks')!.elements!.find((e) => e.key === 0x20)!.expires! <= 600000);

    const del = nftTransaction(ns);
    del.flushSet({ ...T, name: 'v4' });
    del.deleteSet({ ...T, name: 'v6' });
    await del.commit();
    const after = await nftList(ns, { table: 'nm' });
    assert.deepEqual(after.sets.find((s) => s.name === 'v4')!.elements, []);
    assert.ok(!after.sets.some((s) => s.name === 'v6'));
    const d = nftTransaction(ns);
    d.deleteTable({ family: 'inet', name: 'nm' });
    await d.commit();
  });

  it('thousands of elements added and deleted in bulk, in one transaction each', async () => {
    const T = { family: 'inet' as const, table: 'bulk' };
    const pub: NftSet = { ...T, name: 'published', type: 'ipv4_addr . inet_proto . inet_service', dataType: 'ipv4_addr . inet_service' };
    const els = Array.from({ length: 10000 }, (_, i) => ({
      key: ['198.18.0.1', i % 2 ? 'udp' : 'tcp', 10000 + (i >> 1)] as [string, string, number],
      data: [`172.17.${(i >> 8) & 255}.${(i & 255) || 1}`, 80] as [string, number],
      comment: `ctr${i}`,
    }));
    const tx = nftTransaction(ns);
    tx.addTable({ family: 'inet', name: 'bulk' });
    tx.addSet(pub);
    tx.addElements(pub, els);
    await tx.commit();
    const count = () => (of(ns, 'map')[0].elem ?? []).length;
    assert.equal(count(), 10000);
    const del = nftTransaction(ns);
    del.deleteElements(pub, els.slice(0, 6000));
    await del.commit();
    assert.equal(count(), 4000);
    const rs = await nftList(ns, { table: 'bulk' });
    const left = rs.sets[0].elements!;
    assert.equal(left.length, 4000);
    const one = left.find((e) => JSON.stringify(e.key) === JSON.stringify(els[9999].key))!;
    assert.deepEqual(one, els[9999]);
    const d = nftTransaction(ns);
    d.deleteTable({ family: 'inet', name: 'bulk' });
    await d.commit();
  });

  it('concurrent transactions on one namespace all land (the kernel serialises them)', async () => {
    const s: NftSet = { family: 'inet', table: 'conc', name: 's', type: 'inet_proto . inet_service' };
    const tx = nftTransaction(ns);
    tx.addTable({ family: 'inet', name: 'conc' });
    tx.addSet(s);
    await tx.commit();
    await Promise.all(
      Array.from({ length: 32 }, (_, k) => {
        const t = nftTransaction(ns);
        t.addElements(s, Array.from({ length: 50 }, (_, i) => ({ key: [k % 2 ? 'udp' : 'tcp', k * 100 + i + 1] })));
        return t.commit();
      }),
    );
    assert.equal((await nftList(ns, { table: 'conc' })).sets[0].elements!.length, 32 * 50);
    const d = nftTransaction(ns);
    d.deleteTable({ family: 'inet', name: 'conc' });
    await d.commit();
  });

  it('a transaction larger than maxBytes is split only with atomic: false', async () => {
    const T = { family: 'ip' as const, table: 'split' };
    const s: NftSet = { ...T, name: 's', type: 'ipv4_addr . inet_service' };
    const tx = nftTransaction(ns);
    tx.addTable({ family: 'ip', name: 'split' });
    tx.addSet(s);
    tx.addElements(s, Array.from({ length: 4000 }, (_, i) => ({ key: ['10.0.0.1', i + 1] })));
    await assert.rejects(tx.commit({ maxBytes: 65536 }), (e: any) => e.code === 'EMSGSIZE');
    assert.equal(sh('ip', ['netns', 'exec', ns.name!, 'nft', 'list', 'tables']).trim(), '');
    await tx.commit({ maxBytes: 65536, atomic: false });
    assert.equal(of(ns, 'set')[0].elem.length, 4000);
    const d = nftTransaction(ns);
    d.deleteTable({ family: 'ip', name: 'split' });
    await d.commit();
  });
});
