/**
 * rtnetlink: links, addresses, routes and neighbours, in any namespace, without spawning `ip`.
 */
export { linkAdd, linkDel, linkDelGroup, linkSet, linkGet, linkList } from './link';
export { addrAdd, addrDel, addrList } from './addr';
export { routeAdd, routeReplace, routeDel, routeList } from './route';
export { neighAdd, neighDel, neighList } from './neigh';
export { batch } from './batch';
export type * from './types';
