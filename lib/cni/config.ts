/**
 * The plugin's input: the CNI_* environment and the network configuration on stdin, checked and
 * turned into the bridge mode's options. Field names are those of the reference `bridge`,
 * `host-local` and `portmap` plugins where they make sense; unknown fields are ignored, as the
 * reference plugins do; a known field with a bad value is a ConfigError naming it (CNI error 7).
 */
import { createHash } from 'node:crypto';
import { ConfigError } from '../errors';
import { parseCidr, parseIP, parseMac } from '../net/addr';
import type { BridgeNetworkOptions, PortSpec } from '../modes/bridge';
import { parsePortSpecs } from '../portspec';
import { isValidHostname } from '../dnsfiles';
import { CNI_ERR, CniError } from './errors';

/** The specification versions this plugin speaks (VERSION lists them). */
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export const LATEST_VERSION = '1.1.0';

export type Verb = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';
const VERBS: readonly Verb[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'];

/** The CNI_* environment, checked for the verb. */
export interface CniEnv {
  command: Verb;
  containerId?: string;
  netns?: string;
  ifname?: string;
  /** CNI_ARGS as key/value pairs ("IgnoreUnknown=1;IP=10.88.0.5"). */
  args: Record<string, string>;
  path: string[];
}

/** A network configuration, with what the bridge mode needs drawn out of it. */
export interface NetConf {
  cniVersion: string;
  name: string;
  /** The whole object as given (prevResult, dns, ... are read from it). */
  raw: Record<string, unknown>;
  /** The network behind the configuration, and which of its options the configuration set. */
  network: BridgeNetworkOptions;
  set: Set<keyof BridgeNetworkOptions>;
  /** Per-attachment requests: runtimeConfig / args / CNI_ARGS. */
  ips: string[];
  /**
   * More names for the embedded DNS server: runtimeConfig.aliases[NETWORK] (the `aliases`
   * capability, as Podman passes --network-alias) and CNI_ARGS K8S_POD_NAME (the container's name
   * as Podman passes it; the pod's name from the kubelet), when it is a valid host name.
   */
  aliases: string[];
  mac?: string;
  ports: PortSpec[];
  dns?: Record<string, unknown>;
  prevResult?: Record<string, unknown>;
  /** GC: the attachments to keep. */
  validAttachments?: Array<{ containerID: string; ifname: string }>;
}

const CID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

function versionAtLeast(v: string, min: string): boolean {
  const a = v.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  return true;
}
export { versionAtLeast };

/** Reads and checks the environment (CNI error 4 for what is missing or malformed). */
export function parseEnv(env: Record<string, string | undefined>): CniEnv {
  const bad = (msg: string) => new CniError(CNI_ERR.INVALID_ENVIRONMENT, msg);
  const command = env.CNI_COMMAND;
  if (!command) throw bad('CNI_COMMAND is not set');
  if (!VERBS.includes(command as Verb)) throw bad(`CNI_COMMAND ${JSON.stringify(command)} is not one of ${VERBS.join(', ')}`);
  const out: CniEnv = { command: command as Verb, args: {}, path: (env.CNI_PATH ?? '').split(':').filter(Boolean) };
  if (env.CNI_ARGS) {
    for (const pair of env.CNI_ARGS.split(';')) {
      if (!pair) continue;
      const eq = pair.indexOf('=');
      if (eq <= 0) throw bad(`CNI_ARGS: ${JSON.stringify(pair)} is not KEY=VALUE`);
      out.args[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  if (out.command === 'ADD' || out.command === 'DEL' || out.command === 'CHECK') {
    const cid = env.CNI_CONTAINERID;
    if (!cid) throw bad('CNI_CONTAINERID is not set');
    if (!CID_RE.test(cid)) throw bad(`CNI_CONTAINERID ${JSON.stringify(cid)} must start with a letter or digit, then letters, digits, _ . -`);
    out.containerId = cid;
    const ifname = env.CNI_IFNAME;
    if (!ifname) throw bad('CNI_IFNAME is not set');
    if (ifname.length > 15 || ifname === '.' || ifname === '..' || /[/:\s]/.test(ifname))
      throw bad(`CNI_IFNAME ${JSON.stringify(ifname)} is not a valid interface name (1-15 characters, no / : or spaces)`);
    out.ifname = ifname;
    if (env.CNI_NETNS) out.netns = env.CNI_NETNS;
    else if (out.command !== 'DEL') throw bad('CNI_NETNS is not set');
    if (out.netns !== undefined && !out.netns.startsWith('/')) throw bad(`CNI_NETNS ${JSON.stringify(out.netns)} must be an absolute path`);
  }
  return out;
}

/**
 * The endpoint id of an attachment: the container id itself when the interface is `eth0` (the
 * common case, readable in `netmodes network inspect`), else a digest of both (ids are at most
 * 64 characters; the specification's key is (network, container id, ifname)).
 */
export function endpointId(containerId: string, ifname: string): string {
  if (ifname === 'eth0' && containerId.length <= 64 && !containerId.startsWith('cni-')) return containerId;
  return 'cni-' + createHash('sha256').update(`${containerId}\0${ifname}`).digest('hex').slice(0, 48);
}

/** A host name from a container id: letters, digits and '-', at most 12 characters. */
export function hostnameOf(containerId: string): string {
  const h = containerId.replace(/[^A-Za-z0-9-]/g, '-').slice(0, 12).replace(/^-+|-+$/g, '');
  return h || 'container';
}

/** Parses stdin (CNI error 6 when it is not a JSON object). */
export function parseStdin(stdin: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(CNI_ERR.DECODE_FAILURE, `the network configuration on stdin is not JSON: ${(err as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new CniError(CNI_ERR.DECODE_FAILURE, 'the network configuration on stdin must be a JSON object');
  return v as Record<string, unknown>;
}

/** The configuration's version (CNI error 1 for one this plugin does not speak). */
export function confVersion(raw: Record<string, unknown>): string {
  const v = raw.cniVersion;
  if (v === undefined || v === '') return '0.3.0'; // what libcni assumes of a config without one
  if (typeof v !== 'string') throw new ConfigError('must be a version string such as "1.0.0"', 'cniVersion');
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(v))
    throw new CniError(CNI_ERR.INCOMPATIBLE_VERSION, `incompatible CNI version ${v}`, `this plugin supports ${SUPPORTED_VERSIONS.join(', ')}`);
  return v;
}

const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

function optBool(o: Record<string, unknown>, k: string, field = k): boolean | undefined {
  const v = o[k];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw new ConfigError('must be true or false', field);
  return v;
}

function optString(o: Record<string, unknown>, k: string, field = k): string | undefined {
  const v = o[k];
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string') throw new ConfigError('must be a string', field);
  return v;
}

function optObj(o: Record<string, unknown>, k: string, field = k): Record<string, unknown> | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) throw new ConfigError('must be an object', field);
  return v;
}

interface Range {
  subnet: string;
  gateway?: string;
  rangeStart?: string;
  rangeEnd?: string;
  field: string;
}

function readRange(o: Record<string, unknown>, field: string): Range {
  const subnet = optString(o, 'subnet', `${field}.subnet`);
  if (subnet === undefined) throw new ConfigError('is required', `${field}.subnet`);
  return {
    subnet,
    gateway: optString(o, 'gateway', `${field}.gateway`),
    rangeStart: optString(o, 'rangeStart', `${field}.rangeStart`),
    rangeEnd: optString(o, 'rangeEnd', `${field}.rangeEnd`),
    field,
  };
}

/** The IPv4 and IPv6 ranges of `ipam`: the single-range form, or host-local's `ranges`. */
function readRanges(ipam: Record<string, unknown>): { v4?: Range; v6?: Range } {
  const ranges: Range[] = [];
  if (ipam.ranges !== undefined) {
    if (!Array.isArray(ipam.ranges)) throw new ConfigError('must be an array of range sets', 'ipam.ranges');
    ipam.ranges.forEach((set, i) => {
      if (!Array.isArray(set) || set.length === 0) throw new ConfigError('must be a non-empty array of ranges', `ipam.ranges[${i}]`);
      if (set.length > 1) throw new ConfigError('netmodes takes one range per range set (one IPv4 and one IPv6 range set)', `ipam.ranges[${i}]`);
      if (!isObj(set[0])) throw new ConfigError('must be an object', `ipam.ranges[${i}][0]`);
      ranges.push(readRange(set[0], `ipam.ranges[${i}][0]`));
    });
  }
  if (ipam.subnet !== undefined) {
    if (ranges.length) throw new ConfigError('give either ipam.subnet or ipam.ranges, not both', 'ipam.subnet');
    ranges.push(readRange(ipam, 'ipam'));
  }
  const out: { v4?: Range; v6?: Range } = {};
  for (const r of ranges) {
    const c = parseCidr(r.subnet, `${r.field}.subnet`);
    const k = c.family === 4 ? 'v4' : 'v6';
    if (out[k]) throw new ConfigError(`netmodes takes one IPv${c.family} range set`, r.field);
    out[k] = r;
  }
  if (out.v6 && !out.v4) throw new ConfigError('an IPv6 range needs an IPv4 range beside it (netmodes networks are IPv4 or dual stack)', out.v6.field);
  return out;
}

function readPorts(raw: Record<string, unknown>): PortSpec[] {
  const rc = optObj(raw, 'runtimeConfig');
  if (!rc || rc.portMappings === undefined || rc.portMappings === null) return [];
  if (!Array.isArray(rc.portMappings)) throw new ConfigError('must be an array', 'runtimeConfig.portMappings');
  return rc.portMappings.map((m, i): PortSpec => {
    const f = `runtimeConfig.portMappings[${i}]`;
    if (!isObj(m)) throw new ConfigError('must be an object', f);
    const proto = m.protocol === undefined || m.protocol === '' ? 'tcp' : m.protocol;
    if (typeof proto !== 'string' || !['tcp', 'udp', 'sctp'].includes(proto.toLowerCase()))
      throw new ConfigError('must be "tcp", "udp" or "sctp"', `${f}.protocol`);
    const spec: PortSpec = {
      containerPort: m.containerPort as number,
      hostPort: m.hostPort as number,
      protocol: proto.toLowerCase() as PortSpec['protocol'],
    };
    if (m.hostIP !== undefined && m.hostIP !== '') {
      if (typeof m.hostIP !== 'string') throw new ConfigError('must be an address', `${f}.hostIP`);
      spec.hostIp = m.hostIP;
    }
    return spec;
  });
}

/** Static addresses asked for: runtimeConfig.ips, args.cni.ips, CNI_ARGS IP (host-local's three ways). */
function readIps(raw: Record<string, unknown>, env: CniEnv): string[] {
  const out: string[] = [];
  const take = (list: unknown, field: string) => {
    if (list === undefined || list === null) return;
    if (!Array.isArray(list)) throw new ConfigError('must be an array of addresses', field);
    list.forEach((a, i) => {
      if (typeof a !== 'string') throw new ConfigError('must be an address', `${field}[${i}]`);
      out.push(a.split('/')[0]);
      parseIP(a.split('/')[0], `${field}[${i}]`);
    });
  };
  take(optObj(raw, 'runtimeConfig')?.ips, 'runtimeConfig.ips');
  const args = optObj(raw, 'args');
  const cniArgs = args ? optObj(args, 'cni', 'args.cni') : undefined;
  if (cniArgs) take(cniArgs.ips, 'args.cni.ips');
  if (env.args.IP) take(env.args.IP.split(','), 'CNI_ARGS IP');
  return out;
}

/**
 * The whole configuration for a verb. Throws ConfigError (CNI 7) naming the field, CniError 1 for
 * an unsupported version.
 */
export function parseConf(raw: Record<string, unknown>, env: CniEnv): NetConf {
  const cniVersion = confVersion(raw);
  const name = optString(raw, 'name');
  if (name === undefined) throw new ConfigError('is required', 'name');
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(name))
    throw new ConfigError(`${JSON.stringify(name)} is not a netmodes network name (1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit)`, 'name');
  const network: BridgeNetworkOptions = { name };
  const set = new Set<keyof BridgeNetworkOptions>();
  const put = <K extends keyof BridgeNetworkOptions>(k: K, v: BridgeNetworkOptions[K] | undefined) => {
    if (v === undefined) return;
    network[k] = v;
    set.add(k);
  };
  put('bridge', optString(raw, 'bridge'));
  if (optBool(raw, 'isGateway') === false)
    throw new ConfigError('netmodes networks always route through the bridge (the gateway): leave isGateway out or set it true', 'isGateway');
  optBool(raw, 'isDefaultGateway');
  optBool(raw, 'hairpinMode'); // always on: a container reaching its own published port needs it
  // The reference bridge plugin masquerades only when asked; so does this one.
  network.masquerade = optBool(raw, 'ipMasq') ?? false;
  set.add('masquerade');
  if (raw.mtu !== undefined && raw.mtu !== 0) {
    if (typeof raw.mtu !== 'number') throw new ConfigError('must be a number', 'mtu');
    put('mtu', raw.mtu);
  }
  put('icc', optBool(raw, 'icc'));
  put('internal', optBool(raw, 'internal'));
  put('embeddedDns', optBool(raw, 'embeddedDns'));
  // A dense network (more than 1,023 containers; README "Dense networks").
  if (raw.portsPerBridge !== undefined) {
    if (typeof raw.portsPerBridge !== 'number') throw new ConfigError('must be a number', 'portsPerBridge');
    put('portsPerBridge', raw.portsPerBridge);
  }
  const ipam = optObj(raw, 'ipam') ?? {};
  if (ipam.type !== undefined && !['host-local', 'netmodes', ''].includes(ipam.type as string))
    throw new ConfigError(`netmodes manages addresses itself (as host-local does); ${JSON.stringify(ipam.type)} is not supported`, 'ipam.type');
  const { v4, v6 } = readRanges(ipam);
  if (v4) {
    put('subnet', v4.subnet);
    put('gateway', v4.gateway);
    if (v4.rangeStart !== undefined || v4.rangeEnd !== undefined) {
      const c = parseCidr(v4.subnet, `${v4.field}.subnet`);
      const first = v4.rangeStart !== undefined ? parseIP(v4.rangeStart, `${v4.field}.rangeStart`).address : c.network;
      const last = v4.rangeEnd !== undefined ? parseIP(v4.rangeEnd, `${v4.field}.rangeEnd`).address : c.last;
      put('ipRange', `${first}-${last}`);
    }
  }
  if (v6) {
    if (v6.rangeStart !== undefined || v6.rangeEnd !== undefined)
      throw new ConfigError('netmodes allocates from the whole IPv6 subnet (no rangeStart/rangeEnd)', v6.field);
    put('ipv6', { subnet: v6.subnet, ...(v6.gateway ? { gateway: v6.gateway } : {}) });
  }
  if (ipam.routes !== undefined) {
    if (!Array.isArray(ipam.routes)) throw new ConfigError('must be an array', 'ipam.routes');
    ipam.routes.forEach((r, i) => {
      const dst = isObj(r) ? r.dst : undefined;
      if (dst !== '0.0.0.0/0' && dst !== '::/0')
        throw new ConfigError('netmodes installs the default routes via the gateway and no others', `ipam.routes[${i}].dst`);
    });
  }
  const rc = optObj(raw, 'runtimeConfig');
  let mac = rc ? optString(rc, 'mac', 'runtimeConfig.mac') : undefined;
  if (env.args.MAC) mac = env.args.MAC;
  if (mac !== undefined) parseMac(mac, 'runtimeConfig.mac');
  const aliases: string[] = [];
  const al = rc?.aliases;
  if (al !== undefined && al !== null) {
    if (!isObj(al)) throw new ConfigError('must be an object of network name: [names]', 'runtimeConfig.aliases');
    const mine = al[name];
    if (mine !== undefined && mine !== null) {
      if (!Array.isArray(mine)) throw new ConfigError('must be an array of names', `runtimeConfig.aliases.${name}`);
      mine.forEach((a, i) => {
        if (typeof a !== 'string' || !isValidHostname(a)) throw new ConfigError(`${JSON.stringify(a)} is not a host name`, `runtimeConfig.aliases.${name}[${i}]`);
        if (!aliases.includes(a)) aliases.push(a);
      });
    }
  }
  const podName = env.args.K8S_POD_NAME;
  if (podName && isValidHostname(podName) && !aliases.includes(podName)) aliases.push(podName);
  const ports = readPorts(raw);
  parsePortSpecs(ports, 'runtimeConfig.portMappings'); // errors name the configuration's field
  const conf: NetConf = {
    cniVersion,
    name,
    raw,
    network,
    set,
    ips: readIps(raw, env),
    aliases,
    mac,
    ports,
    dns: optObj(raw, 'dns'),
    prevResult: optObj(raw, 'prevResult'),
  };
  const va = raw['cni.dev/valid-attachments'] ?? raw['cni.dev/attachments'];
  if (va !== undefined) {
    if (!Array.isArray(va)) throw new ConfigError('must be an array', 'cni.dev/valid-attachments');
    conf.validAttachments = va.map((a, i) => {
      if (!isObj(a) || typeof a.containerID !== 'string' || typeof a.ifname !== 'string')
        throw new ConfigError('must be {"containerID", "ifname"}', `cni.dev/valid-attachments[${i}]`);
      return { containerID: a.containerID, ifname: a.ifname };
    });
  }
  return conf;
}
