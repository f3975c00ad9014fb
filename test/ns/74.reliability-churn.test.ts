/**
 * Long churn (issue 7.5), CI size: 2,000 attach/detach cycles (RELIABILITY_CHURN=N for more;
 * benchmarks/70.churn-soak.js runs 20,000). Open fds, kernel link count and nftables element count
 * are equal at the end to the start; RSS growth stays under 64 MB (V8 heap; the soak script tracks the trend over 20,000).
 */
import { strict as assert } from 'node:assert';
import { createBridgeNetwork, createNamespace, reapDetached, linkList, nftList, setMemoryTrim, TRIM_INTERVAL_MS } from '../../lib';
import { memoryTrims } from '../../lib/memory';
import { sandboxed, ipj, uniq } from '../helpers/kernel';
import { fdCount, ourElements } from '../helpers/reliability';

const CYCLES = Number(process.env.RELIABILITY_CHURN ?? 2000);

describe('74 reliability: long churn', function () {
  this.timeout(Math.max(240000, CYCLES * 100));
  before(sandboxed);

  it(`${CYCLES} attach/detach cycles leave fds, RSS, links and elements as they were`, async () => {
    const net = await createBridgeNetwork({ name: 'churn', subnet: '10.74.0.0/22' });
    const nss = await Promise.all(Array.from({ length: 8 }, () => createNamespace(uniq('c'))));
    try {
      // Warm-up at the same concurrency: socket pools per namespace, JIT, allocator arenas.
      await Promise.all(nss.map(async (ns) => {
        for (let i = 0; i < 50; i++) await (await net.connect(ns, { ports: ['80'] })).disconnect();
      }));
      await reapDetached();
      // The host's socket pools grow to the peak number of requests in flight at once (one socket
      // per libuv pool thread at most): fill them now, or a busier moment of the churn (a loaded
      // machine) reaches a new peak and opens one more socket than the start counted.
      await Promise.all(Array.from({ length: 32 }, (_, i) => (i % 2 ? linkList() : nftList(undefined, { family: 'inet', table: 'netmodes' }))));
      const fig = () => ({ fds: fdCount(), links: ipj(['link']).length, elements: ourElements().length });
      const start = fig();
      const rss0 = process.memoryUsage().rss;
      let done = 0;
      const t0 = Date.now();
      await Promise.all(
        nss.map(async (ns) => {
          while (done < CYCLES && Date.now() - t0 < 200000) {
            done++;
            await (await net.connect(ns, { ports: ['80'] })).disconnect();
          }
        }),
      );
      await reapDetached();
      const end = fig();
      const grew = (process.memoryUsage().rss - rss0) / 1e6;
      console.log(`      ${done} cycles in ${((Date.now() - t0) / 1000).toFixed(1)} s; start ${JSON.stringify(start)} end ${JSON.stringify(end)}; RSS ${grew.toFixed(1)} MB`);
      assert.equal(done >= CYCLES, true, `only ${done} cycles in the time bound`);
      // fds may end lower (earlier tests' sockets and pools closing in this process), and at most
      // 2 higher: a pool may keep one more socket after a busier moment than the warm-up reached
      // (the side thread's nf_tables socket beside four pool threads' ones, kept idle: at most 8 per
      // namespace and protocol). A leak of anything per cycle would show as hundreds here.
      assert.ok(end.fds <= start.fds + 2, `fds ${start.fds} -> ${end.fds}`);
      assert.deepEqual({ links: end.links, elements: end.elements }, { links: start.links, elements: start.elements });
      assert.ok(grew < 64, `RSS grew ${grew.toFixed(1)} MB`); // loose: V8 heap growth; the 20,000-cycle soak tracks the trend
    } finally {
      await net.remove({ force: true });
      await Promise.all(nss.map((n) => n.delete()));
    }
  });

  it('each batch the reaper deletes trims the C heap, at most once per TRIM_INTERVAL_MS; setMemoryTrim(false): never', async () => {
    const net = await createBridgeNetwork({ name: 'trim', subnet: '10.75.0.0/24' });
    const ns = await createNamespace(uniq('t'));
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const cycle = async () => {
      await (await net.connect(ns)).disconnect();
      await reapDetached();
    };
    try {
      // The test above may have left a trailing trim due (at most an interval after its last reap):
      // once it has run, one more interval.
      await sleep(2 * TRIM_INTERVAL_MS + 200);
      const t0 = memoryTrims();
      await cycle();
      assert.equal(memoryTrims(), t0 + 1, 'a trim starts with the reap');
      await cycle();
      await cycle();
      assert.equal(memoryTrims(), t0 + 1, 'none more inside the interval');
      await sleep(TRIM_INTERVAL_MS + 200);
      assert.equal(memoryTrims(), t0 + 2, 'one trailing trim for the reaps inside the interval');
      await sleep(TRIM_INTERVAL_MS + 100);
      assert.equal(memoryTrims(), t0 + 2, 'and no more without reaps');
      setMemoryTrim(false);
      await cycle();
      await sleep(TRIM_INTERVAL_MS + 200);
      assert.equal(memoryTrims(), t0 + 2, 'none while turned off');
    } finally {
      setMemoryTrim(true);
      await net.remove({ force: true });
      await ns.delete();
    }
  });
});
