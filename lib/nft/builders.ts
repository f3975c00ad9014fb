/**
 * Rule builders that read like the nft text they produce. Each helper has that text in the
 * comment above it; the expressions are the ones `nft --debug=netlink` shows for the same text
 * (implicit dependencies included), so `nft list ruleset` prints exactly what is written there.
 *
 *   rule('inet').match('ip saddr', '172.17.0.0/16').match('oifname', 'docker0', 'neq').masquerade().build()
 *   // ip saddr 172.17.0.0/16 oifname != "docker0" masquerade
 *
 * `rule(family)` takes the family of the table the rule goes in: in `inet` (and `bridge`,
 * `netdev`) tables, matching `ip saddr` needs a protocol check first (`meta nfproto ipv4`), which
 * nft adds implicitly and hides when it prints the rule; so do we, once per rule.
 */
import { ConfigError } from '../errors';
import { CmpOp, CtKey, Expr, NatFlag, REG32, REG_1, REG_VERDICT } from './expr';
import { DataType, Range, Scalar, hostU32, matchType, own } from './types';

export type Family = 'inet' | 'ip' | 'ip6' | 'bridge' | 'netdev' | 'arp';

/** Packet fields a rule can match on or use as a (concatenated) set key, by their nft text. */
export type FieldName =
  | 'ip saddr' | 'ip daddr' | 'ip6 saddr' | 'ip6 daddr' | 'th sport' | 'th dport' | 'meta l4proto' | 'meta nfproto'
  | 'meta mark' | 'iifname' | 'oifname' | 'meta iif' | 'meta oif' | 'meta ibrname' | 'meta obrname' | 'ether saddr'
  | 'ether daddr' | 'ether type' | 'icmpv6 type';

interface FieldDef {
  dtype: string;
  len: number;
  /** network protocol the field needs (the implicit dependency) */
  proto?: 'ip' | 'ip6';
  load: (dreg: number, len?: number) => Expr;
}
const payload = (base: 'll' | 'network' | 'transport', offset: number, len: number): FieldDef['load'] => (dreg, l) => ({
  type: 'payload', dreg, base, offset, len: l ?? len,
});
const meta = (key: 'l4proto' | 'nfproto' | 'mark' | 'iifname' | 'oifname' | 'iif' | 'oif' | 'ibrname' | 'obrname'): FieldDef['load'] => (dreg) => ({
  type: 'meta', key, dreg,
});

const FIELDS: Record<FieldName, FieldDef> = {
  'ip saddr': { dtype: 'ipv4_addr', len: 4, proto: 'ip', load: payload('network', 12, 4) },
  'ip daddr': { dtype: 'ipv4_addr', len: 4, proto: 'ip', load: payload('network', 16, 4) },
  'ip6 saddr': { dtype: 'ipv6_addr', len: 16, proto: 'ip6', load: payload('network', 8, 16) },
  'ip6 daddr': { dtype: 'ipv6_addr', len: 16, proto: 'ip6', load: payload('network', 24, 16) },
  // `th` (transport header) needs no protocol dependency: the port offsets are the same for
  // tcp, udp, udplite, sctp and dccp; pair it with `meta l4proto` to say which.
  'th sport': { dtype: 'inet_service', len: 2, load: payload('transport', 0, 2) },
  'th dport': { dtype: 'inet_service', len: 2, load: payload('transport', 2, 2) },
  'meta l4proto': { dtype: 'inet_proto', len: 1, load: meta('l4proto') },
  'meta nfproto': { dtype: 'nf_proto', len: 1, load: meta('nfproto') },
  'meta mark': { dtype: 'mark', len: 4, load: meta('mark') },
  iifname: { dtype: 'ifname', len: 16, load: meta('iifname') },
  oifname: { dtype: 'ifname', len: 16, load: meta('oifname') },
  // by interface index: cheaper than by name, but bound to that one device (nft prints the name)
  'meta iif': { dtype: 'iface_index', len: 4, load: meta('iif') },
  'meta oif': { dtype: 'iface_index', len: 4, load: meta('oif') },
  // bridge family: the bridge the packet came in on / leaves by
  'meta ibrname': { dtype: 'ifname', len: 16, load: meta('ibrname') },
  'meta obrname': { dtype: 'ifname', len: 16, load: meta('obrname') },
  'ether saddr': { dtype: 'ether_addr', len: 6, load: payload('ll', 6, 6) },
  'ether daddr': { dtype: 'ether_addr', len: 6, load: payload('ll', 0, 6) },
  'ether type': { dtype: 'ether_type', len: 2, load: payload('ll', 12, 2) },
  // (after `th sport`, which a one-byte load at the same offset is not: fieldOfLoad finds this)
  'icmpv6 type': { dtype: 'icmpv6_type', len: 1, proto: 'ip6', load: payload('transport', 0, 1) },
};

/** The fields known to the builders. */
export const FIELD_NAMES = Object.keys(FIELDS) as FieldName[];

function fieldDef(f: string, where = 'field'): FieldDef {
  const d = FIELDS[f as FieldName];
  if (!d) throw new ConfigError(`unknown field ${JSON.stringify(f)} (one of ${FIELD_NAMES.join(', ')})`, where);
  return d;
}

/**
 * The field a payload or meta load reads (for printing rules back): its nft text, data type,
 * length, protocol dependency, and `short` when it loads only the first bytes (a prefix match).
 */
export function fieldOfLoad(e: Expr): { name: FieldName; dtype: string; len: number; proto?: 'ip' | 'ip6'; short?: number } | undefined {
  if (e.type !== 'payload' && e.type !== 'meta') return undefined;
  for (const name of FIELD_NAMES) {
    const d = FIELDS[name];
    const l = d.load(1) as Expr;
    if (e.type === 'meta' && l.type === 'meta' && l.key === e.key) return { name, dtype: d.dtype, len: d.len, proto: d.proto };
    if (e.type === 'payload' && l.type === 'payload' && l.base === e.base && l.offset === e.offset && e.len <= l.len && e.len > 0) {
      if (e.len === l.len) return { name, dtype: d.dtype, len: d.len, proto: d.proto };
      if (d.dtype.endsWith('_addr')) return { name, dtype: d.dtype, len: d.len, proto: d.proto, short: e.len };
    }
  }
  return undefined;
}

/** The data type name (`ipv4_addr`) of a field: what a set keyed by it must use. */
export function fieldType(f: FieldName | FieldName[]): string {
  return (Array.isArray(f) ? f : [f]).map((x) => fieldDef(x).dtype).join(' . ');
}

const pad4 = (n: number) => (n + 3) & ~3;

/** ct state bits (host-endian u32, NF_CT_STATE_BIT). */
export const CT_STATES = { invalid: 1, established: 2, related: 4, new: 8, untracked: 64 } as const;
/** ct status bits (IPS_*). */
export const CT_STATUS = { expected: 1, 'seen-reply': 2, assured: 4, confirmed: 8, snat: 16, dnat: 32, dying: 512 } as const;
/** fib address types (RTN_*). */
export const FIB_TYPES = {
  unspec: 0, unicast: 1, local: 2, broadcast: 3, anycast: 4, multicast: 5, blackhole: 6, unreachable: 7, prohibit: 8,
} as const;

const verdict = (v: 'accept' | 'drop' | 'return' | 'continue'): Expr => ({ type: 'immediate', dreg: REG_VERDICT, data: { verdict: v } });

function bits<T extends Record<string, number>>(table: T, names: readonly (keyof T)[], field: string): number {
  if (!Array.isArray(names) || names.length === 0) throw new ConfigError(`a non-empty list of ${Object.keys(table).join(', ')}`, field);
  return names.reduce((m, n) => {
    if (typeof n !== 'string' || !own(table, n)) throw new ConfigError(`unknown value ${JSON.stringify(n)} (one of ${Object.keys(table).join(', ')})`, field);
    return m | table[n];
  }, 0);
}

export class RuleBuilder {
  readonly family: Family;
  private readonly out: Expr[] = [];
  private readonly deps = new Set<string>();

  constructor(family: Family = 'inet') {
    if (!['inet', 'ip', 'ip6', 'bridge', 'netdev', 'arp'].includes(family)) throw new ConfigError(`unknown family ${JSON.stringify(family)}`, 'family');
    this.family = family;
  }

  /** The expressions built so far (a copy). */
  build(): Expr[] {
    return [...this.out];
  }

  // The implicit protocol check nft adds before `ip ...` / `ip6 ...` matches, once per rule:
  // inet: `meta nfproto ipv4`; bridge: `ether type ip`; netdev: `meta protocol ip`.
  private need(proto: 'ip' | 'ip6' | undefined, what: string): void {
    if (!proto || this.deps.has(proto)) return;
    const f = this.family;
    if (f === 'arp' || (f === 'ip' && proto === 'ip6') || (f === 'ip6' && proto === 'ip'))
      throw new ConfigError(`${what} cannot match in a ${f} table`, 'family');
    this.deps.add(proto);
    const ethertype = Buffer.from(proto === 'ip' ? [0x08, 0x00] : [0x86, 0xdd]);
    if (f === 'inet')
      this.out.push({ type: 'meta', key: 'nfproto', dreg: REG_1 }, { type: 'cmp', sreg: REG_1, op: 'eq', data: Buffer.from([proto === 'ip' ? 2 : 10]) });
    else if (f === 'bridge')
      this.out.push({ type: 'payload', dreg: REG_1, base: 'll', offset: 12, len: 2 }, { type: 'cmp', sreg: REG_1, op: 'eq', data: ethertype });
    else if (f === 'netdev')
      this.out.push({ type: 'meta', key: 'protocol', dreg: REG_1 }, { type: 'cmp', sreg: REG_1, op: 'eq', data: ethertype });
  }

  /** Loads fields into consecutive registers (reg 1, then 4-byte registers 9, 10, ... as nft does). */
  private loadConcat(fields: readonly FieldName[], where: string): { len: number } {
    if (!Array.isArray(fields) || fields.length === 0) throw new ConfigError('at least one field', where);
    const defs = fields.map((f) => fieldDef(f, where));
    defs.forEach((d, i) => this.need(d.proto, fields[i]));
    let off = 0;
    for (const d of defs) {
      this.out.push(d.load(off === 0 ? REG_1 : REG32(off / 4)));
      off += pad4(d.len);
    }
    if (off > 64) throw new ConfigError('a concatenation of at most 64 bytes (16 registers)', where);
    return { len: off };
  }

  /**
   * `ip saddr 172.17.0.0/16`, `oifname != "docker0"`, `th dport 80`, `th dport 8000-8080`,
   * `meta l4proto tcp`, `iifname "veth*"`. Prefixes load only the whole bytes of the prefix, or
   * mask the rest with a bitwise (as nft does); ranges use the range expression.
   */
  match(field: FieldName, value: Scalar | Range, op: CmpOp = 'eq'): this {
    const d = fieldDef(field);
    const dt: DataType = matchType(d.dtype);
    this.need(d.proto, field);
    const f = `match ${field}`;
    if (!['eq', 'neq', 'lt', 'lte', 'gt', 'gte'].includes(op)) throw new ConfigError(`unknown operator ${JSON.stringify(op)}`, 'op');
    if (value !== null && typeof value === 'object') {
      if (op !== 'eq' && op !== 'neq') throw new ConfigError('a range matches with eq or neq only', 'op');
      const from = dt.encode(value.from, `${f}.from`);
      const to = dt.encode(value.to, `${f}.to`);
      if (Buffer.compare(from, to) > 0) throw new ConfigError('range start after its end', f);
      this.out.push(d.load(REG_1), { type: 'range', sreg: REG_1, op, from, to });
      return this;
    }
    if (d.dtype === 'ifname' && typeof value === 'string' && value.endsWith('*') && value.length > 1) {
      // `iifname "veth*"`: compare only the bytes before the wildcard (no NUL).
      const stem = Buffer.from(value.slice(0, -1));
      if (stem.length > 15) throw new ConfigError('interface name prefix longer than 15 bytes', f);
      this.out.push(d.load(REG_1), { type: 'cmp', sreg: REG_1, op, data: stem });
      return this;
    }
    const p = typeof value === 'string' && dt.prefix ? dt.prefix(value, f) : undefined;
    if (p) {
      // the prefix length, from the bits where first and last address agree
      let nbits = 0;
      for (let i = 0; i < dt.len; i++) {
        const m = ~(p[0][i] ^ p[1][i]) & 0xff;
        nbits += m === 0xff ? 8 : Math.clz32(~m & 0xff) - 24;
        if (m !== 0xff) break;
      }
      if (nbits === 0) return this; // /0 matches every packet: nft drops the match entirely
      if (nbits < dt.len * 8) {
        if (nbits % 8 === 0) {
          this.out.push(d.load(REG_1, nbits / 8), { type: 'cmp', sreg: REG_1, op, data: p[0].subarray(0, nbits / 8) });
        } else {
          const mask = Buffer.alloc(dt.len);
          for (let i = 0; i < dt.len; i++) mask[i] = ~(p[0][i] ^ p[1][i]) & 0xff;
          this.out.push(
            d.load(REG_1),
            { type: 'bitwise', sreg: REG_1, dreg: REG_1, len: dt.len, mask, xor: Buffer.alloc(dt.len) },
            { type: 'cmp', sreg: REG_1, op, data: p[0] },
          );
        }
        return this;
      }
    }
    this.out.push(d.load(REG_1), { type: 'cmp', sreg: REG_1, op, data: dt.encode(value, f) });
    return this;
  }

  /** `ip daddr @nets`, `ip daddr . th dport != @allowed` */
  inSet(fields: FieldName | FieldName[], set: string, opts: { not?: boolean } = {}): this {
    this.loadConcat(Array.isArray(fields) ? fields : [fields], 'inSet');
    this.out.push({ type: 'lookup', sreg: REG_1, set, ...(opts.not ? { flags: ['inv'] as 'inv'[] } : {}) });
    return this;
  }

  /** `ct state established,related` (`ct state != invalid` with not) */
  ctState(states: (keyof typeof CT_STATES)[], opts: { not?: boolean } = {}): this {
    return this.ctBits('state', bits(CT_STATES, states, 'ctState'), opts.not);
  }

  /** `ct status dnat` */
  ctStatus(status: (keyof typeof CT_STATUS)[], opts: { not?: boolean } = {}): this {
    return this.ctBits('status', bits(CT_STATUS, status, 'ctStatus'), opts.not);
  }

  private ctBits(key: CtKey, mask: number, not?: boolean): this {
    this.out.push(
      { type: 'ct', dreg: REG_1, key },
      { type: 'bitwise', sreg: REG_1, dreg: REG_1, len: 4, mask: hostU32(mask), xor: Buffer.alloc(4) },
      { type: 'cmp', sreg: REG_1, op: not ? 'eq' : 'neq', data: Buffer.alloc(4) },
    );
    return this;
  }

  /** `fib daddr type local` (the destination is an address of this host) */
  fibDaddrType(t: keyof typeof FIB_TYPES = 'local', opts: { not?: boolean } = {}): this {
    if (typeof t !== 'string' || !own(FIB_TYPES, t)) throw new ConfigError(`unknown address type ${JSON.stringify(t)}`, 'fibDaddrType');
    this.out.push(
      { type: 'fib', dreg: REG_1, result: 'type', flags: ['daddr'] },
      { type: 'cmp', sreg: REG_1, op: opts.not ? 'neq' : 'eq', data: hostU32(FIB_TYPES[t]) },
    );
    return this;
  }

  /** `counter` */
  counter(): this {
    this.out.push({ type: 'counter' });
    return this;
  }

  /** `accept` */
  accept(): this {
    this.out.push(verdict('accept'));
    return this;
  }
  /** `drop` */
  drop(): this {
    this.out.push(verdict('drop'));
    return this;
  }
  /** `return` */
  return(): this {
    this.out.push(verdict('return'));
    return this;
  }
  /** `continue` */
  continue(): this {
    this.out.push(verdict('continue'));
    return this;
  }
  /** `jump CHAIN` */
  jump(chain: string): this {
    this.out.push({ type: 'immediate', dreg: REG_VERDICT, data: { verdict: 'jump', chain } });
    return this;
  }
  /** `goto CHAIN` */
  goto(chain: string): this {
    this.out.push({ type: 'immediate', dreg: REG_VERDICT, data: { verdict: 'goto', chain } });
    return this;
  }

  /** `oifname vmap @dispatch` (the map's values are verdicts) */
  vmap(fields: FieldName | FieldName[], map: string): this {
    this.loadConcat(Array.isArray(fields) ? fields : [fields], 'vmap');
    this.out.push({ type: 'lookup', sreg: REG_1, dreg: REG_VERDICT, set: map });
    return this;
  }

  /** `masquerade` */
  masquerade(): this {
    this.out.push({ type: 'masq' });
    return this;
  }

  /** `dnat ip to 172.17.0.5:80` / `snat ip to 198.18.0.1` */
  nat(natType: 'snat' | 'dnat', addr: string, port?: number): this {
    const v6 = addr.includes(':');
    if (v6 ? this.family === 'ip' : this.family === 'ip6') throw new ConfigError(`an ${v6 ? 'IPv6' : 'IPv4'} address in a ${this.family} table`, 'addr');
    const a = matchType(v6 ? 'ipv6_addr' : 'ipv4_addr').encode(addr, 'addr');
    this.out.push({ type: 'immediate', dreg: REG_1, data: a });
    if (port !== undefined) this.out.push({ type: 'immediate', dreg: 2, data: matchType('inet_service').encode(port, 'port') });
    // The kernel fills the range maxima from the minima and sets MAP_IPS / PROTO_SPECIFIED when
    // the registers are given, and dumps them so: we send what it keeps, so a rule reads back
    // exactly as built (nft sends only the minima and, with a port, PROTO_SPECIFIED).
    this.out.push({
      type: 'nat',
      natType,
      family: v6 ? 'ip6' : 'ip',
      regAddrMin: REG_1,
      regAddrMax: REG_1,
      ...(port !== undefined ? { regProtoMin: 2, regProtoMax: 2 } : {}),
      flags: port !== undefined ? ['map_ips', 'proto_specified'] : ['map_ips'],
    });
    return this;
  }
  /** `dnat ip to 172.17.0.5:80` */
  dnat(addr: string, port?: number): this {
    return this.nat('dnat', addr, port);
  }
  /** `snat ip to 198.18.0.1` */
  snat(addr: string, port?: number): this {
    return this.nat('snat', addr, port);
  }

  /**
   * `dnat ip to ip daddr . meta l4proto . th dport map @published`: one lookup finds the target
   * (`ipv4_addr . inet_service`) for the key, so publishing a port is adding a map element.
   */
  dnatMap(fields: FieldName[], map: string, opts: { family?: 'ip' | 'ip6'; port?: boolean } = {}): this {
    const fam = opts.family ?? 'ip';
    const withPort = opts.port ?? true;
    this.loadConcat(fields, 'dnatMap');
    this.out.push({ type: 'lookup', sreg: REG_1, dreg: REG_1, set: map });
    // The map value sits in reg 1 onwards: the address, then the port in the next 4-byte slot.
    const portReg = REG32(fam === 'ip' ? 1 : 4);
    const flags: NatFlag[] = withPort ? ['map_ips', 'proto_specified'] : ['map_ips'];
    this.out.push({
      type: 'nat', natType: 'dnat', family: fam, regAddrMin: REG_1, regAddrMax: REG_1,
      ...(withPort ? { regProtoMin: portReg, regProtoMax: portReg } : {}), flags,
    });
    return this;
  }

  /** `redirect to :8080` */
  redirect(port: number): this {
    this.out.push(
      { type: 'immediate', dreg: REG_1, data: matchType('inet_service').encode(port, 'port') },
      { type: 'redir', regProtoMin: REG_1, regProtoMax: REG_1, flags: ['proto_specified'] },
    );
    return this;
  }

  /** `meta mark set 0x10` */
  setMark(mark: number): this {
    this.out.push({ type: 'immediate', dreg: REG_1, data: matchType('mark').encode(mark, 'mark') }, { type: 'meta', key: 'mark', sreg: REG_1 });
    return this;
  }

  /** `reject` (inet: `reject with icmpx port-unreachable`; ip: `reject with icmp port-unreachable`) */
  reject(): this {
    if (this.family === 'inet' || this.family === 'bridge' || this.family === 'netdev') this.out.push({ type: 'reject', rejectType: 'icmpx', code: 1 });
    else if (this.family === 'ip6') this.out.push({ type: 'reject', rejectType: 'icmp', code: 4 });
    else this.out.push({ type: 'reject', rejectType: 'icmp', code: 3 });
    return this;
  }

  /** `log prefix "PREFIX"` (to the kernel log; the kernel records level warning (4) when none is
   *  given and dumps it, so we send it) */
  log(prefix?: string): this {
    this.out.push(prefix === undefined ? { type: 'log', level: 4 } : { type: 'log', prefix, level: 4 });
    return this;
  }

  /** `notrack` */
  notrack(): this {
    this.out.push({ type: 'notrack' });
    return this;
  }

  /** Any expressions, as they are (the low-level escape hatch). */
  expr(...exprs: Expr[]): this {
    this.out.push(...exprs);
    return this;
  }
}

/** Starts a rule for a table of `family` (default inet). */
export function rule(family: Family = 'inet'): RuleBuilder {
  return new RuleBuilder(family);
}

// ---- The rules netmodes uses, one helper each. ----

/**
 * `ip saddr 172.17.0.0/16 oifname != "docker0" masquerade`
 * (Docker's POSTROUTING rule: traffic from the network leaving by another interface.)
 */
export function masquerade(o: { saddr?: string; oifnameNot?: string; oifname?: string; family?: Family }): Expr[] {
  const r = rule(o.family);
  if (o.saddr !== undefined) r.match(o.saddr.includes(':') ? 'ip6 saddr' : 'ip saddr', o.saddr);
  if (o.oifname !== undefined) r.match('oifname', o.oifname);
  if (o.oifnameNot !== undefined) r.match('oifname', o.oifnameNot, 'neq');
  return r.masquerade().build();
}

/**
 * `iifname != "docker0" meta l4proto tcp th dport 80 dnat ip to 172.17.0.5:80`
 * (nft lists it in its short form `iifname != "docker0" tcp dport 80 dnat ip to 172.17.0.5:80`;
 * one published port as one rule, as Docker's DOCKER chain does: the map form scales better.)
 */
export function dnatTo(o: {
  iifnameNot?: string;
  iifname?: string;
  daddr?: string;
  l4proto: 'tcp' | 'udp' | 'sctp' | number;
  dport: number;
  addr: string;
  port?: number;
  family?: Family;
}): Expr[] {
  const r = rule(o.family);
  if (o.iifname !== undefined) r.match('iifname', o.iifname);
  if (o.iifnameNot !== undefined) r.match('iifname', o.iifnameNot, 'neq');
  if (o.daddr !== undefined) r.match(o.daddr.includes(':') ? 'ip6 daddr' : 'ip daddr', o.daddr);
  return r.match('meta l4proto', o.l4proto).match('th dport', o.dport).dnat(o.addr, o.port).build();
}

/**
 * `dnat ip to ip daddr . meta l4proto . th dport map @published`
 * or, keyed without the address for ports published on every host address,
 * `fib daddr type local dnat ip to meta l4proto . th dport map @published_any`.
 * O(1) per packet whatever the number of published ports: each is one map element
 * `ADDR . PROTO . PORT : CTR_ADDR . CTR_PORT`.
 */
export function dnatMap(o: { map: string; key?: FieldName[]; fibLocal?: boolean; iifnameNot?: string; family?: Family; natFamily?: 'ip' | 'ip6' }): Expr[] {
  const r = rule(o.family);
  if (o.fibLocal) r.fibDaddrType('local');
  if (o.iifnameNot !== undefined) r.match('iifname', o.iifnameNot, 'neq');
  return r.dnatMap(o.key ?? ['ip daddr', 'meta l4proto', 'th dport'], o.map, { family: o.natFamily }).build();
}

/** `ct state established,related accept` */
export function ctStateAccept(states: (keyof typeof CT_STATES)[] = ['established', 'related'], family?: Family): Expr[] {
  return rule(family).ctState(states).accept().build();
}

/** `oifname vmap @dispatch` */
export function vmap(field: FieldName | FieldName[], map: string, family?: Family): Expr[] {
  return rule(family).vmap(field, map).build();
}
