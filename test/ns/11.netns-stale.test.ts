/**
 * Issue 22: a name left half-made by a process killed inside createNamespace (the file under
 * /run/netns made, no namespace mounted on it yet) must not block that name. Children are killed
 * at the native fault points (NETMODES_FAULT=netns:*) and at random moments; afterwards the names
 * can be created again and reapStaleNamespaces() leaves no stale one. A creator caught between its
 * two steps (netns:stall-after-link) is never robbed: createNamespace says EEXIST, deleteNamespace
 * EBUSY, and the reaper leaves it alone. What a file holds is read with stat(1), not our code.
 */
import { strict as assert } from 'node:assert';
import { spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import {
  createNamespace,
  deleteNamespace,
  reapStaleNamespaces,
  openNamespace,
  listNamespaces,
  createSandbox,
  listSandboxes,
  openSandbox,
  NetlinkError,
  NetmodesError,
  ConfigError,
} from '../../lib';
import { sandboxed, sh, tryRun, uniq } from '../helpers/kernel';
import { cli } from '../helpers/sandbox';
import { LIB, nodeScript, startScript } from '../helpers/reliability';

const DIR = '/run/netns';

/** What /run/netns/NAME is, by stat(1): a namespace, a plain file, or nothing. */
function kind(name: string): 'nsfs' | 'file' | 'absent' {
  const p = `${DIR}/${name}`;
  if (!fs.existsSync(p)) return 'absent';
  return sh('stat', ['-f', '-c', '%T', p]).trim() === 'nsfs' ? 'nsfs' : 'file';
}

/** The namespace inode `ip netns exec NAME` enters. */
function enteredInode(name: string): number {
  return Number(sh('ip', ['netns', 'exec', name, 'stat', '-L', '-c', '%i', '/proc/self/ns/net']).trim());
}

const CREATE_JS = `
const nm = require(${JSON.stringify(LIB)});
nm.createNamespace(process.argv[1]).then((ns) => console.log(ns.inode), (e) => { console.error('UNEXPECTED', e); process.exit(1); });`;

/** A child that creates `name` with NETMODES_FAULT=point; resolves with how it ended. */
async function createWithFault(name: string, point: string): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  return nodeScript(CREATE_JS, [name], { NETMODES_FAULT: point });
}

const stalled = new Set<ChildProcess>();

/** A child stopped at netns:stall-after-link while creating `name`; release() lets it finish. */
async function stalledCreator(name: string): Promise<{ release: () => Promise<number>; fail: () => Promise<string> }> {
  const c = spawn(process.execPath, ['-e', CREATE_JS, name], { env: { ...process.env, NETMODES_FAULT: 'netns:stall-after-link' }, stdio: ['pipe', 'pipe', 'pipe'] });
  stalled.add(c);
  c.on('exit', () => stalled.delete(c));
  let out = '';
  let err = '';
  c.stdout.on('data', (d) => (out += d));
  const done = new Promise<void>((r) => c.on('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the creator never stalled: ${err}`)), 15000);
    c.stderr.on('data', (d) => {
      err += d;
      if (err.includes('stalled at netns:after-link')) clearTimeout(timer), resolve();
    });
    c.on('exit', () => reject(new Error(`the creator ended before stalling: ${err}`)));
  });
  return {
    /** Lets it finish; resolves with the inode of the namespace it made. */
    release: async () => {
      c.stdin.end('x');
      await done;
      assert.equal(c.exitCode, 0, err);
      return Number(out.trim());
    },
    /** Lets it go on, expecting its creation to fail; resolves with its stderr. */
    fail: async () => {
      c.stdin.end('x');
      await done;
      assert.equal(c.exitCode, 1, err);
      return err;
    },
  };
}

describe('11 namespaces: names left half-made by a killed creator (issue 22)', function () {
  this.timeout(120000);
  before(sandboxed);
  afterEach(async () => {
    for (const c of stalled) c.kill('SIGKILL'); // a failed test's creator must not keep mocha alive
    for (const n of await listNamespaces()) await deleteNamespace(n).catch(() => tryRun('ip', ['netns', 'del', n]));
  });

  it('killed between making the file and mounting (netns:after-link): the name is half-made, then created again', async () => {
    const name = uniq('st');
    const r = await createWithFault(name, 'netns:after-link');
    assert.equal(r.signal, 'SIGKILL', r.stderr);
    // What the issue saw: `ip netns list` shows it, it cannot be entered or opened.
    assert.equal(kind(name), 'file');
    assert.ok(sh('ip', ['netns', 'list']).includes(name));
    assert.notEqual(tryRun('ip', ['netns', 'exec', name, 'true']).status, 0);
    await assert.rejects(openNamespace(name), (e: NetlinkError) => e.code === 'EINVAL');
    // createNamespace reclaims it and makes a real namespace there.
    const ns = await createNamespace(name);
    assert.equal(kind(name), 'nsfs');
    assert.equal(enteredInode(name), ns.inode);
    await ns.delete();
    assert.equal(kind(name), 'absent');
  });

  it('killed before the name appears (netns:before-link): nothing is left; after the mount (netns:after-mount): a whole namespace, kept', async () => {
    const early = uniq('st');
    assert.equal((await createWithFault(early, 'netns:before-link')).signal, 'SIGKILL');
    assert.deepEqual(fs.readdirSync(DIR).filter((n) => n === early), []);
    (await createNamespace(early)).close();

    const late = uniq('st');
    assert.equal((await createWithFault(late, 'netns:after-mount')).signal, 'SIGKILL');
    assert.equal(kind(late), 'nsfs');
    // A real namespace is no leftover: EEXIST, the reaper keeps it, it opens and deletes.
    await assert.rejects(createNamespace(late), (e: NetlinkError) => e instanceof NetlinkError && e.code === 'EEXIST' && /exists/.test(e.message));
    assert.deepEqual(await reapStaleNamespaces(), []);
    const ns = await openNamespace(late);
    assert.equal(enteredInode(late), ns.inode);
    ns.close();
    await deleteNamespace(late);
    await deleteNamespace(early);
    assert.deepEqual(await listNamespaces(), []);
  });

  it('reapStaleNamespaces removes half-made names only, and returns them; deleteNamespace removes one too', async () => {
    const stale = [uniq('st'), uniq('st'), uniq('st')].sort();
    for (const n of stale) assert.equal((await createWithFault(n, 'netns:after-link')).signal, 'SIGKILL');
    const real = await createNamespace(uniq('st'));
    const byIp = uniq('st');
    sh('ip', ['netns', 'add', byIp]);
    assert.deepEqual(stale.map(kind), ['file', 'file', 'file']);
    await deleteNamespace(stale[0]); // as ns.delete() would, for a name that never became one
    assert.equal(kind(stale[0]), 'absent');
    assert.deepEqual(await reapStaleNamespaces(), stale.slice(1));
    assert.deepEqual(await reapStaleNamespaces(), []);
    assert.deepEqual(await listNamespaces(), [real.name!, byIp].sort());
    assert.equal(enteredInode(real.name!), real.inode);
    await real.delete();
    await deleteNamespace(byIp);
    await deleteNamespace(byIp); // twice: a no-op
    assert.deepEqual(await listNamespaces(), []);
    await assert.rejects(deleteNamespace('a/b'), (e: ConfigError) => e instanceof ConfigError && e.code === 'EINVAL');
  });

  it('a creator between its two steps is never robbed: EEXIST, EBUSY, not reaped; then it finishes', async () => {
    const name = uniq('st');
    const creator = await stalledCreator(name);
    assert.equal(kind(name), 'file');
    const ino = fs.statSync(`${DIR}/${name}`).ino;
    await assert.rejects(createNamespace(name), (e: NetlinkError) => e.code === 'EEXIST' && /being created by another process/.test(e.message));
    await assert.rejects(deleteNamespace(name), (e: NetlinkError) => e instanceof NetlinkError && e.code === 'EBUSY');
    assert.deepEqual(await reapStaleNamespaces(), []);
    // From another process too (a service's cleanup running beside a live creator).
    const other = await nodeScript(`require(${JSON.stringify(LIB)}).reapStaleNamespaces().then((r) => console.log(JSON.stringify(r)))`);
    assert.equal(other.stdout.trim(), '[]', other.stderr);
    assert.equal(fs.statSync(`${DIR}/${name}`).ino, ino, 'the file must be the creator\'s still');
    const made = await creator.release();
    assert.equal(kind(name), 'nsfs');
    assert.equal(enteredInode(name), made);
    await deleteNamespace(name);
    assert.equal(kind(name), 'absent');
  });

  it('a name removed under a creator by a tool that ignores the lock: that creation fails and never mounts on the new file', async () => {
    const gone = uniq('st');
    const a = await stalledCreator(gone);
    fs.unlinkSync(`${DIR}/${gone}`); // as `ip netns del` would
    assert.match(await a.fail(), /ENOENT/);
    assert.equal(kind(gone), 'absent');

    const replaced = uniq('st');
    const b = await stalledCreator(replaced);
    fs.unlinkSync(`${DIR}/${replaced}`);
    fs.writeFileSync(`${DIR}/${replaced}`, '', { mode: 0 });
    const ino = fs.statSync(`${DIR}/${replaced}`).ino;
    assert.match(await b.fail(), /EEXIST[^]*was replaced by another process/);
    assert.equal(kind(replaced), 'file');
    assert.equal(fs.statSync(`${DIR}/${replaced}`).ino, ino, 'the other file stays as it was');
    await deleteNamespace(replaced).catch(() => fs.unlinkSync(`${DIR}/${replaced}`));
    assert.deepEqual(await listNamespaces(), []);
  });

  it("a file that is not ours: `ip netns add`'s leftover is EEXIST for a minute, then stale; a non-empty file is never reclaimed", async () => {
    const ipLeft = uniq('st');
    fs.writeFileSync(`${DIR}/${ipLeft}`, '', { mode: 0 }); // what a killed `ip netns add` leaves
    fs.chmodSync(`${DIR}/${ipLeft}`, 0);
    await assert.rejects(createNamespace(ipLeft), (e: NetlinkError) => e.code === 'EEXIST' && /being created/.test(e.message));
    await assert.rejects(deleteNamespace(ipLeft), (e: NetlinkError) => e.code === 'EBUSY');
    assert.deepEqual(await reapStaleNamespaces(), []);
    const old = new Date(Date.now() - 120000);
    fs.utimesSync(`${DIR}/${ipLeft}`, old, old);
    (await createNamespace(ipLeft)).close();
    assert.equal(kind(ipLeft), 'nsfs');

    const foreign = uniq('st');
    fs.writeFileSync(`${DIR}/${foreign}`, 'not a namespace');
    fs.utimesSync(`${DIR}/${foreign}`, old, old);
    await assert.rejects(createNamespace(foreign), (e: NetlinkError) => e.code === 'EEXIST' && /not a network namespace/.test(e.message));
    assert.deepEqual(await reapStaleNamespaces(), []);
    assert.equal(fs.readFileSync(`${DIR}/${foreign}`, 'utf8'), 'not a namespace');
    await deleteNamespace(foreign); // explicitly: removed, as `ip netns del` would
    await deleteNamespace(ipLeft);
    assert.deepEqual(await listNamespaces(), []);
  });

  it('SIGKILL at random moments of a create/delete churn: every name can be created again, nothing stale after reaping', async () => {
    const names = Array.from({ length: 4 }, () => uniq('sr'));
    const CHURN_JS = `
      const nm = require(${JSON.stringify(LIB)});
      const names = JSON.parse(process.argv[1]);
      const worker = async (name) => {
        for (;;) {
          try { (await nm.createNamespace(name)).close(); } catch (e) { if (e.code !== 'EEXIST') throw e; }
          await nm.deleteNamespace(name);
          process.stdout.write('.');
        }
      };
      Promise.all(names.map(worker)).catch((e) => { console.error('UNEXPECTED', e); process.exit(1); });`;
    const stats = { rounds: 0, cycles: 0, halfMade: 0, whole: 0 };
    for (let round = 0; round < 12; round++) {
      const child = startScript(CHURN_JS, [JSON.stringify(names)]);
      const timer = setTimeout(() => child.kill('SIGKILL'), 150 + Math.random() * 600);
      await child.done;
      clearTimeout(timer);
      assert.equal(child.signalCode, 'SIGKILL', `round ${round}: the child ended by itself: ${child.err()}`);
      stats.rounds++;
      stats.cycles += child.out().length;
      const kinds = names.map(kind);
      const half = names.filter((_, i) => kinds[i] === 'file').sort();
      stats.halfMade += half.length;
      stats.whole += kinds.filter((k) => k === 'nsfs').length;
      // Alternate: the reaper cleans up, or createNamespace reclaims by itself.
      if (round % 2 === 0) assert.deepEqual(await reapStaleNamespaces(), half, `round ${round}`);
      for (const n of names) {
        if (kind(n) === 'nsfs') await deleteNamespace(n);
        const ns = await createNamespace(n);
        assert.equal(enteredInode(n), ns.inode);
        await ns.delete();
      }
      assert.deepEqual(await listNamespaces(), []);
    }
    console.log(`      ${JSON.stringify(stats)}`);
    assert.ok(stats.cycles > 0, 'the child never got going');
  });

  it('two processes create the same names while a reaper runs: each name is made once, nobody is robbed, nothing is reaped', async () => {
    // No deletes here: every file the reaper sees belongs to a live creator (or is a namespace).
    const RACE_JS = `
      const fs = require('fs');
      const nm = require(${JSON.stringify(LIB)});
      const names = JSON.parse(process.argv[1]);
      const made = [];
      const worker = async (mine) => {
        for (const name of mine) {
          let ns;
          try { ns = await nm.createNamespace(name); } catch (e) { if (e.code !== 'EEXIST' || /replaced/.test(e.message)) throw e; continue; }
          made.push(name);
          if (fs.statSync(ns.path).ino !== ns.inode) { console.error('ROBBED', name); process.exit(1); }
          ns.close();
        }
      };
      // Three async workers, each over all the names in its own order.
      const shuffled = () => [...names].sort(() => Math.random() - 0.5);
      Promise.all([worker(shuffled()), worker(shuffled()), worker(shuffled())]).then(() => console.log(JSON.stringify(made)), (e) => { console.error('UNEXPECTED', e); process.exit(1); });`;
    const stats = { rounds: 0, names: 0, reaps: 0 };
    for (let round = 0; round < 4; round++) {
      const names = Array.from({ length: 40 }, () => uniq('sc'));
      const kids = [0, 1].map(() => startScript(RACE_JS, [JSON.stringify(names)]));
      const reaped: string[] = [];
      let running = true;
      Promise.all(kids.map((k) => k.done)).then(() => (running = false));
      while (running) {
        reaped.push(...(await reapStaleNamespaces()));
        stats.reaps++;
      }
      for (const k of kids) assert.equal(k.exitCode, 0, k.err());
      assert.deepEqual(reaped, [], "the reaper removed a live creator's name");
      const made = kids.flatMap((k) => JSON.parse(k.out()) as string[]).sort();
      assert.deepEqual(made, [...names].sort(), 'every name made exactly once');
      for (const n of names) assert.equal(kind(n), 'nsfs', n);
      for (const n of names) await deleteNamespace(n);
      stats.rounds++;
      stats.names += names.length;
    }
    console.log(`      ${JSON.stringify(stats)}`);
    assert.deepEqual(await listNamespaces(), []);
  });

  it('creators and deleters in two processes beside a reaper: no creation or delete fails, nothing is left', async () => {
    // A delete unmounts, then removes the file below: the reaper may take that file first (both
    // want it gone); a creator must never lose its own.
    const names = [uniq('sd'), uniq('sd'), uniq('sd')];
    const CHURN_JS = `
      const fs = require('fs');
      const nm = require(${JSON.stringify(LIB)});
      const names = JSON.parse(process.argv[1]);
      let made = 0, taken = 0;
      const worker = async () => {
        const end = Date.now() + 2500;
        while (Date.now() < end) {
          const name = names[Math.floor(Math.random() * names.length)];
          let ns;
          try { ns = await nm.createNamespace(name); } catch (e) { if (e.code !== 'EEXIST' || /replaced/.test(e.message)) throw e; taken++; continue; }
          made++;
          if (fs.statSync(ns.path).ino !== ns.inode) { console.error('ROBBED', name); process.exit(1); }
          await ns.delete();
        }
      };
      Promise.all([worker(), worker(), worker()]).then(() => console.log(JSON.stringify({ made, taken })), (e) => { console.error('UNEXPECTED', e); process.exit(1); });`;
    const kids = [0, 1].map(() => startScript(CHURN_JS, [JSON.stringify(names)]));
    let running = true;
    let reaps = 0;
    Promise.all(kids.map((k) => k.done)).then(() => (running = false));
    while (running) {
      for (const n of await reapStaleNamespaces()) assert.ok(names.includes(n), n);
      reaps++;
    }
    for (const k of kids) assert.equal(k.exitCode, 0, k.err());
    const counts = kids.map((k) => JSON.parse(k.out()));
    console.log(`      ${JSON.stringify({ reaps, children: counts })}`);
    assert.ok(counts.every((c) => c.made > 0) && counts.some((c) => c.taken > 0), 'the creators did not contend');
    assert.deepEqual(await listNamespaces(), []);
  });

  it('sandboxes: a createSandbox killed inside createNamespace is listed, `netmodes ps` and `rm` handle it, and the name can be created again', async () => {
    const name = uniq('ss');
    const SB_JS = `require(${JSON.stringify(LIB)}).createSandbox({ name: process.argv[1], network: 'none' }).catch((e) => { console.error('UNEXPECTED', e); process.exit(1); })`;
    const kill = async (n: string) => assert.equal((await nodeScript(SB_JS, [n], { NETMODES_FAULT: 'netns:after-link' })).signal, 'SIGKILL');
    await kill(name);
    assert.equal(kind(name), 'file');
    assert.equal((await listSandboxes()).find((s) => s.name === name)?.state, 'creating');
    const ps = await cli(['ps']);
    assert.equal(ps.code, 0, ps.stderr);
    assert.match(ps.stdout, new RegExp(`${name}\\s+none.*creating`));
    // Created again over the leftover: a working sandbox.
    const sb = await createSandbox({ name, network: 'none' });
    assert.equal(kind(name), 'nsfs');
    assert.equal(enteredInode(name), fs.statSync(`${DIR}/${name}`).ino);
    await sb.remove();
    // Or removed with `netmodes rm`.
    await kill(name);
    const rm = await cli(['rm', name]);
    assert.equal(rm.code, 0, rm.stderr);
    assert.equal(kind(name), 'absent');
    assert.deepEqual(await listSandboxes(), []);
    await assert.rejects(openSandbox(name), (e: NetmodesError) => e.code === 'ENOSANDBOX');
  });

  it('sandboxes: a half-made record whose namespace another process is creating right now is not undone (ESANDBOXEXISTS)', async () => {
    const name = uniq('ss');
    const creator = await stalledCreator(name);
    const dir = `/run/netmodes/sandboxes/${name}`;
    fs.mkdirSync(dir, { recursive: true });
    const rec = { version: 1, name, id: 'a'.repeat(64), mode: 'none', state: 'creating', namespacePath: `${DIR}/${name}`, ports: [], created: new Date().toISOString() };
    fs.writeFileSync(`${dir}/sandbox.json`, JSON.stringify(rec));
    await assert.rejects(
      createSandbox({ name, network: 'none' }),
      (e: NetmodesError) => e instanceof NetmodesError && e.code === 'ESANDBOXEXISTS' && /cannot be undone/.test(e.message) && (e.cause as NetlinkError).code === 'EBUSY',
    );
    assert.equal(kind(name), 'file');
    const made = await creator.release();
    assert.equal(enteredInode(name), made);
    // Once that creation is over, the record is undone as any other (its namespace with it).
    const sb = await createSandbox({ name, network: 'none' });
    assert.notEqual(sb.id, rec.id);
    await sb.remove();
    assert.deepEqual(await listSandboxes(), []);
  });
});
