/**
 * The benchmark script still runs (issue 6's deliverable): a very small run of netmodes against the
 * like-for-like C floor (and the CNI plugin as a runtime runs it) through every section but the data path (the dense one with 200 containers), in the script's own nested
 * sandbox. It must verify both, time them without errors, and write its JSON, tables and chart.
 * Figures are not judged here (speed is measured by `npm run bench`, not by tests).
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { sandboxed } from '../helpers/kernel';

const root = path.resolve(__dirname, '..', '..', '..');

describe('80 benchmark script: a small run end to end', function () {
  this.timeout(240000);
  before(sandboxed);

  it('46.ab-blocks: two builds (here this checkout against itself) in alternating blocks, with their ratio', () => {
    const script = path.join(root, 'benchmarks', '46.ab-blocks.js');
    const r = spawnSync(process.execPath, [script, '--base', root, '--blocks', '2', '--b', '5'], { encoding: 'utf8', timeout: 120000 });
    assert.equal(r.status, 0, `exited ${r.status ?? r.signal}: ${r.stderr.slice(-3000)}`);
    assert.match(r.stdout, /^this \(.*\): cycle [0-9.]+ ms \(attach [0-9.]+, detach [0-9.]+\), median of 2 blocks of 5$/m);
    assert.match(r.stdout, /^base \(.*\): cycle [0-9.]+ ms/m);
    const m = /^this \/ base per block: median ([0-9.]+), min ([0-9.]+), max ([0-9.]+)$/m.exec(r.stdout);
    assert.ok(m && Number(m[1]) > 0 && Number(m[2]) <= Number(m[3]), r.stdout);
    // In flight: cycles/s.
    const c = spawnSync(process.execPath, [script, '--base', root, '--blocks', '2', '--b', '6', '--in-flight', '3'], { encoding: 'utf8', timeout: 120000 });
    assert.equal(c.status, 0, `exited ${c.status ?? c.signal}: ${c.stderr.slice(-3000)}`);
    assert.match(c.stdout, /^this \(.*\): [0-9]+ cycles\/s \(attach [0-9]+\/s, detach [0-9]+\/s\), 3 in flight, median of 2 blocks of 6$/m);
    assert.match(c.stdout, /^this \/ base per block: median [0-9.]+/m);
    const u = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 60000 });
    assert.equal(u.status, 2, 'no --base: its usage');
    assert.match(u.stderr, /usage: node benchmarks\/46.ab-blocks.js --base DIR/);
  });

  it('netmodes, the C floor and the CNI plugin: verified, timed, JSON + tables + chart written', () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'nm-bench-')), 'r.json');
    const args = [
      path.join(root, 'benchmarks', 'run.js'), '--quick', '--peers', 'netmodes,cfloorv4,cniplugin', '--n', '30', '--warmup', '20',
      '--conc', '8', '--scale', '10', '--peer-scale', '10', '--churn', '50,100', '--no-datapath', '--dense', '200', '--out', out,
    ];
    const chart = path.join(root, 'benchmarks', 'results', 'chart-quick.svg');
    fs.rmSync(chart, { force: true });
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 230000 });
    assert.equal(r.status, 0, `bench exited ${r.status ?? r.signal}: ${r.stderr.slice(-3000)}`);
    const R = JSON.parse(fs.readFileSync(out, 'utf8'));
    assert.ok(R.verifyPeers.netmodes.ok && R.verifyPeers.cfloorv4.ok, 'both did the work they are timed for');
    for (const name of ['netmodes', 'cfloorv4', 'cniplugin']) {
      const s = R.churn.summary[name];
      assert.equal(s.errors, 0, name);
      assert.ok(s.cycleMs > 0 && Number.isFinite(s.cycleMs), `${name}: ${s.cycleMs}`);
    }
    assert.equal(R.churn.warmup.cycles, 20);
    assert.equal(R.churn.summary.netmodes.concurrent[0].errors, 0);
    // The C floor in the concurrent section: its 30 containers over 8 floor processes at once.
    const fc = R.churn.summary.cfloorv4.concurrent;
    assert.deepEqual(fc.map((x: any) => x.inFlight), [8]);
    assert.ok(fc[0].cyclesPerSecond > 0 && R.churn.runs.cfloorv4[0].concurrent[0].setup.parts.processes === 8, 'the floor in 8 processes');
    assert.match(r.stdout, /^C floor[^\n]*\s8\s/m, 'the floor\'s row in the concurrent table');
    assert.ok(R.scaling.some((x: any) => x.peer === 'netmodes' && x.kernelProbe), 'netmodes scaling with its kernel probe');
    const one = R.scalingOneNetwork.find((x: any) => x.k === 10);
    assert.ok(one && one.netmodes.p50 > 0 && one.floor.p50 > 0, 'one network: netmodes beside the C floor on the same layout');
    const d = R.dense;
    assert.equal(d.attached, 200, 'the dense section attached every container');
    assert.equal(d.ping.answered, 200, 'every container answers the gateway');
    assert.ok(d.pairs.count > 0 && d.pairs.ok === d.pairs.count, 'the pairs talk');
    assert.ok(d.outside.ok, 'the last container\'s published port answers from outside');
    assert.deepEqual(d.leftLinks, [], 'nothing left after the network is removed');
    assert.ok(d.perNamespace.SlabKiB !== null && d.rssAfter.rssMiB > 0);
    assert.match(r.stdout, /### Dense host/);
    assert.ok(R.churnMemory.cycles['100'].rssMiB > 0 && R.churnMemory.youngFixed, 'section 4, both child runs');
    assert.match(r.stdout, /^netmodes\s+30\s/m, 'the sequential table');
    assert.ok(R.dns.servers.some((x: any) => x.server === 'netmodes' && x.count > 0 && x.timeouts === 0), 'the embedded DNS section');
    assert.ok(R.dns.connect.embeddedDns.n > 0 && R.dns.connect.plain.n > 0);
    assert.match(r.stdout, /### Embedded DNS/);
    assert.match(r.stdout, /vs floor/);
    assert.ok(fs.readFileSync(chart, 'utf8').startsWith('<svg'), 'the chart');
    fs.rmSync(path.dirname(out), { recursive: true, force: true });
  });
});
