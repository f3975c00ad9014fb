import { strict as assert } from 'node:assert';
import {
  createNamespace, Namespace, nftTransaction, nftList, NftSet, Rule, rule, masquerade, dnatTo, dnatMap, ctStateAccept, vmap,
  withoutCounterValues, Expr, nftRulesetText, NetlinkError,
} from '../../lib';
import { sandboxed, nftj, nftText, uniq, sh } from '../helpers/kernel';

const T = { family: 'inet' as const, table: 'nm' };

/** The rule lines of one chain as `nft -a list chain` prints them: [text, handle]. */
function chainRules(ns: Namespace, chain: string): [string, number][] {
  const out = sh('ip', ['netns', 'exec', ns.name!, 'nft', '-a', 'list', 'chain', 'inet', 'nm', chain]);
  return out
    .split('\n')
    .map((l) => l.trim().match(/^(.*) # handle (\d+)$/))
    .filter((m): m is RegExpMatchArray => !!m && !m[1].startsWith('chain ') && !m[1].startsWith('type '))
    .map((m) => [m[1], Number(m[2])]);
}

describe('31 nft rules: what nft prints, handles, read-back', () => {
  let ns: Namespace;
  before(sandboxed);
  beforeEach(async () => {
    ns = await createNamespace(uniq('nft'));
    const tx = nftTransaction(ns);
    tx.addTable({ family: 'inet', name: 'nm' });
    tx.addChain({ ...T, name: 'nm_pre', type: 'nat', hook: 'prerouting', priority: 'dstnat' });
    tx.addChain({ ...T, name: 'nm_post', type: 'nat', hook: 'postrouting', priority: 'srcnat' });
    tx.addChain({ ...T, name: 'nm_fwd', type: 'filter', hook: 'forward', priority: 'filter', policy: 'drop' });
    tx.addChain({ ...T, name: 'br0_fwd' });
    tx.addSet({ ...T, name: 'published', type: 'ipv4_addr . inet_proto . inet_service', dataType: 'ipv4_addr . inet_service' });
    tx.addSet({ ...T, name: 'published_any', type: 'inet_proto . inet_service', dataType: 'ipv4_addr . inet_service' });
    tx.addSet({ ...T, name: 'dispatch', type: 'ifname', dataType: 'verdict' });
    tx.addSet({ ...T, name: 'nets', type: 'ipv4_addr', flags: ['interval'] });
    await tx.commit();
  });
  afterEach(async () => {
    await ns.delete();
  });

  // Each builder, the chain it goes in, and the line `nft list ruleset` must print for it.
  const cases: { chain: string; exprs: Expr[]; text: string; comment?: string }[] = [
    { chain: 'nm_post', exprs: masquerade({ saddr: '172.17.0.0/16', oifnameNot: 'docker0' }), text: 'ip saddr 172.17.0.0/16 oifname != "docker0" masquerade' },
    { chain: 'nm_post', exprs: masquerade({ saddr: '10.10.0.0/23', oifnameNot: 'br-1' }), text: 'ip saddr 10.10.0.0/23 oifname != "br-1" masquerade' },
    // nft prints `meta l4proto tcp th dport 80` as its shorthand `tcp dport 80`
    { chain: 'nm_pre', exprs: dnatTo({ iifnameNot: 'docker0', l4proto: 'tcp', dport: 80, addr: '172.17.0.5', port: 80 }), text: 'iifname != "docker0" tcp dport 80 dnat ip to 172.17.0.5:80' },
    { chain: 'nm_pre', exprs: dnatMap({ map: 'published' }), text: 'dnat ip to ip daddr . meta l4proto . th dport map @published' },
    { chain: 'nm_pre', exprs: dnatMap({ map: 'published_any', key: ['meta l4proto', 'th dport'], fibLocal: true }), text: 'fib daddr type local dnat ip to meta l4proto . th dport map @published_any' },
    { chain: 'nm_fwd', exprs: ctStateAccept(), text: 'ct state established,related accept comment "conntrack"', comment: 'conntrack' },
    { chain: 'nm_fwd', exprs: vmap('oifname', 'dispatch'), text: 'oifname vmap @dispatch' },
    { chain: 'nm_fwd', exprs: rule().inSet('ip daddr', 'nets').counter().drop().build(), text: 'ip daddr @nets counter packets 0 bytes 0 drop' },
    { chain: 'nm_fwd', exprs: rule().match('iifname', 'br0').match('oifname', 'br0', 'neq').jump('br0_fwd').build(), text: 'iifname "br0" oifname != "br0" jump br0_fwd' },
    { chain: 'nm_fwd', exprs: rule().match('meta l4proto', 'udp').match('th dport', { from: 8000, to: 8080 }).accept().build(), text: 'udp dport 8000-8080 accept' },
    { chain: 'nm_fwd', exprs: rule().match('ip6 daddr', 'fd00:1::/64').ctStatus(['dnat']).accept().build(), text: 'ip6 daddr fd00:1::/64 ct status dnat accept' },
    { chain: 'nm_fwd', exprs: rule().match('iifname', 'veth*').match('meta mark', 0x10).setMark(0x20).return().build(), text: 'iifname "veth*" meta mark 0x00000010 meta mark set 0x00000020 return' },
  ];

  it('each builder: nft list ruleset shows exactly the nft text; handles match nft -a; read-back is identical', async () => {
    const tx = nftTransaction(ns);
    const idx = cases.map((c) => tx.addRule({ ...T, chain: c.chain, exprs: c.exprs, comment: c.comment }));
    const res = await tx.commit();
    const handles = idx.map((i) => res[i].handle!);
    assert.ok(handles.every((h) => Number.isInteger(h) && h > 0));
    const listed = new Map<number, string>();
    for (const chain of ['nm_pre', 'nm_post', 'nm_fwd']) for (const [text, h] of chainRules(ns, chain)) listed.set(h, text);
    cases.forEach((c, i) => assert.equal(listed.get(handles[i]), c.text));

    // nft -j, an independent reader of the structure, for the map-based publish rule
    const jr = nftj(ns.name).filter((o) => o.rule).map((o) => o.rule);
    const j = (i: number) => jr.find((r) => r.handle === handles[i]).expr;
    assert.deepEqual(j(0), [
      { match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: { prefix: { addr: '172.17.0.0', len: 16 } } } },
      { match: { op: '!=', left: { meta: { key: 'oifname' } }, right: 'docker0' } },
      { masquerade: null },
    ]);
    assert.deepEqual(j(5), [
      { match: { op: 'in', left: { ct: { key: 'state' } }, right: ['established', 'related'] } },
      { accept: null },
    ]);
    assert.deepEqual(j(6), [{ vmap: { key: { meta: { key: 'oifname' } }, data: '@dispatch' } }]);
    const pub = jr.find((r) => r.handle === handles[3]);
    assert.deepEqual(pub.expr, [
      { dnat: { family: 'ip', addr: { map: { key: { concat: [{ payload: { protocol: 'ip', field: 'daddr' } }, { meta: { key: 'l4proto' } }, { payload: { protocol: 'th', field: 'dport' } }] }, data: '@published' } } } },
    ]);

    // read back: the same expression lists, comments and handles
    const rs = await nftList(ns, { table: 'nm' });
    cases.forEach((c, i) => {
      const r = rs.rules.find((x) => x.handle === handles[i])!;
      assert.equal(r.chain, c.chain);
      assert.deepStrictEqual(withoutCounterValues(r.exprs), c.exprs, c.text);
      assert.equal(r.comment, c.comment);
    });
  });

  it('nftRulesetText renders the ruleset as nft list ruleset does (whitespace aside), also for rules nft wrote', async () => {
    const tx = nftTransaction(ns);
    for (const c of cases) tx.addRule({ ...T, chain: c.chain, exprs: c.exprs, comment: c.comment });
    tx.addElements({ ...T, name: 'nets', type: 'ipv4_addr', flags: ['interval'] }, [{ key: '10.0.0.0/8', comment: 'ten' }, { key: { from: '192.168.1.10', to: '192.168.1.20' } }]);
    tx.addElements({ ...T, name: 'dispatch', type: 'ifname', dataType: 'verdict' }, [{ key: 'br0', data: { jump: 'br0_fwd' } }]);
    await tx.commit();
    sh('ip', ['netns', 'exec', ns.name!, 'nft', '-f', '-'], {
      input: [
        'table ip other {',
        '  set s { type ipv4_addr . inet_service; flags interval; elements = { 10.0.0.0/8 . 80-90 } }',
        '  map m { type mark : verdict; }',
        '  chain c { type filter hook input priority 10; ip daddr 10.1.2.0/23 counter meta mark set 0x10; ip saddr . tcp dport @s accept; meta mark vmap @m; }',
        '}',
      ].join('\n'),
    });
    // the bridge family: `ip` matches behind an implicit `ether type ip`
    const br = nftTransaction(ns);
    br.addTable({ family: 'bridge', name: 'br' });
    br.addChain({ family: 'bridge', table: 'br', name: 'br_fwd', type: 'filter', hook: 'forward', priority: -200 });
    br.addRule({ family: 'bridge', table: 'br', chain: 'br_fwd', exprs: rule('bridge').match('ip saddr', '10.0.0.0/8').drop().build() });
    await br.commit();
    // bridge port names need CONFIG_NFT_BRIDGE_META: without it the kernel says EOPNOTSUPP and
    // the error points at the expression
    const bm = nftTransaction(ns);
    bm.addRule({ family: 'bridge', table: 'br', chain: 'br_fwd', exprs: rule('bridge').match('meta ibrname', 'br0').accept().build() });
    const withMeta = await bm.commit().then(
      () => true,
      (e) => {
        assert.ok(e instanceof NetlinkError && e.code === 'EOPNOTSUPP' && /at exprs\[0\] \(meta\)/.test(e.message), String(e));
        return false;
      },
    );
    const text = nftText(ns.name);
    assert.match(text, /chain br_fwd \{\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tip saddr 10\.0\.0\.0\/8 drop\n/);
    if (withMeta) assert.match(text, /meta ibrname "br0" accept/);
    const norm = (t: string) => t.replace(/\s+/g, ' ').trim();
    assert.equal(norm(await nftRulesetText(ns)), norm(text));
  });

  it('concatenated lookups and element comments as nft prints them', async () => {
    const allow: NftSet = { ...T, name: 'allow', type: 'ipv4_addr . inet_service', flags: ['interval'] };
    const tx = nftTransaction(ns);
    tx.addSet(allow);
    tx.addElements(allow, [{ key: ['172.17.0.0/16', 53], comment: 'dns' }]);
    const i = tx.addRule({ ...T, chain: 'nm_fwd', exprs: rule().inSet(['ip saddr', 'th dport'], 'allow', { not: true }).log('no').reject().build() });
    const [, , r] = await tx.commit();
    assert.equal(tx.length, 3);
    assert.equal(i, 2);
    assert.deepEqual(chainRules(ns, 'nm_fwd'), [['ip saddr . th dport != @allow log prefix "no" reject', r.handle]]);
    assert.match(nftText(ns.name), /elements = \{ 172\.17\.0\.0\/16 \. 53 comment "dns" \}/);
  });

  it('rules go after/before a given handle, are replaced, deleted by handle; chains and tables flush', async () => {
    const mk = (n: number): Rule => ({ ...T, chain: 'nm_fwd', exprs: rule().match('th dport', n).accept().build(), comment: `r${n}` });
    const tx = nftTransaction(ns);
    [1, 2, 3].forEach((n) => tx.addRule(mk(n)));
    const [h1, h2, h3] = (await tx.commit()).map((r) => r.handle!);
    const t2 = nftTransaction(ns);
    t2.addRule(mk(4), { after: h1 });
    t2.insertRule(mk(0));
    t2.insertRule(mk(5), { before: h3 });
    t2.replaceRule({ ...mk(22), handle: h2 });
    const r2 = await t2.commit();
    const order = () => chainRules(ns, 'nm_fwd').map(([text]) => Number(text.match(/comment "r(\d+)"/)![1]));
    assert.deepEqual(order(), [0, 1, 4, 22, 5, 3]);
    // the replacement takes the old rule's place and handle
    assert.equal(r2[3].handle, h2);
    assert.ok(chainRules(ns, 'nm_fwd').some(([t, h]) => h === h2 && t === 'th dport 22 accept comment "r22"'));

    const t3 = nftTransaction(ns);
    t3.deleteRule({ ...T, chain: 'nm_fwd', handle: h1 });
    t3.deleteRule({ ...T, chain: 'nm_fwd', handle: r2[0].handle! });
    await t3.commit();
    assert.deepEqual(order(), [0, 22, 5, 3]);

    const t4 = nftTransaction(ns);
    t4.flushChain({ ...T, name: 'nm_fwd' });
    t4.addRule({ ...T, chain: 'nm_pre', exprs: dnatMap({ map: 'published' }) });
    await t4.commit();
    assert.deepEqual(chainRules(ns, 'nm_fwd'), []);
    assert.equal(chainRules(ns, 'nm_pre').length, 1);
    const t5 = nftTransaction(ns);
    t5.flushTable({ family: 'inet', name: 'nm' });
    await t5.commit();
    const rs = await nftList(ns, { table: 'nm' });
    assert.equal(rs.rules.length, 0);
    assert.equal(rs.chains.length, 4, 'flushing a table keeps its chains');
    assert.equal(rs.sets.length, 4, 'and its sets');
  });

  it('reads back rules it did not write (nft -f), unknown expressions as raw and re-sendable', async () => {
    sh('ip', ['netns', 'exec', ns.name!, 'nft', '-f', '-'], {
      input: 'add rule inet nm nm_fwd tcp flags syn limit rate 10/second accept\nadd rule inet nm nm_fwd quota 100 mbytes drop\n',
    });
    const rs = await nftList(ns, { table: 'nm' });
    const [a, b] = rs.rules;
    assert.ok(a.exprs.some((e) => e.type === 'limit' && e.rate === 10 && e.unit === 1));
    const q = b.exprs.find((e) => e.type === 'raw')!;
    assert.ok(q && q.type === 'raw' && q.name === 'quota');
    // what we read, we can write back: the copy prints the same
    const tx = nftTransaction(ns);
    tx.addRule({ ...b, handle: undefined });
    await tx.commit();
    const lines = chainRules(ns, 'nm_fwd').map(([t]) => t);
    assert.equal(lines.length, 3);
    assert.equal(lines[1].replace(/used \d+ bytes/, ''), lines[2].replace(/used \d+ bytes/, ''));
  });
});
