/**
 * Links: create, change, delete, read.
 */
import { ConfigError } from '../errors';
import type { Namespace } from '../netns';
import { dump, execOne } from './native';
import { nsHandle, toNative } from './ops';
import type { Link, LinkAddResult, LinkChanges, LinkFilter, LinkRef, LinkSpec } from './types';
import * as v from './validate';

/**
 * Creates a link (veth pair, bridge or dummy) in `ns`, all options in the creating request where
 * the kernel allows it: name, MTU, MAC, group, txqlen, queues, master, namespace, and a veth's
 * peer with its final name directly in its own namespace.
 *
 * Kernel behaviour (Linux 6.18) that costs extra messages, sent in the same call:
 * - a veth peer cannot come up in the creating request (ENOTCONN: the kernel configures the peer
 *   before tying the pair together), so `peer.up` is a second RTM_NEWLINK in the peer's namespace;
 * - the kernel ignores an alias in a creating request, so `alias` is set right after;
 * - `noIpv6` (addrgenmode none, so no fe80:: address, no DAD, router or MLD traffic): the kernel
 *   refuses IFLA_AF_SPEC in a creating request (EAFNOSUPPORT) and applies IFF_UP before
 *   IFLA_AF_SPEC within one request, so the link is created down, addrgenmode is set on the peer
 *   and the link, and only then is the link brought up.
 *
 * Resolves with the new ifindex (and the veth peer's, in its namespace) when the kernel echoes
 * them (not when `netns` creates the link in another namespace). EEXIST when the name is taken.
 *
 * Equivalent to: `ip link add NAME type veth peer name eth0 netns NS` (and `ip link set ... up`)
 */
export async function linkAdd(spec: LinkSpec, ns?: Namespace): Promise<LinkAddResult> {
  return (await execOne(toNative({ ...spec, op: 'linkAdd', ns }))) as LinkAddResult;
}

/**
 * Deletes a link (a veth's peer goes with it). ENODEV when there is no such link.
 * Equivalent to: `ip link del NAME`
 */
export async function linkDel(link: LinkRef, ns?: Namespace): Promise<void> {
  await execOne(toNative({ op: 'linkDel', link, ns }));
}

/**
 * Deletes every link of a group with one request: the kernel unregisters them together (one RCU
 * grace period for all instead of one each). A veth's peer goes with it, wherever it is. ENODEV
 * when the group has no link; EOPNOTSUPP (nothing deleted) when one of them cannot be deleted.
 * Group 0, every link's default group, is refused.
 * Equivalent to: `ip link del group GROUP`
 */
export async function linkDelGroup(group: number, ns?: Namespace): Promise<void> {
  await execOne(toNative({ op: 'linkDelGroup', group, ns }));
}

/**
 * Changes a link in one request: up/down, MTU, name, MAC, alias ('' clears), group, namespace,
 * master (null releases it) and bridge-port flags (hairpin, isolated, learning). Port flags
 * together with a new master take a second request, as the kernel applies port flags through
 * the current master.
 * Equivalent to: `ip link set dev NAME up mtu 1400 master br0` / `ip link set dev NAME type bridge_slave hairpin on`
 */
export async function linkSet(link: LinkRef, changes: LinkChanges, ns?: Namespace): Promise<void> {
  v.objectArg(changes, 'changes');
  await execOne(toNative({ ...changes, op: 'linkSet', link, ns }));
}

/**
 * Reads one link. ENODEV when there is no such link.
 * Equivalent to: `ip -d link show dev NAME`
 */
export async function linkGet(link: LinkRef, ns?: Namespace): Promise<Link> {
  return (await execOne(toNative({ op: 'linkGet', link, ns }))) as Link;
}

/** @internal ifindex of a link reference (a name is looked up). */
export async function linkIndex(link: LinkRef, ns: Namespace | undefined, field: string): Promise<number> {
  const ref = v.linkRef(link, field);
  return typeof ref === 'number' ? ref : (await linkGet(ref, ns)).index;
}

/** @internal A kernel-filtered dump of addresses or neighbours by family and link. */
export async function dumpByFamilyAndLink(
  kind: 'addr' | 'neigh',
  ns: Namespace | undefined,
  filter: { family?: unknown; link?: LinkRef },
): Promise<unknown[]> {
  v.objectArg(filter, 'filter');
  v.checkKeys(filter, ['family', 'link'], 'filter');
  const handle = nsHandle(ns, 'ns');
  const family = filter.family === undefined ? undefined : v.family(filter.family, 'filter.family');
  const index = filter.link === undefined ? undefined : await linkIndex(filter.link, ns, 'filter.link');
  return dump(handle, kind, { family, index });
}

/**
 * Lists the links of a namespace, optionally only the ports of one master or one kind (filtered
 * by the kernel).
 * Equivalent to: `ip -d link show [master BR] [type KIND]`
 */
export async function linkList(ns?: Namespace, filter: LinkFilter = {}): Promise<Link[]> {
  v.objectArg(filter, 'filter');
  v.checkKeys(filter, ['master', 'kind'], 'filter');
  const handle = nsHandle(ns, 'ns');
  const master = filter.master === undefined ? undefined : await linkIndex(filter.master, ns, 'filter.master');
  if (filter.kind !== undefined && (typeof filter.kind !== 'string' || !/^[a-z0-9_]{1,32}$/.test(filter.kind)))
    throw new ConfigError('must be a link kind such as veth or bridge', 'filter.kind');
  return (await dump(handle, 'link', { master, kind: filter.kind })) as Link[];
}
