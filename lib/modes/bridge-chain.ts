/**
 * Bridge mode, the chained fast path: a connect's (or a disconnect's) store claims, nf_tables
 * transaction and rtnetlink requests in ONE worker call (native/chain.cc), instead of a trip to
 * the thread pool for each and the main thread in between.
 *
 * The chain runs its steps in order (namespace open, file operations, nf_tables, rtnetlink, file
 * operations after) and goes on past the store's step only when that step went exactly as the
 * common case expects: the network's lock was free, every claim was won, no other publisher
 * shares a port, the record read is the one this process wrote. Anything else stops it there,
 * and the caller carries on the usual way with what the chain did (bridge-connect.ts,
 * bridge-disconnect.ts): the chain is an optimisation of the same steps, never a second set of
 * rules. Not used with NETMODES_FAULT (the fault points sit between the steps).
 */
import { native } from '../native';
import { currentNamespace, type Namespace } from '../netns';
import type { BatchOp } from '../netlink';
import { trustedNative } from '../netlink/ops';
import type { NativeOp } from '../netlink/native';
import type { NftMsg } from '../nft/native';
import type { FsOp, FsResult } from '../state/store';
import type { NetlinkError } from '../errors';

/**
 * Stands, in a chain's rtnetlink ops (`ns`, a veth's `peer.ns`), for the namespace the chain
 * opens itself (ChainSpec.ns).
 */
export const CHAIN_NS = { chain: true } as unknown as Namespace;
/** What the addon calls it (native/rtnl/rtnl.h kTargetNs). */
const TARGET = '$target';

export interface ChainSpec {
  /** A namespace path, opened first (CHAIN_NS in the ops). */
  ns?: string;
  fs?: FsOp[];
  /** Per fs op: a read's exact content, or the only names a list may hold; null: anything. */
  expect?: Array<string | string[] | null>;
  /** nf_tables transactions, one per namespace, in order (the first that fails ends the step). */
  nft?: { ns: Namespace; msgs: NftMsg[] } | Array<{ ns: Namespace; msgs: NftMsg[] }>;
  /**
   * `early`: the ops before this index start as soon as the lock (the first fs op) is held,
   * beside the rest of the fs step and the nf_tables transaction; the ones from it on run only
   * once both went well (else `rtnlGated`, and what the early ones made is the caller's to undo).
   * `quiet`: when every op succeeded, `rtnl` is an array of as many holes (nothing converted).
   */
  rtnl?: { ops: BatchOp[]; pipelined?: boolean; early?: number; quiet?: boolean };
  /** File operations once everything before succeeded. */
  after?: FsOp[];
}

export interface ChainOutcome {
  /** The namespace could not be opened; nothing else ran. */
  ns?: NetlinkError;
  fs: FsResult[];
  fsError?: NetlinkError;
  /** The fs step went as expected, so the kernel steps ran. */
  go: boolean;
  /** undefined: not run; null: committed; else its error. */
  nft?: null | Error;
  /** rtnlExec's results, or its error (undefined: not run). */
  rtnl?: unknown[] | NetlinkError;
  /** The early rtnetlink ops ran, the rest did not (the fs step or nf_tables did not go well). */
  rtnlGated?: boolean;
  after?: FsResult[];
  afterError?: NetlinkError;
  /** Microseconds in each step: namespace, fs, nft, rtnl, after (for the benchmarks). */
  us: number[];
}

interface ChainNative {
  chainRun(spec: Record<string, unknown>): Promise<ChainOutcome>;
}

/**
 * An op as the addon takes it, CHAIN_NS (as `ns` or a veth's `peer.ns`) as TARGET: converted with
 * the process's own namespace standing in (the conversion, checked or not, wants a real one).
 */
function toChainNative(op: BatchOp): NativeOp {
  const o = op as unknown as Record<string, unknown>;
  const peer = o.peer as Record<string, unknown> | undefined;
  const inNs = o.ns === CHAIN_NS;
  const inPeer = peer?.ns === CHAIN_NS;
  if (!inNs && !inPeer) return trustedNative(op);
  const here = currentNamespace();
  const out = trustedNative({ ...o, ...(inNs ? { ns: here } : {}), ...(inPeer ? { peer: { ...peer, ns: here } } : {}) } as unknown as BatchOp);
  if (inNs) out.ns = TARGET as unknown as NativeOp['ns'];
  if (inPeer) (out.peer as Record<string, unknown>).ns = TARGET;
  return out;
}

/** Whether the chain is for this call at all (the fault points need the steps apart). */
export function chainAllowed(): boolean {
  return !process.env.NETMODES_FAULT;
}

/** Runs a chain (see the module comment). */
export function runChain(spec: ChainSpec): Promise<ChainOutcome> {
  const out: Record<string, unknown> = {};
  if (spec.ns !== undefined) out.ns = spec.ns;
  if (spec.fs) out.fs = spec.fs;
  if (spec.expect) out.expect = spec.expect;
  if (spec.nft) out.nft = [spec.nft].flat().map((t) => ({ ns: t.ns.handle, msgs: t.msgs }));
  if (spec.rtnl) {
    out.rtnl = {
      ops: spec.rtnl.ops.map(toChainNative),
      pipelined: spec.rtnl.pipelined === true,
      quiet: spec.rtnl.quiet === true,
      ...(spec.rtnl.early ? { early: spec.rtnl.early } : {}),
    };
  }
  if (spec.after) out.after = spec.after;
  return native<ChainNative>().chainRun(out);
}
