import { strict as assert } from 'node:assert';
import { readdirSync, readlinkSync } from 'node:fs';
import {
  createNamespace, Namespace, nftTransaction, nftList, NftSet, NetlinkError, ConfigError, rule, masquerade, dnatMap,
} from '../../lib';
import { sandboxed, nftText, uniq } from '../helpers/kernel';

const T = { family: 'inet' as const, table: 'nm' };
const PUB: NftSet = { ...T, name: 'published', type: 'ipv4_addr . inet_proto . inet_service', dataType: 'ipv4_addr . inet_service' };

/** Rejects with a NetlinkError matching `want`. */
async function fails(p: Promise<unknown>, want: Partial<NetlinkError>): Promise<NetlinkError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof NetlinkError, `not a NetlinkError: ${e}`);
    for (const [k, v] of Object.entries(want)) assert.deepEqual((e as any)[k], v, `${k} in ${(e as Error).message}`);
    return e as NetlinkError;
  }
  throw new assert.AssertionError({ message: 'did not fail' });
}

describe('33 nft errors: typed, naming the operation, and nothing changes', () => {
  let ns: Namespace;
  let baseline: string;
  before(sandboxed);
  beforeEach(async () => {
    ns = await createNamespace(uniq('nft'));
    const tx = nftTransaction(ns);
    tx.addTable({ family: 'inet', name: 'nm' });
    tx.addChain({ ...T, name: 'nm_post', type: 'nat', hook: 'postrouting', priority: 'srcnat' });
    tx.addSet({ ...PUB, elements: [{ key: ['198.18.0.1', 'tcp', 80], data: ['172.17.0.5', 80] }] });
    await tx.commit();
    baseline = nftText(ns.name);
  });
  afterEach(async () => {
    await ns.delete();
  });

  it('unknown table: ENOENT on NFT_MSG_NEWCHAIN, index 0, the chain named', async () => {
    const tx = nftTransaction(ns);
    tx.addChain({ family: 'inet', table: 'nosuch', name: 'c' });
    const e = await fails(tx.commit(), { code: 'ENOENT', errno: 2, op: 'NFT_MSG_NEWCHAIN', index: 0 });
    assert.match(e.message, /chain inet nosuch c/);
    assert.equal(nftText(ns.name), baseline);
  });

  it('unknown set: ENOENT on NFT_MSG_NEWSETELEM', async () => {
    const tx = nftTransaction(ns);
    tx.addElements({ ...PUB, name: 'nosuch' }, [{ key: ['198.18.0.1', 'tcp', 81], data: ['172.17.0.5', 81] }]);
    const e = await fails(tx.commit(), { code: 'ENOENT', op: 'NFT_MSG_NEWSETELEM', index: 0 });
    assert.match(e.message, /elements of set inet nm nosuch, at set;/);
    assert.equal(nftText(ns.name), baseline);
  });

  it("a failed commit's error carries the frames of the async functions that awaited it", async () => {
    async function commitForCaller(): Promise<unknown> {
      const tx = nftTransaction(ns);
      tx.addChain({ family: 'inet', table: 'nosuch', name: 'c' });
      return await tx.commit();
    }
    const e = await fails(commitForCaller(), { code: 'ENOENT' });
    assert.match(e.stack ?? '', /^NetlinkError: .*chain inet nosuch c/);
    assert.match(e.stack ?? '', /at async commitForCaller /);
  });

  it('an element of the wrong type is a ConfigError before anything is sent', () => {
    const tx = nftTransaction(ns);
    // (80 is a protocol number, so the port is what is wrong)
    assert.throws(() => tx.addElements(PUB, [{ key: ['198.18.0.1', 80, 'tcp'], data: ['172.17.0.5', 80] }]), (e: ConfigError) => e instanceof ConfigError && e.field === 'elements[0].key[2]');
    assert.throws(() => tx.addElements(PUB, [{ key: ['198.18.0.1', 'xtp', 80], data: ['172.17.0.5', 80] }]), (e: ConfigError) => e instanceof ConfigError && e.field === 'elements[0].key[1]');
    assert.throws(() => tx.addElements(PUB, [{ key: ['198.18.0.1', 'tcp', 80], data: 'accept' }]), (e: ConfigError) => e instanceof ConfigError && e.field === 'elements[0].data');
    assert.equal(tx.length, 0);
  });

  it('duplicate elements: create fails with EEXIST, add is idempotent, add with other data is EEXIST too', async () => {
    const dup = { key: ['198.18.0.1', 'tcp', 80] as [string, string, number], data: ['172.17.0.5', 80] as [string, number] };
    const c = nftTransaction(ns);
    const many = Array.from({ length: 3000 }, (_, i) => ({ key: ['198.18.0.2', 'tcp', i + 1] as [string, string, number], data: ['172.17.0.6', 81] as [string, number] }));
    c.createElements(PUB, [...many, dup]);
    const e = await fails(c.commit(), { code: 'EEXIST', op: 'NFT_MSG_NEWSETELEM', index: 0 });
    // the duplicate is named by its index in the operation, across the messages it was split into
    assert.match(e.message, /, at elements\[3000\];/);
    assert.equal(nftText(ns.name), baseline, 'the other elements were not added either');
    const a = nftTransaction(ns);
    a.addElements(PUB, [dup]);
    await a.commit();
    const b = nftTransaction(ns);
    b.addElements(PUB, [{ ...dup, data: ['172.17.0.9', 80] }]);
    await fails(b.commit(), { code: 'EEXIST' });
    assert.equal(nftText(ns.name), baseline);
    // re-pointing a key: delete and add in one transaction
    const u = nftTransaction(ns);
    u.deleteElements(PUB, [{ key: dup.key }]);
    u.addElements(PUB, [{ ...dup, data: ['172.17.0.9', 80] }]);
    await u.commit();
    assert.deepEqual((await nftList(ns)).sets[0].elements, [{ key: dup.key, data: ['172.17.0.9', 80] }]);
    const d = nftTransaction(ns);
    d.deleteElements(PUB, [{ key: ['198.18.0.1', 'tcp', 99] }]);
    await fails(d.commit(), { code: 'ENOENT', op: 'NFT_MSG_DELSETELEM' });
    const x = nftTransaction(ns);
    x.destroyElements(PUB, [{ key: ['198.18.0.1', 'tcp', 99] }]);
    await x.commit();
  });

  it('a jump to a missing chain: ENOENT, and the rule is named', async () => {
    const tx = nftTransaction(ns);
    tx.addRule({ ...T, chain: 'nm_post', exprs: rule().jump('nowhere').build(), comment: 'lost' });
    const e = await fails(tx.commit(), { code: 'ENOENT', op: 'NFT_MSG_NEWRULE', index: 0 });
    // the kernel's NLMSGERR_ATTR_OFFS points at the expression: the jump, not the rule's chain
    assert.match(e.message, /rule "lost" in chain inet nm nm_post, at exprs\[0\] \(immediate\);/);
    const t2 = nftTransaction(ns);
    t2.addRule({ ...T, chain: 'nowhere', exprs: rule().accept().build() });
    assert.match((await fails(t2.commit(), { code: 'ENOENT' })).message, /, at chain;/);
    assert.equal(nftText(ns.name), baseline);
  });

  it('the LAST operation fails after valid ones: the whole transaction is rolled back', async () => {
    const tx = nftTransaction(ns);
    tx.addTable({ family: 'ip', name: 'other' });
    tx.addChain({ family: 'ip', table: 'other', name: 'c' });
    tx.addSet({ family: 'ip', table: 'other', name: 's', type: 'ipv4_addr', elements: [{ key: '10.0.0.1' }] });
    tx.addElements(PUB, [{ key: ['198.18.0.1', 'udp', 53], data: ['172.17.0.5', 53] }]);
    tx.deleteElements(PUB, [{ key: ['198.18.0.1', 'tcp', 80] }]);
    tx.addRule({ ...T, chain: 'nm_post', exprs: masquerade({ saddr: '172.17.0.0/16', oifnameNot: 'docker0' }) });
    tx.flushChain({ ...T, name: 'nm_post' });
    tx.addRule({ ...T, chain: 'nm_post', exprs: rule().goto('nowhere').build() });
    const e = await fails(tx.commit(), { code: 'ENOENT', op: 'NFT_MSG_NEWRULE', index: 7 });
    assert.match(e.message, /rolled back/);
    assert.equal(nftText(ns.name), baseline);
    const rs = await nftList(ns);
    assert.deepEqual(rs.tables.map((t) => t.name), ['nm']);
    assert.equal(rs.sets[0].elements!.length, 1);
  });

  it('the index counts operations, not messages (a set with its elements is one)', async () => {
    const tx = nftTransaction(ns);
    tx.addSet({ family: 'inet', table: 'nm', name: 'more', type: 'inet_service', elements: [{ key: 1 }, { key: 2 }] });
    tx.addRule({ ...T, chain: 'missing', exprs: [] });
    await fails(tx.commit(), { index: 1, op: 'NFT_MSG_NEWRULE' });
  });

  it('exists / missing: createTable EEXIST, deleteTable ENOENT, destroyTable is quiet, deleteChain in use EBUSY', async () => {
    const a = nftTransaction(ns);
    a.createTable({ family: 'inet', name: 'nm' });
    await fails(a.commit(), { code: 'EEXIST', op: 'NFT_MSG_NEWTABLE' });
    const b = nftTransaction(ns);
    b.deleteTable({ family: 'ip', name: 'nosuch' });
    await fails(b.commit(), { code: 'ENOENT', op: 'NFT_MSG_DELTABLE' });
    const c = nftTransaction(ns);
    c.destroyTable({ family: 'ip', name: 'nosuch' });
    await c.commit();
    const d = nftTransaction(ns);
    d.addChain({ ...T, name: 'target' });
    d.addRule({ ...T, chain: 'nm_post', exprs: rule().jump('target').build() });
    await d.commit();
    const e = nftTransaction(ns);
    e.deleteChain({ ...T, name: 'target' });
    await fails(e.commit(), { code: 'EBUSY', op: 'NFT_MSG_DELCHAIN' });
    const f = nftTransaction(ns);
    f.addSet({ ...PUB, type: 'ipv4_addr' });
    await fails(f.commit(), { code: 'EEXIST', op: 'NFT_MSG_NEWSET' });
  });

  it('a rule using a map of the wrong shape fails in the kernel (EINVAL on the lookup) and names the rule', async () => {
    const tx = nftTransaction(ns);
    tx.addSet({ ...T, name: 'ports', type: 'inet_service' });
    tx.addRule({ ...T, chain: 'nm_post', exprs: dnatMap({ map: 'ports' }), comment: 'bad map' });
    const e = await fails(tx.commit(), { op: 'NFT_MSG_NEWRULE', index: 1 });
    assert.ok(['EINVAL', 'ERANGE', 'EOPNOTSUPP'].includes(e.code), e.code);
    assert.match(e.message, /rule "bad map"/);
    assert.equal(nftText(ns.name), baseline);
  });

  it('no descriptor leaks: hundreds of failing and succeeding transactions and lists', async () => {
    // sockets only: other descriptors come and go with the child processes of the helpers
    const fds = () =>
      readdirSync('/proc/self/fd').filter((f) => {
        try {
          return readlinkSync(`/proc/self/fd/${f}`).startsWith('socket:');
        } catch {
          return false;
        }
      }).length;
    const before = fds();
    for (let i = 0; i < 200; i++) {
      const ok = nftTransaction(ns);
      ok.addElements(PUB, [{ key: ['198.18.0.2', 'udp', 1000 + i], data: ['172.17.0.5', 53] }]);
      await ok.commit();
      const bad = nftTransaction(ns);
      bad.addRule({ ...T, chain: 'nowhere', exprs: [] });
      await assert.rejects(bad.commit(), NetlinkError);
      if (i % 20 === 0) await nftList(ns);
    }
    assert.equal(fds(), before);
    assert.equal((await nftList(ns)).sets[0].elements!.length, 201);
  });

  it('genid: a transaction computed from an old generation fails with ERESTART', async () => {
    const { gen } = await nftList(ns, { elements: false, rules: false });
    const other = nftTransaction(ns);
    other.addChain({ ...T, name: 'meanwhile' });
    await other.commit();
    const tx = nftTransaction(ns);
    tx.addChain({ ...T, name: 'mine' });
    await fails(tx.commit({ genid: gen }), { code: 'ERESTART', op: 'NFNL_MSG_BATCH_BEGIN' });
    const ok = nftTransaction(ns);
    ok.addChain({ ...T, name: 'mine' });
    await ok.commit({ genid: (await nftList(ns, { elements: false, rules: false })).gen });
  });
});
