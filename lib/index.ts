/**
 * netmodes: Docker's network modes for Linux network namespaces, from Node.js, over netlink.
 */
export { NetlinkError, ConfigError, NetmodesError, isNotFound, isExists } from './errors';
export {
  Namespace,
  NETNS_DIR,
  createNamespace,
  openNamespace,
  currentNamespace,
  listNamespaces,
  sysctlGet,
  sysctlSet,
  sysctlKey,
} from './netns';
export * from './nft';
