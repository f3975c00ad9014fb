/**
 * The bridge mode's nftables objects. Two tables, owned by netmodes and shared by every network:
 *
 *   table inet netmodes {
 *     set bridges  { type ifname; }                          # every netmodes bridge
 *     map pub4     { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }  # -p IP:H:C
 *     map pub4any  { type inet_proto . inet_service : ipv4_addr . inet_service; }              # -p H:C
 *     map pub6 / pub6any   (the same for IPv6)
 *     map fwd_in   { type ifname : verdict; }                # bridge -> jump nm-ID-in
 *     map fwd_out  { type ifname : verdict; }                # bridge -> jump nm-ID-out
 *     chain prerouting  { type nat hook prerouting priority dstnat;
 *       fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @pub4
 *       fib daddr type local dnat ip to meta l4proto . th dport map @pub4any
 *       (and ip6) }
 *     chain output      { type nat hook output priority -100; the same four rules }
 *     chain postrouting { type nat hook postrouting priority srcnat;
 *       ct status dnat ip saddr 127.0.0.0/8 oifname @bridges masquerade       # 127.0.0.1:PORT
 *       ct status dnat ip saddr 172.17.0.0/16 oifname @bridges masquerade     # hairpin, per network
 *       ip saddr 172.17.0.0/16 oifname != "docker0" masquerade               # the seed's rule, per network
 *     }
 *     chain forward     { type filter hook forward priority filter;
 *       iifname vmap @fwd_in
 *       oifname vmap @fwd_out }
 *     chain nm-ID-in  { oifname "docker0" accept; oifname @bridges drop }    # isolation between networks
 *     chain nm-ID-out { iifname "docker0" accept; ct state established,related accept;
 *                       ct status dnat accept; drop }                        # only published ports come in
 *   }
 *   table bridge netmodes {                                   # icc=false, at layer 2
 *     set noicc  { type ifname; }                             # host veths on icc=false bridges
 *     set links4 { type ipv4_addr . ipv4_addr; }              # linked pairs, both directions
 *     set links6 { type ipv6_addr . ipv6_addr; }
 *     chain forward { type filter hook forward priority filter;
 *       iifname != @noicc accept
 *       ether type arp accept
 *       meta l4proto ipv6-icmp accept
 *       ip saddr . ip daddr @links4 accept
 *       ip6 saddr . ip6 daddr @links6 accept
 *       drop }
 *   }
 *
 * A dense network (bridge-leaves.ts) has leaf bridges `nm<ID8>b<N>` beside its own: each is an
 * element of `bridges`, `fwd_in` and `fwd_out`; its chains and masquerade rule name them by
 * wildcard (`oifname "nm<ID8>b*" accept`, `... oifname != "docker0" oifname != "nm<ID8>b*"
 * masquerade`); with icc=false, nm-ID-in first lets only published ports and links through
 * between its bridges (`ct status dnat accept; ip saddr . ip daddr @ilinks4 accept;
 * oifname "docker0" drop; oifname "nm<ID8>b*" drop`), `ilinks4` (inet) mirroring `links4`.
 * With IPv6 the same: `ip6 saddr . ip6 daddr @ilinks6 accept` (ilinks6 mirroring links6; a
 * link's IPv6 pair is there when both ends have IPv6), and masq6 names the leaves as masq does.
 *
 * A dense network's leaf bridges live in namespaces of their own (bridge-leaves.ts): in the host,
 * each leaf is the host end of its trunk veth `nm<ID8>b<N>`, with the same inet elements as above;
 * the leaf namespace has, for an icc=false network only, its own `table bridge netmodes` (the
 * same sets and chain, plus `oifname "trunk" accept` after the icc rule: what leaves a leaf goes
 * to the host, whose nm-ID-in decides), holding the noicc element of each of its containers and
 * the link pairs of containers both in that leaf (a pair across leaves is routed: ilinks4).
 *
 * (`meta ibrname` would name the bridge instead of its ports, but needs CONFIG_NFT_BRIDGE_META,
 * which common kernels lack: EOPNOTSUPP. A port set works everywhere and is still one element per
 * container.)
 *
 * Rules exist per table and per network only; what a container adds (published ports, links) is
 * set and map elements whose comment names the owner (`NETID12:ENDPOINTID`), so a connect costs
 * the same with 10 or 10,000 containers, and reconcile can tell whose each element is.
 * Internal networks get no masquerade rule and chains that drop everything not on their bridge.
 */
import type { Namespace } from '../netns';
import {
  nftTransaction,
  nftList,
  rule,
  NftTransaction,
  NftSet,
  SetElement,
  Chain,
  Expr,
} from '../nft';
import { isNotFound } from '../errors';
import type { PublishedPort, EndpointLink } from './bridge-types';

export interface FwNetwork {
  id: string;
  name: string;
  bridge: string;
  subnet: string;
  subnet6?: string;
  icc: boolean;
  masquerade: boolean;
  internal: boolean;
  /** A dense network's leaf bridges, as an ifname wildcard (`nm<id8>b*`; bridge-leaves.ts). */
  leaves?: string;
  /** A dense network: the slot of an address of either family (0: the network's own bridge, else a leaf namespace's). */
  slotOf?: (ip: string) => number;
}

/**
 * Which namespace's elements: `host` (the host's inet table; and its bridge table for containers
 * on the network's own bridge), or `leaf` (the bridge table of the leaf namespace a container of a
 * dense network's slot > 0 has its host end in: icc=false only).
 */
export type FwPart = 'host' | 'leaf';

/** The port of a leaf namespace's bridge that leads to the host (bridge-leaves.ts). */
export const TRUNK = 'trunk';

export interface FwEndpoint {
  id: string;
  ip: string;
  ipv6?: string;
  hostVeth: string;
  ports: PublishedPort[];
  links: EndpointLink[];
}

const TABLE = 'netmodes';
const INET = { family: 'inet' as const, table: TABLE };
const BR = { family: 'bridge' as const, table: TABLE };

const SETS: NftSet[] = [
  { ...INET, name: 'bridges', type: 'ifname' },
  { ...INET, name: 'pub4', type: 'ipv4_addr . inet_proto . inet_service', dataType: 'ipv4_addr . inet_service' },
  { ...INET, name: 'pub4any', type: 'inet_proto . inet_service', dataType: 'ipv4_addr . inet_service' },
  { ...INET, name: 'pub6', type: 'ipv6_addr . inet_proto . inet_service', dataType: 'ipv6_addr . inet_service' },
  { ...INET, name: 'pub6any', type: 'inet_proto . inet_service', dataType: 'ipv6_addr . inet_service' },
  { ...INET, name: 'fwd_in', type: 'ifname', dataType: 'verdict' },
  { ...INET, name: 'fwd_out', type: 'ifname', dataType: 'verdict' },
  // A dense network's links again at layer 3 (icc=false between its bridges is routed).
  { ...INET, name: 'ilinks4', type: 'ipv4_addr . ipv4_addr' },
  { ...INET, name: 'ilinks6', type: 'ipv6_addr . ipv6_addr' },
  { ...BR, name: 'noicc', type: 'ifname' },
  { ...BR, name: 'links4', type: 'ipv4_addr . ipv4_addr' },
  { ...BR, name: 'links6', type: 'ipv6_addr . ipv6_addr' },
].map(({ table, ...s }) => ({ ...s, table }));

const BASE_CHAINS: Chain[] = [
  { ...INET, name: 'prerouting', type: 'nat', hook: 'prerouting', priority: 'dstnat', policy: 'accept' },
  { ...INET, name: 'output', type: 'nat', hook: 'output', priority: -100, policy: 'accept' },
  { ...INET, name: 'postrouting', type: 'nat', hook: 'postrouting', priority: 'srcnat', policy: 'accept' },
  { ...INET, name: 'forward', type: 'filter', hook: 'forward', priority: 'filter', policy: 'accept' },
  { ...BR, name: 'forward', type: 'filter', hook: 'forward', priority: 'filter', policy: 'accept' },
];

/** The rules of the base chains, each tagged with a comment naming its purpose. */
function globalRules(): Array<{ family: 'inet' | 'bridge'; chain: string; comment: string; exprs: Expr[] }> {
  const dnat = (chain: string) => [
    // fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @pub4
    { family: 'inet' as const, chain, comment: 'netmodes:pub4', exprs: rule('inet').fibDaddrType('local').dnatMap(['ip daddr', 'meta l4proto', 'th dport'], 'pub4').build() },
    // fib daddr type local dnat ip to meta l4proto . th dport map @pub4any
    {
      family: 'inet' as const, chain, comment: 'netmodes:pub4any',
      exprs: rule('inet').fibDaddrType('local').match('meta nfproto', 'ipv4').dnatMap(['meta l4proto', 'th dport'], 'pub4any').build(),
    },
    // fib daddr type local dnat ip6 to ip6 daddr . meta l4proto . th dport map @pub6
    { family: 'inet' as const, chain, comment: 'netmodes:pub6', exprs: rule('inet').fibDaddrType('local').dnatMap(['ip6 daddr', 'meta l4proto', 'th dport'], 'pub6', { family: 'ip6' }).build() },
    // fib daddr type local dnat ip6 to meta l4proto . th dport map @pub6any
    {
      family: 'inet' as const, chain, comment: 'netmodes:pub6any',
      exprs: rule('inet').fibDaddrType('local').match('meta nfproto', 'ipv6').dnatMap(['meta l4proto', 'th dport'], 'pub6any', { family: 'ip6' }).build(),
    },
  ];
  return [
    ...dnat('prerouting'),
    ...dnat('output'),
    // ct status dnat ip saddr 127.0.0.0/8 oifname @bridges masquerade
    { family: 'inet', chain: 'postrouting', comment: 'netmodes:localhost', exprs: rule('inet').ctStatus(['dnat']).match('ip saddr', '127.0.0.0/8').inSet('oifname', 'bridges').masquerade().build() },
    // iifname vmap @fwd_in
    { family: 'inet', chain: 'forward', comment: 'netmodes:fwd_in', exprs: rule('inet').vmap('iifname', 'fwd_in').build() },
    // oifname vmap @fwd_out
    { family: 'inet', chain: 'forward', comment: 'netmodes:fwd_out', exprs: rule('inet').vmap('oifname', 'fwd_out').build() },
    // iifname != @noicc accept
    { family: 'bridge', chain: 'forward', comment: 'netmodes:icc', exprs: rule('bridge').inSet('iifname', 'noicc', { not: true }).accept().build() },
    // ether type arp accept
    { family: 'bridge', chain: 'forward', comment: 'netmodes:arp', exprs: rule('bridge').match('ether type', 'arp').accept().build() },
    // meta l4proto ipv6-icmp accept (neighbour discovery)
    { family: 'bridge', chain: 'forward', comment: 'netmodes:nd', exprs: rule('bridge').match('meta l4proto', 'ipv6-icmp').accept().build() },
    // ip saddr . ip daddr @links4 accept
    { family: 'bridge', chain: 'forward', comment: 'netmodes:links4', exprs: rule('bridge').inSet(['ip saddr', 'ip daddr'], 'links4').accept().build() },
    // ip6 saddr . ip6 daddr @links6 accept
    { family: 'bridge', chain: 'forward', comment: 'netmodes:links6', exprs: rule('bridge').inSet(['ip6 saddr', 'ip6 daddr'], 'links6').accept().build() },
    // drop
    { family: 'bridge', chain: 'forward', comment: 'netmodes:noicc-drop', exprs: rule('bridge').drop().build() },
  ];
}

/**
 * A leaf namespace's bridge chain: the host's, with what goes up the trunk let through after the
 * icc rule (between leaves, and to the gateway, the host's nm-ID-in decides).
 */
function leafRules(): Array<{ comment: string; exprs: Expr[] }> {
  const br = globalRules().filter((g) => g.family === 'bridge');
  // oifname "trunk" accept
  br.splice(1, 0, { family: 'bridge', chain: 'forward', comment: 'netmodes:trunk', exprs: rule('bridge').match('oifname', TRUNK).accept().build() });
  return br;
}

const tag = (net: FwNetwork) => net.id.slice(0, 12);
const chainIn = (net: FwNetwork) => `nm-${tag(net)}-in`;
const chainOut = (net: FwNetwork) => `nm-${tag(net)}-out`;
const owner = (net: FwNetwork, epId: string) => `${tag(net)}:${epId}`;

/** The per-network rules in the base chains. */
function networkRules(net: FwNetwork): Array<{ chain: string; comment: string; exprs: Expr[] }> {
  if (net.internal) return []; // publishes nothing, reaches nothing
  const out = [
    // ct status dnat ip saddr SUBNET oifname @bridges masquerade (hairpin: a container reaching a
    // published port through the host; the reply must come back through the host too)
    { chain: 'postrouting', comment: `${tag(net)}:hairpin`, exprs: rule('inet').ctStatus(['dnat']).match('ip saddr', net.subnet).inSet('oifname', 'bridges').masquerade().build() },
  ];
  if (net.masquerade) {
    // ip saddr SUBNET oifname != "BRIDGE" masquerade
    // (a dense network: nor to one of its leaves, `oifname != "nm<id8>b*"`)
    const masq = rule('inet').match('ip saddr', net.subnet).match('oifname', net.bridge, 'neq');
    if (net.leaves) masq.match('oifname', net.leaves, 'neq');
    out.push({ chain: 'postrouting', comment: `${tag(net)}:masq`, exprs: masq.masquerade().build() });
    if (net.subnet6) {
      const masq6 = rule('inet').match('ip6 saddr', net.subnet6).match('oifname', net.bridge, 'neq');
      if (net.leaves) masq6.match('oifname', net.leaves, 'neq');
      out.push({ chain: 'postrouting', comment: `${tag(net)}:masq6`, exprs: masq6.masquerade().build() });
    }
  }
  return out;
}

/** The rules of the network's own forward chains. */
function networkChainRules(net: FwNetwork): Array<{ chain: string; exprs: Expr[] }> {
  const inR: Expr[][] = [];
  const ours = net.leaves ? [net.bridge, net.leaves] : [net.bridge];
  if (net.leaves && !net.icc) {
    // icc=false between a dense network's bridges (routed): published ports and links only.
    inR.push(
      rule('inet').ctStatus(['dnat']).accept().build(), // ct status dnat accept
      rule('inet').inSet(['ip saddr', 'ip daddr'], 'ilinks4').accept().build(), // ip saddr . ip daddr @ilinks4 accept
      rule('inet').inSet(['ip6 saddr', 'ip6 daddr'], 'ilinks6').accept().build(), // ip6 saddr . ip6 daddr @ilinks6 accept
      // With br_netfilter (bridge-nf-call-ip6tables), frames switched within one bridge pass
      // this hook too: neighbour discovery stays open there, as in the bridge table's forward
      // chain (a router never forwards it: hop limit 255).
      // meta l4proto ipv6-icmp icmpv6 type nd-neighbor-solicit accept (and nd-neighbor-advert)
      ...(net.subnet6 ? (['nd-neighbor-solicit', 'nd-neighbor-advert'] as const).map((t) => rule('inet').match('meta l4proto', 'ipv6-icmp').match('icmpv6 type', t).accept().build()) : []),
      ...ours.map((b) => rule('inet').match('oifname', b).drop().build()), // oifname "BR" drop; oifname "nm<id8>b*" drop
    );
  }
  inR.push(...ours.map((b) => rule('inet').match('oifname', b).accept().build())); // oifname "BR" accept
  const outR: Expr[][] = ours.map((b) => rule('inet').match('iifname', b).accept().build()); // iifname "BR" accept
  if (net.internal) {
    inR.push(rule('inet').drop().build()); // drop: no way out
    outR.push(rule('inet').drop().build()); // drop: no way in
  } else {
    inR.push(rule('inet').inSet('oifname', 'bridges').drop().build()); // oifname @bridges drop
    outR.push(
      rule('inet').ctState(['established', 'related']).accept().build(), // ct state established,related accept
      rule('inet').ctStatus(['dnat']).accept().build(), // ct status dnat accept
      rule('inet').drop().build(), // drop
    );
  }
  return [...inR.map((exprs) => ({ chain: chainIn(net), exprs })), ...outR.map((exprs) => ({ chain: chainOut(net), exprs }))];
}

/** The elements of one of the network's bridges (its own, or a dense network's leaf). */
function networkElements(net: FwNetwork, bridge = net.bridge): Array<[string, 'inet' | 'bridge', SetElement]> {
  const el: Array<[string, 'inet' | 'bridge', SetElement]> = [
    ['bridges', 'inet', { key: bridge, comment: tag(net) }],
    ['fwd_in', 'inet', { key: bridge, data: { jump: chainIn(net) }, comment: tag(net) }],
    ['fwd_out', 'inet', { key: bridge, data: { jump: chainOut(net) }, comment: tag(net) }],
  ];
  return el;
}

/** Whether an endpoint has its host end in a leaf namespace (a dense network's slot > 0). */
const inLeaf = (net: FwNetwork, ip: string): boolean => !!net.slotOf && net.slotOf(ip) > 0;

/** Whether elements of `set` go to `part`'s namespace for an endpoint at `ip`. */
function belongs(net: FwNetwork, ip: string, set: string, part: FwPart): boolean {
  const br = familyOf(set) === 'bridge';
  if (part === 'leaf') return br && !net.icc && inLeaf(net, ip);
  return !br || !inLeaf(net, ip);
}

/** The elements one endpoint owns in `part`'s namespace: its published ports and its links (both directions). */
function endpointElements(net: FwNetwork, ep: FwEndpoint, part: FwPart = 'host'): Map<string, SetElement[]> {
  const m = new Map<string, SetElement[]>();
  const add = (set: string, e: SetElement) => {
    if (!belongs(net, ep.ip, set, part)) return;
    if (!m.has(set)) m.set(set, []);
    m.get(set)!.push(e);
  };
  const comment = owner(net, ep.id);
  if (!net.icc) add('noicc', { key: ep.hostVeth, comment });
  for (const p of ep.ports) {
    const v6 = p.hostIp.includes(':');
    if (p.hostIp === '0.0.0.0' || p.hostIp === '::') {
      if (p.hostIp === '0.0.0.0') add('pub4any', { key: [p.protocol, p.hostPort], data: [ep.ip, p.containerPort], comment });
      if (ep.ipv6) add('pub6any', { key: [p.protocol, p.hostPort], data: [ep.ipv6, p.containerPort], comment });
    } else if (v6) {
      if (ep.ipv6) add('pub6', { key: [p.hostIp, p.protocol, p.hostPort], data: [ep.ipv6, p.containerPort], comment });
    } else {
      add('pub4', { key: [p.hostIp, p.protocol, p.hostPort], data: [ep.ip, p.containerPort], comment });
    }
  }
  for (const l of ep.links)
    for (const [set, list] of linkElements(net, ep, l.ipv6 ? [l.ip, l.ipv6] : [l.ip], comment, part)) for (const e of list) add(set, e);
  return m;
}

/** Whether links are also elements at layer 3 (a dense network with icc=false). */
const routedLinks = (net?: FwNetwork): boolean => !!net?.leaves && !net.icc;

/**
 * The link elements between `ep` and the endpoints at `others` (addresses of either family;
 * an IPv6 one pairs with `ep.ipv6`), both directions, by set: links4 (and ilinks4 where links
 * are routed), links6 (and ilinks6).
 */
function linkElements(
  net: FwNetwork | undefined, ep: { ip: string; ipv6?: string }, others: string[], comment?: string, part: FwPart = 'host',
): Map<string, SetElement[]> {
  const m = new Map<string, SetElement[]>();
  for (const o of others) {
    const v6 = o.includes(':');
    const mine = v6 ? ep.ipv6 : ep.ip;
    if (!mine) continue;
    const sets = (v6 ? ['links6', 'ilinks6'] : ['links4', 'ilinks4']).filter((set) => !net || belongs(net, ep.ip, set, part));
    for (const set of routedLinks(net) ? sets : sets.filter((x) => !x.startsWith('i'))) {
      // (a dense network's pair at layer 2 only within one bridge: both addresses in one slot)
      if (familyOf(set) === 'bridge' && net?.slotOf && net.slotOf(o) !== net.slotOf(mine)) continue;
      if (!m.has(set)) m.set(set, []);
      m.get(set)!.push({ key: [mine, o], ...(comment ? { comment } : {}) }, { key: [o, mine], ...(comment ? { comment } : {}) });
    }
  }
  return m;
}

const familyOf = (set: string): 'inet' | 'bridge' => (['noicc', 'links4', 'links6'].includes(set) ? 'bridge' : 'inet');
/** Element operations need the set's types: hand over our own definition. */
const setRef = (name: string): NftSet => {
  const s = SETS.find((x) => x.name === name && x.family === familyOf(name));
  if (!s) throw new Error(`internal: no set ${name}`);
  return s;
};

async function listOurs(ns: Namespace, part: FwPart = 'host') {
  // (a leaf namespace has the bridge table only)
  const inet = part === 'leaf' ? undefined : await nftList(ns, { family: 'inet', table: TABLE }).catch((e) => {
    if (isNotFound(e)) return undefined;
    throw e;
  });
  const br = await nftList(ns, { family: 'bridge', table: TABLE }).catch((e) => {
    if (isNotFound(e)) return undefined;
    throw e;
  });
  return {
    present: (part === 'leaf' || !!inet?.tables.length) && !!br?.tables.length,
    chains: [...(inet?.chains ?? []), ...(br?.chains ?? [])],
    sets: [...(inet?.sets ?? []), ...(br?.sets ?? [])],
    rules: [...(inet?.rules ?? []), ...(br?.rules ?? [])],
  };
}

/** The transaction adding an endpoint's elements (each destroyed first: re-adding is idempotent). */
function addTx(net: FwNetwork, ep: FwEndpoint, ns: Namespace, part: FwPart = 'host'): NftTransaction | undefined {
  const els = endpointElements(net, ep, part);
  if (!els.size) return undefined;
  const tx = nftTransaction(ns);
  for (const [set, list] of els) {
    tx.destroyElements(setRef(set), list.map((e) => ({ key: e.key })));
    tx.addElements(setRef(set), list);
  }
  return tx;
}

/** The transaction removing an endpoint's elements and those of the links at `linkedBy`. */
function removeTx(net: FwNetwork, ep: FwEndpoint, ns: Namespace, linkedBy: string[], part: FwPart = 'host'): NftTransaction | undefined {
  const els = endpointElements(net, ep, part);
  for (const [set, list] of linkElements(net, ep, linkedBy, undefined, part)) els.set(set, [...(els.get(set) ?? []), ...list]);
  if (!els.size) return undefined;
  const tx = nftTransaction(ns);
  for (const [set, list] of els) tx.destroyElements(setRef(set), list.map((e) => ({ key: e.key })));
  return tx;
}

export const firewall = {
  /**
   * Makes (or repairs) the tables, the shared objects and this network's rules, chains and
   * elements, in one transaction. Returns what had to be (re)made.
   */
  async ensureNetwork(net: FwNetwork, ns: Namespace): Promise<string[]> {
    const cur = await listOurs(ns);
    const made: string[] = [];
    const tx = nftTransaction(ns);
    tx.addTable({ family: 'inet', name: TABLE });
    tx.addTable({ family: 'bridge', name: TABLE });
    for (const c of BASE_CHAINS) tx.addChain(c);
    for (const s of SETS) tx.addSet(s);
    const has = (family: string, chain: string, comment: string) =>
      cur.rules.some((r) => r.family === family && r.chain === chain && r.comment === comment);
    for (const g of globalRules()) {
      if (!has(g.family, g.chain, g.comment)) {
        tx.addRule({ family: g.family, table: TABLE, chain: g.chain, exprs: g.exprs, comment: g.comment });
        made.push(`rule ${g.comment}`);
      }
    }
    // The network's own chains are rebuilt whole (flush + refill): they are tiny.
    for (const name of [chainIn(net), chainOut(net)]) {
      tx.addChain({ ...INET, table: TABLE, name });
      tx.flushChain({ family: 'inet', table: TABLE, name });
    }
    for (const r of networkChainRules(net)) tx.addRule({ family: 'inet', table: TABLE, chain: r.chain, exprs: r.exprs });
    for (const r of networkRules(net)) {
      if (!has('inet', r.chain, r.comment)) {
        tx.addRule({ family: 'inet', table: TABLE, chain: r.chain, exprs: r.exprs, comment: r.comment });
        made.push(`rule ${r.comment}`);
      }
    }
    for (const [set, , e] of networkElements(net)) tx.addElements(setRef(set), [e]);
    await tx.commit();
    if (!cur.present) made.unshift('nftables tables');
    return made;
  },

  /** Removes this network's rules, chains and elements; with `last`, both tables. */
  async removeNetwork(net: FwNetwork, last: boolean, ns: Namespace): Promise<void> {
    if (last) {
      const tx = nftTransaction(ns);
      tx.destroyTable({ family: 'inet', name: TABLE });
      tx.destroyTable({ family: 'bridge', name: TABLE });
      await tx.commit();
      return;
    }
    const cur = await listOurs(ns);
    if (!cur.present) return;
    const tx = nftTransaction(ns);
    for (const r of cur.rules)
      if (r.comment?.startsWith(`${tag(net)}:`) && r.handle !== undefined)
        tx.deleteRule({ family: r.family, table: TABLE, chain: r.chain, handle: r.handle });
    for (const [set, , e] of networkElements(net)) tx.destroyElements(setRef(set), [{ key: e.key }]);
    // A dense network's leaves' elements (their comment is the network's tag).
    for (const st of cur.sets)
      if (st.family === 'inet' && ['bridges', 'fwd_in', 'fwd_out'].includes(st.name)) {
        const keys = (st.elements ?? []).filter((e) => e.comment === tag(net) && e.key !== net.bridge).map((e) => ({ key: e.key }));
        if (keys.length) tx.destroyElements(setRef(st.name), keys);
      }
    for (const name of [chainIn(net), chainOut(net)]) tx.destroyChain({ family: 'inet', table: TABLE, name });
    await tx.commit();
  },

  /**
   * A leaf namespace's own table (icc=false networks; see the module comment), made or repaired
   * in one transaction: the chain is refilled whole when a rule is missing (its order matters).
   */
  async ensureLeaf(ns: Namespace): Promise<void> {
    const cur = await listOurs(ns, 'leaf');
    const rules = leafRules();
    if (cur.present && rules.every((g) => cur.rules.some((r) => r.chain === 'forward' && r.comment === g.comment))) return;
    const tx = nftTransaction(ns);
    tx.addTable({ family: 'bridge', name: TABLE });
    tx.addChain(BASE_CHAINS.find((c) => c.family === 'bridge')!);
    tx.flushChain({ family: 'bridge', table: TABLE, name: 'forward' });
    for (const st of SETS) if (st.family === 'bridge') tx.addSet(st);
    for (const g of rules) tx.addRule({ family: 'bridge', table: TABLE, chain: 'forward', exprs: g.exprs, comment: g.comment });
    await tx.commit();
  },

  /** A dense network's leaf `bridge` joins the network's dispatch maps (one transaction; idempotent). */
  async addBridge(net: FwNetwork, bridge: string, ns: Namespace): Promise<void> {
    const tx = nftTransaction(ns);
    for (const [set, , e] of networkElements(net, bridge)) {
      tx.destroyElements(setRef(set), [{ key: e.key }]);
      tx.addElements(setRef(set), [e]);
    }
    await tx.commit();
  },

  /** A leaf's elements go (idempotent). */
  async removeBridge(net: FwNetwork, bridge: string, ns: Namespace): Promise<void> {
    const tx = nftTransaction(ns);
    for (const [set, , e] of networkElements(net, bridge)) tx.destroyElements(setRef(set), [{ key: e.key }]);
    try {
      await tx.commit();
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  },

  /**
   * Adds an endpoint's elements in `part`'s namespace `ns` in one transaction (stale copies of the
   * same keys are replaced).
   */
  async addEndpoint(net: FwNetwork, ep: FwEndpoint, ns: Namespace, part: FwPart = 'host'): Promise<void> {
    const tx = addTx(net, ep, ns, part);
    if (tx) await tx.commit();
  },

  /** addEndpoint's transaction, uncommitted (bridge-chain.ts sends it); undefined: no elements. */
  addEndpointTx(net: FwNetwork, ep: FwEndpoint, ns: Namespace, part: FwPart = 'host'): NftTransaction | undefined {
    return addTx(net, ep, ns, part);
  },

  /** removeEndpoint's transaction, uncommitted; undefined: no elements. */
  removeEndpointTx(net: FwNetwork, ep: FwEndpoint, ns: Namespace, linkedBy: string[] = [], part: FwPart = 'host'): NftTransaction | undefined {
    return removeTx(net, ep, ns, linkedBy, part);
  },

  /**
   * Removes an endpoint's elements, and the link elements of the endpoints at `linkedBy` (their
   * addresses, of both families) that link to it: a link ends when either end goes. Idempotent.
   */
  async removeEndpoint(net: FwNetwork, ep: FwEndpoint, ns: Namespace, linkedBy: string[] = [], part: FwPart = 'host'): Promise<void> {
    const tx = removeTx(net, ep, ns, linkedBy, part);
    if (!tx) return;
    try {
      await tx.commit();
    } catch (err) {
      if (!isNotFound(err)) throw err; // our tables are gone: nothing to remove
    }
  },

  /** Removes the link elements between `ep` and each of `linkedBy` (addresses of both families); idempotent. */
  async removeLinks(ep: { ip: string; ipv6?: string }, linkedBy: string[], ns: Namespace, net?: FwNetwork, part: FwPart = 'host'): Promise<void> {
    const els = linkElements(net, ep, linkedBy, undefined, part);
    if (!els.size) return;
    const tx = nftTransaction(ns);
    for (const [set, list] of els) tx.destroyElements(setRef(set), list);
    try {
      await tx.commit();
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  },

  /** The elements of `ep` that are not in the kernel (as `nft` would name them). */
  async missing(net: FwNetwork, ep: FwEndpoint, ns: Namespace, part: FwPart = 'host'): Promise<string[]> {
    const els = endpointElements(net, ep, part);
    if (!els.size) return [];
    const cur = await listOurs(ns, part);
    if (!cur.present) return [part === 'leaf' ? `the leaf namespace's nftables table is missing` : 'the netmodes nftables tables are missing'];
    const out: string[] = [];
    for (const [set, list] of els) {
      const have = cur.sets.find((s) => s.name === set && s.family === familyOf(set));
      const keys = new Set((have?.elements ?? []).map((e) => JSON.stringify([e.key, e.data])));
      for (const e of list)
        if (!keys.has(JSON.stringify([e.key, e.data])))
          out.push(`element ${[e.key].flat().join(' . ')}${e.data === undefined ? '' : ' : ' + [e.data].flat().join(' . ')} is missing from set ${set}`);
    }
    return out;
  },

  /**
   * Makes the endpoint elements of this network exactly those of `eps`: elements whose owner is
   * not live are deleted, missing ones added. Call after ensureNetwork().
   */
  async reconcile(net: FwNetwork, eps: FwEndpoint[], ns: Namespace, part: FwPart = 'host'): Promise<{ removed: number; added: number }> {
    const cur = await listOurs(ns, part);
    const live = new Set(eps.map((e) => owner(net, e.id)));
    const want = new Map<string, Map<string, SetElement>>();
    for (const ep of eps)
      for (const [set, list] of endpointElements(net, ep, part)) {
        if (!want.has(set)) want.set(set, new Map());
        for (const e of list) want.get(set)!.set(JSON.stringify(e.key), e);
      }
    const tx = nftTransaction(ns);
    let removed = 0;
    let added = 0;
    for (const s of cur.sets) {
      if (!['pub4', 'pub4any', 'pub6', 'pub6any', 'links4', 'links6', 'ilinks4', 'ilinks6', 'noicc'].includes(s.name)) continue;
      const have = new Set<string>();
      const drop: SetElement[] = [];
      for (const e of s.elements ?? []) {
        const c = e.comment ?? '';
        const k = JSON.stringify(e.key);
        // An element of ours whose owner left; or a link element no live endpoint wants (its
        // other end left).
        const link = ['links4', 'links6', 'ilinks4', 'ilinks6'].includes(s.name);
        if (c.startsWith(`${tag(net)}:`) && (!live.has(c) || (link && !want.get(s.name)?.has(k)))) drop.push({ key: e.key });
        else have.add(k);
      }
      if (drop.length) tx.deleteElements(setRef(s.name), drop);
      removed += drop.length;
      const missing = [...(want.get(s.name)?.entries() ?? [])].filter(([k]) => !have.has(k)).map(([, e]) => e);
      if (missing.length) tx.addElements(setRef(s.name), missing);
      added += missing.length;
    }
    if (removed || added) await tx.commit();
    return { removed, added };
  },
};

export type { NftTransaction };
