/**
 * IPv4 and IPv6 addresses on links.
 */
import type { Namespace } from '../netns';
import { dumpByFamilyAndLink } from './link';
import { execOne } from './native';
import { toNative } from './ops';
import type { Addr, AddrFilter, AddrOptions, LinkRef } from './types';
import * as v from './validate';

/**
 * Adds an address ("10.0.0.2/24", "fd00::2/64"; a bare address is a host prefix). The kernel
 * adds the prefix route. EEXIST when the link already has it.
 * Equivalent to: `ip addr add 10.0.0.2/24 dev eth0`
 */
export async function addrAdd(link: LinkRef, cidr: string, opts: AddrOptions = {}, ns?: Namespace): Promise<void> {
  v.objectArg(opts, 'opts');
  await execOne(toNative({ ...opts, op: 'addrAdd', link, cidr, ns }));
}

/**
 * Removes an address. EADDRNOTAVAIL when the link does not have it.
 * Equivalent to: `ip addr del 10.0.0.2/24 dev eth0`
 */
export async function addrDel(link: LinkRef, cidr: string, ns?: Namespace): Promise<void> {
  await execOne(toNative({ op: 'addrDel', link, cidr, ns }));
}

/**
 * Lists addresses, optionally of one family or one link (filtered by the kernel).
 * Equivalent to: `ip [-4|-6] addr show [dev NAME]`
 */
export async function addrList(ns?: Namespace, filter: AddrFilter = {}): Promise<Addr[]> {
  return (await dumpByFamilyAndLink('addr', ns, filter)) as Addr[];
}
