/**
 * The state store: what the library owns, written so that a process killed at any instant leaves
 * a record that a later process can finish or undo.
 *
 * - Records are JSON files replaced atomically (write a temp file, fsync, rename, fsync the
 *   directory), mode 0600 in directories of mode 0700: never half-written, never readable or
 *   writable by other users.
 * - Reservations (an address, a host port) are files that appear atomically with their owner in
 *   them (temp file + link(), which fails with EEXIST as O_EXCL does): whoever creates the file
 *   owns the resource, across threads and processes, with no lock to hold. A crash between a
 *   reservation and the kernel change leaves a reservation that `reconcile()` finds and frees.
 * - `lock()` is an flock on a file: connect/disconnect take it shared (they don't exclude each
 *   other), reconcile and remove take it exclusive (so they never free what a connect is building).
 *
 * The default directory is /run/netmodes (tmpfs: it goes away on reboot exactly when the kernel
 * objects it describes do). `NETMODES_STATE_DIR` overrides it.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { native } from '../native';

export function stateDir(): string {
  return process.env.NETMODES_STATE_DIR || '/run/netmodes';
}

const madeDirs = new Set<string>();
export async function ensureDir(dir: string): Promise<void> {
  if (madeDirs.has(dir)) return;
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  madeDirs.add(dir);
}

/** Forgets cached directories below `dir` (after it was removed). */
export function forgetDirs(dir: string): void {
  for (const d of madeDirs) if (d === dir || d.startsWith(dir + '/')) madeDirs.delete(d);
}

// fsync makes a rename durable across a machine crash. On tmpfs (the default /run) a machine crash
// takes the file away with the kernel objects it describes, and a process crash loses nothing that
// reached the page cache, so the two fsyncs per record are skipped there.
const TMPFS_MAGIC = 0x01021994;
const volatileDirs = new Map<string, boolean>();
async function isVolatile(dir: string): Promise<boolean> {
  let v = volatileDirs.get(dir);
  if (v === undefined) {
    try {
      v = (await fsp.statfs(dir)).type === TMPFS_MAGIC;
    } catch (err) {
      // Not made yet: it will be made on its parent's filesystem.
      const parent = path.dirname(dir);
      if ((err as { code?: string }).code === 'ENOENT' && parent !== dir) return isVolatile(parent);
      v = false;
    }
    volatileDirs.set(dir, v);
  }
  return v;
}

/** One file operation of a batch (native/fs/fs.cc runs a batch in one worker call). */
export type FsOp =
  | { op: 'reserve'; file: string; data: string }
  | { op: 'release'; file: string; owner?: string }
  | { op: 'write'; file: string; data: string; sync?: boolean }
  | { op: 'remove'; file: string }
  | { op: 'rmdir'; dir: string }
  | { op: 'read'; file: string }
  | { op: 'list'; dir: string }
  | { op: 'lock'; file: string; exclusive?: boolean };

/**
 * Runs file operations in order in one trip to the thread pool. Results, by op: reserve → true
 * (now ours) or false (somebody's already); release → true (removed) or false (absent or another
 * owner's); write → true; remove → true or false (absent); rmdir → true (removed or absent) or
 * false (not empty); read → the text or null (absent);
 * list → names without the dot files ([] when the directory is absent); lock → the fd holding
 * the flock, or false when it would have to wait (the batch stops there). The first unexpected
 * error stops the batch: it rejects with that error, `index` naming the op and `results` holding
 * the results of the ops before it. Missing directories are made (0700) for reserve and write.
 */
export type FsResult = boolean | string | string[] | number | null;
export async function batch(ops: FsOp[]): Promise<FsResult[]> {
  return native<{ fsBatch(ops: FsOp[]): Promise<FsResult[]> }>().fsBatch(ops);
}

/** The write op for a JSON record: fsync'd unless the directory is on tmpfs (see isVolatile). */
export async function writeOp(file: string, data: unknown): Promise<FsOp> {
  return { op: 'write', file, data: JSON.stringify(data), sync: !(await isVolatile(path.dirname(file))) };
}

/** Atomically replaces `file` with `data` as JSON (0600): temp file, fsync, rename, fsync the directory. */
export async function writeJson(file: string, data: unknown): Promise<void> {
  await batch([await writeOp(file, data)]); // makes missing directories (0700)
}

/** Parses a record read by a batch: a torn or foreign file reads as undefined. */
export function parseRecord<T>(text: unknown): T | undefined {
  if (typeof text !== 'string') return undefined;
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
}

/** Reads a JSON record, or undefined when it does not exist. A torn or foreign file reads as undefined. */
export async function readJson<T>(file: string): Promise<T | undefined> {
  return parseRecord<T>((await batch([{ op: 'read', file }]))[0]);
}

export async function removeFile(file: string): Promise<void> {
  await batch([{ op: 'remove', file }]);
}

/** Names in a directory (none when it does not exist), temp files left out. */
export async function listDir(dir: string): Promise<string[]> {
  return (await batch([{ op: 'list', dir }]))[0] as string[];
}

/**
 * Claims `file` for `owner`. Resolves true when this caller now owns it, false when somebody
 * already does. The owner is written to a private temp file that link() then puts in place: link
 * fails with EEXIST like O_EXCL, and the reservation never exists without its owner (a reader of
 * an empty file could otherwise take a claim being written for abandoned, and reconcile could not
 * tell a dead claim from one in progress).
 */
export async function reserve(file: string, owner: string): Promise<boolean> {
  return (await batch([{ op: 'reserve', file, data: owner }]))[0] as boolean;
}

/**
 * Removes temp files (`.NAME.*.tmp|.res`) that a killed process left in `dir`, those older than
 * `minAgeMs` only (0 when the caller's lock excludes every writer of `dir`).
 */
export async function removeStaleTemps(dir: string, minAgeMs = 0): Promise<number> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return 0;
  }
  let n = 0;
  for (const name of names)
    if (name.startsWith('.') && (name.endsWith('.tmp') || name.endsWith('.res'))) {
      const f = path.join(dir, name);
      if (minAgeMs > 0) {
        const st = await fsp.stat(f).catch(() => undefined);
        if (!st || Date.now() - st.mtimeMs < minAgeMs) continue;
      }
      await fsp.rm(f, { force: true });
      n++;
    }
  return n;
}

/** Who holds a reservation (undefined when nobody does). */
export async function reservationOwner(file: string): Promise<string | undefined> {
  return ((await batch([{ op: 'read', file }]))[0] as string | null) ?? undefined;
}

/** Releases a reservation if `owner` (when given) still holds it (an empty one counts as anybody's). */
export async function release(file: string, owner?: string): Promise<void> {
  await batch([owner === undefined ? { op: 'remove', file } : { op: 'release', file, owner }]);
}

/**
 * Per lock file, the tail of this process's queue of flock() calls. flock() blocks a libuv pool
 * thread while it waits; with every caller waiting at once (a reconcile() holding the lock
 * exclusively and more connects than pool threads asking for it shared), the pool starved and the
 * holder could never finish: a deadlock. One flock() call at a time per file and process means
 * at most one pool thread waits per lock file; the others queue here, off the pool.
 */
const lockQueues = new Map<string, Promise<unknown>>();

/** An flock held until release() (or process death, when the kernel drops it). */
export class FileLock {
  private constructor(private fd: number) {}
  static async acquire(file: string, exclusive: boolean): Promise<FileLock> {
    await ensureDir(path.dirname(file));
    const prev = lockQueues.get(file) ?? Promise.resolve();
    const mine = prev.catch(() => undefined).then(() => native().lock(file, exclusive) as Promise<number>);
    lockQueues.set(file, mine);
    try {
      return new FileLock(await mine);
    } finally {
      if (lockQueues.get(file) === mine) lockQueues.delete(file);
    }
  }
  /**
   * Takes the lock and runs `ops` after it, in one trip to the thread pool when the lock is free
   * (flock without waiting, first op of the batch); otherwise waits in this process's queue as
   * acquire() does, then runs the ops. Errors of the ops arrive as from batch() (the lock is
   * released then).
   */
  /** @internal A lock this process took another way (bridge-chain.ts: an fd from a chain's lock op). */
  static adopt(fd: number): FileLock {
    return new FileLock(fd);
  }
  /** @internal Whether acquireWith would wait in this process's queue (another caller waits for `file`). */
  static queued(file: string): boolean {
    return lockQueues.has(file);
  }
  static async acquireWith(file: string, exclusive: boolean, ops: FsOp[]): Promise<{ lock: FileLock; results: FsResult[] }> {
    if (!lockQueues.has(file)) {
      let res: FsResult[];
      try {
        res = await batch([{ op: 'lock', file, exclusive }, ...ops]);
      } catch (err) {
        const e = err as { index?: number; results?: FsResult[] };
        if (e.index !== undefined && e.index > 0) {
          e.index -= 1;
          e.results = e.results?.slice(1);
        } else if (e.index === 0) {
          delete e.results; // the lock itself failed: nothing ran
        }
        throw err;
      }
      if (typeof res[0] === 'number') return { lock: new FileLock(res[0]), results: res.slice(1) };
    }
    const lock = await FileLock.acquire(file, exclusive);
    try {
      return { lock, results: ops.length ? await batch(ops) : [] };
    } catch (err) {
      lock.release();
      throw err;
    }
  }
  release(): void {
    if (this.fd >= 0) native().unlock(this.fd);
    this.fd = -1;
  }
}

/** Runs fn under the lock. */
export async function withLock<T>(file: string, exclusive: boolean, fn: () => Promise<T>): Promise<T> {
  const l = await FileLock.acquire(file, exclusive);
  try {
    return await fn();
  } finally {
    l.release();
  }
}
