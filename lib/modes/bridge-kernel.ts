/**
 * Bridge mode, the network's own kernel objects (made once per network, not per container): the
 * bridge with the gateway address and a fixed MAC, up, no STP, no IPv6 unless the network has
 * it; ip_forward on; route_localnet on the bridge (so 127.0.0.1 can be published); the nftables
 * objects of bridge-firewall.ts.
 */
import { isNotFound } from '../errors';
import { sysctlSet, sysctlKey } from '../netns';
import * as nl from '../netlink';
import { firewall } from './bridge-firewall';
import { leafSysctls, removeLeaves } from './bridge-leaves';
import { ALIAS_PREFIX, NetworkState, readNetworkRecords, toFw } from './bridge-store';

/** The bridge, its addresses, forwarding, firewall. `repair`: tolerate what exists. */
export async function setupKernel(s: NetworkState, repair: boolean): Promise<string[]> {
  s.bridgeIdx = undefined;
  const done: string[] = [];
  const r = s.rec;
  let exists = false;
  if (repair) {
    try {
      await nl.linkGet(r.bridge, s.host);
      exists = true;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  if (!exists) {
    await nl.linkAdd(
      {
        name: r.bridge,
        kind: 'bridge',
        mtu: r.mtu,
        mac: r.bridgeMac,
        up: true,
        alias: `${ALIAS_PREFIX}net:${r.name}`,
        noIpv6: !r.ipv6,
        // Without IPv6 on the network, none on the bridge either: with IPv6 on (even without an
        // address) the bridge sends MLD reports of its own when it gets its carrier and on other
        // changes, and floods each to every port (test 54 counts the frames at rest).
        disableIpv6: !r.ipv6,
        bridge: { stp: false, forwardDelay: 0 },
      },
      s.host,
    );
    done.push(`bridge ${r.bridge}`);
  }
  const addrs = repair ? await nl.addrList(s.host, { link: r.bridge }) : [];
  if (!addrs.some((a) => a.address === r.gateway)) {
    await nl.addrAdd(r.bridge, `${r.gateway}/${s.prefix}`, {}, s.host);
    if (repair) done.push(`address ${r.gateway}`);
  }
  if (r.ipv6 && !addrs.some((a) => a.address === r.ipv6!.gateway)) {
    await nl.addrAdd(r.bridge, `${r.ipv6.gateway}/${s.prefix6}`, { noDad: true }, s.host);
    if (repair) done.push(`address ${r.ipv6.gateway}`);
  }
  await sysctlSet('net.ipv4.ip_forward', 1, s.host);
  if (r.ipv6) await sysctlSet('net.ipv6.conf.all.forwarding', 1, s.host);
  // Published 127.0.0.1 ports are DNATed to the bridge; the kernel drops such packets as
  // martians unless route_localnet is on for the outgoing device.
  await sysctlSet(sysctlKey('net', 'ipv4', 'conf', r.bridge, 'route_localnet'), 1, s.host);
  // A dense network: the host answers ARP for the containers of its other bridges.
  if (r.portsPerBridge) await leafSysctls(s, r.bridge);
  const fw = await firewall.ensureNetwork(toFw(r), s.host);
  if (repair) done.push(...fw);
  return done;
}

/** Best-effort removal of the bridge and the firewall objects of this network. */
export async function teardownKernel(s: NetworkState): Promise<void> {
  const errors: unknown[] = [];
  const others = (await readNetworkRecords()).filter((n) => n.name !== s.rec.name).length;
  await firewall.removeNetwork(toFw(s.rec), others === 0, s.host).catch((e) => errors.push(e));
  await removeLeaves(s).catch((e) => errors.push(e));
  await nl.linkDel(s.rec.bridge, s.host).catch((e) => {
    if (!isNotFound(e)) errors.push(e);
  });
  if (errors.length) throw new AggregateError(errors, `removing network ${s.rec.name}: ${errors.length} step(s) failed`);
}

