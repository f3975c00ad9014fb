#!/usr/bin/env node
// Where a sequential attach + detach spends its wall time: each call into the addon (a trip to the
// thread pool, or to the namespace-entry thread) timed from the call to its settling, per cycle, and
// the CPU time of the main thread and of the other threads per cycle.
//   node benchmarks/45.cycle-trips.js [--n 2000] [--warmup 500] [--base DIR]
// --base DIR: the same loop, in the same process, through the library built in DIR (e.g. a git
// worktree of the commit a change started from), alternating with this checkout's, 3 rounds each.
// Runs only inside its own sandbox (unshare --net --mount), like the tests. Wrapping the addon's
// functions costs a few microseconds per call; compare the rounds with each other, not with
// benchmarks/run.js.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { sandboxed, now } = require('./common');

const { args, opt } = sandboxed(__filename);
const N = opt('n', 2000);
const WARMUP = opt('warmup', 500);
const base = args.includes('--base') ? path.resolve(args[args.indexOf('--base') + 1]) : null;
const POOL = 50; // namespaces, reused round-robin

// The addon calls a connect or a disconnect makes, named by what they carry.
const TIMED = ['nsOpen', 'nsPrepare', 'fsBatch', 'nftTransact', 'rtnlExec', 'chainRun'];
const keyOf = (fn, a) => {
  if (fn === 'rtnlExec' || fn === 'fsBatch') return `${fn}(${a[0].map((o) => o.op).join(',')})`;
  if (fn === 'nftTransact') return `${fn}(${a[1].length} messages)`;
  if (fn === 'chainRun') return `${fn}(${['ns', 'fs', 'nft', 'rtnl', 'after'].filter((k) => a[0][k] !== undefined).join(',')})`;
  return fn;
};

function load(dir) {
  const nm = require(path.join(dir, 'dist', 'lib'));
  const native = require(path.join(dir, 'dist', 'lib', 'native.js')).native();
  native.chainTiming?.(true); // each chain's outcome with its steps' times (us)
  const trips = new Map();
  let on = false;
  for (const fn of TIMED) {
    const f = native[fn];
    native[fn] = function timed(...a) {
      const ts = on ? now() : 0;
      const p = f.apply(this, a);
      if (!on) return p;
      const t0 = now();
      const key = keyOf(fn, a);
      // The call's synchronous part: converting its arguments (and encoding) on the main thread.
      const y = trips.get(`  ${key}: on the main thread`) ?? { calls: 0, ms: 0 };
      y.calls++;
      y.ms += t0 - ts;
      trips.set(`  ${key}: on the main thread`, y);
      const done = () => {
        const x = trips.get(key) ?? { calls: 0, ms: 0 };
        x.calls++;
        x.ms += now() - t0;
        trips.set(key, x);
      };
      p.then(done, done);
      if (fn === 'chainRun')
        p.then((o) => {
          ['ns', 'fs', 'nft', 'rtnl', 'after'].forEach((k, i) => {
            if (!o.us?.[i]) return;
            const x = trips.get(`  ${key}: ${k} step (inside the call)`) ?? { calls: 0, ms: 0 };
            x.calls++;
            x.ms += o.us[i] / 1000;
            trips.set(`  ${key}: ${k} step (inside the call)`, x);
          });
        }, () => undefined);
      return p;
    };
  }
  return { dir, nm, trips, timing: (v) => { on = v; } };
}

/**
 * CPU time (ms) the main thread and the process's other threads (pool, namespace entry, V8's) have
 * run, from /proc/self/task/TID/schedstat (nanoseconds on the CPU; threads that ended are not counted).
 */
function threadCpu() {
  let main = 0;
  let others = 0;
  for (const tid of fs.readdirSync('/proc/self/task')) {
    let ns;
    try {
      ns = Number(fs.readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      continue; // ended meanwhile
    }
    if (Number(tid) === process.pid) main += ns / 1e6;
    else others += ns / 1e6;
  }
  return { main, others };
}

async function round(lib, nsNames) {
  const net = await lib.nm.createBridgeNetwork({ name: 'tripnet', bridge: 'tripbr0', subnet: '10.88.0.0/16', gateway: '10.88.0.1' });
  const ip = (i) => `10.88.${1 + Math.floor((i % POOL) / 200)}.${10 + ((i % POOL) % 200)}`;
  const cycle = async (i) => {
    const e = await net.connect(nsNames[i % POOL], { id: `c${i}`, ip: ip(i), ports: [`${10000 + (i % POOL)}:80`] });
    await e.disconnect();
  };
  try {
    for (let i = 0; i < WARMUP; i++) await cycle(i);
    await lib.nm.reapDetached();
    lib.trips.clear();
    lib.timing(true);
    const cpu0 = process.cpuUsage();
    const th0 = threadCpu();
    const t0 = now();
    for (let i = 0; i < N; i++) await cycle(i);
    await lib.nm.reapDetached(); // the last detached veths are deleted inside the clock
    const ms = now() - t0;
    lib.timing(false);
    const cpu = process.cpuUsage(cpu0);
    const th = threadCpu();
    return {
      msPerCycle: ms / N, cpuUsPerCycle: (cpu.user + cpu.system) / N, trips: new Map(lib.trips),
      mainMsPerCycle: (th.main - th0.main) / N, othersMsPerCycle: (th.others - th0.others) / N,
    };
  } finally {
    await net.remove({ force: true });
  }
}

function print(label, r) {
  console.log(`${label}: ${r.msPerCycle.toFixed(3)} ms per cycle, ${(r.cpuUsPerCycle / 1000).toFixed(3)} ms of CPU (all threads; ` +
    `main thread ${r.mainMsPerCycle.toFixed(3)} ms, the others ${r.othersMsPerCycle.toFixed(3)} ms)`);
  for (const [k, x] of r.trips)
    console.log(`  ${((1000 * x.ms) / N).toFixed(0).padStart(6)} us per cycle  ${(x.calls / N).toFixed(2).padStart(5)} calls  ${((1000 * x.ms) / x.calls).toFixed(0).padStart(6)} us each  ${k}`);
}

(async () => {
  const libs = [load(path.join(__dirname, '..'))];
  if (base) libs.push(load(base));
  const nsNames = [];
  for (let i = 0; i < POOL; i++) nsNames.push((await libs[0].nm.createNamespace(`trip${i}`)).path);
  for (let r = 0; r < (base ? 3 : 1); r++)
    for (const lib of libs) print(`round ${r + 1}, ${lib === libs[0] ? 'this checkout' : `--base ${lib.dir}`}`, await round(lib, nsNames));
  for (let i = 0; i < POOL; i++) await libs[0].nm.deleteNamespace(`trip${i}`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
