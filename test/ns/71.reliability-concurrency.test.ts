/**
 * Concurrency (issue 7.2): two and four processes attach and detach on the same network at once,
 * hundreds of cycles each, with published ports from one shared range (EPORTINUSE is the only
 * error allowed). Every process logs when it held which address and port; no two endpoints ever
 * hold one at the same time. At the end the last endpoints stay up: they all work and the kernel
 * and the store agree exactly. Then, in one process, hundreds of concurrent operations.
 */
import { strict as assert } from 'node:assert';
import { createBridgeNetwork, createNamespace, BridgeNetwork, Namespace, reapDetached } from '../../lib';
import { sandboxed, ping, uniq } from '../helpers/kernel';
import { LIB, inconsistencies, nodeScript, records } from '../helpers/reliability';

const CYCLES = Number(process.env.RELIABILITY_CYCLES ?? 150);

/** One worker process: CYCLES connect/disconnect on its own namespaces; logs holding intervals. */
const WORKER_JS = `
const nm = require(${JSON.stringify(LIB)});
const [netName, nsJson, cycles, port0, nports] = process.argv.slice(1);
const nss = JSON.parse(nsJson);
const now = () => performance.timeOrigin + performance.now();
const log = [];
const errors = {};
(async () => {
  const net = await nm.openBridgeNetwork(netName);
  const held = new Map();
  const one = async (ns) => {
    for (let i = 0; i < Number(cycles); i++) {
      const cur = held.get(ns);
      if (cur) {
        const t = now();
        await net.disconnect(cur.ep.id);
        log.push([cur.ep.ip, cur.ep.ports.map((p) => p.hostPort).join(), cur.t, t, cur.ep.id]);
        held.delete(ns);
      } else {
        try {
          const ep = await net.connect(ns, { ports: [(Number(port0) + Math.floor(Math.random() * Number(nports))) + ':80', '80'] });
          held.set(ns, { ep, t: now() });
        } catch (e) {
          errors[e.code] = (errors[e.code] || 0) + 1;
          if (e.code !== 'EPORTINUSE') throw e;
        }
      }
    }
  };
  await Promise.all(nss.map(one));
  await nm.reapDetached();
  const open = [...held.values()].map((h) => [h.ep.ip, h.ep.ports.map((p) => p.hostPort).join(), h.t, Infinity, h.ep.id]);
  console.log(JSON.stringify({ log: log.concat(open), errors }));
})().catch((e) => { console.error('UNEXPECTED', e); process.exit(1); });`;

/** Two holders of one resource whose intervals overlap. */
function overlaps(intervals: Array<[string, number, number, string]>): string[] {
  const by = new Map<string, Array<[number, number, string]>>();
  for (const [k, a, b, who] of intervals) {
    if (!by.has(k)) by.set(k, []);
    by.get(k)!.push([a, b, who]);
  }
  const bad: string[] = [];
  for (const [k, list] of by) {
    list.sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < list.length; i++) if (list[i][0] < list[i - 1][1]) bad.push(`${k} held by ${list[i - 1][2]} and ${list[i][2]} at once`);
  }
  return bad;
}

describe('71 reliability: concurrency', function () {
  this.timeout(300000);
  before(sandboxed);

  for (const procs of [2, 4]) {
    it(`${procs} processes x ${CYCLES} cycles x 3 namespaces on one network: no duplicate address or port, nothing lost`, async () => {
      const net = await createBridgeNetwork({ name: `conc${procs}`, subnet: `10.71.${procs}.0/24` });
      const nss: Namespace[][] = [];
      try {
        for (let p = 0; p < procs; p++) nss.push(await Promise.all([0, 1, 2].map(() => createNamespace(uniq('q')))));
        const results = await Promise.all(
          nss.map((list) => nodeScript(WORKER_JS, [net.name, JSON.stringify(list.map((n) => n.path)), String(CYCLES), '42000', String(procs * 3)])),
        );
        for (const r of results) assert.equal(r.code, 0, r.stderr);
        const out = results.map((r) => JSON.parse(r.stdout));
        const log: Array<[string, string, number, number, string]> = out.flatMap((o) => o.log).map((l: any) => [l[0], l[1], l[2], l[3] ?? Infinity, l[4]]); // JSON wrote Infinity as null
        const connects = log.length;
        assert.ok(connects >= procs * CYCLES * 0.5, `only ${connects} connects`);
        assert.deepEqual(overlaps(log.map(([ip, , a, b, who]) => [ip, a, b, who])), [], 'an address held twice at once');
        assert.deepEqual(overlaps(log.flatMap(([, ports, a, b, who]) => ports.split(',').map((p) => [p, a, b, who] as [string, number, number, string]))), [], 'a host port held twice at once');
        const errs = out.reduce((m, o) => ({ ...m, EPORTINUSE: (m.EPORTINUSE ?? 0) + (o.errors.EPORTINUSE ?? 0) }), {} as Record<string, number>);
        // The endpoints still attached: all recorded, all working, kernel and store in agreement.
        const open = log.filter((l) => l[3] === Infinity);
        assert.equal(records(net.name).length, open.length);
        assert.deepEqual(inconsistencies(net.name, net.bridge, nss.flat().map((n) => n.path)), []);
        for (const r of records(net.name)) assert.ok(ping(r.ip), `${r.ip} answers`);
        console.log(`      ${procs} processes: ${connects} connects + ${connects - open.length} disconnects, ${errs.EPORTINUSE ?? 0} EPORTINUSE`);
        for (const r of records(net.name)) await net.disconnect(r.id);
        await reapDetached();
        assert.deepEqual(inconsistencies(net.name, net.bridge, nss.flat().map((n) => n.path)), []);
      } finally {
        await net.remove({ force: true });
        await Promise.all(nss.flat().map((n) => n.delete()));
      }
    });
  }

  it('one process: 300 concurrent operations (connects, disconnects, endpoints(), reconcile()) are safe', async () => {
    const net: BridgeNetwork = await createBridgeNetwork({ name: 'conc1', subnet: '10.71.10.0/24' });
    const nss = await Promise.all(Array.from({ length: 100 }, () => createNamespace(uniq('o'))));
    try {
      const ops: Promise<unknown>[] = [];
      for (const [i, ns] of nss.entries())
        ops.push(
          (async () => {
            const a = await net.connect(ns, { ports: [`${43000 + i}:80`] });
            await net.endpoints();
            await a.disconnect();
            return net.connect(ns, { ports: [`${43000 + i}:80`] });
          })(),
        );
      ops.push(net.reconcile(), net.reconcile());
      await Promise.all(ops);
      assert.equal(records(net.name).length, 100);
      assert.deepEqual(inconsistencies(net.name, net.bridge, nss.map((n) => n.path)), []);
      assert.ok(ping(records(net.name)[99].ip));
      await Promise.all((await net.endpoints()).map((e) => e.disconnect()));
      await reapDetached();
      assert.deepEqual(inconsistencies(net.name, net.bridge, nss.map((n) => n.path)), []);
    } finally {
      await net.remove({ force: true });
      await Promise.all(nss.map((n) => n.delete()));
    }
  });
});
