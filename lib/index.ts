/**
 * netmodes: Docker's network modes for Linux network namespaces, from Node.js, over netlink.
 */
export { NetlinkError, ConfigError, NetmodesError, isNotFound, isExists } from './errors';
export {
  Namespace,
  NETNS_DIR,
  createNamespace,
  deleteNamespace,
  reapStaleNamespaces,
  openNamespace,
  currentNamespace,
  listNamespaces,
  sysctlGet,
  sysctlSet,
  sysctlKey,
} from './netns';
export * from './netlink';
export * from './modes/bridge';
export { setMemoryTrim, TRIM_INTERVAL_MS } from './memory';
export { ensureDnsServer, stopDnsServer, dnsServerRunning, dnsServerStatus, DnsStatus } from './dns/control';
export {
  Sandbox,
  SandboxOptions,
  SandboxInfo,
  SandboxMode,
  createSandbox,
  openSandbox,
  listSandboxes,
  DEFAULT_NETWORK,
  DEFAULT_BRIDGE,
  HOST_NETNS,
  execHelperPath,
  EXEC_FAILED,
  EXEC_CANNOT_EXECUTE,
  EXEC_NOT_FOUND,
} from './sandbox';
export * from './nft';
export type { Family } from './netlink';
export type { Family as NftFamily } from './nft';
