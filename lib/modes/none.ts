/**
 * None mode: Docker's `docker run --net=none`. A namespace of its own, `/run/netns/NAME` (made and,
 * on remove, deleted by the sandbox layer, as for bridge mode), with `lo` only, up: no interface
 * to any network, no route out. The host name and resolv.conf (the host's, with the sandbox's DNS
 * overrides) are the sandbox's own; published ports, an address, a MAC, links or aliases are a
 * ConfigError (the option table: lib/sandbox/index.ts).
 */
import { buildHosts, buildResolvConf, ResolvConfOptions } from '../dnsfiles';
import type { Namespace } from '../netns';
import { linkSet } from '../netlink';
import { readText } from '../sandbox/records';

/**
 * Sets up a none-mode sandbox in its new namespace `ns`: lo up (one RTM_NEWLINK). Returns the
 * texts of its resolv.conf and hosts.
 */
export async function setupNone(ns: Namespace, hostname: string, dns: ResolvConfOptions | undefined): Promise<{ resolvConf: string; hosts: string }> {
  await linkSet('lo', { up: true }, ns);
  return { resolvConf: buildResolvConf(await readText('/etc/resolv.conf'), dns), hosts: buildHosts({ hostname }) };
}
