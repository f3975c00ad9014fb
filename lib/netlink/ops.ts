/**
 * BatchOp -> native op: every field validated (ConfigError naming the field) and converted
 * (namespaces to handles, CIDRs split). The one-op verbs and batch() both go through toNative().
 *
 * The only values filled in here are those `ip` itself would send when an option is left out
 * (route table/protocol/type/scope, address scope), so that each verb does what its
 * "Equivalent to" line says.
 */
import { ConfigError } from '../errors';
import type { Namespace } from '../netns';
import type { NativeOp } from './native';
import type { BatchOp } from './types';
import * as v from './validate';

const f = (base: string, k: string) => (base ? `${base}.${k}` : k);

/** The namespace handle for `ns` (null: the current namespace). */
export function nsHandle(ns: Namespace | undefined, field: string) {
  return ns === undefined ? null : v.namespace(ns, field).handle;
}

function opt<T>(o: Record<string, unknown>, k: string, base: string, check: (x: unknown, field: string) => T): T | undefined {
  return o[k] === undefined ? undefined : check(o[k], f(base, k));
}

/** Copies defined values only, so absent options stay absent in the native op. */
function defined(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(o)) if (x !== undefined) out[k] = x;
  return out;
}

const LINK_ADD_KEYS = ['op', 'ns', 'name', 'kind', 'mtu', 'mac', 'up', 'master', 'alias', 'group', 'netns', 'txqlen', 'queues', 'noIpv6', 'disableIpv6', 'peer', 'bridge'];
const PEER_KEYS = ['name', 'ns', 'mac', 'mtu', 'queues', 'up'];
const BRIDGE_KEYS = ['stp', 'forwardDelay', 'vlanFiltering', 'ageingTime'];

function linkAdd(o: Record<string, unknown>, base: string): Record<string, unknown> {
  v.checkKeys(o, LINK_ADD_KEYS, base);
  const kind = o.kind;
  if (kind !== 'veth' && kind !== 'bridge' && kind !== 'dummy') throw new ConfigError("must be 'veth', 'bridge' or 'dummy'", f(base, 'kind'));
  const out = defined({
    name: v.ifname(o.name, f(base, 'name')),
    kind,
    mtu: opt(o, 'mtu', base, v.mtu),
    mac: opt(o, 'mac', base, (x, fl) => v.mac(x, fl)),
    up: opt(o, 'up', base, v.bool),
    master: opt(o, 'master', base, v.linkRef),
    alias: opt(o, 'alias', base, (x, fl) => v.str(x, fl, 255)),
    group: opt(o, 'group', base, v.u32),
    netns: opt(o, 'netns', base, v.namespace)?.handle,
    txqlen: opt(o, 'txqlen', base, v.u32),
    queues: opt(o, 'queues', base, v.queues),
    noIpv6: opt(o, 'noIpv6', base, v.bool),
    disableIpv6: opt(o, 'disableIpv6', base, v.bool),
  });
  if (kind === 'veth') {
    const pb = f(base, 'peer');
    v.assertObject(o.peer, pb);
    const p = o.peer;
    v.checkKeys(p, PEER_KEYS, pb);
    out.peer = defined({
      name: v.ifname(p.name, f(pb, 'name')),
      ns: opt(p, 'ns', pb, v.namespace)?.handle,
      mac: opt(p, 'mac', pb, (x, fl) => v.mac(x, fl)),
      mtu: opt(p, 'mtu', pb, v.mtu),
      queues: opt(p, 'queues', pb, v.queues),
      up: opt(p, 'up', pb, v.bool),
    });
    if (p.ns === undefined && o.netns === undefined && p.name === o.name)
      throw new ConfigError('the peer needs another name than the link in the same namespace', f(pb, 'name'));
  } else if (o.peer !== undefined) {
    throw new ConfigError('only veth links have a peer', f(base, 'peer'));
  }
  if (o.bridge !== undefined) {
    const bb = f(base, 'bridge');
    if (kind !== 'bridge') throw new ConfigError('bridge options need kind bridge', bb);
    v.assertObject(o.bridge, bb);
    const b = o.bridge;
    v.checkKeys(b, BRIDGE_KEYS, bb);
    out.bridge = defined({
      stp: opt(b, 'stp', bb, v.bool),
      forwardDelay: opt(b, 'forwardDelay', bb, v.u32),
      vlanFiltering: opt(b, 'vlanFiltering', bb, v.bool),
      ageingTime: opt(b, 'ageingTime', bb, v.u32),
    });
  }
  return out;
}

/** linkSet's bridge-port options (IFLA_INFO_SLAVE_DATA). */
const PORT_KEYS = ['hairpin', 'isolated', 'learning', 'locked', 'unicastFlood', 'mcastFlood', 'bcastFlood', 'portState', 'fdbFlush'];
const LINK_SET_KEYS = ['op', 'ns', 'link', 'up', 'mtu', 'master', 'name', 'mac', 'alias', 'netns', 'group', 'hairpin', 'isolated', 'learning', 'locked', 'unicastFlood', 'mcastFlood', 'bcastFlood', 'portState', 'fdbFlush'];

function linkSet(o: Record<string, unknown>, base: string): Record<string, unknown> {
  v.checkKeys(o, LINK_SET_KEYS, base);
  const out = defined({
    link: v.linkRef(o.link, f(base, 'link')),
    up: opt(o, 'up', base, v.bool),
    mtu: opt(o, 'mtu', base, v.mtu),
    name: opt(o, 'name', base, v.ifname),
    mac: opt(o, 'mac', base, (x, fl) => v.mac(x, fl)),
    alias: opt(o, 'alias', base, (x, fl) => v.str(x, fl, 255)),
    netns: opt(o, 'netns', base, v.namespace)?.handle,
    group: opt(o, 'group', base, v.u32),
    hairpin: opt(o, 'hairpin', base, v.bool),
    isolated: opt(o, 'isolated', base, v.bool),
    learning: opt(o, 'learning', base, v.bool),
    locked: opt(o, 'locked', base, v.bool),
    unicastFlood: opt(o, 'unicastFlood', base, v.bool),
    mcastFlood: opt(o, 'mcastFlood', base, v.bool),
    bcastFlood: opt(o, 'bcastFlood', base, v.bool),
    portState: opt(o, 'portState', base, v.portState),
    fdbFlush: opt(o, 'fdbFlush', base, v.bool),
  });
  if (o.master === null) out.master = null;
  else if (o.master !== undefined) out.master = v.linkRef(o.master, f(base, 'master'));
  if (out.netns && (o.master != null || PORT_KEYS.some((k) => out[k] !== undefined)))
    throw new ConfigError('a link moved to another namespace leaves its bridge: set master and port flags there', f(base, 'netns'));
  return out;
}

function addr(o: Record<string, unknown>, base: string, add: boolean): Record<string, unknown> {
  v.checkKeys(o, add ? ['op', 'ns', 'link', 'cidr', 'broadcast', 'scope', 'noDad', 'noPrefixRoute', 'label'] : ['op', 'ns', 'link', 'cidr'], base);
  const c = v.cidr(o.cidr, f(base, 'cidr'));
  const out: Record<string, unknown> = { link: v.linkRef(o.link, f(base, 'link')), address: c.address, prefix: c.prefix };
  if (!add) return out;
  const brd = opt(o, 'broadcast', base, v.ip);
  if (brd && brd.family !== c.family) throw new ConfigError('broadcast address of another family', f(base, 'broadcast'));
  if (brd && c.family === 6) throw new ConfigError('IPv6 has no broadcast addresses', f(base, 'broadcast'));
  // As `ip addr add`: 127.0.0.0/8 gets host scope.
  const scope = opt(o, 'scope', base, v.scope) ?? (c.family === 4 && c.ip.toByteArray()[0] === 127 ? 'host' : undefined);
  return defined({
    ...out,
    broadcast: brd?.address,
    scope,
    noDad: opt(o, 'noDad', base, v.bool),
    noPrefixRoute: opt(o, 'noPrefixRoute', base, v.bool),
    label: opt(o, 'label', base, (x, fl) => v.str(x, fl, 15)),
  });
}

const ROUTE_KEYS = ['op', 'ns', 'dst', 'gateway', 'link', 'table', 'metric', 'scope', 'onlink', 'protocol', 'type', 'src', 'family'];

function route(o: Record<string, unknown>, base: string, del: boolean): Record<string, unknown> {
  v.checkKeys(o, ROUTE_KEYS, base);
  const dstText = o.dst === undefined ? 'default' : o.dst;
  const dst = dstText === 'default' ? undefined : v.network(dstText, f(base, 'dst'));
  const gateway = opt(o, 'gateway', base, v.ip);
  const src = opt(o, 'src', base, v.ip);
  let family = opt(o, 'family', base, v.family);
  for (const [k, a] of [['dst', dst], ['gateway', gateway], ['src', src]] as const) {
    if (!a) continue;
    if (family && a.family !== family) throw new ConfigError(`IPv${a.family} address in an IPv${family} route`, f(base, k));
    family = a.family;
  }
  const type = opt(o, 'type', base, v.routeType) ?? (del ? undefined : 'unicast');
  // As `ip route`: main table; add/replace with protocol boot and scope host (local routes), link
  // (unicast without gateway) or universe; delete matches any protocol, type and scope.
  let scope = opt(o, 'scope', base, v.scope);
  if (scope === undefined) scope = del ? 'nowhere' : type === 'local' ? 'host' : type === 'unicast' && !gateway ? 'link' : 'universe';
  return defined({
    family: family ?? 4,
    dst: dst ? `${dst.address}/${dst.prefix}` : 'default',
    gateway: gateway?.address,
    src: src?.address,
    link: opt(o, 'link', base, v.linkRef),
    table: o.table === undefined ? 254 : v.table(o.table, f(base, 'table')),
    metric: opt(o, 'metric', base, v.u32),
    scope,
    onlink: opt(o, 'onlink', base, v.bool),
    protocol: opt(o, 'protocol', base, v.protocol) ?? (del ? undefined : 'boot'),
    type,
  });
}

function neigh(o: Record<string, unknown>, base: string, add: boolean): Record<string, unknown> {
  v.checkKeys(o, add ? ['op', 'ns', 'link', 'address', 'lladdr', 'permanent'] : ['op', 'ns', 'link', 'address'], base);
  const a = v.ip(o.address, f(base, 'address'));
  const out: Record<string, unknown> = { link: v.linkRef(o.link, f(base, 'link')), address: a.address, family: a.family };
  if (!add) return out;
  if (o.lladdr === undefined) throw new ConfigError('a neighbour entry needs its link-layer address', f(base, 'lladdr'));
  return defined({ ...out, lladdr: v.mac(o.lladdr, f(base, 'lladdr'), false), permanent: opt(o, 'permanent', base, v.bool) });
}

/** Validates one op and converts it for the addon. `base` prefixes field names in errors. */
export function toNative(op: BatchOp, base = ''): NativeOp {
  v.assertObject(op, base || 'op');
  const o = op as unknown as Record<string, unknown>;
  const ns = nsHandle(o.ns as Namespace | undefined, f(base, 'ns'));
  let fields: Record<string, unknown>;
  switch (o.op) {
    case 'linkAdd':
      fields = linkAdd(o, base);
      break;
    case 'linkSet':
      fields = linkSet(o, base);
      break;
    case 'linkDel':
    case 'linkGet':
      v.checkKeys(o, ['op', 'ns', 'link'], base);
      fields = { link: v.linkRef(o.link, f(base, 'link')) };
      break;
    case 'linkDelGroup':
      v.checkKeys(o, ['op', 'ns', 'group'], base);
      // Group 0 is the default group of every link, lo and physical devices included.
      fields = { group: v.integer(o.group, f(base, 'group'), 1, v.U32_MAX) };
      break;
    case 'addrAdd':
    case 'addrDel':
      fields = addr(o, base, o.op === 'addrAdd');
      break;
    case 'routeAdd':
    case 'routeReplace':
    case 'routeDel':
      fields = route(o, base, o.op === 'routeDel');
      break;
    case 'neighAdd':
    case 'neighDel':
      fields = neigh(o, base, o.op === 'neighAdd');
      break;
    case 'fdbAdd':
    case 'fdbDel':
      v.checkKeys(o, ['op', 'ns', 'link', 'lladdr'], base);
      fields = { link: v.linkRef(o.link, f(base, 'link')), lladdr: v.mac(o.lladdr, f(base, 'lladdr'), false) };
      break;
    default:
      throw new ConfigError(`unknown operation ${JSON.stringify(o.op)}`, f(base, 'op'));
  }
  return { op: o.op, ns, ...fields };
}

/**
 * @internal toNative() without the checks, for ops this library builds itself from values it has
 * checked already (the bridge's connect and disconnect): the same native op, a fraction of the
 * main-thread time. The addon still refuses a malformed op (TypeError). Ops outside the shapes
 * handled here go through toNative(). test/unit pins it to toNative() for every shape it handles.
 */
export function trustedNative(op: BatchOp): NativeOp {
  const o = op as unknown as Record<string, unknown>;
  const ns = o.ns === undefined ? null : (o.ns as Namespace).handle;
  switch (o.op) {
    case 'linkAdd': {
      if (o.kind !== 'veth' || o.netns !== undefined || o.bridge !== undefined) break;
      const out = copyDefined(o);
      const p = o.peer as Record<string, unknown>;
      const peer = copyDefined(p);
      if (p.ns !== undefined) peer.ns = (p.ns as Namespace).handle;
      out.peer = peer;
      return out as NativeOp;
    }
    case 'linkSet':
      if (o.netns !== undefined || o.master !== undefined) break;
      return copyDefined(o) as NativeOp;
    case 'addrAdd': {
      const c = o.cidr as string;
      const slash = c.indexOf('/');
      if (slash < 0 || o.broadcast !== undefined || o.scope !== undefined || c.startsWith('127.')) break;
      const out = copyDefined(o);
      delete out.cidr;
      out.address = c.slice(0, slash);
      out.prefix = Number(c.slice(slash + 1));
      return out as NativeOp;
    }
    case 'neighAdd':
    case 'neighDel': {
      const out = copyDefined(o);
      out.family = (o.address as string).includes(':') ? 6 : 4;
      return out as NativeOp;
    }
    case 'fdbAdd':
    case 'fdbDel':
      return copyDefined(o) as NativeOp;
    case 'routeAdd':
      // A default route through a gateway, as connect adds it.
      if (o.dst !== 'default' || typeof o.gateway !== 'string' || Object.keys(o).some((k) => !['op', 'ns', 'dst', 'gateway', 'link'].includes(k))) break;
      return { op: 'routeAdd', ns, family: o.gateway.includes(':') ? 6 : 4, dst: 'default', gateway: o.gateway, link: o.link, table: 254, scope: 'universe', protocol: 'boot', type: 'unicast' } as NativeOp;
  }
  return toNative(op);

  /** The defined fields, MACs in lower case as v.mac() gives them; the op's own `ns` as a handle. */
  function copyDefined(src: Record<string, unknown>): Record<string, unknown> {
    const out: Record<string, unknown> = src === o ? { op: o.op, ns } : {};
    for (const k in src) {
      const x = src[k];
      if (x === undefined || k === 'ns' || k === 'op') continue;
      out[k] = (k === 'mac' || k === 'lladdr') && typeof x === 'string' ? x.toLowerCase() : x;
    }
    return out;
  }
}
