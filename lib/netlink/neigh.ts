/**
 * Neighbour (ARP / NDP) entries.
 */
import type { Namespace } from '../netns';
import { dumpByFamilyAndLink } from './link';
import { execOne } from './native';
import { toNative } from './ops';
import type { Neigh, NeighFilter, NeighSpec } from './types';
import * as v from './validate';

/**
 * Adds a neighbour entry, permanent unless `permanent: false` (then reachable). Permanent
 * entries for every container spare a bridge the ARP broadcasts. EEXIST when one exists.
 * Equivalent to: `ip neigh add 10.0.0.2 lladdr 02:00:00:00:00:02 dev br0 nud permanent`
 */
export async function neighAdd(neigh: NeighSpec, ns?: Namespace): Promise<void> {
  v.objectArg(neigh, 'neigh');
  await execOne(toNative({ ...neigh, op: 'neighAdd', ns }));
}

/**
 * Deletes a neighbour entry. ENOENT when there is none.
 * Equivalent to: `ip neigh del 10.0.0.2 dev br0`
 */
export async function neighDel(neigh: Pick<NeighSpec, 'link' | 'address'>, ns?: Namespace): Promise<void> {
  v.objectArg(neigh, 'neigh');
  await execOne(toNative({ ...neigh, op: 'neighDel', ns }));
}

/**
 * Lists IPv4 and IPv6 neighbour entries (bridge fdb entries are left out), optionally of one
 * family or link (filtered by the kernel).
 * Equivalent to: `ip [-4|-6] neigh show [dev NAME]`
 */
export async function neighList(ns?: Namespace, filter: NeighFilter = {}): Promise<Neigh[]> {
  return (await dumpByFamilyAndLink('neigh', ns, filter)) as Neigh[];
}
