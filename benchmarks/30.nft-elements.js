#!/usr/bin/env node
// Published-port map churn: add and remove N map elements
//   ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service
// (one published port each) through nftTransaction in batches of 1, 100, 1000 and N elements per
// transaction; then the same with one `nft -f` file, and with one `nft add element` process per
// element (a sample of --sample processes, extrapolated to N: said so in the output).
//   node benchmarks/30.nft-elements.js [--n 10000] [--sample 500] [--rounds 3]
// Runs only inside its own sandbox (unshare --net --mount), like the tests.
'use strict';
const path = require('node:path');
const fs = require('node:fs');
const os = require('node:os');
const { execFileSync } = require('node:child_process');
const { sandboxed, now, med } = require('./common');

const { args, opt } = sandboxed(__filename);
const N = opt('n', 10000);
const SAMPLE = Math.min(opt('sample', 500), N);
const ROUNDS = opt('rounds', 3);

const nm = require(path.join(__dirname, '..', 'dist', 'lib'));

const T = { family: 'inet', table: 'bench' };
const MAP = { ...T, name: 'published', type: 'ipv4_addr . inet_proto . inet_service', dataType: 'ipv4_addr . inet_service' };
const els = Array.from({ length: N }, (_, i) => ({
  key: ['198.18.0.1', i % 2 ? 'udp' : 'tcp', 1024 + (i >> 1)],
  data: [`172.17.${(i >> 8) & 255}.${(i & 255) || 1}`, 80],
}));
const nftKey = (e) => `${e.key[0]} . ${e.key[1]} . ${e.key[2]}`;
const nftElem = (e) => `${nftKey(e)} : ${e.data[0]} . ${e.data[1]}`;

function count() {
  const out = execFileSync('nft', ['-j', 'list', 'map', 'inet', 'bench', 'published'], { maxBuffer: 256 << 20 }).toString();
  const m = JSON.parse(out).nftables.find((o) => o.map);
  return (m.map.elem ?? []).length;
}
function check(want, what) {
  const got = count();
  if (got !== want) throw new Error(`${what}: ${got} elements in the map, expected ${want}`);
}

async function setup() {
  const tx = nm.nftTransaction();
  tx.destroyTable({ family: 'inet', name: 'bench' });
  tx.addTable({ family: 'inet', name: 'bench' });
  tx.addSet(MAP);
  await tx.commit();
}

// elements/s for adding then removing all N, `batch` per transaction, sequential commits.
async function library(batch) {
  const t0 = now();
  for (let i = 0; i < N; i += batch) {
    const tx = nm.nftTransaction();
    tx.addElements(MAP, els.slice(i, i + batch));
    await tx.commit();
  }
  const add = now() - t0;
  check(N, `library add, batch ${batch}`);
  const t1 = now();
  for (let i = 0; i < N; i += batch) {
    const tx = nm.nftTransaction();
    tx.deleteElements(MAP, els.slice(i, i + batch));
    await tx.commit();
  }
  const del = now() - t1;
  check(0, `library delete, batch ${batch}`);
  return { add: (N / add) * 1000, del: (N / del) * 1000, addMs: add, delMs: del };
}

function nftFile() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nmbench'));
  const addF = path.join(dir, 'add.nft');
  const delF = path.join(dir, 'del.nft');
  fs.writeFileSync(addF, `add element inet bench published { ${els.map(nftElem).join(', ')} }\n`);
  fs.writeFileSync(delF, `delete element inet bench published { ${els.map(nftKey).join(', ')} }\n`);
  const t0 = now();
  execFileSync('nft', ['-f', addF]);
  const add = now() - t0;
  check(N, 'nft -f add');
  const t1 = now();
  execFileSync('nft', ['-f', delF]);
  const del = now() - t1;
  check(0, 'nft -f delete');
  fs.rmSync(dir, { recursive: true, force: true });
  return { add: (N / add) * 1000, del: (N / del) * 1000, addMs: add, delMs: del };
}

function nftPerElement() {
  const sample = els.slice(0, SAMPLE);
  const t0 = now();
  for (const e of sample) execFileSync('nft', ['add', 'element', 'inet', 'bench', 'published', `{ ${nftElem(e)} }`]);
  const add = now() - t0;
  check(SAMPLE, 'nft add element');
  const t1 = now();
  for (const e of sample) execFileSync('nft', ['delete', 'element', 'inet', 'bench', 'published', `{ ${nftKey(e)} }`]);
  const del = now() - t1;
  check(0, 'nft delete element');
  return { add: (SAMPLE / add) * 1000, del: (SAMPLE / del) * 1000, addMs: (add / SAMPLE) * N, delMs: (del / SAMPLE) * N };
}

(async () => {
  await setup();
  const rows = [];
  const best = (runs) => ({
    add: med(runs.map((r) => r.add)),
    del: med(runs.map((r) => r.del)),
    addMs: med(runs.map((r) => r.addMs)),
    delMs: med(runs.map((r) => r.delMs)),
  });
  for (const b of [1, 100, 1000, N]) {
    const runs = [];
    for (let r = 0; r < (b === 1 ? 1 : ROUNDS); r++) runs.push(await library(b));
    rows.push({ name: `netmodes, ${b} per transaction`, ...best(runs) });
  }
  const files = [];
  for (let r = 0; r < ROUNDS; r++) files.push(nftFile());
  const file = { name: `nft -f (one file, ${N} elements)`, ...best(files) };
  rows.push(file);
  const per = { name: `nft add/delete element, 1 process each (${SAMPLE} sampled, x${N / SAMPLE})`, ...nftPerElement() };
  rows.push(per);

  const tx = nm.nftTransaction();
  tx.deleteTable({ family: 'inet', name: 'bench' });
  await tx.commit();

  const w = Math.max(...rows.map((r) => r.name.length));
  const fmt = (x) => Math.round(x).toLocaleString('en-US').padStart(10);
  const ms = (x) => `${x.toFixed(0).padStart(8)} ms`;
  console.log(`\n${N} map elements (ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service), kernel ${os.release()}, ${execFileSync('nft', ['--version']).toString().trim()}`);
  console.log(`${'method'.padEnd(w)}  ${'add el/s'.padStart(10)}  ${'del el/s'.padStart(10)}  ${'add all'.padStart(11)}  ${'del all'.padStart(11)}  vs nft -f (add/del)  vs 1 process each (add/del)`);
  for (const r of rows) {
    console.log(
      `${r.name.padEnd(w)}  ${fmt(r.add)}  ${fmt(r.del)}  ${ms(r.addMs)}  ${ms(r.delMs)}  ${`${(r.add / file.add).toFixed(2)}x / ${(r.del / file.del).toFixed(2)}x`.padStart(19)}  ${`${(r.add / per.add).toFixed(0)}x / ${(r.del / per.del).toFixed(0)}x`.padStart(27)}`,
    );
  }
  console.log(`(medians of ${ROUNDS} rounds; batch 1: one round; the per-process row times ${SAMPLE} processes and extrapolates "add all"/"del all" to ${N})`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
