/**
 * Crash consistency of a network's own life, on the shapes test 70 does not churn (dual stack,
 * icc=false): a child process loops create network -> connect two endpoints (published ports, a
 * link) -> reconcile -> disconnect one -> remove, and is killed with SIGKILL at random moments and
 * at chosen steps of create, reconcile and remove (NETMODES_FAULT). After each kill a fresh process
 * finds the network either gone without a trace or present and reconcilable to a consistent,
 * working state (test/helpers/reliability.ts; both address families answer ping); then it is
 * removed, and nothing of it may be left: no bridge, veth, nftables table, record, state directory
 * or reservation. RELIABILITY_ROUNDS=N for a long run (default 16).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createNamespace, Namespace } from '../../lib';
import { sandboxed, ipj, ping, sh } from '../helpers/kernel';
import { LIB, STATE, inconsistencies, nodeScript, reconcileFresh, records, startScript, walk } from '../helpers/reliability';

const ROUNDS = Number(process.env.RELIABILITY_ROUNDS ?? 16);
const NAME = 'life75';
const POINTS = ['network:after-record', 'remove:after-endpoints', 'remove:after-kernel', 'remove:after-state', 'reconcile:after-veths'];

const LIFE_JS = `
const nm = require(${JSON.stringify(LIB)});
const [name, nsJson] = process.argv.slice(1);
const nss = JSON.parse(nsJson);
const faultAfter = Number(process.env.FAULT_AFTER ?? -1);
(async () => {
  for (let i = 0; i < 100000; i++) {
    if (i === faultAfter) process.env.NETMODES_FAULT = process.env.FAULT_POINT;
    const net = await nm.createBridgeNetwork({ name, subnet: '10.75.0.0/24', ipv6: { subnet: 'fd75::/64' }, icc: false });
    const a = await net.connect(nss[0], { id: 'a', ports: ['45000:80'] });
    await net.connect(nss[1], { id: 'b', ports: ['45001:80'], links: [{ endpoint: 'a' }] });
    await net.reconcile();
    await a.disconnect();
    await net.remove({ force: true });
    process.stdout.write('.');
  }
})().catch((e) => { console.error('UNEXPECTED', e); process.exit(1); });`;

const REMOVE_JS = `
const nm = require(${JSON.stringify(LIB)});
(async () => {
  const net = await nm.openBridgeNetwork(process.argv[1]);
  await net.remove({ force: true });
  await nm.reapDetached();
})().catch((e) => { console.error(e); process.exit(1); });`;

/** What may not survive a removed network (this file's sandbox has no other). */
function leftovers(nss: Namespace[]): string[] {
  const bad: string[] = [];
  for (const l of ipj(['-d', 'link', 'show'])) if (l.linkinfo?.info_kind === 'bridge' || l.linkinfo?.info_kind === 'veth') bad.push(`link ${l.ifname}`);
  const tables = JSON.parse(sh('nft', ['-j', 'list', 'tables'])).nftables.filter((o: any) => o.table?.name === 'netmodes');
  if (tables.length) bad.push(`${tables.length} netmodes table(s)`);
  if (fs.existsSync(path.join(STATE, 'networks', `${NAME}.json`))) bad.push('network record');
  if (fs.existsSync(path.join(STATE, 'networks', NAME))) bad.push(`state directory: ${walk(path.join(STATE, 'networks', NAME), true).join(', ') || 'empty'}`);
  const ports = walk(path.join(STATE, 'ports'), true);
  if (ports.length) bad.push(`reservations ${ports.join(', ')}`);
  for (const ns of nss) {
    const names = ipj(['link', 'show'], ns.name).map((l: any) => l.ifname);
    if (names.join() !== 'lo') bad.push(`namespace ${ns.name}: ${names.join(',')}`);
  }
  return bad;
}

describe('75 reliability: crash consistency of a network\'s create, reconcile and remove', function () {
  this.timeout(Math.max(300000, ROUNDS * 20000));
  const nss: Namespace[] = [];

  before(async () => {
    sandboxed();
    for (let i = 0; i < 2; i++) nss.push(await createNamespace(`life75-${i}`));
  });
  after(async () => {
    if (fs.existsSync(path.join(STATE, 'networks', `${NAME}.json`))) await nodeScript(REMOVE_JS, [NAME]);
    await Promise.all(nss.map((n) => n.delete()));
  });

  it(`${ROUNDS} rounds: SIGKILL at random moments and at every fault point; the network is gone without a trace or repairs to a working one`, async () => {
    const stats = { rounds: 0, faultKills: 0, cycles: 0, found: 0, gone: 0, checked: 0 };
    const paths = nss.map((n) => n.path);
    for (let round = 0; round < ROUNDS; round++) {
      const fault = round % 2 === 1 ? POINTS[((round - 1) / 2) % POINTS.length] : undefined;
      const env: NodeJS.ProcessEnv = fault ? { FAULT_POINT: fault, FAULT_AFTER: String(Math.floor(Math.random() * 3)) } : {};
      const child = startScript(LIFE_JS, [NAME, JSON.stringify(paths)], env);
      let fallback = false;
      const timer = fault
        ? setTimeout(() => ((fallback = true), child.kill('SIGKILL')), 15000)
        : setTimeout(() => child.kill('SIGKILL'), 100 + Math.random() * 1400);
      await child.done;
      clearTimeout(timer);
      assert.equal(child.signalCode, 'SIGKILL', `round ${round}: the child ended by itself: ${child.err()}`);
      assert.ok(!child.err().includes('UNEXPECTED'), child.err());
      assert.ok(!fault || !fallback, `round ${round}: fault point ${fault} never reached`);
      if (fault) stats.faultKills++;
      stats.cycles += child.out().length;

      const what = `round ${round} (${fault ?? 'random kill'})`;
      const recFile = path.join(STATE, 'networks', `${NAME}.json`);
      if (fs.existsSync(recFile)) {
        // Present: a fresh process reconciles it to a consistent state that works.
        stats.found++;
        const { second } = await reconcileFresh(NAME);
        assert.deepEqual([second.removedEndpoints, second.removedVeths, second.freedReservations, second.removedElements], [[], [], [], 0], `${what}: a second reconcile found more`);
        const bridge = JSON.parse(fs.readFileSync(recFile, 'utf8')).bridge;
        const bad = inconsistencies(NAME, bridge, paths);
        assert.deepEqual(bad, [], `${what}: ${bad.join('\n')}`);
        for (const r of records(NAME)) {
          assert.ok(ping(r.ip), `${what}: ${r.ip} does not answer ping after reconcile`);
          assert.ok(r.ipv6 && ping(r.ipv6), `${what}: ${r.ipv6} does not answer ping after reconcile`);
          stats.checked++;
        }
        const rm = await nodeScript(REMOVE_JS, [NAME]);
        assert.equal(rm.code, 0, `${what}: remove failed: ${rm.stderr}`);
      } else {
        stats.gone++;
        // Gone: reaping what a killed disconnect detached is all that may remain to do.
        const r = await nodeScript(`require(${JSON.stringify(LIB)}).reapDetached().catch((e) => { console.error(e); process.exit(1); })`);
        assert.equal(r.code, 0, r.stderr);
      }
      const bad = leftovers(nss);
      assert.deepEqual(bad, [], `${what}: left behind`);
      stats.rounds++;
    }
    console.log(`      ${JSON.stringify(stats)}`);
  });
});
