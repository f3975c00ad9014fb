/**
 * The state store: what the library owns, written so that a process killed at any instant leaves
 * a record that a later process can finish or undo.
 *
 * - Records are JSON files replaced atomically (write a temp file, fsync, rename, fsync the
 *   directory), mode 0600 in directories of mode 0700: never half-written, never readable or
 *   writable by other users.
 * - Reservations (an address, a host port) are files created with O_EXCL: whoever creates the
 *   file owns the resource, across threads and processes, with no lock to hold. A crash between a
 *   reservation and the kernel change leaves a reservation that `reconcile()` finds and frees.
 * - `lock()` is an flock on a file: connect/disconnect take it shared (they don't exclude each
 *   other), reconcile and remove take it exclusive (so they never free what a connect is building).
 *
 * The default directory is /run/netmodes (tmpfs: it goes away on reboot exactly when the kernel
 * objects it describes do). `NETMODES_STATE_DIR` overrides it.
 */
import { promises as fsp, constants as C } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
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
    } catch {
      v = false;
    }
    volatileDirs.set(dir, v);
  }
  return v;
}

/** Atomically replaces `file` with `data` as JSON (0600). */
export async function writeJson(file: string, data: unknown): Promise<void> {
  const dir = path.dirname(file);
  await ensureDir(dir);
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(4).toString('hex')}.tmp`);
  const durable = !(await isVolatile(dir));
  if (durable) {
    const fh = await fsp.open(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o600);
    try {
      await fh.writeFile(JSON.stringify(data));
      await fh.sync();
    } finally {
      await fh.close();
    }
  } else {
    await fsp.writeFile(tmp, JSON.stringify(data), { flag: 'wx', mode: 0o600 });
  }
  try {
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  if (durable) await syncDir(dir);
}

async function syncDir(dir: string): Promise<void> {
  const d = await fsp.open(dir, C.O_RDONLY | C.O_DIRECTORY);
  try {
    await d.sync();
  } catch {
    /* some filesystems refuse fsync on directories; rename is still atomic */
  } finally {
    await d.close();
  }
}

/** Reads a JSON record, or undefined when it does not exist. A torn or foreign file reads as undefined. */
export async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await fsp.readFile(file, 'utf8')) as T;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENOENT' || err instanceof SyntaxError) return undefined;
    throw err;
  }
}

export async function removeFile(file: string): Promise<void> {
  await fsp.rm(file, { force: true });
}

/** Names in a directory (none when it does not exist), temp files left out. */
export async function listDir(dir: string): Promise<string[]> {
  try {
    return (await fsp.readdir(dir)).filter((n) => !n.startsWith('.'));
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return [];
    throw err;
  }
}

/**
 * Claims `file` for `owner` with O_EXCL. Resolves true when this caller now owns it, false when
 * somebody already does.
 */
export async function reserve(file: string, owner: string): Promise<boolean> {
  try {
    // O_CREAT|O_EXCL, then the owner: a reader can see the file empty for an instant (its owner
    // is "being written"); reconcile treats an empty reservation as owned by nobody only when it
    // holds the network lock exclusively, when no claim can be in flight.
    await fsp.writeFile(file, owner, { flag: 'wx', mode: 0o600 });
    return true;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'EEXIST') return false;
    if (code === 'ENOENT') {
      madeDirs.delete(path.dirname(file));
      await ensureDir(path.dirname(file));
      return reserve(file, owner);
    }
    throw err;
  }
}

/** Who holds a reservation ('' when the file is empty: its owner died while claiming it). */
export async function reservationOwner(file: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(file, 'utf8');
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Releases a reservation if `owner` (when given) still holds it. */
export async function release(file: string, owner?: string): Promise<void> {
  if (owner !== undefined) {
    const cur = await reservationOwner(file);
    if (cur !== undefined && cur !== '' && cur !== owner) return;
  }
  await removeFile(file);
}

/** An flock held until release() (or process death, when the kernel drops it). */
export class FileLock {
  private constructor(private fd: number) {}
  static async acquire(file: string, exclusive: boolean): Promise<FileLock> {
    await ensureDir(path.dirname(file));
    return new FileLock(await native().lock(file, exclusive));
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
