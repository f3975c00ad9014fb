import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { createNamespace, Namespace, NetlinkError, nftTransaction } from '../../lib';
import { seq, Step } from '../../lib/seq';
import { sandboxed, uniq } from '../helpers/kernel';
import { ipLink, linkNames } from '../helpers/rtnl';

/**
 * seq() (native/seq.cc): steps of the state store, nf_tables and rtnetlink in one worker call,
 * each only after the one before it succeeded. The bridge's connect and disconnect are built on it
 * (tests 50-56 run them); here its rules one by one.
 */
describe('23 seq: file, nf_tables and rtnetlink steps in one worker call', () => {
  let ns: Namespace;
  let dir: string;
  before(sandboxed);
  beforeEach(async () => {
    ns = await createNamespace(uniq('seq'));
    dir = mkdtempSync('/run/netmodes-seq-');
  });
  afterEach(async () => {
    await ns.delete();
    rmSync(dir, { recursive: true, force: true });
  });

  const veth = (name: string) => ({ op: 'linkAdd' as const, ns, name, kind: 'veth' as const, peer: { name: `${name}p`, ns } });

  it('every step succeeds: all run, in order, each result as its own call gives it', async () => {
    const f = path.join(dir, 'a');
    const out = await seq([
      { kind: 'fs', ops: [{ op: 'reserve', file: f, data: 'me' }, { op: 'list', dir }], claims: true },
      { kind: 'rtnl', ops: [veth('sq0'), { op: 'linkSet', ns, link: 'sq0', up: true }] },
      { kind: 'fs', ops: [{ op: 'read', file: f }] },
    ]);
    assert.deepEqual(out.map((o) => o.status), ['fulfilled', 'fulfilled', 'fulfilled']);
    assert.deepEqual((out[0] as { value: unknown }).value, [true, ['a']]);
    const created = (out[1] as { value: Array<{ index: number } | undefined> }).value;
    assert.equal(created[0]?.index, ipLink('sq0', ns.name).ifindex);
    assert.deepEqual((out[2] as { value: unknown }).value, ['me']);
  });

  it('an fs step marked claims stops the sequence when a reserve finds the file taken', async () => {
    const f = path.join(dir, 'a');
    writeFileSync(f, 'somebody');
    const out = await seq([{ kind: 'fs', ops: [{ op: 'reserve', file: f, data: 'me' }], claims: true }, { kind: 'rtnl', ops: [veth('sq1')] }]);
    assert.deepEqual(out.map((o) => o.status), ['fulfilled', 'skipped']);
    assert.deepEqual((out[0] as { value: unknown }).value, [false]);
    assert.equal(readFileSync(f, 'utf8'), 'somebody');
    assert.deepEqual(linkNames(ns.name), ['lo'], 'the veth step did not run');
  });

  it("...or when a listed directory holds a name the step did not reserve (without claims, it goes on)", async () => {
    writeFileSync(path.join(dir, 'other'), 'x');
    const steps = (name: string, claims: boolean): Step[] => [
      { kind: 'fs', ops: [{ op: 'reserve', file: path.join(dir, name), data: 'me' }, { op: 'list', dir }], claims },
      { kind: 'rtnl', ops: [veth(name)] },
    ];
    const out = await seq(steps('sq2', true));
    assert.deepEqual(out.map((o) => o.status), ['fulfilled', 'skipped']);
    assert.deepEqual((out[0] as { value: unknown }).value, [true, ['other', 'sq2']]);
    assert.deepEqual(linkNames(ns.name), ['lo']);
    const plain = await seq(steps('sq3', false));
    assert.deepEqual(plain.map((o) => o.status), ['fulfilled', 'fulfilled']);
    assert.ok(linkNames(ns.name).includes('sq3'));
  });

  it('a failing rtnetlink step rejects with its NetlinkError (index, results); the steps after it are skipped', async () => {
    const f = path.join(dir, 'after');
    const out = await seq([
      { kind: 'rtnl', ops: [veth('sq4'), { op: 'linkDel', ns, link: 'nosuch' }, { op: 'linkSet', ns, link: 'sq4', up: true }] },
      { kind: 'fs', ops: [{ op: 'write', file: f, data: 'x' }] },
    ]);
    assert.deepEqual(out.map((o) => o.status), ['rejected', 'skipped']);
    const e = (out[0] as { reason: NetlinkError }).reason;
    assert.ok(e instanceof NetlinkError);
    assert.deepEqual([e.code, e.index, e.op], ['ENODEV', 1, 'RTM_DELLINK']);
    assert.equal((e as NetlinkError & { results: unknown[] }).results.length, 1);
    assert.ok(!ipLink('sq4', ns.name).flags.includes('UP'), 'op 2 not attempted');
    assert.ok(!existsSync(f), 'the fs step did not run');
  });

  it('a pipelined rtnetlink step settles every op and fails when one did', async () => {
    const out = await seq([
      { kind: 'rtnl', ops: [{ op: 'linkDel', ns, link: 'nosuch' }, veth('sq5')], pipelined: true },
      { kind: 'rtnl', ops: [veth('sq6')] },
    ]);
    assert.deepEqual(out.map((o) => o.status), ['fulfilled', 'skipped']);
    const settled = (out[0] as { value: PromiseSettledResult<unknown>[] }).value;
    assert.deepEqual(settled.map((s) => s.status), ['rejected', 'fulfilled']);
    assert.equal(((settled[0] as PromiseRejectedResult).reason as NetlinkError).code, 'ENODEV');
    assert.deepEqual(linkNames(ns.name).filter((n) => n.startsWith('sq')), ['sq5', 'sq5p']);
  });

  it("a failing nf_tables step rejects with the transaction's error, in its operations' terms", async () => {
    const tx = nftTransaction(ns);
    tx.addChain({ family: 'inet', table: 'nosuch', name: 'c' });
    const out = await seq([{ kind: 'nft', tx }, { kind: 'rtnl', ops: [veth('sq7')] }]);
    assert.deepEqual(out.map((o) => o.status), ['rejected', 'skipped']);
    const e = (out[0] as { reason: NetlinkError }).reason;
    assert.deepEqual([e.code, e.op, e.index], ['ENOENT', 'NFT_MSG_NEWCHAIN', 0]);
    assert.match(e.message, /chain inet nosuch c/);
    assert.deepEqual(linkNames(ns.name), ['lo']);
  });

  it('a lock that would have to wait stops the sequence (its result false)', async () => {
    const lockFile = path.join(dir, 'lock');
    const held = await seq([{ kind: 'fs', ops: [{ op: 'lock', file: lockFile, exclusive: true }] }]);
    const fd = (held[0] as { value: number[] }).value[0];
    assert.equal(typeof fd, 'number');
    try {
      const out = await seq([{ kind: 'fs', ops: [{ op: 'lock', file: lockFile, exclusive: false }] }, { kind: 'rtnl', ops: [veth('sq8')] }]);
      assert.deepEqual(out.map((o) => o.status), ['fulfilled', 'skipped']);
      assert.deepEqual((out[0] as { value: unknown }).value, [false]);
    } finally {
      (await import('../../lib/state/store')).FileLock.adopt(fd)!.release();
    }
    assert.deepEqual(linkNames(ns.name), ['lo']);
  });
});
