/**
 * The typed expression model: a rule is a list of kernel expressions, each a plain object whose
 * fields mirror the kernel's attributes (libnftnl's `src/expr/*.c`), with names instead of
 * numbers. What the builders produce is exactly what `nftList` reads back, so a rule can be
 * compared with `assert.deepStrictEqual` after a restart.
 *
 * Registers are kernel numbers: REG_VERDICT (0), REG_1..REG_4 (16-byte), REG32(0..15) = 8..23
 * (4-byte). A concatenation `ip daddr . meta l4proto . th dport` loads into 1, 9 and 10.
 */

export const REG_VERDICT = 0;
export const REG_1 = 1;
export const REG_2 = 2;
/** 4-byte register n (NFT_REG32_00 + n). */
export const REG32 = (n: number): number => 8 + n;

export type Verdict =
  | { verdict: 'accept' | 'drop' | 'continue' | 'return' | 'queue' | 'break' }
  | { verdict: 'jump' | 'goto'; chain: string };
/** nft_data: bytes, or a verdict. */
export type Data = Buffer | Verdict;

export type PayloadBase = 'll' | 'network' | 'transport' | 'inner';
export type MetaKey =
  | 'len' | 'protocol' | 'priority' | 'mark' | 'iif' | 'oif' | 'iifname' | 'oifname' | 'iiftype' | 'oiftype'
  | 'skuid' | 'skgid' | 'nftrace' | 'rtclassid' | 'secmark' | 'nfproto' | 'l4proto' | 'ibrname' | 'obrname'
  | 'pkttype' | 'cpu' | 'iifgroup' | 'oifgroup' | 'cgroup' | 'random' | 'ipsec' | 'iifkind' | 'oifkind'
  | 'ibrpvid' | 'ibrvproto' | 'time' | 'day' | 'hour' | 'sdif' | 'sdifname' | 'broute';
export type CmpOp = 'eq' | 'neq' | 'lt' | 'lte' | 'gt' | 'gte';
export type NatFlag = 'map_ips' | 'proto_specified' | 'random' | 'persistent' | 'fully_random' | 'proto_offset' | 'netmap';
export type CtKey =
  | 'state' | 'direction' | 'status' | 'mark' | 'secmark' | 'expiration' | 'helper' | 'l3proto' | 'saddr' | 'daddr'
  | 'protocol' | 'proto-src' | 'proto-dst' | 'label' | 'packets' | 'bytes' | 'avgpkt' | 'zone' | 'event'
  | 'ip saddr' | 'ip daddr' | 'ip6 saddr' | 'ip6 daddr' | 'id';
export type FibFlag = 'saddr' | 'daddr' | 'mark' | 'iif' | 'oif' | 'present';

/** [ payload load 4b @ network header + 16 => reg 1 ] (with sreg: payload write) */
export interface PayloadExpr {
  type: 'payload';
  base: PayloadBase;
  offset: number;
  len: number;
  dreg?: number;
  sreg?: number;
  csumType?: 'none' | 'inet' | 'sctp';
  csumOffset?: number;
  csumFlags?: number;
}
/** [ meta load oifname => reg 1 ] / [ meta set mark with reg 1 ] */
export interface MetaExpr {
  type: 'meta';
  key: MetaKey;
  dreg?: number;
  sreg?: number;
}
/** [ cmp eq reg 1 0x0100000a ] */
export interface CmpExpr {
  type: 'cmp';
  sreg: number;
  op: CmpOp;
  data: Buffer;
}
/** [ range eq reg 1 0x401f 0x901f ] */
export interface RangeExpr {
  type: 'range';
  sreg: number;
  op: 'eq' | 'neq';
  from: Buffer;
  to: Buffer;
}
/** [ bitwise reg 1 = ( reg 1 & 0x0000ffff ) ^ 0x00000000 ] */
export interface BitwiseExpr {
  type: 'bitwise';
  sreg: number;
  dreg: number;
  len: number;
  mask?: Buffer;
  xor?: Buffer;
  /** Default mask_xor (left out, as nft does). */
  op?: 'mask_xor' | 'lshift' | 'rshift';
  data?: Buffer;
}
/** [ lookup reg 1 set published dreg 1 ]; flags ['inv'] for `!= @set` */
export interface LookupExpr {
  type: 'lookup';
  sreg: number;
  set: string;
  dreg?: number;
  setId?: number;
  flags?: 'inv'[];
}
/** [ immediate reg 0 accept ] / [ immediate reg 1 0x050011ac ] */
export interface ImmediateExpr {
  type: 'immediate';
  dreg: number;
  data: Data;
}
/** [ nat dnat ip addr_min reg 1 proto_min reg 9 ] */
export interface NatExpr {
  type: 'nat';
  natType: 'snat' | 'dnat';
  family: 'ip' | 'ip6' | 'inet';
  regAddrMin?: number;
  regAddrMax?: number;
  regProtoMin?: number;
  regProtoMax?: number;
  flags?: NatFlag[];
}
/** [ masq ] */
export interface MasqExpr {
  type: 'masq';
  flags?: NatFlag[];
  regProtoMin?: number;
  regProtoMax?: number;
}
/** [ redir proto_min reg 1 ] */
export interface RedirExpr {
  type: 'redir';
  regProtoMin?: number;
  regProtoMax?: number;
  flags?: NatFlag[];
}
/** [ ct load state => reg 1 ] */
export interface CtExpr {
  type: 'ct';
  key: CtKey;
  dreg?: number;
  sreg?: number;
  dir?: 'original' | 'reply';
}
/** [ fib daddr type => reg 1 ] */
export interface FibExpr {
  type: 'fib';
  dreg: number;
  result: 'oif' | 'oifname' | 'type';
  flags: FibFlag[];
}
/** [ counter pkts 0 bytes 0 ] (values read back only once non-zero) */
export interface CounterExpr {
  type: 'counter';
  bytes?: number;
  packets?: number;
}
/** [ reject type 0 code 3 ] */
export interface RejectExpr {
  type: 'reject';
  rejectType: 'icmp' | 'tcp reset' | 'icmpx';
  code?: number;
}
/** [ log prefix "x" ] */
export interface LogExpr {
  type: 'log';
  prefix?: string;
  group?: number;
  snaplen?: number;
  qthreshold?: number;
  level?: number;
  flags?: number;
}
/** [ limit rate 10/second burst 5 type packets ] */
export interface LimitExpr {
  type: 'limit';
  rate: number;
  unit: number;
  burst?: number;
  limitType?: 'packets' | 'bytes';
  flags?: 'inv'[];
}
/** [ notrack ] */
export interface NotrackExpr {
  type: 'notrack';
}
/** Any other kernel expression, as its name and raw NFTA_EXPR_DATA bytes (passed through as is). */
export interface RawExpr {
  type: 'raw';
  name: string;
  data: Buffer;
}

export type Expr =
  | PayloadExpr | MetaExpr | CmpExpr | RangeExpr | BitwiseExpr | LookupExpr | ImmediateExpr | NatExpr | MasqExpr
  | RedirExpr | CtExpr | FibExpr | CounterExpr | RejectExpr | LogExpr | LimitExpr | NotrackExpr | RawExpr;

export const EXPR_TYPES: readonly string[] = [
  'payload', 'meta', 'cmp', 'range', 'bitwise', 'lookup', 'immediate', 'nat', 'masq', 'redir', 'ct', 'fib',
  'counter', 'reject', 'log', 'limit', 'notrack', 'raw',
];

/** Expressions as the addon takes them (raw ones under their kernel name). */
export function exprToNative(e: Expr): Record<string, unknown> {
  if (e.type === 'raw') return { type: e.name, raw: e.data };
  return e as unknown as Record<string, unknown>;
}

/** Expressions as the addon returns them. */
export function exprFromNative(e: Record<string, unknown>): Expr {
  if ('raw' in e) return { type: 'raw', name: e.type as string, data: e.raw as Buffer };
  return e as unknown as Expr;
}

/** Counters count: strip their values to compare a rule with the one that was written. */
export function withoutCounterValues(exprs: Expr[]): Expr[] {
  return exprs.map((e) => (e.type === 'counter' ? { type: 'counter' } : e));
}
