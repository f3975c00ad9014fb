/**
 * @internal Steps of the three native layers (state-store file operations, an nf_tables
 * transaction, rtnetlink requests) in order, in one trip to the thread pool (native/seq.cc),
 * stopping after the first step that does not succeed. A connect or a disconnect waits for one
 * pool thread and one event-loop wake-up instead of three or four.
 *
 * A step succeeds when its own call would have resolved; an `fs` step marked `claims` only when
 * every claim in it was made as well: every `lock` taken, every `reserve` true, every `list`
 * holding nothing but names the step itself reserved in that directory (stricter than any caller's
 * own check, so a caller re-checks the results and never finds a step run that it would have
 * refused). A pipelined `rtnl` step succeeds when every op did.
 */
import { native } from './native';
import { NetlinkError, withCallerStack } from './errors';
import type { FsOp, FsResult } from './state/store';
import type { NftTransaction } from './nft/transaction';
import { trustedNative } from './netlink/ops';
import type { BatchOp } from './netlink/types';

export type Step =
  | { kind: 'fs'; ops: FsOp[]; claims?: boolean }
  | { kind: 'nft'; tx: NftTransaction }
  /** Ops this library built from checked values (see batchTrusted). */
  | { kind: 'rtnl'; ops: BatchOp[]; pipelined?: boolean };

export type StepOutcome<T = unknown> =
  | { status: 'fulfilled'; value: T }
  | { status: 'rejected'; reason: unknown }
  /** An earlier step did not succeed. */
  | { status: 'skipped' };

export type FsOutcome = StepOutcome<FsResult[]>;

export async function seq(steps: Step[]): Promise<StepOutcome[]> {
  const specs = steps.map((s) => {
    if (s.kind === 'nft') return s.tx.step() ?? { kind: 'fs', ops: [] };
    if (s.kind === 'rtnl') return { kind: 'rtnl', ops: s.ops.map(trustedNative), pipelined: s.pipelined === true };
    return s;
  });
  const out = await native<{ seq(specs: unknown[]): Promise<StepOutcome[]> }>().seq(specs);
  for (const [i, o] of out.entries()) {
    if (o.status !== 'rejected') continue;
    const s = steps[i];
    if (s.kind === 'nft') s.tx.explain(o.reason);
    if (o.reason instanceof NetlinkError) withCallerStack(o.reason);
  }
  return out;
}
