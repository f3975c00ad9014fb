/**
 * Legacy links end when either end goes: the target's disconnect (in this process or another)
 * takes the linker's elements away, a connect whose target leaves meanwhile is undone (ENOLINK),
 * a late registration is caught by the target's disconnect, and reconcile keeps only live links.
 */
import { strict as assert } from 'node:assert';
import { ChildProcess, execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { createBridgeNetwork, createNamespace, BridgeNetwork, Namespace, NetmodesError, reapDetached } from '../../lib';
import * as store from '../../lib/state/store';
import { sandboxed, nftj, connect, startServer, uniq, ipj } from '../helpers/kernel';

const root = path.resolve(__dirname, '..', '..', '..');

/** The links4 elements that name `ip`. */
function pairsWith(ip: string): unknown[] {
  return nftj()
    .filter((o: any) => o.set?.name === 'links4')
    .flatMap((o: any) => o.set.elem ?? [])
    .filter((e: any) => JSON.stringify(e).includes(`"${ip}"`));
}

describe('56 bridge mode: links end with either end', function () {
  this.timeout(60000);
  let net: BridgeNetwork;
  let nss: Namespace[];
  const servers: ChildProcess[] = [];
  const linkedDir = () => path.join(store.stateDir(), 'networks', 'links56', 'linked');

  before(async () => {
    sandboxed();
    net = await createBridgeNetwork({ name: 'links56', subnet: '10.56.0.0/24', icc: false });
    nss = await Promise.all([0, 1, 2].map(() => createNamespace(uniq('l'))));
    servers.push(await startServer(nss[1].name, 'tcp', 5432, 'app'));
  });

  after(async () => {
    servers.forEach((s) => s.kill());
    await net?.remove({ force: true });
    await Promise.all((nss ?? []).map((n) => n.delete()));
  });

  afterEach(async () => {
    for (const e of await net.endpoints()) await e.disconnect();
    assert.deepEqual(nftj().filter((o: any) => o.set?.name === 'links4').flatMap((o: any) => o.set.elem ?? []), [], 'no link element left');
    assert.deepEqual(existsSync(linkedDir()) ? readdirSync(linkedDir()) : [], [], 'no link registration left');
  });

  it('the linker registers with its target; the target leaving ends the link at once', async () => {
    const db = await net.connect(nss[0], { id: 'db' });
    const app = await net.connect(nss[1], { id: 'app', links: [{ endpoint: 'db' }] });
    assert.deepEqual(readdirSync(path.join(linkedDir(), 'db')), ['app']);
    assert.equal(connect(nss[0].name, 'tcp', app.ip, 5432), `app ${db.ip}`);
    await db.disconnect();
    assert.deepEqual(pairsWith(db.ip), []);
    assert.ok(!existsSync(path.join(linkedDir(), 'db')), 'the registration went with the target');
  });

  it('a target disconnected by another process takes the link with it', async () => {
    const db = await net.connect(nss[0], { id: 'db' });
    await net.connect(nss[1], { id: 'app', links: [{ endpoint: 'db' }] });
    const script = `
      const m = require(${JSON.stringify(path.join(root, 'dist/lib'))});
      (async () => {
        const net = await m.openBridgeNetwork('links56');
        await net.disconnect('db');
        await m.reapDetached();
      })().catch((e) => { console.error(e); process.exit(1); });`;
    execFileSync(process.execPath, ['-e', script], { env: process.env });
    assert.deepEqual(pairsWith(db.ip), [], 'the other process found the linker in the store');
  });

  it('ENOLINK: a connect whose link target leaves while it runs is undone', async () => {
    const db = await net.connect(nss[0], { id: 'db' });
    const orig = store.batch;
    let armed = true;
    // The connect reads its targets' records again after the kernel step: db leaves just before.
    (store as { batch: typeof store.batch }).batch = async (ops) => {
      if (armed && ops.length === 1 && ops[0].op === 'read' && ops[0].file.endsWith('/endpoints/db.json')) {
        armed = false;
        await db.disconnect();
      }
      return orig(ops);
    };
    try {
      await assert.rejects(net.connect(nss[1], { id: 'app', links: [{ endpoint: 'db' }] }), (e: NetmodesError) => e.code === 'ENOLINK');
    } finally {
      (store as { batch: typeof store.batch }).batch = orig;
    }
    assert.ok(!armed, 'the race was staged');
    assert.deepEqual(pairsWith(db.ip), []);
    assert.deepEqual(await net.endpoints(), []);
    await reapDetached();
    assert.deepEqual(ipj(['link', 'show', 'type', 'veth']), [], 'no veth left: db reaped, app rolled back');
    assert.deepEqual(ipj(['link', 'show'], nss[1].name).map((l: any) => l.ifname), ['lo'], 'the linker has no eth0 left');
    // Its address and the app id are free again.
    const app = await net.connect(nss[1], { id: 'app' });
    assert.ok(app.ip);
  });

  it('a connect with a link that fails for another reason (EPORTINUSE) leaves no registration behind', async () => {
    await net.connect(nss[0], { id: 'db', ports: ['45600:80'] });
    await assert.rejects(net.connect(nss[1], { id: 'app', ports: ['45600:80'], links: [{ endpoint: 'db' }] }), (e: NetmodesError) => e.code === 'EPORTINUSE');
    assert.ok(!existsSync(path.join(linkedDir(), 'db')), 'the registration and its directory went with the rollback');
  });

  it('a link registered after the target listed its linkers is still taken away', async () => {
    const db = await net.connect(nss[0], { id: 'db' });
    await net.connect(nss[1], { id: 'app', links: [{ endpoint: 'db' }] });
    const orig = store.FileLock.acquireWith;
    // The target's first batch (lock, record, linkers) reads no linkers, as if app had registered
    // just after it: the disconnect's final rmdir then finds app's registration.
    store.FileLock.acquireWith = async (file, exclusive, ops) => {
      const r = await orig.call(store.FileLock, file, exclusive, ops);
      if (ops.length === 2 && ops[1].op === 'list' && ops[1].dir.endsWith('/linked/db')) r.results[1] = [];
      return r;
    };
    try {
      await db.disconnect();
    } finally {
      store.FileLock.acquireWith = orig;
    }
    assert.deepEqual(pairsWith(db.ip), []);
    assert.ok(!existsSync(path.join(linkedDir(), 'db')));
  });

  it('reconcile drops a link whose target is gone, and its registration', async () => {
    const db = await net.connect(nss[0], { id: 'db' });
    const app = await net.connect(nss[1], { id: 'app', links: [{ endpoint: 'db' }] });
    // db's record disappears behind the library's back (a process killed mid-disconnect).
    await store.batch([{ op: 'remove', file: path.join(store.stateDir(), 'networks', 'links56', 'endpoints', 'db.json') }]);
    const report = await net.reconcile();
    assert.ok(report.removedVeths.includes(db.hostVeth));
    assert.ok(report.freedReservations.includes('link app -> db'), JSON.stringify(report));
    assert.deepEqual(pairsWith(db.ip), []);
    assert.deepEqual(pairsWith(app.ip), []);
    const intruder = await net.connect(nss[2], { id: 'intruder', ip: db.ip });
    assert.equal(connect(nss[2].name, 'tcp', app.ip, 5432), null, 'a newcomer on the old address stays isolated');
    await intruder.disconnect();
  });
});
