/**
 * nftables transactions: collect operations, then `commit()` sends them as ONE nf_tables batch.
 * The kernel applies all of them or none: if any fails, nothing changed, and the NetlinkError
 * names the failing operation (`index`, `op`, the object in `message`, the kernel's `extack`).
 *
 *   const tx = nftTransaction(ns);
 *   tx.addTable({ family: 'inet', name: 'netmodes' });
 *   tx.addChain({ family: 'inet', table: 'netmodes', name: 'post', type: 'nat', hook: 'postrouting', priority: 'srcnat' });
 *   const i = tx.addRule({ family: 'inet', table: 'netmodes', chain: 'post', exprs: masquerade({ saddr: '172.17.0.0/16', oifnameNot: 'docker0' }) });
 *   const results = await tx.commit();   // results[i].handle: the new rule's handle
 *
 * `add*` is nft's `add` (no error when the object exists), `create*` is nft's `create` (EEXIST).
 * Each method validates at once (ConfigError) and returns the operation's index in the results.
 */
import { native } from '../native';
import type { Namespace } from '../netns';
import { ConfigError, NetlinkError, withCallerStack } from '../errors';
import type { NftCommitOptions, NftMsg, NftMsgName, NftNative } from './native';
import {
  Chain,
  ChainRef,
  NftSet,
  Rule,
  RuleRef,
  SetElement,
  SetRef,
  SetSpec,
  Table,
  TableRef,
  chainMsg,
  checkChainRef,
  elementsToNative,
  ruleMsg,
  setMsg,
  setSpec,
  tableMsg,
} from './model';

export interface TxResult {
  /** The method that queued the operation (`addRule`, ...). */
  op: string;
  /** New rules: the kernel's handle (for deleteRule / replaceRule later). */
  handle?: number;
}

const key = (r: SetRef) => `${r.family}\0${r.table}\0${r.name}`;

export class NftTransaction {
  private readonly ns?: Namespace;
  private readonly msgs: NftMsg[] = [];
  /** per message: the operation (result index) it belongs to */
  private readonly owner: number[] = [];
  /** per operation: the method that queued it */
  private readonly ops: string[] = [];
  private readonly sets = new Map<string, SetSpec>();

  constructor(ns?: Namespace) {
    this.ns = ns;
  }

  /** Number of operations queued. */
  get length(): number {
    return this.ops.length;
  }

  private push(op: string, m: NftMsg): number {
    this.ops.push(op);
    this.msgs.push(m);
    this.owner.push(this.ops.length - 1);
    return this.ops.length - 1;
  }
  /** Another message of the last operation (a set's initial elements). */
  private pushMore(m: NftMsg): void {
    this.msgs.push(m);
    this.owner.push(this.ops.length - 1);
  }

  /** `nft add table inet T` (no error if it exists) */
  addTable(t: Table): number {
    return this.push('addTable', tableMsg('newtable', t, true));
  }
  /** `nft create table inet T` (EEXIST if it exists) */
  createTable(t: Table): number {
    return this.push('createTable', { ...tableMsg('newtable', t, true), excl: true });
  }
  /** `nft delete table inet T`: the table and everything in it (ENOENT if missing) */
  deleteTable(t: TableRef): number {
    return this.push('deleteTable', tableMsg('deltable', t, false));
  }
  /** `nft destroy table inet T`: as delete, but no error when it is missing (kernel 6.3+) */
  destroyTable(t: TableRef): number {
    return this.push('destroyTable', tableMsg('destroytable', t, false));
  }
  /** `nft flush table inet T`: every rule of every chain of the table (sets stay) */
  flushTable(t: TableRef): number {
    const m = tableMsg('delrule', t, false);
    return this.push('flushTable', { msg: 'delrule', family: m.family, table: t.name });
  }

  /** `nft add chain inet T C { type nat hook postrouting priority srcnat; policy accept; }` */
  addChain(c: Chain): number {
    return this.push('addChain', chainMsg('newchain', c, true));
  }
  /** `nft create chain ...` (EEXIST if it exists) */
  createChain(c: Chain): number {
    return this.push('createChain', { ...chainMsg('newchain', c, true), excl: true });
  }
  /** `nft delete chain inet T C` (EBUSY while rules jump to it or it has rules) */
  deleteChain(c: ChainRef): number {
    return this.push('deleteChain', chainMsg('delchain', c, false));
  }
  /** `nft destroy chain inet T C` (kernel 6.3+) */
  destroyChain(c: ChainRef): number {
    return this.push('destroyChain', chainMsg('destroychain', c, false));
  }
  /** `nft flush chain inet T C` */
  flushChain(c: ChainRef): number {
    checkChainRef(c);
    return this.push('flushChain', { msg: 'delrule', family: c.family, table: c.table, chain: c.name });
  }

  /** `nft add set|map inet T S { type ...; flags ...; }`, then its `elements` if given */
  addSet(s: NftSet): number {
    return this.queueSet('addSet', s, false);
  }
  /** `nft create set|map ...` (EEXIST if it exists) */
  createSet(s: NftSet): number {
    return this.queueSet('createSet', s, true);
  }
  private queueSet(op: string, s: NftSet, excl: boolean): number {
    const m = setMsg(s, 'newset');
    const spec = setSpec(s);
    const els = s.elements ? elementsToNative(spec, s.elements, false, 'set.elements') : undefined;
    this.sets.set(key(spec.ref), spec);
    const i = this.push(op, excl ? { ...m, excl: true } : m);
    if (els?.length) this.pushMore({ msg: 'newsetelem', family: s.family, table: s.table, set: s.name, elements: els });
    return i;
  }
  /** `nft delete set inet T S` */
  deleteSet(s: SetRef): number {
    checkChainRef(s, 'set');
    return this.push('deleteSet', { msg: 'delset', family: s.family, table: s.table, name: s.name });
  }
  /** `nft destroy set inet T S` (kernel 6.3+) */
  destroySet(s: SetRef): number {
    checkChainRef(s, 'set');
    return this.push('destroySet', { msg: 'destroyset', family: s.family, table: s.table, name: s.name });
  }
  /** `nft flush set inet T S`: every element */
  flushSet(s: SetRef): number {
    checkChainRef(s, 'set');
    return this.push('flushSet', { msg: 'delsetelem', family: s.family, table: s.table, set: s.name });
  }

  // Elements are typed by their set: an NftSet (as created or as listed), or a reference to a
  // set added earlier in this transaction.
  private specOf(s: SetRef | NftSet): SetSpec {
    checkChainRef(s, 'set');
    if ('type' in s && s.type !== undefined) return setSpec(s as NftSet);
    const known = this.sets.get(key(s));
    if (!known)
      throw new ConfigError(
        `the type of set ${s.family} ${s.table} ${s.name} is unknown: pass the NftSet (from addSet or nftList) instead of a reference`,
        'set',
      );
    return known;
  }
  private elements(op: string, msg: NftMsgName, s: SetRef | NftSet, elems: SetElement[], excl: boolean, forDelete: boolean): number {
    const spec = this.specOf(s);
    const m: NftMsg = { msg, family: spec.ref.family, table: spec.ref.table, set: spec.ref.name, elements: elementsToNative(spec, elems, forDelete) };
    return this.push(op, excl ? { ...m, excl: true } : m);
  }
  /** `nft add element inet T S { ... }` (an identical existing element is fine; in a map, an
   *  existing key with other data fails with EEXIST: delete it first, in the same transaction) */
  addElements(s: SetRef | NftSet, elems: SetElement[]): number {
    return this.elements('addElements', 'newsetelem', s, elems, false, false);
  }
  /** `nft create element inet T S { ... }` (EEXIST if one exists) */
  createElements(s: SetRef | NftSet, elems: SetElement[]): number {
    return this.elements('createElements', 'newsetelem', s, elems, true, false);
  }
  /** `nft delete element inet T S { ... }` (ENOENT if one is missing) */
  deleteElements(s: SetRef | NftSet, elems: SetElement[]): number {
    return this.elements('deleteElements', 'delsetelem', s, elems, false, true);
  }
  /** `nft destroy element inet T S { ... }` (missing ones are fine; kernel 6.3+) */
  destroyElements(s: SetRef | NftSet, elems: SetElement[]): number {
    return this.elements('destroyElements', 'destroysetelem', s, elems, false, true);
  }

  /** `nft add rule inet T C EXPR... comment "..."`: at the end of the chain, or after rule `after`. */
  addRule(r: Rule, opts: { after?: number } = {}): number {
    const m = ruleMsg(r, 'newrule');
    if (opts.after !== undefined) m.position = handleOf(opts.after, 'after');
    return this.push('addRule', m);
  }
  /** `nft insert rule inet T C ...`: at the head of the chain, or before rule `before`. */
  insertRule(r: Rule, opts: { before?: number } = {}): number {
    const m: NftMsg = { ...ruleMsg(r, 'newrule'), append: false };
    if (opts.before !== undefined) m.position = handleOf(opts.before, 'before');
    return this.push('insertRule', m);
  }
  /** `nft replace rule inet T C handle H ...` (the new rule takes the old one's place and handle) */
  replaceRule(r: Rule & { handle: number }): number {
    return this.push('replaceRule', { ...ruleMsg(r, 'newrule'), handle: handleOf(r.handle, 'rule.handle'), replace: true });
  }
  /** `nft delete rule inet T C handle H` */
  deleteRule(r: RuleRef): number {
    checkChainRef({ family: r.family, table: r.table, name: r.chain }, 'rule');
    return this.push('deleteRule', { msg: 'delrule', family: r.family, table: r.table, chain: r.chain, handle: handleOf(r.handle, 'rule.handle') });
  }
  /** `nft destroy rule inet T C handle H` (kernel 6.3+) */
  destroyRule(r: RuleRef): number {
    checkChainRef({ family: r.family, table: r.table, name: r.chain }, 'rule');
    return this.push('destroyRule', { msg: 'destroyrule', family: r.family, table: r.table, chain: r.chain, handle: handleOf(r.handle, 'rule.handle') });
  }

  /** The addon messages queued so far (copies). */
  messages(): NftMsg[] {
    return this.msgs.map((m) => ({ ...m }));
  }

  /** The exact bytes commit() would send (without root: for tests and debugging). */
  encode(seqBase = 0, opts: NftCommitOptions = {}): Buffer {
    return native<NftNative>().nftEncode(this.msgs, seqBase, opts);
  }

  /**
   * Sends everything as one nf_tables transaction. Resolves to one result per operation (the
   * index each method returned). An empty transaction resolves at once; committing again resends
   * the same operations (e.g. after ERESTART with a fresh genid). Options: `atomic: false`
   * lets a transaction larger than `maxBytes` (64 MiB) go as several batches; `genid` makes it
   * fail with ERESTART if the ruleset changed since the nftList that returned that generation.
   */
  async commit(opts: NftCommitOptions = {}): Promise<TxResult[]> {
    if (this.msgs.length === 0) return [];
    let res: { handle?: number }[];
    try {
      res = await native<NftNative>().nftTransact(this.ns ? this.ns.handle : null, this.msgs, opts);
    } catch (err) {
      // The addon counts messages; callers count operations (a set and its elements are one).
      const e = err as NetlinkError;
      if (e instanceof NetlinkError && e.index !== undefined && this.owner[e.index] !== undefined) {
        e.index = this.owner[e.index];
        e.message = e.message.replace(/\(operation \d+\)$/, `(operation ${e.index}: ${this.ops[e.index]})`);
      }
      if (e instanceof NetlinkError) withCallerStack(e);
      throw e;
    }
    const out: TxResult[] = this.ops.map((op) => ({ op }));
    res.forEach((r, i) => {
      if (r.handle !== undefined) out[this.owner[i]].handle = r.handle;
    });
    return out;
  }
}

function handleOf(h: unknown, field: string): number {
  if (typeof h !== 'number' || !Number.isSafeInteger(h) || h <= 0) throw new ConfigError(`a rule handle (positive integer) expected, got ${JSON.stringify(h)}`, field);
  return h;
}

/** A new transaction against `ns` (default: the namespace this process runs in). */
export function nftTransaction(ns?: Namespace): NftTransaction {
  return new NftTransaction(ns);
}
