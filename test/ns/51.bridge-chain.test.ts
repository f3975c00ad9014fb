/**
 * The chained fast path (lib/modes/bridge-chain.ts, native/chain.cc): a connect and a disconnect
 * each take ONE worker call, land exactly as the usual path does, and every way a chain can stop
 * short carries on the usual way (the same errors, nothing changed, nothing left behind).
 */
import { strict as assert } from 'node:assert';
import { ChildProcess, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createBridgeNetwork, createNamespace, openBridgeNetwork, BridgeNetwork, Namespace, NetmodesError, REAP_GROUP, reapDetached } from '../../lib';
import { native } from '../../lib/native';
import * as store from '../../lib/state/store';
import { PREPARED_MAX, preparedCount } from '../../lib/modes/bridge-disconnect';
import { sandboxed, startServer, connect, ipj, nftj, ping, uniq } from '../helpers/kernel';

const CALLS = ['chainRun', 'rtnlExec', 'fsBatch', 'nftTransact', 'nsOpen', 'nsPrepare', 'lock'] as const;

/** Counts the addon's calls while `fn` runs. */
async function counted<T>(fn: () => Promise<T>): Promise<{ value: T; calls: Record<string, number> }> {
  const n = native<Record<string, (...a: unknown[]) => unknown>>();
  const calls: Record<string, number> = {};
  const orig = CALLS.map((k) => n[k]);
  CALLS.forEach((k, i) => {
    n[k] = (...a: unknown[]) => {
      calls[k] = (calls[k] ?? 0) + 1;
      return orig[i](...a);
    };
  });
  try {
    return { value: await fn(), calls };
  } finally {
    CALLS.forEach((k, i) => (n[k] = orig[i]));
  }
}

/** Every file under the network's store directory and the port claims (names relative to the state dir). */
function storeFiles(): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (!e.name.endsWith('.lock')) out.push(path.relative(store.stateDir(), p));
    }
  };
  walk(store.stateDir());
  return out.sort();
}

/** The published-port elements in our tables, as text. */
function portElements(): string[] {
  return nftj()
    .filter((o: any) => o.map || o.set)
    .flatMap((o: any) => ((o.map ?? o.set).elem ?? []).map((e: any) => JSON.stringify(e)))
    .filter((t: string) => /8[0-9]{3}|9[0-9]{3}/.test(t))
    .sort();
}

describe('51 bridge mode: the chained connect and disconnect', function () {
  this.timeout(60000);
  let net: BridgeNetwork;
  const nss: Namespace[] = [];
  const servers: ChildProcess[] = [];
  const mkns = async () => {
    const n = await createNamespace(uniq('ch'));
    nss.push(n);
    return n;
  };

  before(async () => {
    sandboxed();
    net = await createBridgeNetwork({ name: 'chain', subnet: '10.67.0.0/24' });
    // The first connect of a process learns the bridge's index the usual way.
    const warm = await mkns();
    await net.connect(warm, { id: 'warm' });
  });
  after(async () => {
    servers.forEach((s) => s.kill());
    await net?.remove({ force: true });
    await Promise.all(nss.map((n) => n.delete()));
  });

  it('a connect by namespace path is one worker call (nothing else), and lands as the usual path does', async () => {
    const ns = await mkns();
    const { value: ep, calls } = await counted(() => net.connect(ns.path, { id: 'fast', ports: ['8181:80'] }));
    assert.deepEqual(calls, { chainRun: 1 });
    // The kernel: the address, the default route, the veth on the bridge, up and marked; the
    // published port's element; traffic.
    const addrs = ipj(['-4', 'addr', 'show', 'dev', 'eth0'], ns.name!)[0].addr_info.map((a: any) => `${a.local}/${a.prefixlen}`);
    assert.deepEqual(addrs, [`${ep.ip}/24`]);
    assert.equal(ipj(['route', 'show', 'default'], ns.name!)[0].gateway, net.gateway);
    const veth = ipj(['-d', 'link', 'show', 'dev', ep.hostVeth])[0];
    assert.equal(veth.master, net.bridge);
    assert.ok(veth.flags.includes('UP'));
    assert.match(veth.ifalias, /^netmodes:/);
    assert.ok(portElements().some((t) => t.includes('8181') && t.includes(ep.ip)), 'the published port is an element');
    servers.push(await startServer(ns.name, 'tcp', 80, 'fast'));
    assert.match(connect(undefined, 'tcp', net.gateway, 8181) ?? '', /^fast /);
    // The store: the record and the claims, as ever.
    const files = storeFiles();
    assert.ok(files.some((f) => f.endsWith('endpoints/fast.json')));
    assert.ok(files.some((f) => f.includes(`ports/tcp/8181/`)));
  });

  it('a disconnect is one worker call, and leaves nothing behind', async () => {
    const ns = await mkns();
    const before = storeFiles();
    const ep = await net.connect(ns, { id: 'gone', ports: ['8282:80'] });
    const { calls } = await counted(() => ep.disconnect());
    assert.deepEqual(calls, { chainRun: 1 });
    assert.deepEqual(storeFiles(), before, 'record and claims gone');
    assert.ok(!portElements().some((t) => t.includes('8282')), 'element gone');
    const veth = ipj(['-d', 'link', 'show', 'dev', ep.hostVeth])[0];
    const d = veth.linkinfo?.info_slave_data;
    assert.deepEqual([Number(veth.group), d?.locked, d?.learning, d?.flood, d?.mcast_flood, d?.bcast_flood], [REAP_GROUP, true, false, false, false, false], 'cut off at once');
    await reapDetached();
    assert.deepEqual(ipj(['link', 'show']).filter((l: any) => l.ifname === ep.hostVeth), []);
    assert.deepEqual(ipj(['neigh', 'show', 'dev', net.bridge]).filter((n: any) => n.dst === ep.ip), [], 'neighbour entry gone');
  });

  it('a port another address publishes stops the chain at its claims: EPORTINUSE, nothing changed', async () => {
    const a = await mkns();
    const b = await mkns();
    await net.connect(a, { id: 'lo-pub', ports: ['127.0.0.1:8383:80'] });
    const files = storeFiles();
    const links = ipj(['link', 'show']).length;
    const els = portElements();
    const { calls } = await counted(() =>
      net.connect(b.path, { id: 'any-pub', ports: ['8383:80'] }).then(
        () => assert.fail('connected'),
        (e) => {
          assert.ok(e instanceof NetmodesError && e.code === 'EPORTINUSE', String(e));
        },
      ),
    );
    assert.equal(calls.chainRun, 1);
    assert.deepEqual(storeFiles(), files);
    assert.equal(ipj(['link', 'show']).length, links);
    assert.deepEqual(portElements(), els);
  });

  it('an address another process won meanwhile: the early veth goes, the winner keeps its neighbour entry (EADDRINUSE)', async () => {
    // The chain makes the veth and the container's side beside its claims (rtnl.early); a lost
    // claim takes back only that veth, never the host's entry for the address (the winner's).
    const w = await mkns();
    const l = await mkns();
    const script = `
      const m = require(${JSON.stringify(path.join(__dirname, '..', '..', 'lib'))});
      m.openBridgeNetwork('chain').then((n) => n.connect(${JSON.stringify(w.path)}, { id: 'winner', ip: '10.67.0.200' })).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });`;
    // (under scripts/sanitize.sh the addon is built with ASan: the child needs its runtime too)
    const asan = process.env.NETMODES_ASAN_PRELOAD;
    execFileSync(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...(asan ? { LD_PRELOAD: asan } : {}) } });
    const veths = ipj(['link', 'show', 'type', 'veth']).length;
    const { calls } = await counted(() =>
      net.connect(l.path, { id: 'loser', ip: '10.67.0.200' }).then(
        () => assert.fail('connected'),
        (e) => assert.ok(e instanceof NetmodesError && e.code === 'EADDRINUSE', String(e)),
      ),
    );
    assert.equal(calls.chainRun, 1);
    assert.equal(ipj(['link', 'show', 'type', 'veth']).length, veths, 'the early veth is gone');
    assert.deepEqual(ipj(['link', 'show'], l.name!).map((x: any) => x.ifname), ['lo'], 'nothing left in the loser');
    const entry = ipj(['neigh', 'show', 'dev', net.bridge]).filter((n: any) => n.dst === '10.67.0.200');
    assert.equal(entry.length, 1, "the winner's neighbour entry stays");
    assert.ok(entry[0].state.includes('PERMANENT'));
    assert.ok(ping('10.67.0.200', undefined), 'the host reaches the winner');
    assert.ok(ping(net.gateway, w.name!), 'the winner reaches the gateway');
    await net.disconnect('winner');
  });

  it('a record rewritten by another process stops the disconnect chain; the usual way still removes everything', async () => {
    const ns = await mkns();
    const before = storeFiles();
    const ep = await net.connect(ns, { id: 'rewritten', ports: ['8484:80'] });
    const file = path.join(store.stateDir(), 'networks', 'chain', 'endpoints', 'rewritten.json');
    fs.writeFileSync(file, JSON.stringify(JSON.parse(fs.readFileSync(file, 'utf8')), null, 1));
    const { calls } = await counted(() => ep.disconnect());
    assert.equal(calls.chainRun, 1);
    assert.ok((calls.rtnlExec ?? 0) >= 1 && (calls.fsBatch ?? 0) >= 1, 'carried on the usual way');
    assert.deepEqual(storeFiles(), before);
    assert.ok(!portElements().some((t) => t.includes('8484')));
  });

  it('a chain whose kernel part fails (the namespace already routes elsewhere) finishes the usual way', async () => {
    const other = await createBridgeNetwork({ name: 'chain2', subnet: '10.68.0.0/24' });
    try {
      const ns = await mkns();
      await other.connect(ns, { id: 'first' }); // learns chain2's bridge; gives ns its default route
      const { value: ep, calls } = await counted(() => net.connect(ns.path, { id: 'second', ifname: 'eth1' }));
      assert.equal(calls.chainRun, 1);
      assert.ok((calls.rtnlExec ?? 0) >= 1, 'carried on the usual way');
      const addrs = ipj(['-4', 'addr', 'show', 'dev', 'eth1'], ns.name!)[0].addr_info.map((a: any) => a.local);
      assert.deepEqual(addrs, [ep.ip]);
      // The veth the chain made was deleted and made again: exactly one, on the bridge, marked.
      const ours = ipj(['-d', 'link', 'show', 'master', net.bridge]).filter((l: any) => l.ifname === ep.hostVeth);
      assert.equal(ours.length, 1);
      assert.match(ours[0].ifalias, /^netmodes:/);
      await ep.disconnect();
    } finally {
      await other.remove({ force: true });
    }
  });

  it('on a dense dual-stack network too: a connect to a known leaf is one call, and both families work', async () => {
    const dense = await createBridgeNetwork({ name: 'chaind', subnet: '10.69.0.0/24', portsPerBridge: 4, ipv6: { subnet: 'fd69::/64' } });
    try {
      const [a, b] = [await mkns(), await mkns()];
      const first = await dense.connect(a, { ip: '10.69.0.9' }); // makes leaf 2 the usual way
      const { value: second, calls } = await counted(() => dense.connect(b.path, { ip: '10.69.0.10' }));
      assert.deepEqual(calls, { chainRun: 1 });
      assert.equal(second.ipv6, 'fd69::a');
      assert.ok(ping(first.ip, b.name!) && ping(first.ipv6!, b.name!), 'both families on the leaf');
      assert.ok(ping(dense.gateway, b.name!) && ping('fd69::1', b.name!), 'the gateway over both');
      const { calls: dc } = await counted(() => second.disconnect());
      assert.deepEqual(dc, { chainRun: 1 });
      assert.deepEqual(ipj(['-6', 'neigh', 'show']).filter((n: any) => n.dst === 'fd69::a'), [], 'its v6 neighbour entry went too');
    } finally {
      await dense.remove({ force: true });
    }
  });

  it('on a dense icc=false network: a connect to a known leaf is one call with two transactions (the host\'s and the leaf\'s), and the leaf isolates it', async () => {
    const dense = await createBridgeNetwork({ name: 'chainz', subnet: '10.71.0.0/24', portsPerBridge: 4, icc: false });
    try {
      const [a, b, c] = [await mkns(), await mkns(), await mkns()];
      const first = await dense.connect(a, { ip: '10.71.0.9' }); // makes leaf 2 the usual way
      const { value: second, calls } = await counted(() => dense.connect(b.path, { ip: '10.71.0.10' }));
      assert.deepEqual(calls, { chainRun: 1 });
      const leaf = `nm${dense.id.slice(0, 8)}b2`;
      const noicc = () => nftj(leaf).filter((o: any) => o.set?.name === 'noicc').flatMap((o: any) => o.set.elem ?? []).map((e: any) => e.elem?.val ?? e);
      assert.deepEqual(noicc().sort(), [first.hostVeth, second.hostVeth].sort(), 'both ports in the leaf\'s noicc set');
      assert.ok(!ping(first.ip, b.name!), 'same leaf, unlinked: isolated');
      assert.ok(ping(dense.gateway, b.name!), 'the gateway answers');
      const { value: third, calls: lc } = await counted(() => dense.connect(c.path, { ip: '10.71.0.11', links: [{ endpoint: first }] }));
      assert.deepEqual(lc, { chainRun: 1, fsBatch: 1 }, 'with the link target\'s record read again after');
      assert.ok(ping(first.ip, c.name!), 'linked: talks');
      const { calls: dc } = await counted(() => second.disconnect());
      assert.deepEqual(dc, { chainRun: 1 });
      assert.deepEqual(noicc().sort(), [first.hostVeth, third.hostVeth].sort(), 'its element went');
      assert.deepEqual(await dense.check(third.id), []);
    } finally {
      await dense.remove({ force: true });
    }
  });

  it('a namespace path that is no namespace fails before any claim', async () => {
    const files = storeFiles();
    const bogus = path.join(os.tmpdir(), uniq('notns'));
    fs.writeFileSync(bogus, '');
    try {
      await assert.rejects(net.connect(bogus, { id: 'bogus' }), (e: any) => e.code === 'EINVAL' || e.code === 'ENOENT');
      await assert.rejects(net.connect('/run/netns/does-not-exist', { id: 'bogus' }), (e: any) => e.code === 'ENOENT');
    } finally {
      fs.unlinkSync(bogus);
    }
    assert.deepEqual(storeFiles(), files);
  });

  it('chainRun itself: the kernel steps run only when the fs step went as expected', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chain-'));
    const n = native<{ chainRun(spec: unknown): Promise<any> }>();
    const nsHost = native().nsCurrent();
    const probe = [{ op: 'linkGet', ns: nsHost, link: 'lo' }];
    try {
      // Every reserve won, the read as expected: on to rtnl.
      fs.writeFileSync(path.join(dir, 'r'), 'abc');
      let o = await n.chainRun({ fs: [{ op: 'reserve', file: path.join(dir, 'a'), data: 'x' }, { op: 'read', file: path.join(dir, 'r') }], expect: [null, 'abc'], rtnl: { ops: probe } });
      assert.equal(o.go, true);
      assert.equal(o.rtnl[0].name, 'lo');
      // A lost reserve: no kernel step.
      o = await n.chainRun({ fs: [{ op: 'reserve', file: path.join(dir, 'a'), data: 'x' }], rtnl: { ops: probe } });
      assert.deepEqual([o.fs, o.go, o.rtnl], [[false], false, undefined]);
      // A read that differs, a list with another name: no kernel step.
      o = await n.chainRun({ fs: [{ op: 'read', file: path.join(dir, 'r') }], expect: ['abd'], rtnl: { ops: probe } });
      assert.deepEqual([o.go, o.rtnl], [false, undefined]);
      fs.mkdirSync(path.join(dir, 'd'));
      fs.writeFileSync(path.join(dir, 'd', 'other'), '');
      o = await n.chainRun({ fs: [{ op: 'list', dir: path.join(dir, 'd') }], expect: [['mine']], rtnl: { ops: probe } });
      assert.deepEqual([o.go, o.rtnl], [false, undefined]);
      // `after` runs only once the kernel steps succeeded.
      o = await n.chainRun({ rtnl: { ops: [{ op: 'linkGet', ns: nsHost, link: 'nosuch0' }] }, after: [{ op: 'remove', file: path.join(dir, 'r') }] });
      assert.equal(o.rtnl.code, 'ENODEV');
      assert.equal(o.after, undefined);
      assert.ok(fs.existsSync(path.join(dir, 'r')));
      // quiet: on success an array of holes (nothing converted), a failure as ever.
      o = await n.chainRun({ rtnl: { ops: probe, quiet: true } });
      assert.ok(Array.isArray(o.rtnl) && o.rtnl.length === 1 && o.rtnl[0] === undefined);
      o = await n.chainRun({ rtnl: { ops: [{ op: 'linkGet', ns: nsHost, link: 'nosuch0' }], quiet: true } });
      assert.equal(o.rtnl.code, 'ENODEV');
      // early: the ops before it run beside the fs step once the lock is held; the rest only if
      // that went well (else rtnlGated, and `after` does not run).
      const lockOp = { op: 'lock', file: path.join(dir, 'lock'), exclusive: false };
      const two = { ops: [probe[0], { op: 'linkGet', ns: nsHost, link: 'lo' }], early: 1 };
      o = await n.chainRun({ fs: [lockOp, { op: 'reserve', file: path.join(dir, 'a'), data: 'x' }], rtnl: two, after: [{ op: 'remove', file: path.join(dir, 'r') }] });
      fs.closeSync(o.fs[0]);
      assert.deepEqual([o.go, o.rtnlGated, o.rtnl[0].name, o.after], [false, true, 'lo', undefined]);
      assert.ok(fs.existsSync(path.join(dir, 'r')));
      o = await n.chainRun({ fs: [lockOp, { op: 'reserve', file: path.join(dir, 'e'), data: 'x' }], rtnl: two, after: [{ op: 'remove', file: path.join(dir, 'r') }] });
      fs.closeSync(o.fs[0]);
      assert.deepEqual([o.go, o.rtnlGated, o.rtnl.map((r: any) => r.name), o.after], [true, undefined, ['lo', 'lo'], [true]]);
      // Timing only when asked for (chainTiming): the steps' microseconds, the worker's start
      // and end, the outcome's conversion on the main thread.
      o = await n.chainRun({ rtnl: { ops: probe, quiet: true } });
      assert.equal(o.us, undefined);
      (n as any).chainTiming(true);
      try {
        o = await n.chainRun({ rtnl: { ops: probe, quiet: true } });
      } finally {
        (n as any).chainTiming(false);
      }
      assert.equal(o.us.length, 11);
      assert.ok(o.us[3] > 0 && o.us[5] > 0 && o.us[6] >= o.us[5] && o.us[9] >= o.us[6] && o.us[10] >= o.us[9], String(o.us));
      // The chain's namespace, named without one to open: a TypeError, nothing run.
      assert.throws(() => n.chainRun({ rtnl: { ops: [{ op: 'linkGet', ns: '$target', link: 'lo' }] } }), TypeError);
      // A namespace path that cannot be opened: its error, nothing run.
      o = await n.chainRun({ ns: path.join(dir, 'nope'), fs: [{ op: 'reserve', file: path.join(dir, 'b'), data: 'x' }] });
      assert.equal(o.ns.code, 'ENOENT');
      assert.ok(!fs.existsSync(path.join(dir, 'b')));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('chainRun itself: a fed chain (its rest given while it runs) and a prepared one', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chain-'));
    const n = native<{
      chainRun(spec: unknown): Promise<any>;
      chainFeedNew(): unknown;
      chainFeed(t: unknown, rest: unknown): boolean;
      chainPrepare(spec: unknown): unknown;
    }>();
    const nsHost = native().nsCurrent();
    const lo = { op: 'linkGet', ns: nsHost, link: 'lo' };
    const lockOp = { op: 'lock', file: path.join(dir, 'lock'), exclusive: false };
    const start = (feed: unknown) => n.chainRun({ fs: [lockOp], rtnl: { ops: [lo] }, feed });
    try {
      fs.writeFileSync(path.join(dir, 'r'), 'abc');
      // Fed: the rest's claims, expectations, ops (the gate at `early`) and `after`, as if given at once.
      let feed = n.chainFeedNew();
      let p = start(feed);
      const rest = {
        fs: [{ op: 'reserve', file: path.join(dir, 'a'), data: 'x' }, { op: 'read', file: path.join(dir, 'r') }],
        expect: [null, null, 'abc'],
        rtnl: { ops: [lo, lo], early: 2 },
        after: [{ op: 'remove', file: path.join(dir, 'r') }],
      };
      assert.equal(n.chainFeed(feed, rest), true);
      assert.equal(n.chainFeed(feed, rest), false, 'a chain is fed once');
      let o = await p;
      fs.closeSync(o.fs[0]);
      assert.deepEqual([o.go, o.fs.slice(1), o.rtnl.map((r: any) => r.name), o.after, o.rtnlGated], [true, [true, 'abc'], ['lo', 'lo', 'lo'], [true], undefined]);
      assert.ok(!fs.existsSync(path.join(dir, 'r')));
      // A lost claim: the ops before the gate ran, the rest did not (rtnlGated), nor `after`.
      fs.writeFileSync(path.join(dir, 'r'), 'abc');
      feed = n.chainFeedNew();
      p = start(feed);
      n.chainFeed(feed, { ...rest, expect: undefined });
      o = await p;
      fs.closeSync(o.fs[0]);
      assert.deepEqual([o.go, o.fs.slice(1), o.rtnlGated, o.rtnl[0].name, o.rtnl[1].name, o.after], [false, [false, 'abc'], true, 'lo', 'lo', undefined]);
      assert.ok(fs.existsSync(path.join(dir, 'r')));
      // Abandoned (null): the start's ops done, nothing else; the lock's fd is the caller's.
      feed = n.chainFeedNew();
      p = start(feed);
      assert.equal(n.chainFeed(feed, null), true);
      o = await p;
      assert.equal(typeof o.fs[0], 'number');
      fs.closeSync(o.fs[0]);
      assert.deepEqual([o.go, o.fs.length, o.rtnlGated, o.rtnl.length, o.rtnl[0].name], [false, 1, true, 1, 'lo']);
      // A token garbage-collected unfed abandons its chain (long before the 10 s limit).
      require('node:v8').setFlagsFromString('--expose-gc');
      const gc = require('node:vm').runInNewContext('gc') as () => void;
      const t0 = Date.now();
      p = start(n.chainFeedNew());
      let settled = false;
      void p.then(() => (settled = true));
      while (!settled && Date.now() - t0 < 5000) {
        gc();
        await new Promise((r) => setTimeout(r, 20));
      }
      o = await p;
      fs.closeSync(o.fs[0]);
      assert.ok(Date.now() - t0 < 5000, 'abandoned by the token\'s collection');
      assert.deepEqual([o.go, o.rtnlGated], [false, true]);
      // A rest that cannot be converted (ops naming the chain's namespace, and it opens none):
      // a TypeError, and the chain is abandoned rather than left waiting.
      feed = n.chainFeedNew();
      p = start(feed);
      assert.throws(() => n.chainFeed(feed, { rtnl: { ops: [{ op: 'linkGet', ns: '$target', link: 'lo' }] } }), TypeError);
      o = await p;
      fs.closeSync(o.fs[0]);
      assert.equal(o.rtnlGated, true);
      // The lock busy (held exclusively here): nothing runs, the rest is dropped when given.
      const held = await n.chainRun({ fs: [{ ...lockOp, exclusive: true }] });
      feed = n.chainFeedNew();
      p = start(feed);
      n.chainFeed(feed, rest);
      o = await p;
      fs.closeSync(held.fs[0]);
      assert.deepEqual([o.fs, o.go, o.rtnl], [[false], false, undefined]);
      // Misuse: TypeErrors.
      feed = n.chainFeedNew();
      assert.throws(() => n.chainFeed(feed, rest), TypeError, 'a token that names no chain');
      assert.throws(() => n.chainRun({ fs: [{ op: 'read', file: path.join(dir, 'r') }], rtnl: { ops: [lo] }, feed }), TypeError, 'a fed chain starts with the lock alone');
      assert.throws(() => n.chainRun({ fs: [lockOp], rtnl: { ops: [lo] }, feed: {} }), TypeError, 'not a token');
      p = start(feed);
      assert.throws(() => start(feed), TypeError, 'a token serves one chain');
      n.chainFeed(feed, null);
      fs.closeSync((await p).fs[0]);
      // Prepared: converted now, run once later, as the spec itself would.
      const prep = n.chainPrepare({ fs: [{ op: 'read', file: path.join(dir, 'r') }], expect: ['abc'], rtnl: { ops: [lo] } });
      o = await n.chainRun(prep);
      assert.deepEqual([o.go, o.rtnl[0].name], [true, 'lo']);
      assert.throws(() => n.chainRun(prep), TypeError, 'a prepared spec runs once');
      assert.throws(() => n.chainPrepare({ fs: [lockOp], rtnl: { ops: [lo] }, feed: n.chainFeedNew() }), TypeError, 'a fed chain is not prepared');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a connect whose rest cannot be built after its chain started: the error, the veth and the lock undone, nothing claimed', async () => {
    const ns = await mkns();
    const fw = require('../../lib/modes/bridge-firewall').firewall;
    const orig = fw.addEndpointTx;
    const before = storeFiles();
    const links = ipj(['link', 'show']).length;
    fw.addEndpointTx = () => {
      throw new Error('injected');
    };
    try {
      const { calls } = await counted(() => assert.rejects(net.connect(ns.path, { id: 'torn', ports: ['8731:80'] }), /injected/));
      assert.equal(calls.chainRun, 1, 'the chain had started');
    } finally {
      fw.addEndpointTx = orig;
    }
    await reapDetached();
    assert.deepEqual(storeFiles(), before);
    assert.equal(ipj(['link', 'show']).length, links, 'no veth left in the host');
    assert.deepEqual(ipj(['link', 'show'], ns.name!).map((l: any) => l.ifname), ['lo'], 'none in the container');
    // The lock is free (reconcile takes it exclusively), and the address and port connect again.
    await net.reconcile();
    const ep = await net.connect(ns.path, { id: 'torn', ports: ['8731:80'] });
    await ep.disconnect();
  });

  it('a disconnect runs the chain its connect prepared; a record read again since (reconcile) gets a fresh one', async () => {
    const n = native<Record<string, (...a: unknown[]) => unknown>>();
    const orig = n.chainRun;
    const args: unknown[] = [];
    n.chainRun = (...a: unknown[]) => {
      args.push(a[0]);
      return orig(...a);
    };
    const isExternal = (v: unknown) => require('node:util').types.isExternal(v);
    try {
      let ns = await mkns();
      let ep = await net.connect(ns.path, { id: 'prep', ports: ['8741:80'] });
      args.length = 0;
      await ep.disconnect();
      assert.equal(args.length, 1);
      assert.ok(isExternal(args[0]), 'the prepared chain');
      ns = await mkns();
      ep = await net.connect(ns.path, { id: 'prep2', ports: ['8742:80'] });
      await net.reconcile(); // (reads every record again: the prepared chain's record is gone from the cache)
      args.length = 0;
      await ep.disconnect();
      assert.equal(args.length, 1);
      assert.ok(!isExternal(args[0]), 'a fresh spec');
      for (const f of storeFiles()) assert.ok(!f.includes('endpoints/prep'), f);
      assert.ok(!portElements().some((t) => t.includes('8741') || t.includes('8742')));
      await reapDetached();
      assert.ok(!ipj(['link', 'show']).some((l: any) => l.ifname === ep.hostVeth));
    } finally {
      n.chainRun = orig;
    }
  });

  it(`keeps at most ${PREPARED_MAX} prepared disconnect chains, the oldest dropped first (its disconnect builds a fresh one); remove() drops a network's`, async function () {
    this.timeout(600000);
    const n = native<Record<string, (...a: unknown[]) => unknown>>();
    const isExternal = (v: unknown) => require('node:util').types.isExternal(v);
    // Two networks (a bridge takes 1,023 ports): PREPARED_MAX + 16 endpoints in all, after this
    // file's earlier ones (older: dropped first).
    const per = (PREPARED_MAX + 16) / 2;
    const a = await createBridgeNetwork({ name: 'capa', subnet: '10.68.0.0/21' });
    const b = await createBridgeNetwork({ name: 'capb', subnet: '10.69.0.0/21' });
    const made: Namespace[] = [];
    try {
      for (let i = 0; i < 2 * per + 2; i++) made.push(await createNamespace(uniq('cap')));
      // A network's first connect learns its bridge's index the usual way (no chain, none
      // prepared); then one at a time, so that none finds the lock queued (no chain either).
      const warm = [await a.connect(made[2 * per]), await b.connect(made[2 * per + 1])];
      const epsA = [];
      const epsB = [];
      for (let i = 0; i < per; i++) epsA.push(await a.connect(made[i]));
      for (let i = per; i < 2 * per; i++) epsB.push(await b.connect(made[i]));
      assert.equal(preparedCount(), PREPARED_MAX, 'the cap');
      // The oldest were dropped (the ones before, the warm ones', a's first 16): a's 4th
      // disconnects with a fresh spec, b's last with its prepared chain; both leave nothing.
      const orig = n.chainRun;
      const args: unknown[] = [];
      n.chainRun = (...x: unknown[]) => {
        args.push(x[0]);
        return orig(...x);
      };
      try {
        await epsA[3].disconnect();
        await epsB[epsB.length - 1].disconnect();
      } finally {
        n.chainRun = orig;
      }
      assert.equal(args.length, 2);
      assert.ok(!isExternal(args[0]), 'the oldest endpoint: its chain was dropped, a fresh spec');
      assert.ok(isExternal(args[1]), 'a recent endpoint: its prepared chain');
      assert.equal(preparedCount(), PREPARED_MAX - 1);
      await reapDetached();
      for (const ep of [epsA[3], epsB[epsB.length - 1]]) {
        assert.ok(!ipj(['link', 'show']).some((l: any) => l.ifname === ep.hostVeth), `${ep.id}'s veth reaped`);
        assert.ok(!storeFiles().some((f) => f.includes(`endpoints/${ep.id}.json`)), `${ep.id}'s record gone`);
      }
      // a's endpoints less the one gone, and its warm one
      assert.equal(ipj(['link', 'show', 'master', a.bridge]).length, per);
      // b's remove() drops b's chains (they hold its namespaces' handles), none of a's.
      await b.remove({ force: true });
      assert.equal(preparedCount(), per - 16, "a's endpoints that kept theirs");
      await Promise.all([...epsA.filter((_, i) => i !== 3), warm[0]].map((ep) => ep.disconnect()));
      assert.equal(preparedCount(), 0);
      await reapDetached();
      assert.equal(ipj(['link', 'show', 'master', a.bridge]).length, 0);
    } finally {
      await a.remove({ force: true }).catch(() => undefined);
      await b.remove({ force: true }).catch(() => undefined);
      await Promise.all(made.map((ns) => ns.delete().catch(() => undefined)));
    }
  });
});
