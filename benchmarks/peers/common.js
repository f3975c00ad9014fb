'use strict';
// Shared naming, addressing and statistics for the peer benchmarks.
// Every container i gets: namespace pbc<i>, address 10.88.x.y/16, published TCP port 10000+i -> 80.

const crypto = require('crypto');

const BRIDGE = 'pbbr0';
const NETWORK = 'pbnet';
const SUBNET = '10.88.0.0/16';
const PREFIX = 16;
const GATEWAY = '10.88.0.1';
const PORT_BASE = 10000;
const CONTAINER_PORT = 80;
const MAX_CONTAINERS = 254 * 200;
/** Link group the bulk-delete floors move veths into before one RTM_DELLINK for the group. */
const LINK_GROUP = 4242;

function checkIndex(i) {
  if (!Number.isInteger(i) || i < 0 || i >= MAX_CONTAINERS) throw new RangeError(`container index out of range: ${i}`);
  return i;
}

/** Namespace name of container i. */
function nsName(i) { return `pbc${checkIndex(i)}`; }
/** Path of container i's namespace (valid inside the sandbox's private mount namespace). */
function nsPath(i) { return `/run/netns/${nsName(i)}`; }
/** Static IPv4 address of container i: 10.88.(1 + i/200).(10 + i%200). */
function ipFor(i) { checkIndex(i); return `10.88.${1 + Math.floor(i / 200)}.${10 + (i % 200)}`; }
/**
 * Dense addresses for one network of many containers (the scaling and dense sections): container i
 * at offset i + 2 from 10.88.0.0 (the gateway is offset 1), as the library's IPAM hands them out, so
 * a network with `portsPerBridge` L fills its root bridge (slot 0) and then one leaf after another.
 */
function ipDense(i) { const o = checkIndex(i) + 2; return `10.88.${o >> 8}.${o & 255}`; }
/** Ports per bridge of the multi-bridge layout (a netmodes network's default `portsPerBridge`). */
const PORTS_PER_BRIDGE = 256;
/** Leaf bridges of the C floor's layout: pbfb<s>. */
const LEAF_PREFIX = 'pbf';
/** Published host port of container i. */
function portFor(i) { return PORT_BASE + checkIndex(i); }
/** Host-side veth name for the iproute peers. */
function vethName(i) { return `pbv${checkIndex(i)}`; }
/** Deterministic 64-hex container id. */
function containerId(i) {
  return crypto.createHash('sha256').update(`netmodes-peer-bench-container-${checkIndex(i)}`).digest('hex');
}
const NETWORK_ID = crypto.createHash('sha256').update('netmodes-peer-bench-network').digest('hex');

/**
 * The batch floors: the C program (veths deleted one by one / as a group / as a group and no IPv6 on
 * the veths), ip -batch + nft -f (veths deleted one by one / as a group).
 */
const FLOORS = ['cfloor', 'cfloorgroup', 'cfloorv4', 'ipbatch', 'floorgroup'];
/** The cheapest floor of a run's summary ({ name: { cycleMs } }) by attach + detach: { name, cycleMs } or null. */
function cheapestFloor(summary) {
  const found = FLOORS.filter((n) => summary[n] && Number.isFinite(summary[n].cycleMs));
  if (!found.length) return null;
  const name = found.reduce((a, b) => (summary[b].cycleMs < summary[a].cycleMs ? b : a));
  return { name, cycleMs: summary[name].cycleMs };
}

function hrms(start) { return Number(process.hrtime.bigint() - start) / 1e6; }

/** Percentile (nearest-rank) of a list of numbers. */
function percentile(list, p) {
  if (!list.length) return NaN;
  const s = [...list].sort((a, b) => a - b);
  const idx = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[idx];
}

/** Summary of a latency list (ms) and the wall-clock total (ms) for `count` containers. */
function summarize(latencies, totalMs, count) {
  const n = count ?? latencies.length;
  const r = (x) => (Number.isFinite(x) ? Math.round(x * 1000) / 1000 : null);
  return {
    count: n,
    totalMs: r(totalMs),
    msPerContainer: r(totalMs / n),
    perSecond: r((n * 1000) / totalMs),
    p50: r(percentile(latencies, 50)),
    p99: r(percentile(latencies, 99)),
    min: r(latencies.length ? Math.min(...latencies) : NaN),
    max: r(latencies.length ? Math.max(...latencies) : NaN),
  };
}

module.exports = {
  BRIDGE, NETWORK, SUBNET, PREFIX, GATEWAY, PORT_BASE, CONTAINER_PORT, NETWORK_ID, MAX_CONTAINERS, LINK_GROUP,
  PORTS_PER_BRIDGE, LEAF_PREFIX, FLOORS, nsName, nsPath, ipFor, ipDense, portFor, vethName, containerId, cheapestFloor, hrms, percentile, summarize,
};
