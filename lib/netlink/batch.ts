/**
 * Many operations, possibly in several namespaces, in one call (one trip to the worker pool).
 */
import { ConfigError } from '../errors';
import { exec } from './native';
import { toNative, trustedNative } from './ops';
import type { BatchOp, BatchOptions, BatchResult } from './types';

type Results<T extends readonly BatchOp[]> = { -readonly [K in keyof T]: BatchResult<T[K]> };
type Settled<T extends readonly BatchOp[]> = { -readonly [K in keyof T]: PromiseSettledResult<BatchResult<T[K]>> };

/**
 * Runs `ops` in order in one worker execution. Every op is validated first: a ConfigError (its
 * field named `ops[i]...`) means nothing was sent.
 *
 * Default: each request is acknowledged before the next; the first failure stops the batch and
 * rejects with its NetlinkError, `index` = the failing op, `results` = the results of the ops
 * before it (which stay applied; later ops are not attempted). `{ pipelined: true }`: consecutive
 * ops for the same namespace share one sendmsg; the kernel runs all of them even if one fails,
 * so the call resolves with one settled result per op and never stops early.
 *
 * Equivalent to: `ip -batch FILE` (without -force: stops at the first error; with -force: pipelined)
 */
export function batch<const T extends readonly BatchOp[]>(ops: T, opts?: BatchOptions & { pipelined?: false }): Promise<Results<T>>;
export function batch<const T extends readonly BatchOp[]>(ops: T, opts: BatchOptions & { pipelined: true }): Promise<Settled<T>>;
export function batch(ops: readonly BatchOp[], opts?: BatchOptions): Promise<unknown[]>;
export async function batch(ops: readonly BatchOp[], opts: BatchOptions = {}): Promise<unknown[]> {
  if (!Array.isArray(ops)) throw new ConfigError('must be an array of operations', 'ops');
  if (typeof opts !== 'object' || opts === null) throw new ConfigError('must be an object', 'opts');
  if (opts.pipelined !== undefined && typeof opts.pipelined !== 'boolean') throw new ConfigError('must be true or false', 'opts.pipelined');
  const native = ops.map((op, i) => toNative(op, `ops[${i}]`));
  if (native.length === 0) return [];
  return exec(native, { pipelined: opts.pipelined === true });
}

/**
 * @internal batch() for ops this library built itself from checked values (the bridge's connect
 * and disconnect): converted by trustedNative(), without batch()'s checks on the main thread.
 */
export function batchTrusted<const T extends readonly BatchOp[]>(ops: T, opts?: { pipelined?: false }): Promise<Results<T>>;
export function batchTrusted<const T extends readonly BatchOp[]>(ops: T, opts: { pipelined: true }): Promise<Settled<T>>;
export async function batchTrusted(ops: readonly BatchOp[], opts: { pipelined?: boolean } = {}): Promise<unknown[]> {
  return ops.length === 0 ? [] : exec(ops.map(trustedNative), { pipelined: opts.pipelined === true });
}
