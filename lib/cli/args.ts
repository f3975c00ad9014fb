/**
 * A small argv parser for the `netmodes` CLI (no dependency): long options (`--net host`,
 * `--net=host`), short ones (`-p 80`, `-p80`), booleans, repeatable options, `--` to end the
 * options, and commands whose first positional argument starts a command line of its own
 * (`netmodes run sh -c 'exit 7'`: `-c` belongs to sh). Help text is generated from the same
 * table. Every mistake is a UsageError (exit code 2 with the usage line).
 */

export interface OptSpec {
  /** Long name, without the dashes; also the key in the result. */
  name: string;
  short?: string;
  /** More long names for the same option (`network` for `net`). */
  aliases?: string[];
  /** string: the last one wins; list: repeatable; boolean: a flag. */
  type: 'string' | 'list' | 'boolean';
  /** Placeholder in the help text (`SPEC`, `NAME`). */
  value?: string;
  help: string;
}

export interface CommandSpec {
  /** `run`, `network create`. */
  name: string;
  /** What follows the command name in the usage line. */
  usage: string;
  summary: string;
  /** More text after the summary in --help. */
  details?: string;
  options: OptSpec[];
  /** Bounds on the positional arguments (the command line of `run` counts as one). */
  min?: number;
  max?: number;
  /** The first positional argument and everything after it is a command line. */
  commandLine?: boolean;
}

export type OptValue = string | boolean | string[] | undefined;

export interface Parsed {
  opts: Record<string, OptValue>;
  args: string[];
  /** commandLine commands: the command and its arguments. */
  command: string[];
  help: boolean;
}

export class UsageError extends Error {
  constructor(
    message: string,
    readonly spec?: CommandSpec,
  ) {
    super(message);
  }
}
Object.defineProperty(UsageError.prototype, 'name', { value: 'UsageError' });

export const HELP: OptSpec = { name: 'help', type: 'boolean', help: 'show this help' };
export const JSON_OPT: OptSpec = { name: 'json', type: 'boolean', help: 'print JSON' };

export function usageLine(spec: CommandSpec): string {
  return `Usage: netmodes ${spec.name}${spec.usage ? ' ' + spec.usage : ''}`;
}

export function parse(spec: CommandSpec, argv: readonly string[]): Parsed {
  const opts: Record<string, OptValue> = {};
  const args: string[] = [];
  let command: string[] = [];
  let help = false;
  const all = [...spec.options, HELP];
  const byLong = new Map<string, OptSpec>();
  const byShort = new Map<string, OptSpec>();
  for (const o of all) {
    byLong.set(o.name, o);
    for (const a of o.aliases ?? []) byLong.set(a, o);
    if (o.short) byShort.set(o.short, o);
  }
  if (!byShort.has('h')) byShort.set('h', HELP); // `run` keeps -h for --hostname, as docker run does
  const set = (o: OptSpec, v: string | true, shown: string) => {
    if (o.type === 'boolean') {
      if (v !== true) throw new UsageError(`option ${shown} takes no value`, spec);
      opts[o.name] = true;
    } else if (v === true) {
      throw new UsageError(`option ${shown} needs a value`, spec);
    } else if (o.type === 'list') {
      ((opts[o.name] as string[] | undefined) ?? (opts[o.name] = [])).push(v);
    } else {
      opts[o.name] = v;
    }
  };

  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      i++;
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const key = a.slice(2, eq < 0 ? undefined : eq);
      const o = byLong.get(key);
      if (!o) throw new UsageError(`unknown option --${key}`, spec);
      if (o === HELP) {
        help = true;
        continue;
      }
      if (eq >= 0) set(o, a.slice(eq + 1), `--${key}`);
      else if (o.type === 'boolean') set(o, true, `--${key}`);
      else if (i + 1 < argv.length) set(o, argv[++i], `--${key}`);
      else set(o, true, `--${key}`);
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      const o = byShort.get(a[1]);
      if (!o) throw new UsageError(`unknown option ${a.slice(0, 2)}`, spec);
      if (o.type === 'boolean') {
        if (a.length > 2) throw new UsageError(`option -${a[1]} takes no value`, spec);
        if (o === HELP) help = true;
        else set(o, true, `-${a[1]}`);
      } else if (a.length > 2) set(o, a.slice(2), `-${a[1]}`);
      else if (i + 1 < argv.length) set(o, argv[++i], `-${a[1]}`);
      else set(o, true, `-${a[1]}`);
      continue;
    }
    if (spec.commandLine) break;
    args.push(a);
  }
  if (spec.commandLine) command = argv.slice(i);
  else args.push(...argv.slice(i));
  if (help) return { opts, args, command, help };

  const count = args.length + (spec.commandLine && command.length ? 1 : 0);
  if (spec.commandLine && command.length === 0) throw new UsageError('no command given', spec);
  if (spec.min !== undefined && count < spec.min) throw new UsageError(`missing argument${spec.min - count > 1 ? 's' : ''}`, spec);
  if (spec.max !== undefined && count > spec.max) throw new UsageError(`unexpected argument ${JSON.stringify(args[spec.max] ?? '')}`, spec);
  return { opts, args, command, help };
}

/** `--help` text: usage line, summary, details, options. */
export function helpText(spec: CommandSpec): string {
  const rows = [...spec.options, HELP].map((o) => {
    const names = [o.short ? `-${o.short}, ` : '    ', `--${o.name}`, ...(o.aliases ?? []).map((a) => `, --${a}`)].join('');
    return [`  ${names}${o.value ? ' ' + o.value : ''}`, o.help + (o.type === 'list' ? ' (repeatable)' : '')];
  });
  const w = Math.max(...rows.map((r) => r[0].length)) + 2;
  let out = `${usageLine(spec)}\n\n${spec.summary}\n`;
  if (spec.details) out += `\n${spec.details.replace(/\n*$/, '')}\n`;
  out += `\nOptions:\n${rows.map(([l, r]) => l.padEnd(w) + r).join('\n')}\n`;
  return out;
}
