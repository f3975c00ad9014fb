/**
 * The CNI plugin's verbs over the bridge mode: parse, call, print. One function, `handle`, takes
 * what a runtime gives a plugin (the environment and stdin) and returns what the plugin prints
 * and its exit status; the plugin process (main.ts) and the resident server (server.ts) both
 * call it, so a verb behaves the same whichever way it arrives.
 *
 * ADD connects the container's namespace to the network named by the configuration (made on the
 * first ADD that names it); DEL disconnects (idempotent, also when the namespace is gone); CHECK
 * compares the kernel with what ADD made; STATUS says whether an ADD could be served; GC removes
 * attachments the runtime no longer knows. The attachment (network, CNI_CONTAINERID, CNI_IFNAME)
 * is one netmodes endpoint (config.ts's endpointId).
 */
import { ConfigError, NetmodesError, isNotFound } from '../errors';
import { BridgeNetwork, createBridgeNetwork, openBridgeNetwork } from '../modes/bridge';
import type { BridgeNetworkOptions } from '../modes/bridge';
import { openPrepared } from '../netns';
import * as nl from '../netlink';
import { parseCidr } from '../net/addr';
import { stateDir } from '../state/store';
import { CniEnv, LATEST_VERSION, NetConf, SUPPORTED_VERSIONS, confVersion, endpointId, hostnameOf, parseConf, parseEnv, parseStdin, versionAtLeast } from './config';
import { CNI_ERR, CniError, errorJson, toCniError } from './errors';
import { buildResult } from './result';

export interface CniRequest {
  /** The plugin's environment (only CNI_* is read). */
  env: Record<string, string | undefined>;
  /** The network configuration, as the runtime wrote it to stdin. */
  stdin: string;
}

export interface CniResponse {
  /** Exit status: 0, or 1 with the error object on stdout. */
  code: number;
  stdout: string;
}

// ---------------------------------------------------------------------------------------------
// Networks: opened once per process and state directory (the resident server keeps them).

const nets = new Map<string, Promise<BridgeNetwork>>();

/** Forgets every opened network (tests change the state directory). */
export function forgetNetworks(): void {
  nets.clear();
}

async function openExisting(name: string): Promise<BridgeNetwork | undefined> {
  const key = `${stateDir()}\0${name}`;
  const cached = nets.get(key);
  if (cached) {
    const net = await cached.catch(() => undefined);
    if (net && (await net.isCurrent())) return net;
    if (nets.get(key) === cached) nets.delete(key);
  }
  const p = openBridgeNetwork(name);
  nets.set(key, p);
  try {
    return await p;
  } catch (err) {
    if (nets.get(key) === p) nets.delete(key);
    if ((err as NetmodesError).code === 'ENONETWORK') return undefined;
    throw err;
  }
}

/**
 * The network of the configuration: opened, or made on first use (`created`); its options must
 * match.
 */
async function networkFor(conf: NetConf): Promise<{ net: BridgeNetwork; created: boolean }> {
  let net = await openExisting(conf.name);
  let created = false;
  if (!net) {
    try {
      net = await createBridgeNetwork(conf.network);
      created = true;
    } catch (err) {
      if ((err as NetmodesError).code !== 'ENETWORKEXISTS') throw err;
      net = await openExisting(conf.name); // another process made it meanwhile
      if (!net) throw new CniError(CNI_ERR.TRY_AGAIN_LATER, `network ${conf.name} is being made or removed by another process`);
    }
    nets.set(`${stateDir()}\0${conf.name}`, Promise.resolve(net));
  }
  assertMatches(net, conf);
  return { net, created };
}

/** Takes down a network this ADD made, when the ADD failed on bad input (and nobody joined it since). */
async function undoCreated(net: BridgeNetwork, err: unknown): Promise<void> {
  if (!(err instanceof ConfigError) && !(err instanceof CniError)) return;
  nets.delete(`${stateDir()}\0${net.name}`);
  await net.remove().catch(() => undefined); // ENETWORKINUSE: another ADD joined it meanwhile
}

/** The configuration's field that names an option, for the messages. */
const FIELD: Partial<Record<keyof BridgeNetworkOptions, string>> = {
  bridge: 'bridge',
  subnet: 'ipam.subnet',
  gateway: 'ipam.gateway',
  ipRange: 'ipam.rangeStart',
  mtu: 'mtu',
  masquerade: 'ipMasq',
  icc: 'icc',
  internal: 'internal',
  embeddedDns: 'embeddedDns',
  ipv6: 'ipam.ranges',
};

/**
 * A configuration that names an existing network must agree with it: a network is not changed
 * under its containers (remove it, with `netmodes network rm`, to change it).
 */
function assertMatches(net: BridgeNetwork, conf: NetConf): void {
  const o = conf.network;
  const differ = (k: keyof BridgeNetworkOptions, have: unknown, want: unknown) => {
    const show = (v: unknown) => (v === undefined ? 'none' : typeof v === 'string' ? v : JSON.stringify(v));
    throw new ConfigError(
      `network ${net.name} exists with ${k} ${show(have)}, the configuration asks for ${show(want)} (remove the network to change it)`,
      FIELD[k] ?? k,
    );
  };
  const canon = (cidr: string) => {
    const c = parseCidr(cidr, 'subnet');
    return `${c.network}/${c.prefix}`;
  };
  if (conf.set.has('bridge') && o.bridge !== net.bridge) differ('bridge', net.bridge, o.bridge);
  if (conf.set.has('subnet') && canon(o.subnet!) !== net.subnet) differ('subnet', net.subnet, o.subnet);
  if (conf.set.has('gateway') && o.gateway !== net.gateway) differ('gateway', net.gateway, o.gateway);
  if (conf.set.has('subnet') && (o.ipRange ?? undefined) !== (net.ipRange ?? undefined)) differ('ipRange', net.ipRange, o.ipRange);
  if (conf.set.has('mtu') && o.mtu !== net.mtu) differ('mtu', net.mtu, o.mtu);
  if (o.masquerade !== net.masquerade) differ('masquerade', net.masquerade, o.masquerade);
  if (conf.set.has('icc') && o.icc !== net.icc) differ('icc', net.icc, o.icc);
  if (conf.set.has('internal') && o.internal !== net.internal) differ('internal', net.internal, o.internal);
  if (conf.set.has('embeddedDns') && o.embeddedDns !== net.embeddedDns) differ('embeddedDns', net.embeddedDns, o.embeddedDns);
  if (conf.set.has('portsPerBridge') && o.portsPerBridge !== net.portsPerBridge) differ('portsPerBridge', net.portsPerBridge, o.portsPerBridge);
  if (conf.set.has('subnet') && (o.ipv6 ? canon(o.ipv6.subnet) : undefined) !== net.ipv6?.subnet) differ('ipv6', net.ipv6?.subnet, o.ipv6?.subnet);
}

// ---------------------------------------------------------------------------------------------
// The verbs.

async function add(env: CniEnv, conf: NetConf): Promise<string> {
  const id = endpointId(env.containerId!, env.ifname!);
  let ip: string | undefined;
  let ipv6: string | undefined;
  for (const a of conf.ips) {
    if (a.includes(':')) {
      if (ipv6 !== undefined) throw new ConfigError('one IPv6 address per attachment', 'runtimeConfig.ips');
      ipv6 = a;
    } else {
      if (ip !== undefined) throw new ConfigError('one IPv4 address per attachment', 'runtimeConfig.ips');
      ip = a;
    }
  }
  // The namespace must exist (else the runtime need not clean up: CNI error 3).
  const ns = await openPrepared(env.netns!).catch((err) => {
    if ((err as { code?: string }).code === 'ENOENT') throw new CniError(CNI_ERR.UNKNOWN_CONTAINER, `CNI_NETNS ${env.netns} does not exist`);
    if ((err as { code?: string }).code === 'EINVAL') throw new CniError(CNI_ERR.INVALID_ENVIRONMENT, `CNI_NETNS ${env.netns} is not a network namespace`);
    throw err;
  });
  let net: BridgeNetwork;
  let created: boolean;
  try {
    ({ net, created } = await networkFor(conf));
  } catch (err) {
    ns.close();
    throw err;
  }
  let ep;
  const hostname = hostnameOf(env.containerId!);
  // With the embedded DNS server, the configuration's nameservers are this container's upstreams.
  const servers = Array.isArray(conf.dns?.nameservers) ? (conf.dns!.nameservers as unknown[]).filter((x): x is string => typeof x === 'string') : [];
  const opts = {
    id, ifname: env.ifname, ip, ipv6, mac: conf.mac, ports: conf.ports, hostname,
    ...(net.embeddedDns ? { aliases: conf.aliases.filter((a) => a !== hostname), ...(servers.length ? { dns: { servers } } : {}) } : {}),
  };
  try {
    try {
      ep = await net.connect(ns, opts);
    } catch (err) {
      // A network kept open in this process (the resident server) does not see addresses that other
      // processes released: before saying the pool is exhausted, ask the store again.
      if ((err as NetmodesError).code !== 'EPOOLEXHAUSTED') throw err;
      nets.delete(`${stateDir()}\0${conf.name}`);
      net = (await networkFor(conf)).net;
      ep = await net.connect(ns, opts);
    }
  } catch (err) {
    if (created) await undoCreated(net, err);
    if ((err as NetmodesError).code === 'EENDPOINTEXISTS')
      throw new CniError(
        CNI_ERR.ALREADY_ATTACHED,
        `container ${env.containerId} is already attached to network ${net.name} as ${env.ifname}`,
        'netmodes EENDPOINTEXISTS: DEL it first (a runtime must not ADD the same container and interface twice)',
      );
    throw err;
  } finally {
    ns.close();
  }
  // A dense network's container of slot > 0 has its host end in its leaf's namespace, which reaches
  // the host by the leaf's trunk (same MAC as the network's bridge): the result names the trunk as
  // the bridge, and the host end with that namespace as its sandbox.
  const end = await net.hostEnd(ep.id);
  const prefix = parseCidr(net.subnet, 'subnet').prefix;
  const ips = [{ address: `${ep.ip}/${prefix}`, gateway: net.gateway }];
  if (ep.ipv6 && net.ipv6) ips.push({ address: `${ep.ipv6}/${parseCidr(net.ipv6.subnet, 'subnet').prefix}`, gateway: net.ipv6.gateway });
  const result = buildResult(
    conf.cniVersion,
    {
      bridge: { name: end.hostLink.name, mac: end.hostLink.mac, mtu: net.mtu },
      hostVeth: { name: ep.hostVeth, mac: end.mac, mtu: net.mtu, ...(end.namespace ? { sandbox: end.namespace } : {}) },
      container: { name: env.ifname!, mac: ep.mac, mtu: net.mtu, sandbox: env.netns! },
      ips,
    },
    conf.prevResult,
    // The container asks the embedded server (on the gateway) and keeps the configuration's search
    // domains and options.
    net.embeddedDns ? { ...conf.dns, nameservers: [net.gateway] } : conf.dns,
  );
  return JSON.stringify(result);
}

async function del(env: CniEnv, conf: NetConf): Promise<string> {
  const net = await openExisting(conf.name);
  if (!net) return ''; // no network: nothing of this container can be left
  await net.disconnect(endpointId(env.containerId!, env.ifname!));
  return '';
}

async function check(env: CniEnv, conf: NetConf): Promise<string> {
  if (!versionAtLeast(conf.cniVersion, '0.4.0'))
    throw new CniError(CNI_ERR.INCOMPATIBLE_VERSION, `CHECK needs cniVersion 0.4.0 or later (the configuration says ${conf.cniVersion})`);
  if (!conf.prevResult) throw new ConfigError('CHECK needs the result of the ADD (prevResult)', 'prevResult');
  const net = await openExisting(conf.name);
  if (!net) throw new CniError(CNI_ERR.CHECK_FAILED, `network ${conf.name} does not exist`);
  assertMatches(net, conf);
  const id = endpointId(env.containerId!, env.ifname!);
  const ep = await net.endpoint(id);
  if (!ep) throw new CniError(CNI_ERR.CHECK_FAILED, `container ${env.containerId} (${env.ifname}) is not attached to network ${net.name}`);
  const problems: string[] = [];
  // prevResult: the container's interface and the addresses on it are ours.
  const prev = conf.prevResult;
  const ifaces = Array.isArray(prev.interfaces) ? (prev.interfaces as Array<Record<string, unknown>>) : [];
  const idx = ifaces.findIndex((i) => i.name === env.ifname && i.sandbox === env.netns);
  if (idx < 0) problems.push(`prevResult has no interface ${env.ifname} in ${env.netns}`);
  else if (typeof ifaces[idx].mac === 'string' && (ifaces[idx].mac as string).toLowerCase() !== ep.mac.toLowerCase())
    problems.push(`prevResult gives ${env.ifname} MAC ${ifaces[idx].mac}, the attachment has ${ep.mac}`);
  const prevIps = (Array.isArray(prev.ips) ? (prev.ips as Array<Record<string, unknown>>) : []).filter((i) => i.interface === idx).map((i) => String(i.address).split('/')[0]);
  for (const a of [ep.ip, ...(ep.ipv6 ? [ep.ipv6] : [])])
    if (idx >= 0 && !prevIps.includes(a)) problems.push(`prevResult does not list address ${a} on ${env.ifname}`);
  for (const a of prevIps) if (a !== ep.ip && a !== ep.ipv6) problems.push(`prevResult lists address ${a}, the attachment has ${ep.ip}`);
  problems.push(...(await net.check(id, env.netns)));
  if (problems.length) throw new CniError(CNI_ERR.CHECK_FAILED, `container ${env.containerId} on network ${net.name}: ${problems.join('; ')}`);
  return '';
}

async function status(conf: NetConf): Promise<string> {
  const net = await openExisting(conf.name);
  if (!net) return ''; // the first ADD makes the network
  const free = await net.freeAddresses();
  if (free <= 0)
    throw new CniError(CNI_ERR.PLUGIN_NOT_AVAILABLE, `network ${net.name} has no free address left in ${net.ipRange ?? net.subnet}`, 'netmodes EPOOLEXHAUSTED');
  const bridge = await nl.linkGet(net.bridge).catch((err) => (isNotFound(err) ? undefined : Promise.reject(err)));
  if (!bridge) throw new CniError(CNI_ERR.PLUGIN_NOT_AVAILABLE, `bridge ${net.bridge} of network ${net.name} is missing (netmodes network reconcile repairs it)`);
  return '';
}

async function gc(conf: NetConf): Promise<string> {
  const net = await openExisting(conf.name);
  if (!net) return '';
  const keep = new Set((conf.validAttachments ?? []).map((a) => endpointId(a.containerID, a.ifname)));
  const errors: unknown[] = [];
  for (const ep of await net.endpoints()) if (!keep.has(ep.id)) await net.disconnect(ep.id).catch((e) => errors.push(e));
  // Whatever a killed plugin left half-made (records, veths, elements, reservations).
  await net.reconcile().catch((e) => errors.push(e));
  if (errors.length) throw errors[0];
  return '';
}

function version(raw: Record<string, unknown> | undefined): string {
  let v: string = LATEST_VERSION;
  try {
    if (raw?.cniVersion) v = confVersion(raw);
  } catch {
    /* VERSION answers whatever was asked */
  }
  return JSON.stringify({ cniVersion: v, supportedVersions: SUPPORTED_VERSIONS });
}

/**
 * One plugin invocation: what a runtime gives a plugin in, what it prints and its status out.
 * Never throws: every failure is the specification's error object (exit status 1).
 */
export async function handle(req: CniRequest): Promise<CniResponse> {
  let cniVersion = LATEST_VERSION;
  try {
    const env = parseEnv(req.env);
    if (env.command === 'VERSION') {
      let raw: Record<string, unknown> | undefined;
      try {
        raw = req.stdin.trim() ? parseStdin(req.stdin) : undefined;
      } catch {
        raw = undefined;
      }
      return { code: 0, stdout: version(raw) };
    }
    const raw = parseStdin(req.stdin);
    if (typeof raw.cniVersion === 'string') cniVersion = raw.cniVersion;
    const conf = parseConf(raw, env);
    cniVersion = conf.cniVersion;
    if ((env.command === 'STATUS' || env.command === 'GC') && !versionAtLeast(conf.cniVersion, '1.1.0'))
      throw new CniError(CNI_ERR.INCOMPATIBLE_VERSION, `${env.command} needs cniVersion 1.1.0 (the configuration says ${conf.cniVersion})`);
    let out: string;
    switch (env.command) {
      case 'ADD':
        out = await add(env, conf);
        break;
      case 'DEL':
        out = await del(env, conf);
        break;
      case 'CHECK':
        out = await check(env, conf);
        break;
      case 'STATUS':
        out = await status(conf);
        break;
      case 'GC':
        out = await gc(conf);
        break;
    }
    return { code: 0, stdout: out };
  } catch (err) {
    const e = toCniError(err);
    return { code: 1, stdout: JSON.stringify(errorJson(e, cniVersion)) };
  }
}
