/**
 * CNI results in the shapes of the specification's versions: 1.x (`ips` without `version`),
 * 0.3.x / 0.4.0 (`ips[].version`). A result from an earlier plugin of the chain (`prevResult`) is
 * carried through with this plugin's interfaces, addresses and routes appended.
 */
import { versionAtLeast } from './config';

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
}
export interface CniIp {
  address: string;
  gateway?: string;
  interface?: number;
  version?: '4' | '6';
}
export interface CniRoute {
  dst: string;
  gw?: string;
}
export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIp[];
  routes?: CniRoute[];
  dns?: Record<string, unknown>;
}

/** What this plugin adds for one attachment. */
export interface Attachment {
  bridge: { name: string; mac: string; mtu: number };
  hostVeth: { name: string; mac?: string; mtu: number; sandbox?: string };
  container: { name: string; mac: string; mtu: number; sandbox: string };
  ips: Array<{ address: string; gateway: string }>;
}

/** A prevResult (any supported version) in the 1.x shape: its parts, copied. */
function normalize(prev: Record<string, unknown> | undefined): Required<Pick<CniResult, 'interfaces' | 'ips' | 'routes'>> & { dns?: Record<string, unknown> } {
  const arr = <T>(v: unknown): T[] => (Array.isArray(v) ? (v as T[]).map((x) => ({ ...x })) : []);
  const ips = arr<CniIp>(prev?.ips).map((ip) => {
    delete ip.version;
    return ip;
  });
  const out: ReturnType<typeof normalize> = { interfaces: arr<CniInterface>(prev?.interfaces), ips, routes: arr<CniRoute>(prev?.routes) };
  if (prev?.dns && typeof prev.dns === 'object') out.dns = prev.dns as Record<string, unknown>;
  return out;
}

/** The ADD result: prevResult's parts, then this attachment's, in `version`'s shape. */
export function buildResult(version: string, a: Attachment, prev: Record<string, unknown> | undefined, dns: Record<string, unknown> | undefined): CniResult {
  const base = normalize(prev);
  const v1 = versionAtLeast(version, '1.0.0');
  // `mtu` on interfaces is 1.1's.
  const withMtu = versionAtLeast(version, '1.1.0');
  const iface = (i: CniInterface & { mtu: number }): CniInterface => {
    const out: CniInterface = { name: i.name };
    if (i.mac) out.mac = i.mac;
    if (withMtu) out.mtu = i.mtu;
    if (i.sandbox) out.sandbox = i.sandbox;
    return out;
  };
  const first = base.interfaces.length;
  base.interfaces.push(iface(a.bridge), iface(a.hostVeth), iface(a.container));
  const cidx = first + 2;
  for (const ip of a.ips) base.ips.push({ address: ip.address, gateway: ip.gateway, interface: cidx });
  for (const ip of a.ips) {
    const v6 = ip.address.includes(':');
    const dst = v6 ? '::/0' : '0.0.0.0/0';
    if (!base.routes.some((r) => r.dst === dst)) base.routes.push({ dst, gw: ip.gateway });
  }
  const out: CniResult = { cniVersion: version, interfaces: base.interfaces, ips: base.ips, routes: base.routes };
  if (!v1) for (const ip of out.ips!) ip.version = ip.address.includes(':') ? '6' : '4';
  const d = dns && Object.keys(dns).length ? dns : base.dns;
  out.dns = d ?? {};
  return out;
}
