/**
 * Network namespaces, without spawning anything.
 *
 * A `Namespace` wraps an open file descriptor on the namespace. Kernel requests for it go through
 * netlink sockets that the addon opens *inside* the namespace on a short-lived thread and then
 * keeps in a small per-handle pool; the Node process itself never changes namespace.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from './errors';
import { native, NsHandle } from './native';

/** Where named namespaces live, as for `ip netns`. */
export const NETNS_DIR = '/run/netns';

const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

/** Throws ConfigError unless `name` can be a file name under /run/netns. */
export function assertNamespaceName(name: unknown, field = 'name'): asserts name is string {
  if (typeof name !== 'string' || !NAME_RE.test(name) || name === '.' || name === '..')
    throw new ConfigError(
      `invalid namespace name ${JSON.stringify(name)} (1-64 characters of A-Z a-z 0-9 _ . -, not starting with . or -)`,
      field,
    );
}

export class Namespace {
  /** The name under /run/netns, for named namespaces. */
  readonly name?: string;
  /** A path that opens this namespace (`/run/netns/NAME`, `/proc/PID/ns/net`, ...). */
  readonly path: string;
  /** The native handle (used by the other modules). */
  readonly handle: NsHandle;

  /** @internal */
  constructor(handle: NsHandle, nsPath: string, name?: string) {
    this.handle = handle;
    this.path = nsPath;
    if (name !== undefined) this.name = name;
  }

  /** The namespace inode: equal inodes mean the same namespace. */
  get inode(): number {
    return this.handle.ino;
  }

  /** True for the namespace this process runs in. */
  get isCurrent(): boolean {
    return this === current;
  }

  /**
   * Releases the pooled sockets and the descriptor, and marks the handle closed (calls on it
   * fail). A call still running on it keeps the descriptor until it ends. The namespace stays.
   */
  close(): void {
    if (this !== current) this.handle.close();
  }

  /**
   * Deletes a named namespace (unmount and unlink) and closes this handle. Links inside it go
   * with it once nothing else holds it. Deleting twice is a no-op. See {@link deleteNamespace}.
   * Equivalent to: `ip netns del NAME`
   */
  async delete(): Promise<void> {
    if (!this.name) throw new ConfigError('only named namespaces can be deleted', 'namespace');
    this.close();
    await deletePath(this.path);
  }

  toString(): string {
    return this.name ?? this.path;
  }
}

let current: Namespace | undefined;

/** The namespace this process runs in (the default target of every call). */
export function currentNamespace(): Namespace {
  if (!current) current = new Namespace(native().nsCurrent(), '/proc/self/ns/net');
  return current;
}

/**
 * TEST-ONLY: the fault point NETMODES_FAULT names when it is one of the native namespace code's
 * (`netns:before-link`, `netns:after-link`, `netns:after-mount` kill the process with SIGKILL
 * there; `netns:stall-after-link` waits for a byte on stdin; see FaultPoint in native/netns.cc).
 */
function nsFault(): string | undefined {
  const f = process.env.NETMODES_FAULT;
  return f?.startsWith('netns:') ? f : undefined;
}

/**
 * Creates a persistent named namespace, exactly as `ip netns add NAME` does (a bind mount under
 * /run/netns, visible to `ip netns list` and usable with `ip netns exec`).
 * A name left half-made by a process killed inside this call (a file with no namespace mounted
 * on it, whose creator is gone) is reclaimed (docs/reliability.md).
 * Throws NetlinkError EEXIST when the name is taken: by a namespace, by a creation another
 * process is in the middle of, or by a file that is no namespace and not a leftover of ours
 * (one of `ip netns add`'s counts as a leftover once it is a minute old).
 * Equivalent to: `ip netns add NAME`
 */
export async function createNamespace(name: string, opts: { dir?: string } = {}): Promise<Namespace> {
  assertNamespaceName(name);
  const dir = opts.dir ?? NETNS_DIR;
  const handle = await native().nsCreate(dir, name, nsFault());
  return new Namespace(handle, path.join(dir, name), name);
}

async function deletePath(p: string): Promise<void> {
  try {
    await native().nsDelete(p);
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw err;
  }
}

/**
 * Deletes the namespace named `name` (under `dir`, default /run/netns), or the file a creation
 * killed midway left there. Deleting what is not there is a no-op. Throws NetlinkError EBUSY
 * while another process is creating that name (the creation is left to finish).
 * Equivalent to: `ip netns del NAME`
 */
export async function deleteNamespace(name: string, opts: { dir?: string } = {}): Promise<void> {
  assertNamespaceName(name);
  await deletePath(path.join(opts.dir ?? NETNS_DIR, name));
}

/**
 * Removes every name under `dir` (default /run/netns) that a process killed inside
 * createNamespace left half-made: a file with no namespace on it and no live creator. Never
 * touches a namespace or a creation in progress. Resolves with the names removed, for a service
 * cleaning up after a crash without knowing the names.
 */
export async function reapStaleNamespaces(opts: { dir?: string } = {}): Promise<string[]> {
  return (await native().nsReap(opts.dir ?? NETNS_DIR)).sort();
}

/**
 * Opens an existing namespace: a name under /run/netns, a path (`/run/netns/X`,
 * `/proc/PID/ns/net`), or a process id. Throws NetlinkError ENOENT when it does not exist and
 * EINVAL when the file is not a network namespace.
 */
export function openNamespace(target: string | number): Promise<Namespace> {
  return open(target);
}

/** `prepare`: a netlink protocol whose socket is made inside in the same trip (nsOpen). */
async function open(target: string | number, prepare?: number): Promise<Namespace> {
  const { p, name } = namespacePath(target);
  return new Namespace(await native().nsOpen(p, prepare), p, name);
}

/** @internal The file openNamespace(target) opens, and the namespace's name when it is under /run/netns. */
export function namespacePath(target: string | number): { p: string; name?: string } {
  let p: string;
  let name: string | undefined;
  if (typeof target === 'number') {
    if (!Number.isInteger(target) || target <= 0) throw new ConfigError('pid must be a positive integer', 'target');
    p = `/proc/${target}/ns/net`;
  } else if (typeof target === 'string' && target.includes('/')) {
    if (!path.isAbsolute(target)) throw new ConfigError('namespace path must be absolute', 'target');
    p = target;
    if (path.dirname(target) === NETNS_DIR) name = path.basename(target);
  } else {
    assertNamespaceName(target, 'target');
    p = path.join(NETNS_DIR, target);
    name = target;
  }
  return { p, name };
}

/** @internal openNamespace() and prepareNamespace() in one trip to the thread pool. */
export function openPrepared(target: string | number): Promise<Namespace> {
  return open(target, 0 /* NETLINK_ROUTE */);
}

/**
 * @internal Opens a socket inside the namespace ahead of time (it waits in the handle's pool), so
 * that the first request there does not wait for it; best effort.
 */
export async function prepareNamespace(ns: Namespace): Promise<Namespace> {
  await native()
    .nsPrepare(ns.handle, 0 /* NETLINK_ROUTE */)
    .catch(() => undefined);
  return ns;
}

/** Names of the namespaces under /run/netns. Equivalent to: `ip netns list` */
export async function listNamespaces(dir = NETNS_DIR): Promise<string[]> {
  try {
    return (await fsp.readdir(dir)).sort();
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return [];
    throw err;
  }
}

const SYSCTL_RE = /^net([.][A-Za-z0-9_\-]+)+$|^net(\/[A-Za-z0-9_.\-]+)+$/;
function checkKey(key: string): void {
  if (typeof key !== 'string' || !SYSCTL_RE.test(key) || key.includes('..') || key.includes('/.'))
    throw new ConfigError(`not a per-namespace sysctl: ${JSON.stringify(key)} (expected net.*)`, 'key');
}

/**
 * Builds a sysctl key from parts, using the `/` form when a part (an interface name) contains
 * a dot: `sysctlKey('net', 'ipv4', 'conf', 'eth0.10', 'forwarding')`.
 */
export function sysctlKey(...parts: string[]): string {
  return parts.some((p) => p.includes('.')) ? parts.join('/') : parts.join('.');
}

/** Reads a per-namespace sysctl. Equivalent to: `ip netns exec NS sysctl -n KEY` */
export async function sysctlGet(key: string, ns?: Namespace): Promise<string> {
  checkKey(key);
  return native().sysctlGet(ns ? ns.handle : null, key);
}

/** Writes a per-namespace sysctl. Equivalent to: `ip netns exec NS sysctl -w KEY=VALUE` */
export async function sysctlSet(key: string, value: string | number, ns?: Namespace): Promise<void> {
  checkKey(key);
  return native().sysctlSet(ns ? ns.handle : null, key, String(value));
}
