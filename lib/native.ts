/**
 * Loads the C++ addon and gives it the JS error class (so native failures arrive as NetlinkError).
 * Each protocol module (rtnl, nft) declares the slice of the addon it uses; this file only knows
 * the core: namespace handles, sysctls and file locks.
 */
import { NetlinkError } from './errors';

/** Opaque native handle on an open network namespace. */
export interface NsHandle {
  readonly ino: number;
  readonly dev: number;
  readonly closed: boolean;
  close(): void;
}

export interface NativeCore {
  init(errorClass: typeof NetlinkError): void;
  nsCurrent(): NsHandle;
  /** `prepare`: a netlink protocol; a socket of it is made inside and waits in the handle's pool (best effort). */
  nsOpen(path: string, prepare?: number): Promise<NsHandle>;
  /** The process's C heap (glibc mallinfo2, every arena): bytes in use, free in the arenas, in mmapped blocks. */
  mallocStats(): { inUse: number; free: number; mapped: number };
  /** Returns the C heap's free pages to the kernel (glibc malloc_trim(0), on a pool thread); false where it cannot. */
  mallocTrim(): Promise<boolean>;
  /** `fault`: a test-only fault point (NETMODES_FAULT of the form `netns:*`). */
  nsCreate(dir: string, name: string, fault?: string): Promise<NsHandle>;
  /** Unmounts and unlinks a namespace, or unlinks a half-made name; ENOENT when absent, EBUSY while another process makes it. */
  nsDelete(path: string): Promise<void>;
  /** Removes the half-made names under dir whose creators are gone; resolves with their names. */
  nsReap(dir: string): Promise<string[]>;
  /** Fills the handle's socket pool with one socket of `protocol` (NETLINK_ROUTE = 0, NETLINK_NETFILTER = 12). */
  nsPrepare(ns: NsHandle, protocol: number): Promise<void>;
  sysctlGet(ns: NsHandle | null, key: string): Promise<string>;
  sysctlSet(ns: NsHandle | null, key: string, value: string): Promise<void>;
  /** Takes an flock on path (created 0600); resolves with the fd that holds it. */
  lock(path: string, exclusive: boolean): Promise<number>;
  unlock(fd: number): void;
}

let addon: unknown;

/** The addon, typed as the caller's slice of it. */
export function native<T = NativeCore>(): T {
  if (!addon) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      addon = require('bindings')({ bindings: 'netmodes', module_root: require('path').join(__dirname, '..', '..') });
    } catch (err) {
      const e = new Error(
        'netmodes: the native addon is not built. Possible solutions:\n' +
          '  - run `npm run build:native` (needs g++, make, python3 and the Node.js headers in /usr/include/node)\n' +
          '  - check that you are on Linux\n' +
          `  - cause: ${(err as Error).message}`,
        { cause: err },
      );
      throw e;
    }
    (addon as NativeCore).init(NetlinkError);
  }
  return addon as T;
}
