/**
 * Text of a container's `/etc/resolv.conf` and `/etc/hosts`, built the way Docker builds them.
 * Pure string functions: nothing here reads or writes files or sends packets.
 */

import { ConfigError } from './errors';
import { ipToBigInt, parseIP } from './net/addr';

/**
 * Nameservers used when none of the host's are usable from a container (Docker's defaults,
 * Google Public DNS). Only written into the file; this library never contacts them.
 */
export const DEFAULT_NAMESERVERS: readonly string[] = Object.freeze(['8.8.8.8', '8.8.4.4']);

/** Overrides for {@link buildResolvConf} (Docker's `--dns`, `--dns-search`, `--dns-option`). */
export interface ResolvConfOptions {
  /** Nameservers to use instead of the host's (written as given; loopback allowed). */
  servers?: string[];
  /** Search domains instead of the host's; `['.']` means no search line at all. */
  search?: string[];
  /** Resolver options instead of the host's, e.g. `['ndots:2', 'edns0']`. */
  options?: string[];
}

const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const LABEL_UNDERSCORE = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

function hostnameProblem(name: unknown, underscore: boolean): string | undefined {
  if (typeof name !== 'string') return `expected a host name as a string, got ${typeof name}`;
  if (name.length === 0) return 'host name is empty';
  if (name.length > 253) return `host name is ${name.length} characters long, at most 253 are allowed`;
  const re = underscore ? LABEL_UNDERSCORE : LABEL;
  for (const label of name.split('.')) {
    if (!re.test(label)) {
      const chars = underscore ? 'letters, digits, hyphens or underscores' : 'letters, digits or hyphens';
      return `${JSON.stringify(name)} is not a valid host name: each dot-separated label must be 1-63 ${chars}, not starting or ending with a hyphen`;
    }
  }
  return undefined;
}

/**
 * True when `name` is a valid host name per RFC 1123: dot-separated labels of 1..63 letters,
 * digits and hyphens, not starting or ending with a hyphen, 253 characters at most, no trailing
 * dot.
 */
export function isValidHostname(name: string): boolean {
  return hostnameProblem(name, false) === undefined;
}

/**
 * Throws unless {@link isValidHostname}; returns `name`.
 * @throws ConfigError (with `field`).
 */
export function assertHostname(name: string, field: string): string {
  const problem = hostnameProblem(name, false);
  if (problem) throw new ConfigError(problem, field);
  return name;
}

function isLoopback(ip: string): boolean {
  const { value, family } = ipToBigInt(ip, 'nameserver');
  return family === 4 ? value >> 24n === 127n : value === 1n;
}

/** An optional array option; empty counts as not given. */
function listOption<T>(v: readonly T[] | undefined, field: string): readonly T[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw new ConfigError('expected an array of strings', field);
  return v.length === 0 ? undefined : v;
}

/**
 * Builds a container's resolv.conf from the host's, like Docker does for the default bridge:
 * - `search` (or `domain`) and `options` are kept from the host file; for `search`/`domain` the
 *   last one wins, as in glibc, and `options` lines accumulate;
 * - nameservers in 127.0.0.0/8 and `::1` are dropped: a resolver on the host's loopback
 *   (systemd-resolved, dnsmasq) cannot be reached from the container's own namespace. Lines that
 *   are not valid addresses (e.g. with a zone id) are dropped too;
 * - if no nameserver remains, {@link DEFAULT_NAMESERVERS} are used;
 * - any part given in `opts` replaces the host's (an empty array counts as not given);
 * - other directives (`sortlist`, comments) are not carried over.
 *
 * Output order follows Docker: `search`, then `nameserver` lines, then `options`; every line ends
 * with `\n`.
 * @throws ConfigError for invalid `opts` (fields `servers[i]`, `search[i]`, `options[i]`).
 */
export function buildResolvConf(hostResolvConfText: string, opts: ResolvConfOptions = {}): string {
  if (typeof hostResolvConfText !== 'string') {
    throw new ConfigError('expected the host resolv.conf as a string', 'hostResolvConf');
  }
  let servers: string[] = [];
  let search: string[] = [];
  let options: string[] = [];
  for (const raw of hostResolvConfText.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const [keyword, ...args] = line.split(/\s+/);
    if (keyword === 'nameserver' && args.length > 0) {
      let ip: string;
      try {
        ip = parseIP(args[0], 'nameserver').address;
      } catch {
        continue;
      }
      if (!isLoopback(ip)) servers.push(ip);
    } else if (keyword === 'search') {
      search = args;
    } else if (keyword === 'domain') {
      search = args.slice(0, 1);
    } else if (keyword === 'options') {
      options.push(...args);
    }
  }
  if (servers.length === 0) servers = [...DEFAULT_NAMESERVERS];

  const s = listOption(opts.servers, 'servers');
  if (s) servers = s.map((ip, i) => parseIP(ip, `servers[${i}]`).address);
  const d = listOption(opts.search, 'search');
  if (d) {
    search =
      d.length === 1 && d[0] === '.'
        ? []
        : d.map((name, i) => {
            const problem = hostnameProblem(typeof name === 'string' ? name.replace(/\.$/, '') : name, true);
            if (problem) throw new ConfigError(problem, `search[${i}]`);
            return name;
          });
  }
  const o = listOption(opts.options, 'options');
  if (o) {
    options = o.map((opt, i) => {
      if (typeof opt !== 'string' || !/^[A-Za-z0-9_.:+-]+$/.test(opt)) {
        throw new ConfigError(`invalid resolver option ${JSON.stringify(opt)}`, `options[${i}]`);
      }
      return opt;
    });
  }

  let out = '';
  if (search.length > 0) out += `search ${search.join(' ')}\n`;
  for (const ip of servers) out += `nameserver ${ip}\n`;
  if (options.length > 0) out += `options ${options.join(' ')}\n`;
  return out;
}

/** Input of {@link buildHosts}. */
export interface HostsOptions {
  /** The container's host name (RFC 1123). */
  hostname: string;
  /** The container's IPv4 (or only) address; without it, no line for the container itself. */
  ip?: string;
  /** The container's IPv6 address, if any: a second line with the same names. */
  ipv6?: string;
  /** More names for the container, on its own line(s) after the host name. */
  aliases?: string[];
  /**
   * Legacy `--link`s: `IP alias name`. Names and aliases follow Docker's container-name rules, so
   * underscores are accepted.
   */
  links?: Array<{ name: string; alias?: string; ip: string }>;
  /** Extra entries (`--add-host host:ip`). */
  extra?: Array<{ host: string; ip: string }>;
}

/** Docker's fixed head of /etc/hosts. */
const HOSTS_HEAD =
  '127.0.0.1\tlocalhost\n' +
  '::1\tlocalhost ip6-localhost ip6-loopback\n' +
  'fe00::0\tip6-localnet\n' +
  'ff00::0\tip6-mcastprefix\n' +
  'ff02::1\tip6-allnodes\n' +
  'ff02::2\tip6-allrouters\n';

/**
 * Builds a container's /etc/hosts in Docker's layout, fields separated by a tab:
 * ```
 * 127.0.0.1	localhost
 * ::1	localhost ip6-localhost ip6-loopback
 * fe00::0	ip6-localnet
 * ff00::0	ip6-mcastprefix
 * ff02::1	ip6-allnodes
 * ff02::2	ip6-allrouters
 * <link ip>	<alias> <name>        one per link
 * <extra ip>	<host>                one per extra entry
 * <ip>	<hostname> <aliases...>
 * <ipv6>	<hostname> <aliases...>
 * ```
 * @throws ConfigError for invalid names or addresses (fields `hostname`, `ip`, `ipv6`,
 *   `aliases[i]`, `links[i].name`, `links[i].alias`, `links[i].ip`, `extra[i].host`,
 *   `extra[i].ip`).
 */
export function buildHosts(opts: HostsOptions): string {
  if (!opts || typeof opts !== 'object') throw new ConfigError('expected hosts options', 'hostname');
  const hostname = assertHostname(opts.hostname, 'hostname');
  const names = [hostname];
  (listOption(opts.aliases, 'aliases') ?? []).forEach((a, i) => names.push(assertHostname(a, `aliases[${i}]`)));

  let out = HOSTS_HEAD;
  (listOption(opts.links, 'links') ?? []).forEach((link, i) => {
    const f = `links[${i}]`;
    if (!link || typeof link !== 'object') throw new ConfigError('expected { name, alias?, ip }', f);
    const ip = parseIP(link.ip, `${f}.ip`).address;
    const name = checkName(link.name, `${f}.name`);
    const alias = link.alias === undefined || link.alias === link.name ? undefined : checkName(link.alias, `${f}.alias`);
    out += alias ? `${ip}\t${alias} ${name}\n` : `${ip}\t${name}\n`;
  });
  (listOption(opts.extra, 'extra') ?? []).forEach((e, i) => {
    const f = `extra[${i}]`;
    if (!e || typeof e !== 'object') throw new ConfigError('expected { host, ip }', f);
    const ip = parseIP(e.ip, `${f}.ip`).address;
    out += `${ip}\t${checkName(e.host, `${f}.host`)}\n`;
  });
  if (opts.ip !== undefined) out += `${parseIP(opts.ip, 'ip').address}\t${names.join(' ')}\n`;
  if (opts.ipv6 !== undefined) {
    const v6 = parseIP(opts.ipv6, 'ipv6');
    if (v6.family !== 6) throw new ConfigError(`expected an IPv6 address, got ${v6.address}`, 'ipv6');
    out += `${v6.address}\t${names.join(' ')}\n`;
  }
  return out;
}

/** Host names that may also contain underscores (container names). */
function checkName(name: string, field: string): string {
  const problem = hostnameProblem(name, true);
  if (problem) throw new ConfigError(problem, field);
  return name;
}
