/**
 * The ruleset as nft text, from our own read-back (no `nft` process): for logs, demos and
 * debugging. Rules are decompiled from their expressions the way nft's netlink_delinearize does
 * it for the patterns the builders make (and the usual ones nft makes): register loads are
 * tracked until a cmp, range, lookup, nat or set consumes them, implicit protocol dependencies are
 * hidden, `meta l4proto tcp th dport 80` prints as `tcp dport 80`. An expression sequence it does
 * not recognise prints in angle brackets (`<quota>`), so the text is for reading, not for `nft -f`.
 * Equivalent to: `nft list ruleset`
 */
import type { Namespace } from '../netns';
import { CT_STATES, CT_STATUS, FIB_TYPES, Family, fieldOfLoad } from './builders';
import type { Expr } from './expr';
import { ListFilter, nftList } from './list';
import type { Chain, NftSet, Rule, SetElement, Table } from './model';
import { Range, matchType } from './types';

interface Src {
  text: string;
  dtype?: string;
  len: number;
  proto?: 'ip' | 'ip6';
  short?: number;
  mask?: Buffer;
  value?: Buffer | { verdict: string; chain?: string };
  map?: boolean;
  order: number;
}
interface Stmt {
  text: string;
  /** an implicit protocol check (meta nfproto / ether type / meta protocol) */
  dep?: 'ip' | 'ip6';
  /** statements that need the protocol */
  uses?: 'ip' | 'ip6';
  /** `meta l4proto tcp`: merged with a following `th dport` into `tcp dport` */
  l4?: string;
}

const OPS: Record<string, string> = { eq: '', neq: '!= ', lt: '< ', lte: '<= ', gt: '> ', gte: '>= ' };
const pad4 = (n: number) => (n + 3) & ~3;
const quote = (s: string) => JSON.stringify(s);
const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const u32host = (b: Buffer) => (b.length === 4 ? (LE ? b.readUInt32LE(0) : b.readUInt32BE(0)) : 0);
const LEVELS = ['emerg', 'alert', 'crit', 'err', 'warn', 'notice', 'info', 'debug', 'audit'];

function bitNames(table: Record<string, number>, bits: number): string {
  const names = Object.entries(table).filter(([, v]) => bits & v).map(([k]) => k);
  return names.length ? names.join(',') : `0x${bits.toString(16)}`;
}

/** A constant of a data type as nft prints it. */
export function formatValue(dtype: string | undefined, b: Buffer): string {
  switch (dtype) {
    case 'mark':
      return `0x${u32host(b).toString(16).padStart(8, '0')}`;
    case 'ifname':
      return quote(matchType('ifname').decode(b) as string);
    case 'ct_state':
      return bitNames(CT_STATES, u32host(b));
    case 'ct_status':
      return bitNames(CT_STATUS, u32host(b));
    case 'fib_addrtype':
      return Object.entries(FIB_TYPES).find(([, v]) => v === u32host(b))?.[0] ?? String(u32host(b));
    case undefined:
      return `0x${b.toString('hex')}`;
    default:
      try {
        const t = matchType(dtype);
        return b.length === t.len ? String(t.decode(b)) : `0x${b.toString('hex')}`;
      } catch {
        return `0x${b.toString('hex')}`;
      }
  }
}

function verdictText(v: { verdict: string; chain?: string }): string {
  return v.chain !== undefined ? `${v.verdict} ${v.chain}` : v.verdict;
}

const BASES: Record<string, string> = { ll: 'll', network: 'nh', transport: 'th', inner: 'ih' };

/**
 * Decompiles one rule's expressions to nft text (without its comment). `sets` gives the key type
 * of the sets the rule looks up (nft sizes a lookup key by its set); without it a key is every
 * register loaded in sequence.
 */
export function ruleText(exprs: Expr[], family: Family = 'inet', sets?: Map<string, string>): string {
  const regs = new Map<number, Src>();
  const out: Stmt[] = [];
  let order = 0;
  const load = (reg: number | undefined, s: Omit<Src, 'order'>) => {
    if (reg !== undefined) regs.set(reg, { ...s, order: order++ });
  };
  // Key of a lookup: the register and those loaded after it in consecutive 4-byte slots.
  const concat = (reg: number, set: string): Src[] => {
    const parts: Src[] = [];
    const max = sets?.get(set)?.split(' . ').length ?? 16;
    let r = reg;
    let s = regs.get(r);
    while (s && parts.length < max && (parts.length === 0 || s.order > parts[parts.length - 1].order)) {
      parts.push(s);
      regs.delete(r);
      r = (r === 1 ? 8 : r) + pad4(s.len) / 4;
      s = regs.get(r);
    }
    return parts;
  };
  const keyText = (parts: Src[]) => (parts.length ? parts.map((p) => p.text).join(' . ') : '<?>');
  const uses = (parts: Src[]) => parts.find((p) => p.proto)?.proto;

  for (const e of exprs) {
    switch (e.type) {
      case 'payload': {
        if (e.dreg === undefined) {
          out.push({ text: `@${BASES[e.base] ?? e.base},${e.offset * 8},${e.len * 8} set <reg ${e.sreg}>` });
          break;
        }
        const f = fieldOfLoad(e);
        load(e.dreg, f ? { text: f.name, dtype: f.dtype, len: f.len, proto: f.proto, short: f.short } : { text: `@${BASES[e.base] ?? e.base},${e.offset * 8},${e.len * 8}`, len: e.len });
        break;
      }
      case 'meta': {
        const f = fieldOfLoad(e);
        const text = f ? f.name : e.key === 'protocol' ? 'meta protocol' : `meta ${e.key}`;
        const dtype = f ? f.dtype : e.key === 'protocol' ? 'ether_type' : undefined;
        if (e.dreg !== undefined) load(e.dreg, { text, dtype, len: f ? f.len : 4 });
        else {
          const v = regs.get(e.sreg ?? -1);
          out.push({ text: `${text} set ${v?.value && Buffer.isBuffer(v.value) ? formatValue(dtype, v.value) : v?.text ?? '<?>'}` });
        }
        break;
      }
      case 'ct': {
        const dtype = e.key === 'state' ? 'ct_state' : e.key === 'status' ? 'ct_status' : e.key === 'mark' ? 'mark' : undefined;
        const text = `ct ${e.dir ? `${e.dir} ` : ''}${e.key}`;
        if (e.dreg !== undefined) load(e.dreg, { text, dtype, len: 4 });
        else {
          const v = regs.get(e.sreg ?? -1);
          out.push({ text: `${text} set ${v?.value && Buffer.isBuffer(v.value) ? formatValue(dtype, v.value) : v?.text ?? '<?>'}` });
        }
        break;
      }
      case 'fib': {
        const keys = e.flags.filter((f) => f !== 'present').join(' . ');
        load(e.dreg, { text: `fib ${keys} ${e.result}`, dtype: e.result === 'type' ? 'fib_addrtype' : e.result === 'oifname' ? 'ifname' : undefined, len: e.result === 'oifname' ? 16 : 4 });
        break;
      }
      case 'bitwise': {
        const s = regs.get(e.sreg);
        if (s && (e.op === undefined || e.op === 'mask_xor') && e.mask && (!e.xor || e.xor.every((x) => x === 0))) load(e.dreg, { ...s, mask: e.mask });
        else load(e.dreg, { text: `<bitwise ${s?.text ?? '?'}>`, len: e.len });
        break;
      }
      case 'cmp': {
        const s = regs.get(e.sreg);
        regs.delete(e.sreg);
        out.push(cmpStmt(s, e.op, e.data));
        break;
      }
      case 'range': {
        const s = regs.get(e.sreg);
        regs.delete(e.sreg);
        out.push({ text: `${s?.text ?? '<?>'} ${e.op === 'neq' ? '!= ' : ''}${formatValue(s?.dtype, e.from)}-${formatValue(s?.dtype, e.to)}`, uses: s?.proto });
        break;
      }
      case 'lookup': {
        const parts = concat(e.sreg, e.set);
        const key = keyText(parts);
        if (e.dreg === undefined) out.push({ text: `${key} ${e.flags?.includes('inv') ? '!= ' : ''}@${e.set}`, uses: uses(parts) });
        else if (e.dreg === 0) out.push({ text: `${key} vmap @${e.set}`, uses: uses(parts) });
        else load(e.dreg, { text: `${key} map @${e.set}`, map: true, len: 4, proto: uses(parts) });
        break;
      }
      case 'immediate':
        if (e.dreg === 0 && !Buffer.isBuffer(e.data)) out.push({ text: verdictText(e.data) });
        else load(e.dreg, { text: '', value: e.data, len: Buffer.isBuffer(e.data) ? e.data.length : 16 });
        break;
      case 'nat': {
        const a = e.regAddrMin !== undefined ? regs.get(e.regAddrMin) : undefined;
        const p = e.regProtoMin !== undefined ? regs.get(e.regProtoMin) : undefined;
        const fam = family === 'inet' ? ` ${e.family}` : '';
        let to: string;
        if (a?.map) to = a.text;
        else {
          const addr = a?.value && Buffer.isBuffer(a.value) ? formatValue(e.family === 'ip6' ? 'ipv6_addr' : 'ipv4_addr', a.value) : '';
          const port = p?.value && Buffer.isBuffer(p.value) ? formatValue('inet_service', p.value) : '';
          to = port ? (e.family === 'ip6' && addr ? `[${addr}]:${port}` : `${addr}:${port}`) : addr;
        }
        const flags = (e.flags ?? []).filter((f) => ['random', 'persistent', 'fully_random'].includes(f)).map((f) => f.replace('_', '-'));
        out.push({ text: `${e.natType}${fam} to ${to}${flags.length ? ` ${flags.join(',')}` : ''}`, uses: a?.proto });
        break;
      }
      case 'masq':
      case 'redir': {
        const p = e.regProtoMin !== undefined ? regs.get(e.regProtoMin) : undefined;
        const port = p?.value && Buffer.isBuffer(p.value) ? ` to :${formatValue('inet_service', p.value)}` : '';
        out.push({ text: `${e.type === 'masq' ? 'masquerade' : 'redirect'}${port}` });
        break;
      }
      case 'counter':
        out.push({ text: `counter packets ${e.packets ?? 0} bytes ${e.bytes ?? 0}` });
        break;
      case 'log': {
        let t = 'log';
        if (e.prefix !== undefined) t += ` prefix ${quote(e.prefix)}`;
        if (e.group !== undefined) t += ` group ${e.group}`;
        if (e.level !== undefined && e.level !== 4) t += ` level ${LEVELS[e.level] ?? e.level}`;
        out.push({ text: t });
        break;
      }
      case 'reject':
        if (e.rejectType === 'tcp reset') out.push({ text: 'reject with tcp reset' });
        else if ((e.rejectType === 'icmpx' && e.code === 1) || (e.rejectType === 'icmp' && e.code === (family === 'ip6' ? 4 : 3))) out.push({ text: 'reject' });
        else out.push({ text: `reject with ${e.rejectType} ${e.code ?? 0}` });
        break;
      case 'limit': {
        const units: Record<number, string> = { 1: 'second', 60: 'minute', 3600: 'hour', 86400: 'day', 604800: 'week' };
        const bytes = e.limitType === 'bytes' ? ' bytes' : '';
        const burst = e.burst !== undefined && e.burst !== (bytes ? 0 : 5) ? ` burst ${e.burst}${bytes ? ' bytes' : ' packets'}` : '';
        out.push({ text: `limit rate ${e.flags?.includes('inv') ? 'over ' : ''}${e.rate}${bytes}/${units[e.unit] ?? `${e.unit}s`}${burst}` });
        break;
      }
      case 'notrack':
        out.push({ text: 'notrack' });
        break;
      default:
        out.push({ text: `<${e.type === 'raw' ? e.name : (e as Expr).type}>` });
    }
  }
  // Hide implicit dependencies that a later statement needs; merge `meta l4proto tcp th dport`.
  const kept = out.filter((s, i) => !(s.dep && out.slice(i + 1).some((t) => t.uses === s.dep)));
  const merged: string[] = [];
  for (let i = 0; i < kept.length; i++) {
    const s = kept[i];
    const n = kept[i + 1];
    // nft prints the transport protocol check as the header name of the next port match,
    // also inside a concatenation: `ip saddr . tcp dport @s`
    const th = /(^|\. )th (sport|dport)\b/;
    if (s.l4 && n && th.test(n.text)) {
      merged.push(n.text.replace(th, `$1${s.l4} $2`));
      i++;
    } else merged.push(s.text);
  }
  return merged.join(' ');

  function cmpStmt(s: Src | undefined, op: string, data: Buffer): Stmt {
    if (!s) return { text: `<cmp ${op} 0x${data.toString('hex')}>` };
    const o = OPS[op] ?? `${op} `;
    const zero = data.every((x) => x === 0);
    if ((s.dtype === 'ct_state' || s.dtype === 'ct_status') && s.mask && zero && (op === 'neq' || op === 'eq'))
      return { text: `${s.text} ${op === 'eq' ? '!= ' : ''}${formatValue(s.dtype, s.mask)}` };
    if (s.dtype?.endsWith('_addr') && (s.mask || s.short)) {
      const bits = s.mask ? s.mask.reduce((n, x) => n + (x.toString(2).match(/1/g)?.length ?? 0), 0) : (s.short ?? 0) * 8;
      const full = Buffer.alloc(s.len);
      data.copy(full);
      return { text: `${s.text} ${o}${formatValue(s.dtype, full)}/${bits}`, uses: s.proto };
    }
    if (s.dtype === 'ifname' && data.length < 16 && !data.includes(0)) return { text: `${s.text} ${o}${quote(`${data.toString()}*`)}` };
    const value = s.value && Buffer.isBuffer(s.value) ? formatValue(s.dtype, s.value) : formatValue(s.dtype, data);
    const text = `${s.text} ${o}${value}`;
    if (op === 'eq' && s.text === 'meta nfproto' && (value === 'ipv4' || value === 'ipv6')) return { text, dep: value === 'ipv4' ? 'ip' : 'ip6' };
    if (op === 'eq' && (s.text === 'ether type' || s.text === 'meta protocol') && (value === 'ip' || value === 'ip6')) return { text, dep: value };
    if (op === 'eq' && s.text === 'meta l4proto' && ['tcp', 'udp', 'udplite', 'sctp', 'dccp'].includes(value)) return { text, l4: value };
    return { text, uses: s.proto };
  }
}

function timeText(ms: number): string {
  const parts: [number, string][] = [[86400000, 'd'], [3600000, 'h'], [60000, 'm'], [1000, 's'], [1, 'ms']];
  let rest = ms;
  let out = '';
  for (const [n, u] of parts) {
    if (rest >= n) {
      out += `${Math.floor(rest / n)}${u}`;
      rest %= n;
    }
  }
  return out || '0s';
}

function typedText(dtype: string, v: unknown): string {
  if (v !== null && typeof v === 'object' && 'from' in (v as Range)) {
    const r = v as Range;
    return `${typedText(dtype, r.from)}-${typedText(dtype, r.to)}`;
  }
  if (dtype === 'ifname') return quote(String(v));
  if (dtype === 'mark' && typeof v === 'number') return `0x${v.toString(16).padStart(8, '0')}`;
  return String(v);
}

function valueText(type: string, v: unknown): string {
  if (Buffer.isBuffer(v)) return `0x${v.toString('hex')}`;
  const parts = type.split(' . ');
  const vs = parts.length > 1 && Array.isArray(v) ? v : [v];
  return vs.map((x, i) => typedText(parts[i] ?? parts[0], x)).join(' . ');
}

function elementText(s: NftSet, e: SetElement): string {
  let t = valueText(s.type, e.key);
  if (e.timeout !== undefined && e.timeout !== s.timeout) t += ` timeout ${timeText(e.timeout)}`;
  if (e.comment !== undefined) t += ` comment ${quote(e.comment)}`;
  if (e.data !== undefined) {
    const d = e.data as unknown;
    if (s.dataType === 'verdict') t += ` : ${typeof d === 'string' ? d : Object.entries(d as object).map(([k, c]) => `${k} ${c}`)[0]}`;
    else t += ` : ${valueText(s.dataType ?? '', d)}`;
  }
  return t;
}

function setLines(s: NftSet): string[] {
  const lines = [`\t${s.dataType !== undefined ? 'map' : 'set'} ${s.name} {`, `\t\ttype ${s.type}${s.dataType !== undefined ? ` : ${s.dataType}` : ''}`];
  const flags = (s.flags ?? []).filter((f) => f !== 'anonymous' && !(f === 'timeout' && s.timeout !== undefined));
  if (flags.length) lines.push(`\t\tflags ${flags.join(',')}`);
  if (s.timeout !== undefined) lines.push(`\t\ttimeout ${timeText(s.timeout)}`);
  if (s.size !== undefined) lines.push(`\t\tsize ${s.size}`);
  if (s.comment !== undefined) lines.push(`\t\tcomment ${quote(s.comment)}`);
  if (s.elements?.length) lines.push(`\t\telements = { ${s.elements.map((e) => elementText(s, e)).join(', ')} }`);
  lines.push('\t}');
  return lines;
}

// nft's standard priority names, per family (hooks restrict the NAT ones).
function priorityText(c: Chain): string {
  const p = c.priority as number;
  let std: [string, number][] = [['raw', -300], ['mangle', -150], ['dstnat', -100], ['filter', 0], ['security', 50], ['srcnat', 100]];
  if (c.family === 'bridge') std = [['dstnat', -300], ['filter', -200], ['out', 100], ['srcnat', 300]];
  else if (c.family === 'netdev' || c.family === 'arp') std = [['filter', 0]];
  std = std.filter(([n]) => (n === 'dstnat' ? ['prerouting', 'output'].includes(c.hook!) : n === 'srcnat' ? ['postrouting', 'input'].includes(c.hook!) : true));
  for (const [n, v] of std) if (p === v) return n;
  for (const [n, v] of std) if (Math.abs(p - v) <= 10) return `${n} ${p > v ? '+' : '-'} ${Math.abs(p - v)}`;
  return String(p);
}

function chainLines(c: Chain, rules: Rule[], sets: Map<string, string>): string[] {
  const lines = [`\tchain ${c.name} {`];
  if (c.hook !== undefined) {
    const dev = c.device !== undefined ? ` device ${quote(c.device)}` : '';
    lines.push(`\t\ttype ${c.type} hook ${c.hook}${dev} priority ${priorityText(c)}; policy ${c.policy ?? 'accept'};`);
  }
  if (c.comment !== undefined) lines.push(`\t\tcomment ${quote(c.comment)}`);
  for (const r of rules) lines.push(`\t\t${ruleText(r.exprs, r.family, sets)}${r.comment !== undefined ? ` comment ${quote(r.comment)}` : ''}`);
  lines.push('\t}');
  return lines;
}

function tableText(t: Table, sets: NftSet[], chains: Chain[], rules: Rule[]): string {
  const head = [`table ${t.family} ${t.name} {`];
  if (t.flags?.length) head.push(`\tflags ${t.flags.join(',')}`);
  if (t.comment !== undefined) head.push(`\tcomment ${quote(t.comment)}`);
  const blocks = [
    ...sets.filter((s) => !s.flags?.includes('anonymous')).map(setLines),
    ...chains.map((c) => chainLines(c, rules.filter((r) => r.chain === c.name), new Map(sets.map((s) => [s.name, s.type])))),
  ].map((b) => b.join('\n'));
  return [...head, blocks.join('\n\n'), '}'].filter((x) => x !== '').join('\n');
}

/** The ruleset of `ns` as nft would list it (see the module comment for what is approximate). */
export async function nftRulesetText(ns?: Namespace, filter: ListFilter = {}): Promise<string> {
  const rs = await nftList(ns, filter);
  const of = <T extends { family: string; table: string }>(xs: T[], t: Table) => xs.filter((x) => x.family === t.family && x.table === t.name);
  return rs.tables.map((t) => `${tableText(t, of(rs.sets, t), of(rs.chains, t), of(rs.rules, t))}\n`).join('');
}
