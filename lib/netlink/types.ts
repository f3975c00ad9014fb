/**
 * Public types of the rtnetlink API (links, addresses, routes, neighbours).
 */
import type { NetlinkError } from '../errors';
import type { Namespace } from '../netns';
import type { Family, ProtocolName, RouteTypeName, ScopeName, TableName } from './validate';

export type { Family, ProtocolName, RouteTypeName, ScopeName, TableName };

/** A link given by interface name or by ifindex (in the namespace the call targets). */
export type LinkRef = string | number;

interface LinkSpecBase {
  /** Interface name, 1-15 bytes. */
  name: string;
  mtu?: number;
  /** Unicast Ethernet address "aa:bb:cc:dd:ee:ff". */
  mac?: string;
  /** Bring the link up. */
  up?: boolean;
  /** Enslave to this bridge (in the namespace the link ends up in). */
  master?: LinkRef;
  alias?: string;
  /** Link group (u32); see linkDelGroup. */
  group?: number;
  /** Create the link directly in this namespace (IFLA_NET_NS_FD) rather than the one the call targets. */
  netns?: Namespace;
  txqlen?: number;
  /**
   * Transmit and receive queues (numtxqueues and numrxqueues, 1-4096). The kernel's default
   * for a veth is one of each per possible CPU; every queue is a sysfs object that creating and
   * deleting the link pays for.
   */
  queues?: number;
  /**
   * Give the link (and a veth's peer) no IPv6 link-local address at all: addrgenmode none,
   * set before the link comes up. See linkAdd.
   */
  noIpv6?: boolean;
  /**
   * No IPv6 at all on the link itself (not its peer): `net.ipv6.conf.NAME.disable_ipv6 = 1`,
   * written right after the create, before the link comes up (no-op on a kernel without IPv6).
   * For bridge ports: the kernel walks its whole IPv6 route table whenever an IPv6 link goes up
   * or away, and every up IPv6 link adds a route, so with thousands of them each step costs
   * milliseconds.
   */
  disableIpv6?: boolean;
}

export interface VethPeerSpec {
  /** The peer's final name in its namespace, e.g. "eth0". */
  name: string;
  /** Create the peer directly in this namespace; default: the namespace the call targets. */
  ns?: Namespace;
  mac?: string;
  mtu?: number;
  /** The peer's transmit and receive queues (1-4096); default: the kernel's. */
  queues?: number;
  up?: boolean;
}

export interface BridgeOptions {
  stp?: boolean;
  /** Centiseconds, as `ip link ... forward_delay` (1500 = 15 s). */
  forwardDelay?: number;
  vlanFiltering?: boolean;
  /** Centiseconds, as `ip link ... ageing_time` (30000 = 300 s). */
  ageingTime?: number;
}

export interface VethSpec extends LinkSpecBase {
  kind: 'veth';
  peer: VethPeerSpec;
}
export interface BridgeSpec extends LinkSpecBase {
  kind: 'bridge';
  bridge?: BridgeOptions;
}
export interface DummySpec extends LinkSpecBase {
  kind: 'dummy';
}
export type LinkSpec = VethSpec | BridgeSpec | DummySpec;

/** A bridge port's options: set by linkSet (the link must be a bridge port), read back by linkGet/linkList. */
export interface BridgePortOptions {
  hairpin?: boolean;
  isolated?: boolean;
  learning?: boolean;
  /** Only frames from MACs with an fdb entry for this port get in (802.1X-style port lock). */
  locked?: boolean;
  /** Whether unknown unicast, multicast and broadcast frames are flooded to this port. */
  unicastFlood?: boolean;
  mcastFlood?: boolean;
  bcastFlood?: boolean;
  /**
   * The port's STP state (`bridge link set dev X state 0..4`). With the bridge's STP off,
   * 'listening' stops all forwarding to and from the port at once and stays (no RCU grace period,
   * unlike leaving the bridge or going down); the bridge itself moves 'blocking' back to
   * forwarding at once, and 'disabled' when the port's carrier returns. The port must be up with
   * a carrier (ENETDOWN) unless the state is 'disabled'.
   */
  portState?: PortState;
}

export interface LinkChanges extends BridgePortOptions {
  up?: boolean;
  mtu?: number;
  /** A bridge to enslave to, or null to release from the current one. */
  master?: LinkRef | null;
  /** New name. */
  name?: string;
  mac?: string;
  /** '' clears. */
  alias?: string;
  /** Move the link to this namespace. */
  netns?: Namespace;
  group?: number;
  /** Forgets the MAC addresses the bridge learned on this port (`ip link set dev X type bridge_slave flush`). */
  fdbFlush?: boolean;
}

export type PortState = 'disabled' | 'listening' | 'learning' | 'forwarding' | 'blocking';

export interface LinkAddResult {
  /** ifindex of the new link (absent when it was created in another namespace via `netns`). */
  index?: number;
  /** ifindex of a veth's peer, in the peer's namespace. */
  peerIndex?: number;
}

export interface Link extends BridgePortOptions {
  index: number;
  name: string;
  /** IFLA_INFO_KIND: 'veth', 'bridge', ... (absent for lo and physical devices). */
  kind?: string;
  /** IFF_* flags by name: 'UP', 'BROADCAST', 'LOWER_UP', ... */
  flags: string[];
  up: boolean;
  mtu: number;
  mac?: string;
  /** ifindex of the master (bridge), if any. */
  master?: number;
  alias?: string;
  /** 'UP', 'DOWN', 'UNKNOWN', 'LOWERLAYERDOWN', ... as `ip -j link` prints it. */
  operstate: string;
  group: number;
  /** IFLA_LINK: a veth's peer ifindex (in the peer's namespace). */
  link?: number;
  /** Namespace id (as seen from this namespace) of the peer's namespace, when it is another one. */
  linkNetnsid?: number;
  txqlen: number;
  /** IPv6 address generation mode: 'eui64', 'none', 'stable_secret', 'random'. */
  addrGenMode?: string;
  /** For ports: the master's kind ('bridge'). */
  slaveKind?: string;
  bridge?: BridgeOptions;
}

export interface LinkFilter {
  /** Only ports of this master (ifindex or name). */
  master?: LinkRef;
  /** Only links of this kind. */
  kind?: string;
}

export interface AddrOptions {
  /** IPv4 broadcast address. */
  broadcast?: string;
  /** Default as `ip addr add`: host for 127.0.0.0/8, else universe. */
  scope?: ScopeName | number;
  /** Skip duplicate address detection (IPv6). */
  noDad?: boolean;
  /**
   * No route for the address's prefix (IFA_F_NOPREFIXROUTE; `ip addr add ... noprefixroute`):
   * the address keeps its prefix length, the caller adds the routes it wants.
   */
  noPrefixRoute?: boolean;
  /** IPv4 label, at most 15 bytes. */
  label?: string;
}

export interface Addr {
  index: number;
  family: Family;
  address: string;
  /** The other end on point-to-point links. */
  peer?: string;
  prefix: number;
  scope: string;
  /** IFA_F_* flags by name: 'PERMANENT', 'NODAD', 'TENTATIVE', ... */
  flags: string[];
  label?: string;
  broadcast?: string;
}

export interface AddrFilter {
  family?: Family;
  link?: LinkRef;
}

export interface RouteSpec {
  /** 'default', a network "10.1.0.0/16", or an address (a host route). Default: 'default'. */
  dst?: string;
  gateway?: string;
  /** Output interface. */
  link?: LinkRef;
  /** Default 'main'. */
  table?: number | TableName;
  metric?: number;
  /** Default as `ip route`: host for local routes, link for routes without gateway, else universe (add); nowhere (delete: any). */
  scope?: ScopeName | number;
  /** Treat the gateway as on-link even without a matching route. */
  onlink?: boolean;
  /** Default 'boot' as `ip route add` (delete: any). */
  protocol?: ProtocolName | number;
  /** Default 'unicast' (delete: any). */
  type?: RouteTypeName;
  /** Preferred source address. */
  src?: string;
  /** Needed only for a default route with neither gateway nor src (default 4). */
  family?: Family;
}

export interface Route {
  family: Family;
  /** 'default' or the destination address (network). */
  dst: string;
  prefix: number;
  gateway?: string;
  oif?: number;
  table: number;
  metric?: number;
  scope: string;
  protocol: string;
  type: string;
  flags: string[];
  src?: string;
}

export interface RouteFilter {
  family?: Family;
  table?: number | TableName;
  link?: LinkRef;
  protocol?: ProtocolName | number;
  type?: RouteTypeName;
}

export interface NeighSpec {
  link: LinkRef;
  address: string;
  /** Link-layer address; required to add. */
  lladdr?: string;
  /** NUD_PERMANENT (default) or NUD_REACHABLE. */
  permanent?: boolean;
}

export interface Neigh {
  index: number;
  family: Family;
  address: string;
  lladdr?: string;
  /** NUD_* states by name: 'PERMANENT', 'REACHABLE', 'STALE', ... */
  state: string[];
}

export interface NeighFilter {
  family?: Family;
  link?: LinkRef;
}

/** One operation of batch(); `ns` is the namespace the request goes to (default: current). */
export type BatchOp =
  | ({ op: 'linkAdd'; ns?: Namespace } & LinkSpec)
  | ({ op: 'linkSet'; ns?: Namespace; link: LinkRef } & LinkChanges)
  | { op: 'linkDel'; ns?: Namespace; link: LinkRef }
  | { op: 'linkGet'; ns?: Namespace; link: LinkRef }
  | { op: 'linkDelGroup'; ns?: Namespace; group: number }
  | ({ op: 'addrAdd'; ns?: Namespace; link: LinkRef; cidr: string } & AddrOptions)
  | { op: 'addrDel'; ns?: Namespace; link: LinkRef; cidr: string }
  | ({ op: 'routeAdd' | 'routeReplace' | 'routeDel'; ns?: Namespace } & RouteSpec)
  | ({ op: 'neighAdd' | 'neighDel'; ns?: Namespace } & NeighSpec)
  /** A static bridge forwarding entry: frames to `lladdr` leave by port `link`, never flooded. `bridge fdb add LLADDR dev PORT master static` */
  | { op: 'fdbAdd' | 'fdbDel'; ns?: Namespace; link: LinkRef; lladdr: string };

export type BatchOpName = BatchOp['op'];

/** What each op resolves to. */
export type BatchResult<O> = O extends { op: 'linkAdd' } ? LinkAddResult : O extends { op: 'linkGet' } ? Link : undefined;

export interface BatchOptions {
  /**
   * false (default): ops run in order, each acknowledged before the next; the first failure
   * stops the batch and rejects with its NetlinkError (`index` = the failing op, `results` = the
   * results of the ops before it; later ops are not attempted).
   *
   * true: the messages of consecutive ops for the same namespace go out in one sendmsg. The
   * kernel runs every one of them even when one fails, so every op is attempted; the result is
   * one PromiseSettledResult per op.
   */
  pipelined?: boolean;
}

/** The error of a non-pipelined batch: the failing op's NetlinkError plus the earlier results. */
export type BatchError = NetlinkError & { index: number; results: unknown[] };
