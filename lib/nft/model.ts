/**
 * The typed nftables model (Table, Chain, NftSet, SetElement, Rule), its validation, and its
 * translation to and from the addon's messages. Every check throws ConfigError with the field
 * before anything reaches the kernel.
 */
import { ConfigError } from '../errors';
import { Family } from './builders';
import { EXPR_TYPES, Expr, exprFromNative, exprToNative } from './expr';
import type { NftMsg, NftMsgName } from './native';
import {
  IntervalKey,
  NFT_DATA_VERDICT,
  TypeSpec,
  TypedValue,
  decodeInterval,
  decodeValue,
  decrement,
  encodeInterval,
  encodeValue,
  increment,
  own,
  parseType,
  typeFromId,
} from './types';

export type { Family };
export type Hook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting' | 'ingress' | 'egress';
export type ChainType = 'filter' | 'nat' | 'route';
/** nft's standard priority names (for ip, ip6, inet). */
export const PRIORITIES = { raw: -300, mangle: -150, dstnat: -100, filter: 0, security: 50, srcnat: 100 } as const;
export type PriorityName = keyof typeof PRIORITIES;

export interface TableRef {
  family: Family;
  name: string;
}
export interface Table extends TableRef {
  /**
   * dormant: the table's hooks are off. owner (kernel 5.12+): only the netlink socket that made
   * the table may change it (others get EPERM) and the kernel deletes it when that socket closes;
   * netmodes pools several sockets per namespace and closes them with the handle, so an owner
   * table lives only as long as that socket. persist (6.9+): keep an owner table after it closes.
   */
  flags?: ('dormant' | 'owner' | 'persist')[];
  comment?: string;
  /** Read back only. */
  handle?: number;
}

export interface ChainRef {
  family: Family;
  table: string;
  name: string;
}
export interface Chain extends ChainRef {
  /** Base chains: type, hook and priority together. */
  type?: ChainType;
  hook?: Hook;
  priority?: number | PriorityName;
  policy?: 'accept' | 'drop';
  /** netdev (and inet ingress) base chains: the device. */
  device?: string;
  comment?: string;
  handle?: number;
}

export interface SetRef {
  family: Family;
  table: string;
  name: string;
}
export type SetFlag = 'constant' | 'interval' | 'timeout' | 'dynamic';
/** A map value: typed data, or for vmaps a verdict. */
export type VerdictValue = 'accept' | 'drop' | 'return' | 'continue' | { jump: string } | { goto: string };
export interface SetElement {
  /** A value of the key type; a concatenation is an array. Interval sets also take prefixes
   *  ('10.0.0.0/8') and { from, to } ranges per field. */
  key: TypedValue | IntervalKey;
  /** Maps only: a value of the data type, or a verdict for vmaps. */
  data?: TypedValue | VerdictValue;
  comment?: string;
  /** Timeout sets: ms until the element expires (default: the set's timeout). */
  timeout?: number;
  /** Read back: ms left. */
  expires?: number;
}
export interface NftSet extends SetRef {
  /** Key type: `ipv4_addr`, `ipv4_addr . inet_proto . inet_service`, ... */
  type: string;
  /** Maps: the value type (`verdict`, `ipv4_addr . inet_service`, ...). */
  dataType?: string;
  flags?: (SetFlag | 'anonymous')[];
  /** Default element timeout in ms (timeout sets). */
  timeout?: number;
  size?: number;
  policy?: 'performance' | 'memory';
  comment?: string;
  elements?: SetElement[];
  handle?: number;
}

export interface RuleRef {
  family: Family;
  table: string;
  chain: string;
  handle: number;
}
export interface Rule {
  family: Family;
  table: string;
  chain: string;
  exprs: Expr[];
  comment?: string;
  handle?: number;
}

// ---------- validation ----------

const FAMILIES: readonly string[] = ['inet', 'ip', 'ip6', 'bridge', 'netdev', 'arp'];
const HOOKS: Record<string, Partial<Record<Hook, number>>> = {
  inet: { prerouting: 0, input: 1, forward: 2, output: 3, postrouting: 4, ingress: 5 },
  ip: { prerouting: 0, input: 1, forward: 2, output: 3, postrouting: 4 },
  ip6: { prerouting: 0, input: 1, forward: 2, output: 3, postrouting: 4 },
  bridge: { prerouting: 0, input: 1, forward: 2, output: 3, postrouting: 4 },
  arp: { input: 0, output: 1 },
  netdev: { ingress: 0, egress: 1 },
};
/** nft comments (NFTNL_UDATA_COMMENT_MAXLEN). */
const COMMENT_MAX = 128;

export function assertFamily(v: unknown, field = 'family'): asserts v is Family {
  if (typeof v !== 'string' || !FAMILIES.includes(v)) throw new ConfigError(`one of ${FAMILIES.join(', ')} expected, got ${JSON.stringify(v)}`, field);
}

/** nft object names (tables, chains, sets): 1-255 bytes (NFT_NAME_MAXLEN with the NUL), no NUL. */
export function assertName(v: unknown, field: string): asserts v is string {
  if (typeof v !== 'string' || v.length === 0 || Buffer.byteLength(v) > 255 || v.includes('\0'))
    throw new ConfigError(`a name of 1-255 bytes without NUL expected, got ${JSON.stringify(v)}`, field);
}

function assertComment(v: unknown, field: string): void {
  if (v === undefined) return;
  if (typeof v !== 'string' || Buffer.byteLength(v) > COMMENT_MAX || v.includes('\0'))
    throw new ConfigError(`a comment of at most ${COMMENT_MAX} bytes without NUL expected`, field);
}

function assertUint(v: unknown, field: string, max = Number.MAX_SAFE_INTEGER): asserts v is number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw new ConfigError(`an integer 0-${max} expected, got ${JSON.stringify(v)}`, field);
}

function assertObject(v: unknown, field: string): asserts v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ConfigError('an object expected', field);
}

function flagsOf<T extends string>(v: unknown, allowed: readonly T[], field: string): T[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((f) => !allowed.includes(f))) throw new ConfigError(`an array of ${allowed.join(', ')} expected`, field);
  return [...new Set(v)] as T[];
}

const withComment = (m: NftMsg, c?: string): NftMsg => (c === undefined ? m : { ...m, comment: c });

export function checkTableRef(t: TableRef, field = 'table'): void {
  assertObject(t, field);
  assertFamily(t.family, `${field}.family`);
  assertName(t.name, `${field}.name`);
}

export function checkChainRef(c: ChainRef, field = 'chain'): void {
  assertObject(c, field);
  assertFamily(c.family, `${field}.family`);
  assertName(c.table, `${field}.table`);
  assertName(c.name, `${field}.name`);
}

// ---------- to the addon ----------

export function tableMsg(msg: NftMsgName, t: Table | TableRef, full: boolean): NftMsg {
  checkTableRef(t);
  const m: NftMsg = { msg, family: t.family, name: t.name };
  if (!full) return m;
  const tt = t as Table;
  assertComment(tt.comment, 'table.comment');
  // Always sent, as nft does: `add table` on an existing table sets its flags (wakes a dormant one).
  const flags = flagsOf(tt.flags, ['dormant', 'owner', 'persist'] as const, 'table.flags') ?? [];
  return withComment({ ...m, flags }, tt.comment);
}

export function chainMsg(msg: NftMsgName, c: Chain | ChainRef, full: boolean): NftMsg {
  checkChainRef(c);
  const m: NftMsg = { msg, family: c.family, table: c.table, name: c.name };
  if (!full) return m;
  const cc = c as Chain;
  assertComment(cc.comment, 'chain.comment');
  const base = cc.type !== undefined || cc.hook !== undefined || cc.priority !== undefined;
  if (base) {
    if (!['filter', 'nat', 'route'].includes(cc.type as string)) throw new ConfigError('a base chain needs type filter, nat or route', 'chain.type');
    const hooks = HOOKS[cc.family];
    if (typeof cc.hook !== 'string' || !own(hooks, cc.hook))
      throw new ConfigError(`a ${cc.family} base chain needs a hook: ${Object.keys(hooks).join(', ')}`, 'chain.hook');
    let prio = cc.priority ?? 0;
    if (typeof prio === 'string') {
      if (!own(PRIORITIES, prio)) throw new ConfigError(`unknown priority name ${JSON.stringify(prio)}`, 'chain.priority');
      prio = PRIORITIES[prio as PriorityName];
    }
    if (!Number.isInteger(prio) || prio < -0x80000000 || prio > 0x7fffffff) throw new ConfigError('a 32-bit signed integer', 'chain.priority');
    const needsDev = cc.family === 'netdev' || cc.hook === 'ingress';
    if (needsDev) {
      if (typeof cc.device !== 'string' || cc.device.length === 0 || Buffer.byteLength(cc.device) > 15) throw new ConfigError('an interface name', 'chain.device');
    } else if (cc.device !== undefined) throw new ConfigError('only netdev and ingress chains take a device', 'chain.device');
    m.hook = { hooknum: hooks[cc.hook], priority: prio, ...(needsDev ? { dev: cc.device } : {}) };
    m.type = cc.type;
    if (cc.policy !== undefined) {
      if (cc.policy !== 'accept' && cc.policy !== 'drop') throw new ConfigError('accept or drop', 'chain.policy');
      m.policy = cc.policy;
    }
  } else if (cc.policy !== undefined || cc.device !== undefined) {
    throw new ConfigError('policy and device apply to base chains (with type, hook and priority)', 'chain.policy');
  }
  return withComment(m, cc.comment);
}

/** A set's types and flags, as needed to encode its elements. */
export interface SetSpec {
  ref: SetRef;
  key: TypeSpec;
  data?: TypeSpec | 'verdict';
  interval: boolean;
  timeout: boolean;
}

// Parsed specs of the sets seen lately, by everything that goes into one: a connect's elements
// name the same few sets every time, and parsing their types dominated encoding them.
const specCache = new Map<string, SetSpec>();

export function setSpec(s: NftSet, field = 'set'): SetSpec {
  assertObject(s, field);
  const ck =
    typeof s.type === 'string' && (s.dataType === undefined || typeof s.dataType === 'string') && (s.flags === undefined || Array.isArray(s.flags))
      ? `${s.family}\0${s.table}\0${s.name}\0${s.type}\0${s.dataType ?? ''}\0${(s.flags ?? []).join(',')}`
      : undefined;
  const hit = ck === undefined ? undefined : specCache.get(ck);
  if (hit) return hit;
  checkChainRef({ family: s.family, table: s.table, name: s.name }, field);
  const key = parseType(s.type, `${field}.type`);
  if (key.parts.some((p) => p.keyable === false)) throw new ConfigError(`${key.text} cannot key a set`, `${field}.type`);
  const data = s.dataType === undefined ? undefined : s.dataType === 'verdict' ? 'verdict' : parseType(s.dataType, `${field}.dataType`);
  const flags = flagsOf(s.flags, ['constant', 'interval', 'timeout', 'dynamic', 'anonymous'] as const, `${field}.flags`) ?? [];
  const spec: SetSpec = { ref: { family: s.family, table: s.table, name: s.name }, key, data, interval: flags.includes('interval'), timeout: flags.includes('timeout') };
  if (ck !== undefined) {
    if (specCache.size >= 256) specCache.clear();
    specCache.set(ck, spec);
  }
  return spec;
}

export function setMsg(s: NftSet, msg: NftMsgName): NftMsg {
  const spec = setSpec(s);
  assertComment(s.comment, 'set.comment');
  const flags: string[] = (flagsOf(s.flags, ['constant', 'interval', 'timeout', 'dynamic'] as const, 'set.flags') ?? []).slice();
  if (spec.data) flags.push('map');
  // Intervals over a concatenation use the pipapo backend: the kernel picks it from the CONCAT
  // flag and wants each field's length in NFTA_SET_DESC_CONCAT (nft sends both).
  if (spec.interval && spec.key.concat) flags.push('concat');
  const m: NftMsg = {
    msg,
    family: spec.ref.family,
    table: spec.ref.table,
    name: spec.ref.name,
    flags,
    keyType: spec.key.id,
    keyLen: spec.key.len,
    keyByteorder: spec.key.byteorder,
  };
  if (spec.data === 'verdict') Object.assign(m, { dataType: NFT_DATA_VERDICT, dataLen: 0, dataByteorder: 0, dataInterval: 0 });
  else if (spec.data) Object.assign(m, { dataType: spec.data.id, dataLen: spec.data.len, dataByteorder: spec.data.byteorder, dataInterval: 0 });
  const desc: Record<string, unknown> = {};
  if (s.size !== undefined) {
    assertUint(s.size, 'set.size', 0xffffffff);
    desc.size = s.size;
  }
  if (spec.interval && spec.key.concat) desc.concat = spec.key.parts.map((p) => ({ len: p.len }));
  if (Object.keys(desc).length) m.desc = desc;
  if (s.timeout !== undefined) {
    if (!spec.timeout) throw new ConfigError('a default timeout needs the timeout flag', 'set.timeout');
    assertUint(s.timeout, 'set.timeout');
    m.timeout = s.timeout;
  }
  if (s.policy !== undefined) {
    if (s.policy !== 'performance' && s.policy !== 'memory') throw new ConfigError('performance or memory', 'set.policy');
    m.policy = s.policy;
  }
  return withComment(m, s.comment);
}

function verdictData(v: unknown, field: string): { verdict: string; chain?: string } {
  if (typeof v === 'string' && ['accept', 'drop', 'return', 'continue'].includes(v)) return { verdict: v };
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const k = 'jump' in o ? 'jump' : 'goto' in o ? 'goto' : undefined;
    if (k && Object.keys(o).length === 1) {
      assertName(o[k], `${field}.${k}`);
      return { verdict: k, chain: o[k] as string };
    }
  }
  throw new ConfigError(`a verdict (accept, drop, return, continue, { jump }, { goto }) expected, got ${JSON.stringify(v)}`, field);
}

/**
 * Elements to the addon. Interval sets: a non-concatenated key becomes two kernel elements,
 * the first address and one past the last flagged INTERVAL_END (rbtree backend; none when the
 * range runs to the top of the type), as nft sends them; a concatenation carries its last key in
 * NFTA_SET_ELEM_KEY_END (pipapo). `forDelete` leaves out data, comments and timeouts.
 */
export function elementsToNative(spec: SetSpec, elems: SetElement[], forDelete: boolean, field = 'elements'): Record<string, unknown>[] {
  if (!Array.isArray(elems)) throw new ConfigError('an array of elements', field);
  const out: Record<string, unknown>[] = [];
  elems.forEach((e, i) => {
    const f = `${field}[${i}]`;
    assertObject(e, f);
    const extra: Record<string, unknown> = {};
    if (!forDelete) {
      assertComment(e.comment, `${f}.comment`);
      if (e.comment !== undefined) extra.comment = e.comment;
      if (e.timeout !== undefined) {
        if (!spec.timeout) throw new ConfigError('element timeouts need a set with the timeout flag', `${f}.timeout`);
        assertUint(e.timeout, `${f}.timeout`);
        extra.timeout = e.timeout;
      }
      if (spec.data === undefined) {
        if (e.data !== undefined) throw new ConfigError(`${spec.ref.name} is a set, not a map: no data`, `${f}.data`);
      } else if (e.data === undefined) {
        throw new ConfigError(`${spec.ref.name} is a map: each element needs data`, `${f}.data`);
      } else {
        extra.data = spec.data === 'verdict' ? verdictData(e.data, `${f}.data`) : encodeValue(spec.data, e.data, `${f}.data`);
      }
    }
    if (!spec.interval) {
      out.push({ key: encodeValue(spec.key, e.key, `${f}.key`), ...extra });
      return;
    }
    const [lo, hi] = encodeInterval(spec.key, e.key, `${f}.key`);
    if (spec.key.concat) {
      out.push({ key: lo, keyEnd: hi, ...extra });
      return;
    }
    out.push({ key: lo, ...extra });
    const end = increment(hi);
    if (end) out.push({ key: end, flags: ['interval_end'] });
  });
  return out;
}

export function ruleMsg(r: Rule, msg: NftMsgName, field = 'rule'): NftMsg {
  assertObject(r, field);
  checkChainRef({ family: r.family, table: r.table, name: r.chain }, field);
  assertComment(r.comment, `${field}.comment`);
  if (!Array.isArray(r.exprs)) throw new ConfigError('an array of expressions', `${field}.exprs`);
  r.exprs.forEach((e, i) => {
    if (e === null || typeof e !== 'object' || !EXPR_TYPES.includes((e as Expr).type))
      throw new ConfigError(`an expression (${EXPR_TYPES.join(', ')}) expected, got ${JSON.stringify(e)}`, `${field}.exprs[${i}]`);
  });
  return withComment({ msg, family: r.family, table: r.table, chain: r.chain, exprs: r.exprs.map(exprToNative) }, r.comment);
}

// ---------- from the addon ----------

const HOOK_NAMES = Object.fromEntries(
  Object.entries(HOOKS).map(([fam, hs]) => [fam, Object.fromEntries(Object.entries(hs).map(([n, v]) => [v, n]))]),
) as Record<string, Record<number, Hook>>;

export function tableFromNative(t: Record<string, any>): Table {
  const out: Table = { family: t.family, name: t.name };
  if (t.flags?.length) out.flags = t.flags;
  if (t.comment !== undefined) out.comment = t.comment;
  if (t.handle !== undefined) out.handle = t.handle;
  return out;
}

export function chainFromNative(c: Record<string, any>): Chain {
  const out: Chain = { family: c.family, table: c.table, name: c.name };
  if (c.hook) {
    out.type = c.type;
    out.hook = HOOK_NAMES[c.family]?.[c.hook.hooknum] ?? c.hook.hooknum;
    out.priority = c.hook.priority;
    if (c.policy !== undefined) out.policy = c.policy;
    if (c.hook.dev !== undefined) out.device = c.hook.dev;
  }
  if (c.comment !== undefined) out.comment = c.comment;
  if (c.handle !== undefined) out.handle = c.handle;
  return out;
}

function verdictFromNative(d: { verdict: string | number; chain?: string }): VerdictValue {
  if (d.verdict === 'jump' || d.verdict === 'goto') return { [d.verdict]: d.chain ?? '' } as VerdictValue;
  return d.verdict as VerdictValue;
}

/** Kernel elements -> typed elements; interval start/end pairs merge back into one range. */
export function elementsFromNative(spec: SetSpec | undefined, raw: Record<string, any>[]): SetElement[] {
  const data = (e: Record<string, any>): SetElement['data'] => {
    if (e.data === undefined || !spec?.data) return undefined;
    if (!Buffer.isBuffer(e.data)) return verdictFromNative(e.data);
    return spec.data === 'verdict' ? undefined : (decodeValue(spec.data, e.data) as TypedValue);
  };
  const finish = (e: Record<string, any>, key: SetElement['key']): SetElement => {
    const out: SetElement = { key };
    const d = data(e);
    if (d !== undefined) out.data = d;
    if (e.comment !== undefined) out.comment = e.comment;
    if (e.timeout !== undefined) out.timeout = e.timeout;
    if (e.expiration !== undefined) out.expires = e.expiration;
    return out;
  };
  if (!spec) return raw.map((e) => finish(e, e.key));
  if (!spec.interval) return raw.map((e) => finish(e, decodeValue(spec.key, e.key) as TypedValue));
  if (spec.key.concat) return raw.map((e) => finish(e, decodeInterval(spec.key, e.key, e.keyEnd ?? e.key) as IntervalKey));
  // rbtree: sort ascending (the kernel dumps them descending), an end before a start at the same
  // key; each start runs to just before the next end, or to the top of the type.
  const isEnd = (e: Record<string, any>) => Array.isArray(e.flags) && e.flags.includes('interval_end');
  const sorted = [...raw].sort((a, b) => Buffer.compare(a.key, b.key) || Number(isEnd(b)) - Number(isEnd(a)));
  const out: SetElement[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const e = sorted[i];
    if (isEnd(e)) continue; // an end without a start (nft's leading "0.0.0.0 end" marker)
    const next = sorted[i + 1];
    const hi = next && isEnd(next) ? decrement(next.key) ?? next.key : Buffer.alloc(spec.key.len, 0xff);
    if (next && isEnd(next)) i++;
    out.push(finish(e, decodeInterval(spec.key, e.key, hi) as IntervalKey));
  }
  return out;
}

export function setFromNative(s: Record<string, any>): { set: NftSet; spec?: SetSpec } {
  const key = typeFromId(s.keyType, s.keyLen);
  const isMap = (s.flags as string[] | undefined)?.includes('map');
  const dataSpec = !isMap ? undefined : s.dataType === NFT_DATA_VERDICT ? 'verdict' : typeFromId(s.dataType, s.dataLen);
  const flags = ((s.flags ?? []) as string[]).filter((f) => ['constant', 'interval', 'timeout', 'dynamic', 'anonymous'].includes(f)) as NftSet['flags'];
  const set: NftSet = {
    family: s.family,
    table: s.table,
    name: s.name,
    type: key ? key.text : `type ${s.keyType}`,
  };
  if (isMap) set.dataType = dataSpec === 'verdict' ? 'verdict' : dataSpec ? dataSpec.text : `type ${s.dataType}`;
  if (flags?.length) set.flags = flags;
  if (s.timeout !== undefined) set.timeout = s.timeout;
  if (s.desc?.size !== undefined) set.size = s.desc.size;
  if (s.policy !== undefined && s.policy !== 'performance') set.policy = s.policy;
  if (s.comment !== undefined) set.comment = s.comment;
  if (s.handle !== undefined) set.handle = s.handle;
  const spec: SetSpec | undefined =
    key && (!isMap || dataSpec)
      ? { ref: { family: s.family, table: s.table, name: s.name }, key, data: dataSpec, interval: !!flags?.includes('interval'), timeout: !!flags?.includes('timeout') }
      : undefined;
  if (Array.isArray(s.elements)) set.elements = elementsFromNative(spec, s.elements);
  return { set, spec };
}

export function ruleFromNative(r: Record<string, any>): Rule {
  const out: Rule = { family: r.family, table: r.table, chain: r.chain, exprs: (r.exprs ?? []).map(exprFromNative) };
  if (r.comment !== undefined) out.comment = r.comment;
  if (r.handle !== undefined) out.handle = r.handle;
  return out;
}
