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
 *
 * Two ways to spend less of this thread where it would keep the kernel waiting: a FED chain
 * (ChainSpec.feed) starts with the lock and its first requests (a connect's veth create) and is
 * given the rest (feedChain) while the kernel works; a PREPARED chain (prepareChain) is converted
 * now and run later (a disconnect's, converted while its connect's kernel work runs).
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
  /**
   * The rest comes later, through feedChain(feed, rest): this spec is then the lock alone (`fs`)
   * and the first rtnetlink ops (native/chain.cc's header comment).
   */
  feed?: ChainFeed;
}

/** A fed chain's rest (feedChain): the fs ops after the lock, `expect` for the whole fs list, ops appended to the start's. */
export interface ChainRest {
  fs?: FsOp[];
  expect?: Array<string | string[] | null>;
  nft?: ChainSpec['nft'];
  /** `early`: an index in the whole op list (the start's ops count), as in ChainSpec. */
  rtnl?: { ops: BatchOp[]; early?: number };
  after?: FsOp[];
}

/** A fed chain's token (newFeed). */
export type ChainFeed = { readonly feedToken: unique symbol };
/** The addon's token for a converted spec. */
type PreparedToken = { readonly preparedToken: unique symbol };
/** A spec converted ahead of its run (prepareChain). */
export interface PreparedChain {
  readonly prepared: PreparedToken;
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
  /**
   * Only after the addon's chainTiming(true) (the benchmarks'): microseconds in each step
   * (namespace, fs, nft, rtnl, after); then when the worker started and ended, and (a fed
   * chain) when it asked for the rest and when the rest was given; then when the main thread
   * began converting this outcome and when it was done (CLOCK_MONOTONIC, as process.hrtime; 0
   * when not so).
   */
  us?: number[];
}

interface ChainNative {
  chainRun(spec: Record<string, unknown> | PreparedToken): Promise<ChainOutcome>;
  chainPrepare(spec: Record<string, unknown>): PreparedToken;
  chainFeedNew(): ChainFeed;
  chainFeed(feed: ChainFeed, rest: Record<string, unknown> | null): boolean;
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

function nftNative(nft: NonNullable<ChainSpec['nft']>): unknown {
  return [nft].flat().map((t) => ({ ns: t.ns.handle, msgs: t.msgs }));
}

function toNativeSpec(spec: ChainSpec): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (spec.ns !== undefined) out.ns = spec.ns;
  if (spec.fs) out.fs = spec.fs;
  if (spec.expect) out.expect = spec.expect;
  if (spec.nft) out.nft = nftNative(spec.nft);
  if (spec.rtnl) {
    out.rtnl = {
      ops: spec.rtnl.ops.map(toChainNative),
      pipelined: spec.rtnl.pipelined === true,
      quiet: spec.rtnl.quiet === true,
      ...(spec.rtnl.early ? { early: spec.rtnl.early } : {}),
    };
  }
  if (spec.after) out.after = spec.after;
  if (spec.feed) out.feed = spec.feed;
  return out;
}

/** Runs a chain (see the module comment), or one prepareChain() converted. */
export function runChain(spec: ChainSpec | PreparedChain): Promise<ChainOutcome> {
  const n = native<ChainNative>();
  return 'prepared' in spec ? n.chainRun(spec.prepared) : n.chainRun(toNativeSpec(spec));
}

/**
 * A spec converted now (on this thread) for one runChain() later: a disconnect's, built while its
 * connect's kernel work runs, so that the disconnect's own call converts nothing.
 */
export function prepareChain(spec: ChainSpec): PreparedChain {
  return { prepared: native<ChainNative>().chainPrepare(toNativeSpec(spec)) };
}

/** A token for one fed chain (ChainSpec.feed). */
export function newFeed(): ChainFeed {
  return native<ChainNative>().chainFeedNew();
}

/**
 * Gives a fed chain its rest (null: abandons it: the run ends as gated, the start's ops done).
 * Must come at once after runChain(), without an await between: until then a pool thread may
 * wait. False when the chain had already been abandoned.
 */
export function feedChain(feed: ChainFeed, rest: ChainRest | null): boolean {
  const n = native<ChainNative>();
  if (!rest) return n.chainFeed(feed, null);
  const out: Record<string, unknown> = {};
  if (rest.fs) out.fs = rest.fs;
  if (rest.expect) out.expect = rest.expect;
  if (rest.nft) out.nft = nftNative(rest.nft);
  if (rest.rtnl) out.rtnl = { ops: rest.rtnl.ops.map(toChainNative), ...(rest.rtnl.early !== undefined ? { early: rest.rtnl.early } : {}) };
  if (rest.after) out.after = rest.after;
  return n.chainFeed(feed, out);
}
