/**
 * Crash consistency (issue 7.1): a child process churns connect/disconnect (published ports,
 * links) and is killed with SIGKILL, at random moments and at chosen steps inside a connect or a
 * disconnect (the test-only NETMODES_FAULT hook). After each kill a fresh process opens the
 * network and reconciles; then every endpoint in the records works (ping, published port from an
 * outside host), and records, reservations, veths, container interfaces, neighbour entries and
 * nftables elements agree exactly (test/helpers/reliability.ts), no address or port twice.
 * RELIABILITY_ROUNDS=N for a long run (default 30).
 */
import { strict as assert } from 'node:assert';
import { ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { createBridgeNetwork, createNamespace, BridgeNetwork, Namespace } from '../../lib';
import { sandboxed, ping, connect, startServer, uniq, tryRun } from '../helpers/kernel';
import { makeOutside, Outside } from '../helpers/topology';
import { CHURN_JS, FAULT_POINTS, inconsistencies, reconcileFresh, records, startScript } from '../helpers/reliability';

const ROUNDS = Number(process.env.RELIABILITY_ROUNDS ?? 30);
const NS = 8;
const PORT0 = 41000;
const PORTS = 10; // fewer ports than namespaces: EPORTINUSE happens too

describe('70 reliability: crash consistency (kill -9 during churn)', function () {
  this.timeout(Math.max(300000, ROUNDS * 20000));
  let net: BridgeNetwork;
  let outside: Outside;
  const nss: Namespace[] = [];
  const servers: ChildProcess[] = [];

  before(async () => {
    sandboxed();
    outside = makeOutside();
    net = await createBridgeNetwork({ name: 'crash', subnet: '10.70.0.0/24' });
    for (let i = 0; i < NS; i++) {
      const ns = await createNamespace(uniq('k'));
      nss.push(ns);
      servers.push(await startServer(ns.name, 'tcp', 80, ns.name!));
    }
  });
  after(async () => {
    servers.forEach((s) => s.kill());
    await net?.remove({ force: true });
    await Promise.all(nss.map((n) => n.delete()));
    if (outside) tryRun('ip', ['link', 'del', outside.hostIf]); // not left to the namespace's async cleanup
    outside?.remove();
  });

  it(`${ROUNDS} rounds: SIGKILL at random moments and at every fault point; reconcile leaves only working endpoints`, async () => {
    const stats = { rounds: 0, kills: 0, faultKills: 0, ops: 0, kept: 0, removedEndpoints: 0, removedVeths: 0, freed: 0, removedElements: 0, checked: 0 };
    const paths = nss.map((n) => n.path);
    for (let round = 0; round < ROUNDS; round++) {
      const fault = round % 2 === 1 ? FAULT_POINTS[((round - 1) / 2) % FAULT_POINTS.length] : undefined;
      const env: NodeJS.ProcessEnv = fault ? { FAULT_POINT: fault, FAULT_AFTER: String(Math.floor(Math.random() * 6)) } : {};
      const child = startScript(CHURN_JS, [net.name, JSON.stringify(paths), String(PORT0), String(PORTS)], env);
      let fallback = false;
      const timer = fault
        ? setTimeout(() => ((fallback = true), child.kill('SIGKILL')), 15000) // a fault point never reached
        : setTimeout(() => child.kill('SIGKILL'), 250 + Math.random() * 900);
      await child.done;
      clearTimeout(timer);
      assert.equal(child.signalCode, 'SIGKILL', `round ${round}: the child ended by itself: ${child.err()}`);
      assert.ok(!child.err().includes('UNEXPECTED'), child.err());
      stats.kills++;
      if (fault && !fallback) stats.faultKills++;
      stats.ops += child.out().length;

      const { first, second } = await reconcileFresh(net.name);
      stats.removedEndpoints += first.removedEndpoints.length;
      stats.removedVeths += first.removedVeths.length;
      stats.freed += first.freedReservations.length;
      stats.removedElements += first.removedElements;
      assert.deepEqual(
        [second.removedEndpoints, second.removedVeths, second.freedReservations, second.removedElements],
        [[], [], [], 0],
        `round ${round}: a second reconcile found more: ${JSON.stringify(second)}`,
      );
      const bad = inconsistencies(net.name, net.bridge, paths);
      assert.deepEqual(bad, [], `round ${round} (${fault ?? 'random kill'}): ${bad.join('\n')}\nreconcile: ${JSON.stringify(first)}\nchild: ${child.out().length} ops ${child.err()}`);
      for (const r of records(net.name)) {
        const name = path.basename(r.namespace);
        assert.ok(ping(r.ip), `round ${round}: ${r.ip} (${name}) does not answer ping`);
        assert.equal(connect(outside.ns, 'tcp', outside.hostAddr, r.ports[0].hostPort), `${name} ${outside.addr}`, `round ${round}: published port ${r.ports[0].hostPort} of ${name}`);
        stats.checked++;
      }
      stats.kept += records(net.name).length;
      stats.rounds++;
    }
    console.log(`      ${JSON.stringify(stats)}`);
  });
});
