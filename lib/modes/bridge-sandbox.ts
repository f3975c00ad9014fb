/**
 * Bridge mode for sandboxes: Docker's `docker run --net=bridge|NETWORK`. The sandbox's namespace
 * (`/run/netns/NAME`, made and deleted by the sandbox layer, as for none mode) is connected to a
 * bridge network: the default one, `bridge` on the bridge `netmodes0` (made on first use, as
 * Docker's), or one named or given. Its links name other bridge sandboxes of that network; its
 * address, MAC, published ports, aliases, host name and DNS options go to the connect; its
 * resolv.conf and hosts are the endpoint's. Removing the sandbox disconnects it (and reaps its
 * veth at once). The option table: lib/sandbox/index.ts.
 */
import { ConfigError, isNotFound, wrap } from '../errors';
import type { Namespace } from '../netns';
import type { ResolvConfOptions } from '../dnsfiles';
import { SandboxRecord, noSandbox, readRecord } from '../sandbox/records';
import { createBridgeNetwork, openBridgeNetwork, reapDetached } from './bridge';
import type { BridgeNetwork, Endpoint, PortSpec } from './bridge';

/** The network sandboxes join when none is named (created on first use, as Docker's `bridge`). */
export const DEFAULT_NETWORK = 'bridge';
/** Bridge device of the default network (not docker0, so a real Docker on the host is left alone). */
export const DEFAULT_BRIDGE = 'netmodes0';

/** A sandbox's link: another sandbox of the same network, and the name this one knows it by. */
export type SandboxLink = { name: string; alias?: string };

/** What a bridge sandbox asks of its connect (checked by the sandbox layer's plan). */
export interface BridgeSandboxOptions {
  ip?: string;
  mac?: string;
  ports: (PortSpec | string)[];
  dns?: ResolvConfOptions;
  aliases?: string[];
}

export function isBridgeNetwork(v: unknown): v is BridgeNetwork {
  return !!v && typeof v === 'object' && typeof (v as BridgeNetwork).name === 'string' && typeof (v as BridgeNetwork).connect === 'function';
}

/** The default network, created on first use (as Docker's `bridge`, on 172.17.0.0/16 when free). */
async function defaultNetwork(): Promise<BridgeNetwork> {
  try {
    return await openBridgeNetwork(DEFAULT_NETWORK);
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENONETWORK') throw err;
  }
  try {
    return await createBridgeNetwork({ name: DEFAULT_NETWORK, bridge: DEFAULT_BRIDGE });
  } catch (err) {
    // Another process made it meanwhile.
    return openBridgeNetwork(DEFAULT_NETWORK).catch(() => Promise.reject(wrap('create the default network', err)));
  }
}

/**
 * Before anything changes: the sandbox's network (an object, a name to open, or DEFAULT_NETWORK:
 * made on first use), set in `rec`, and its links resolved to the endpoints of ready bridge
 * sandboxes of that network (ENOSANDBOX, or ConfigError for one on another network).
 */
export async function prepareBridgeSandbox(
  rec: SandboxRecord,
  network: BridgeNetwork | string,
  links: SandboxLink[],
): Promise<{ net: BridgeNetwork; links: { endpoint: string; alias: string }[] }> {
  const net = isBridgeNetwork(network) ? network : network === DEFAULT_NETWORK ? await defaultNetwork() : await openBridgeNetwork(network);
  rec.network = net.name;
  const out: { endpoint: string; alias: string }[] = [];
  for (const [i, l] of links.entries()) {
    const other = await readRecord(l.name);
    if (!other || other.state !== 'ready') throw noSandbox(l.name, `links[${i}]`);
    if (other.mode !== 'bridge' || other.network !== net.name) throw new ConfigError(`sandbox ${l.name} is not on network ${net.name}`, `links[${i}]`);
    out.push({ endpoint: other.id, alias: l.alias ?? l.name });
  }
  return { net, links: out };
}

/**
 * The mode's own step: connects the sandbox's new namespace `ns` (lo up in the connect's batch)
 * and records its address, MAC and ports in `rec`. Returns the endpoint and its texts.
 */
export async function connectBridgeSandbox(
  net: BridgeNetwork,
  ns: Namespace,
  rec: SandboxRecord,
  links: { endpoint: string; alias: string }[],
  o: BridgeSandboxOptions,
): Promise<{ endpoint: Endpoint; texts: { resolvConf: string; hosts: string } }> {
  const endpoint = await net.connect(ns, {
    id: rec.id,
    ...(o.ip !== undefined && { ip: o.ip }),
    ...(o.mac !== undefined && { mac: o.mac }),
    ports: o.ports,
    links,
    hostname: rec.hostname,
    ...(o.dns && { dns: o.dns }),
    ...(o.aliases && { aliases: o.aliases }),
  });
  Object.assign(rec, { ip: endpoint.ip, mac: endpoint.mac, ports: endpoint.ports, hostname: endpoint.hostname ?? rec.hostname });
  if (endpoint.ipv6) rec.ipv6 = endpoint.ipv6;
  return { endpoint, texts: { resolvConf: endpoint.resolvConf, hosts: endpoint.hosts } };
}

/**
 * Teardown's bridge step: the sandbox's endpoint off its network, and its veth reaped at once
 * (remove() leaves no veth behind, not even a detached one). A network or endpoint already gone
 * is success; other failures are pushed to `errors`.
 */
export async function disconnectBridgeSandbox(rec: SandboxRecord, errors: unknown[]): Promise<void> {
  if (!rec.network) return;
  try {
    const net = await openBridgeNetwork(rec.network);
    await net.disconnect(rec.namespacePath);
    await reapDetached();
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (!isNotFound(err) && code !== 'ENONETWORK' && code !== 'ENOENDPOINT') errors.push(wrap(`disconnect from network ${rec.network}`, err));
  }
}

/** A ready bridge sandbox's endpoint, or undefined (its network is gone: it can still be removed). */
export async function bridgeSandboxEndpoint(rec: SandboxRecord): Promise<Endpoint | undefined> {
  if (!rec.network || rec.state !== 'ready') return undefined;
  try {
    const net = await openBridgeNetwork(rec.network);
    return (await net.endpoints()).find((e) => e.id === rec.id);
  } catch {
    return undefined;
  }
}
