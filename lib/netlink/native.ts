/**
 * The rtnetlink slice of the addon, and the two calls every verb goes through.
 *
 * Native ops are plain objects: `{ op, ns, ...fields }`, fields as in the BatchOp types but with
 * namespaces as native handles and addresses split into `address` + `prefix` (addrAdd/addrDel).
 */
import { NetlinkError, withCallerStack } from '../errors';
import { native, NsHandle } from '../native';

export interface NativeOp {
  op: string;
  ns?: NsHandle | null;
  [field: string]: unknown;
}

export type DumpKind = 'link' | 'addr' | 'route' | 'neigh';

export interface NativeDumpFilter {
  family?: 4 | 6;
  /** addr: ifa_index; route: RTA_OIF; neigh: NDA_IFINDEX. */
  index?: number;
  /** link, neigh: only ports of this master. */
  master?: number;
  /** link: IFLA_INFO_KIND. */
  kind?: string;
  table?: number;
  protocol?: string | number;
  type?: string;
}

export interface DecodedMsg {
  type: string;
  flags: number;
  seq: number;
  link?: Record<string, unknown>;
  addr?: Record<string, unknown>;
  route?: Record<string, unknown>;
  neigh?: Record<string, unknown>;
  /** NLMSG_ERROR: positive errno, 0 for an ack. */
  error?: number;
}

export interface RtnlNative {
  /**
   * Runs ops in one worker execution. Non-pipelined: resolves with one result per op, or rejects
   * with the first failure's NetlinkError (`index`, and `results` of the ops before it).
   * Pipelined: resolves with one PromiseSettledResult-shaped object per op. `single` leaves
   * `index` off errors (for the one-op verbs).
   */
  rtnlExec(ops: NativeOp[], opts?: { pipelined?: boolean; single?: boolean }): Promise<unknown[]>;
  /** The array carries a non-enumerable `restarts`: how often an interrupted dump was started over. */
  rtnlDump(ns: NsHandle | null, kind: DumpKind, filter?: NativeDumpFilter): Promise<unknown[] & { restarts?: number }>;
  /** The bytes rtnlExec would send for ops, numbered from seq (default 1). Namespaces may be plain numbers (fds). */
  rtnlEncode(ops: NativeOp[], seq?: number): Buffer;
  rtnlDecode(buf: Buffer): DecodedMsg[];
}

export function rtnl(): RtnlNative {
  return native<RtnlNative>();
}

// The addon rejects from a libuv callback, so its errors carry no caller frames: they get the
// caller's on failure (withCallerStack; as sharp does, but without capturing a stack per call).
async function withStack<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err: unknown) {
    if (err instanceof NetlinkError) withCallerStack(err, 1);
    throw err;
  }
}

export function exec(ops: NativeOp[], opts: { pipelined?: boolean; single?: boolean } = {}): Promise<unknown[]> {
  return withStack(rtnl().rtnlExec(ops, opts));
}

/** One op; rejects with its NetlinkError (no `index`). */
export async function execOne(op: NativeOp): Promise<unknown> {
  const [r] = await withStack(rtnl().rtnlExec([op], { single: true }));
  return r;
}

export function dump(ns: NsHandle | null, kind: DumpKind, filter?: NativeDumpFilter): Promise<unknown[] & { restarts?: number }> {
  return withStack(rtnl().rtnlDump(ns, kind, filter));
}
