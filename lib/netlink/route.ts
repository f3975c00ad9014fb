/**
 * Routes (IPv4 and IPv6).
 */
import type { Namespace } from '../netns';
import { linkIndex } from './link';
import { dump, execOne } from './native';
import { nsHandle, toNative } from './ops';
import type { Route, RouteFilter, RouteSpec } from './types';
import * as v from './validate';

/**
 * Adds a route; EEXIST when one with the same destination, table, metric (and TOS) exists.
 * Unset options are what `ip route add` sends: table main, protocol boot, type unicast, scope
 * link without a gateway (host for local routes), else universe.
 * Equivalent to: `ip route add default via 10.0.0.1 dev eth0`
 */
export async function routeAdd(route: RouteSpec, ns?: Namespace): Promise<void> {
  v.objectArg(route, 'route');
  await execOne(toNative({ ...route, op: 'routeAdd', ns }));
}

/**
 * Adds or replaces the route with the same destination, table and metric.
 * Equivalent to: `ip route replace default via 10.0.0.1 dev eth0`
 */
export async function routeReplace(route: RouteSpec, ns?: Namespace): Promise<void> {
  v.objectArg(route, 'route');
  await execOne(toNative({ ...route, op: 'routeReplace', ns }));
}

/**
 * Deletes the first route matching the given fields (unset: any protocol, type and scope; table
 * main). ESRCH when none matches.
 * Equivalent to: `ip route del 10.1.0.0/16 via 10.0.0.1`
 */
export async function routeDel(route: RouteSpec, ns?: Namespace): Promise<void> {
  v.objectArg(route, 'route');
  await execOne(toNative({ ...route, op: 'routeDel', ns }));
}

/**
 * Lists routes of every table (local and main included), optionally filtered by the kernel by
 * family, table, output link, protocol and type. A table that does not exist has no routes.
 * Equivalent to: `ip route show table all [table T] [dev NAME] [proto P] [type T]`
 */
export async function routeList(ns?: Namespace, filter: RouteFilter = {}): Promise<Route[]> {
  v.objectArg(filter, 'filter');
  v.checkKeys(filter, ['family', 'table', 'link', 'protocol', 'type'], 'filter');
  const handle = nsHandle(ns, 'ns');
  const nf = {
    family: filter.family === undefined ? undefined : v.family(filter.family, 'filter.family'),
    table: filter.table === undefined ? undefined : v.table(filter.table, 'filter.table'),
    protocol: filter.protocol === undefined ? undefined : v.protocol(filter.protocol, 'filter.protocol'),
    type: filter.type === undefined ? undefined : v.routeType(filter.type, 'filter.type'),
    index: filter.link === undefined ? undefined : await linkIndex(filter.link, ns, 'filter.link'),
  };
  try {
    return (await dump(handle, 'route', nf)) as Route[];
  } catch (err) {
    // An IPv4-only dump of a table that does not exist fails with ENOENT ("ipv4: FIB table does
    // not exist"); a table without routes is what that means here.
    if (nf.table !== undefined && (err as { code?: string }).code === 'ENOENT') return [];
    throw err;
  }
}
