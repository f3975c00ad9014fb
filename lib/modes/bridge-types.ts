/** Public types of the bridge mode. */
import type { PortSpec, Protocol } from '../portspec';

export type { PortSpec, Protocol };

export interface BridgeNetworkOptions {
  /** Network name (1-64 of A-Z a-z 0-9 _ . -). */
  name: string;
  /** Bridge device name. Default: `br-` + the first 12 hex digits of the network id. 'docker0' is fine. */
  bridge?: string;
  /** IPv4 subnet. Default: 172.17.0.0/16 when free, else the first free private range. */
  subnet?: string;
  /** Gateway (the bridge's address). Default: the first host address of the subnet. */
  gateway?: string;
  /** Allocate container addresses only from this sub-range of the subnet: a CIDR block, or `FIRST-LAST`. */
  ipRange?: string;
  /** MTU of the bridge and of every veth. Default 1500. */
  mtu?: number;
  /**
   * Transmit and receive queues of each end of every veth (1-4096). Default 1: a veth's queues
   * only matter to XDP and veth GRO (NAPI), and each one is a sysfs object that creating and
   * deleting the veth pays for (measured: 1 queue instead of the kernel's one per possible CPU,
   * 2 here, makes a veth's create ~25% and its delete ~20% cheaper). Set it to the CPU count for
   * containers that run XDP programs or turn GRO on inside.
   */
  vethQueues?: number;
  /** Inter-container communication. Default true; false = containers talk only through links. */
  icc?: boolean;
  /** Masquerade traffic that leaves the subnet by another interface. Default true. */
  masquerade?: boolean;
  /** Default host address for published ports (0.0.0.0 = all). */
  hostIp?: string;
  /** No route out and no published ports. */
  internal?: boolean;
  /** Dual stack. */
  ipv6?: { subnet: string; gateway?: string };
  /**
   * The embedded DNS server (lib/dns/): containers resolve each other's ids, host names and
   * aliases, and their resolv.conf names the gateway. Default false (`netmodes network create`
   * turns it on unless --no-dns, as Docker does for user-defined networks).
   */
  embeddedDns?: boolean;
  /**
   * A dense network (more than a bridge's 1,023 ports; see README "Dense networks"): a power of
   * two from 2 to 512. The subnet is cut into blocks of this many addresses; the first block's
   * containers go on the network's bridge, each other block's on a bridge of its own ("leaf",
   * `nm<id8>b<N>`, made when the block is first used), and the host routes between the bridges.
   * Within a bridge everything is as in Docker; between two bridges traffic is routed by the host
   * (one hop, proxy ARP answers for the other bridge's containers). With `ipv6`, IPv6 is routed
   * the same way (no proxy NDP): the IPv6 subnet needs as many addresses as the IPv4 one, a
   * container's IPv6 address is in its IPv4 address's block (by default at the same offset), and
   * the IPv6 gateway is at the IPv4 gateway's offset. Default:
   * one bridge (Docker's layout; EBRIDGEFULL after 1,023 containers).
   */
  portsPerBridge?: number;
}

export interface ConnectLink {
  /** An endpoint of the same network, or its id. */
  endpoint: Endpoint | string;
  /** Name under which the linked container is known in this one's hosts file. */
  alias?: string;
}

export interface ConnectOptions {
  /** Endpoint id (the container's name or id). Default: 64 random hex digits. */
  id?: string;
  /** Interface name inside the container. Default 'eth0'. */
  ifname?: string;
  /** A fixed IPv4 address inside the subnet. */
  ip?: string;
  /**
   * A fixed IPv6 address inside the IPv6 subnet. On a dense network it must be in the IPv4
   * address's block (ConfigError otherwise); given without `ip`, the IPv4 address is the one at
   * its offset.
   */
  ipv6?: string;
  /** A fixed MAC. Default: 02:42 followed by the IPv4 address, as Docker does. */
  mac?: string;
  /** Published ports, as objects or `docker run -p` strings. */
  ports?: (PortSpec | string)[];
  /** Legacy links: the two endpoints may talk even with icc=false, and the alias goes in hosts. */
  links?: ConnectLink[];
  /** Host name written to the hosts text. Default: the first 12 characters of the id. */
  hostname?: string;
  /** More names of the endpoint on this network (Docker's --network-alias): hosts text and embedded DNS. */
  aliases?: string[];
  /** resolv.conf content. Default: the host's /etc/resolv.conf with loopback servers replaced. */
  dns?: { servers?: string[]; search?: string[]; options?: string[] };
}

export interface PublishedPort {
  protocol: Protocol;
  /** Host address ('0.0.0.0' = every address). */
  hostIp: string;
  /** The host port (the one chosen when it was left to the library). */
  hostPort: number;
  containerPort: number;
}

export interface EndpointLink {
  /** The linked endpoint's id. */
  id: string;
  /** Its host name (the name the hosts text gives it). */
  name: string;
  alias?: string;
  ip: string;
  /** Its IPv6 address, on a network with IPv6 (absent in records written before). */
  ipv6?: string;
}

/** What the state store keeps for one endpoint. */
export interface EndpointRecord {
  id: string;
  network: string;
  namespace: string;
  ifname: string;
  ip: string;
  ipv6?: string;
  mac: string;
  hostVeth: string;
  ports: PublishedPort[];
  links: EndpointLink[];
  hostname: string;
  resolvConf: string;
  hosts: string;
  created: string;
  /** Absent in records written before the option existed: none. */
  aliases?: string[];
  /** With embeddedDns: where the server forwards this endpoint's other names. */
  dnsUpstreams?: string[];
}

export interface Endpoint extends Readonly<EndpointRecord> {
  readonly gateway: string;
  readonly gatewayV6?: string;
  /** Same as network.disconnect(this). */
  disconnect(): Promise<void>;
}

export interface NetworkRecord {
  version: 1;
  name: string;
  id: string;
  bridge: string;
  bridgeMac: string;
  subnet: string;
  gateway: string;
  ipRange?: string;
  mtu: number;
  /** Absent in records written before the option existed: 1. */
  vethQueues?: number;
  icc: boolean;
  masquerade: boolean;
  hostIp: string;
  internal: boolean;
  ipv6?: { subnet: string; gateway: string };
  created: string;
  /** Absent in records written before the option existed: false. */
  embeddedDns?: boolean;
  /** A dense network's block size (BridgeNetworkOptions.portsPerBridge); absent: one bridge. */
  portsPerBridge?: number;
}

export interface BridgeNetworkInfo {
  name: string;
  id: string;
  bridge: string;
  subnet: string;
  gateway: string;
  ipv6?: { subnet: string; gateway: string };
  icc: boolean;
  internal: boolean;
  masquerade: boolean;
  embeddedDns: boolean;
  /** A dense network's addresses per bridge; absent: one bridge. */
  portsPerBridge?: number;
  endpoints: number;
  created: string;
}

/** What reconcile() found and did. */
export interface ReconcileReport {
  /** Endpoints whose record had no veth (half-made, or deleted from outside): cleaned up. */
  removedEndpoints: string[];
  /** Veths carrying our mark that no record explains: deleted. */
  removedVeths: string[];
  /** Address and port reservations no endpoint holds: freed. */
  freedReservations: string[];
  /** Set and map elements no endpoint explains: deleted. */
  removedElements: number;
  /** What was put back: the bridge, its address, firewall objects, elements, veth attachments. */
  repaired: string[];
}
