/**
 * Where sandboxes are remembered. One directory per sandbox under `<state>/sandboxes/NAME/`:
 *
 *   sandbox.json   the record (written atomically, 0600: see ../state/store)
 *   hosts          the file bind-mounted over /etc/hosts inside the sandbox (bridge, none)
 *   resolv.conf    the file bind-mounted over /etc/resolv.conf (bridge, none; host with dns)
 *
 * The record is written, in state `creating`, before the first kernel change, and marked `ready`
 * once everything is in place; a process killed in between leaves a record that `remove` (or
 * `netmodes rm`) can undo, since every teardown step tolerates what is already gone.
 *
 * Creating and removing sandboxes take one exclusive lock (`<state>/sandboxes/.lock`), so that a
 * name is claimed once, and a sandbox cannot be removed while another joins its namespace.
 * Readers (open, list) take no lock: records are replaced atomically.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { NetmodesError, isNotFound } from '../errors';
import { listDir, readJson, stateDir, withLock, writeJson } from '../state/store';
import type { PublishedPort } from '../modes/bridge';

export type SandboxMode = 'bridge' | 'host' | 'none' | 'container';

export interface SandboxRecord {
  version: 1;
  name: string;
  /** 64 hex digits; also the endpoint id in bridge mode. */
  id: string;
  mode: SandboxMode;
  state: 'creating' | 'ready';
  /** The namespace processes enter: its own (bridge, none), the joined one (container), or HOST_NETNS. */
  namespacePath: string;
  /** Bridge mode: the network's name. */
  network?: string;
  /** Container mode: the sandbox whose namespace this one joined. */
  container?: string;
  ip?: string;
  ipv6?: string;
  mac?: string;
  ports: PublishedPort[];
  /** Host name set inside (not in host mode unless asked for). */
  hostname?: string;
  hostsFile?: string;
  resolvFile?: string;
  /**
   * Sandboxes that joined this one's namespace, added before their own record is written: an
   * index for remove(), which checks each entry against its record (so an entry left by a crash
   * does not count).
   */
  sharedBy?: string[];
  created: string;
}

/** The namespace path of host-mode sandboxes: whichever namespace the caller runs in. */
export const HOST_NETNS = '/proc/self/ns/net';

export function sandboxesDir(): string {
  return path.join(stateDir(), 'sandboxes');
}

/** The sandbox's own directory (record, hosts, resolv.conf). */
export function sandboxDir(name: string): string {
  return path.join(sandboxesDir(), name);
}

function recordFile(name: string): string {
  return path.join(sandboxDir(name), 'sandbox.json');
}

export async function readRecord(name: string): Promise<SandboxRecord | undefined> {
  const r = await readJson<SandboxRecord>(recordFile(name));
  return r && r.version === 1 && r.name === name ? r : undefined;
}

export async function writeRecord(rec: SandboxRecord): Promise<void> {
  await fsp.mkdir(sandboxDir(rec.name), { recursive: true, mode: 0o700 });
  await writeJson(recordFile(rec.name), rec);
}

/** Removes the record, then the rest of the sandbox's directory. */
export async function deleteRecord(name: string): Promise<void> {
  await fsp.rm(recordFile(name), { force: true });
  await fsp.rm(sandboxDir(name), { recursive: true, force: true });
}

export async function allRecords(): Promise<SandboxRecord[]> {
  const names = await listDir(sandboxesDir());
  const recs = await Promise.all(names.map((n) => readRecord(n)));
  return recs.filter((r): r is SandboxRecord => !!r).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** A text file, or '' when there is none. */
export async function readText(file: string): Promise<string> {
  try {
    return await fsp.readFile(file, 'utf8');
  } catch (err) {
    if (isNotFound(err)) return '';
    throw err;
  }
}

/** Writes a file bind-mounted into the sandbox (readable by whatever user runs inside). */
export async function writeSandboxFile(name: string, file: string, text: string): Promise<string> {
  await fsp.mkdir(sandboxDir(name), { recursive: true, mode: 0o700 });
  const p = path.join(sandboxDir(name), file);
  await fsp.writeFile(p, text, { mode: 0o644 });
  return p;
}

export function noSandbox(name: string, field?: string): NetmodesError {
  return new NetmodesError('ENOSANDBOX', `${field ? field + ': ' : ''}no such sandbox: ${name}`);
}

/** Names of the sandboxes that joined `name`'s namespace (container mode), from every record. */
export function sharersOf(name: string, all: SandboxRecord[]): string[] {
  return all.filter((r) => r.container === name).map((r) => r.name);
}

/** The sharers `rec` lists that really joined it (reads only those records). */
export async function liveSharers(rec: SandboxRecord): Promise<string[]> {
  const listed = rec.sharedBy ?? [];
  const recs = await Promise.all(listed.map((n) => readRecord(n)));
  return listed.filter((_, i) => recs[i]?.container === rec.name);
}

// The flock is taken by a blocking call on a libuv pool thread: callers inside this process queue
// here first, so at most one pool thread ever waits for it (more could starve the pool that the
// lock holder needs for its own file I/O).
let queue: Promise<unknown> = Promise.resolve();

/** Runs fn holding the sandboxes' exclusive lock. */
export function withSandboxLock<T>(fn: () => Promise<T>): Promise<T> {
  const run = queue.then(() => withLock(path.join(sandboxesDir(), '.lock'), true, fn));
  queue = run.catch(() => undefined);
  return run;
}
