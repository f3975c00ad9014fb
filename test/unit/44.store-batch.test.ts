import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as store from '../../lib/state/store';
import { NetlinkError } from '../../lib';

// The state store's file operations, run many per worker call by native/fs/fs.cc. Plain files in a
// temp directory: no namespace, no root needed.
describe('44 state store: file batches', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-store-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const dots = (d: string) => fs.readdirSync(d).filter((n) => n.startsWith('.'));

  it('every op: reserve, read, list, release (owner-checked), write, remove', async () => {
    const f = path.join(dir, 'a', 'b', 'ip1');
    const res = await store.batch([
      { op: 'reserve', file: f, data: 'net:c1' }, // makes a/ and a/b/
      { op: 'reserve', file: f, data: 'net:c2' },
      { op: 'read', file: f },
      { op: 'read', file: path.join(dir, 'none') },
      { op: 'list', dir: path.join(dir, 'a', 'b') },
      { op: 'list', dir: path.join(dir, 'none') },
      { op: 'release', file: f, owner: 'net:c2' },
      { op: 'read', file: f },
      { op: 'release', file: f, owner: 'net:c1' },
      { op: 'release', file: f, owner: 'net:c1' },
      { op: 'write', file: path.join(dir, 'r.json'), data: '{"x":1}', sync: true },
      { op: 'write', file: path.join(dir, 'r.json'), data: '{"x":2}' },
      { op: 'remove', file: path.join(dir, 'r2.json') },
    ]);
    assert.deepEqual(res, [true, false, 'net:c1', null, ['ip1'], [], false, 'net:c1', true, false, true, true, false]);
    assert.equal(fs.readFileSync(path.join(dir, 'r.json'), 'utf8'), '{"x":2}');
    assert.equal(fs.statSync(path.join(dir, 'r.json')).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.join(dir, 'a')).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(dir, 'a', 'b')).mode & 0o777, 0o700);
    assert.deepEqual([...dots(dir), ...dots(path.join(dir, 'a', 'b'))], [], 'no temp file left');
    assert.deepEqual(await store.batch([{ op: 'remove', file: path.join(dir, 'r.json') }]), [true]);
    // An empty reservation (a writer killed before its content) is anybody's to release.
    fs.writeFileSync(path.join(dir, 'empty'), '');
    assert.deepEqual(await store.batch([{ op: 'release', file: path.join(dir, 'empty'), owner: 'x' }]), [true]);
  });

  it('rmdir: true when the directory is gone (removed now or absent), false while it holds a file', async () => {
    const d = path.join(dir, 'linked', 'db');
    const res = await store.batch([
      { op: 'reserve', file: path.join(d, 'app'), data: 'n:app' },
      { op: 'rmdir', dir: d },
      { op: 'remove', file: path.join(d, 'app') },
      { op: 'rmdir', dir: d },
      { op: 'rmdir', dir: d },
    ]);
    assert.deepEqual(res, [true, false, true, true, true]);
    assert.ok(!fs.existsSync(d));
    fs.writeFileSync(path.join(dir, 'plain'), 'x');
    await assert.rejects(store.batch([{ op: 'rmdir', dir: path.join(dir, 'plain') }]), (e: NetlinkError) => e.code === 'ENOTDIR' && e.op === 'rmdir');
  });

  it('an unexpected error stops the batch: code, index, and the results before it', async () => {
    fs.writeFileSync(path.join(dir, 'plain'), 'x');
    const ok = path.join(dir, 'ok');
    await assert.rejects(
      store.batch([
        { op: 'reserve', file: ok, data: 'o' },
        { op: 'write', file: path.join(dir, 'plain', 'under-a-file'), data: '{}' },
        { op: 'remove', file: ok },
      ]),
      (e: NetlinkError & { results?: unknown[] }) => e instanceof NetlinkError && e.code === 'ENOTDIR' && e.index === 1 && e.op === 'open' && assert.deepEqual(e.results, [true]) === undefined,
    );
    assert.ok(fs.existsSync(ok), 'the op after the failure did not run');
    await assert.rejects(store.batch([{ op: 'read', file: dir }]), (e: NetlinkError) => e.code === 'EISDIR' && e.index === 0);
    await assert.rejects(store.batch([{ op: 'nope' as any, file: ok }]), TypeError);
    await assert.rejects(store.batch([{ op: 'read', file: '' }]), TypeError);
  });

  it('50 concurrent reservations of one file: exactly one wins, and its owner is in the file', async () => {
    const f = path.join(dir, 'port');
    const res = await Promise.all(Array.from({ length: 50 }, (_, i) => store.reserve(f, `owner${i}`)));
    assert.equal(res.filter(Boolean).length, 1);
    assert.equal(fs.readFileSync(f, 'utf8'), `owner${res.indexOf(true)}`);
    assert.deepEqual(dots(dir), []);
  });

  it('lock: shared locks coexist; one that would wait says false and stops the batch; a failed batch lets go', async () => {
    const lf = path.join(dir, 'net', 'lock'); // the directory is made
    const [a] = await store.batch([{ op: 'lock', file: lf }]);
    const [b] = await store.batch([{ op: 'lock', file: lf, exclusive: false }]);
    assert.ok(typeof a === 'number' && typeof b === 'number' && a !== b);
    assert.equal(fs.statSync(lf).mode & 0o777, 0o600);
    const marker = path.join(dir, 'ran');
    assert.deepEqual(await store.batch([{ op: 'lock', file: lf, exclusive: true }, { op: 'reserve', file: marker, data: 'x' }]), [false]);
    assert.ok(!fs.existsSync(marker), 'nothing after a busy lock ran');
    fs.closeSync(a as number);
    fs.closeSync(b as number);
    // A batch that fails after taking the lock closes it: the exclusive lock is free afterwards.
    fs.writeFileSync(path.join(dir, 'plain'), '');
    await assert.rejects(
      store.batch([{ op: 'lock', file: lf, exclusive: true }, { op: 'read', file: path.join(dir, 'plain', 'x') }]),
      (e: NetlinkError & { results?: unknown[] }) => e.code === 'ENOTDIR' && e.index === 1 && e.results![0] === null,
    );
    const [c] = await store.batch([{ op: 'lock', file: lf, exclusive: true }]);
    assert.equal(typeof c, 'number');
    // acquireWith: the lock and the ops in one batch when free; the waiting way when not.
    const got = store.FileLock.acquireWith(lf, false, [{ op: 'reserve', file: marker, data: 'y' }]);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(!fs.existsSync(marker), 'waits while the exclusive lock is held');
    fs.closeSync(c as number);
    const { lock, results } = await got;
    assert.deepEqual(results, [true]);
    lock.release();
  });

  it('the single-op helpers: writeJson/readJson, reserve/release, listDir, removeFile', async () => {
    const f = path.join(dir, 'n', 'rec.json');
    await store.writeJson(f, { id: 'a', n: [1, 2] });
    assert.deepEqual(await store.readJson(f), { id: 'a', n: [1, 2] });
    fs.writeFileSync(path.join(dir, 'torn.json'), '{"id":');
    assert.equal(await store.readJson(path.join(dir, 'torn.json')), undefined, 'a torn record reads as absent');
    assert.equal(await store.readJson(path.join(dir, 'none.json')), undefined);
    assert.equal(await store.reserve(path.join(dir, 'n', 'r'), 'me'), true);
    assert.equal(await store.reservationOwner(path.join(dir, 'n', 'r')), 'me');
    await store.release(path.join(dir, 'n', 'r'), 'other');
    assert.deepEqual((await store.listDir(path.join(dir, 'n'))).sort(), ['r', 'rec.json']);
    await store.release(path.join(dir, 'n', 'r'), 'me');
    await store.removeFile(f);
    assert.deepEqual(await store.listDir(path.join(dir, 'n')), []);
  });
});
