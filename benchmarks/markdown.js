#!/usr/bin/env node
'use strict';
// Prints the figures of a benchmarks/run.js results file as Markdown tables (for the README).
//   node benchmarks/markdown.js [results.json]      (default: newest benchmarks/results/bench-*.json)

const fs = require('fs');
const path = require('path');
const { cheapestFloor } = require('./peers/common');

const LABEL = {
  netmodes: '**netmodes**', cfloor: 'C floor: raw netlink, one process (total / N)',
  cfloorgroup: 'C floor, bulk delete: one `RTM_DELLINK` per group (total / N)',
  cfloorv4: 'C floor, bulk delete, IPv6 off and one queue pair on the veths (as netmodes) (total / N)', ipbatch: 'floor: `ip -batch` + `nft -f` (total / N)', floorgroup: 'floor, bulk delete: + `ip link del group` (total / N)',
  ip: '`ip`/`nft`, one process per operation', netavark: 'netavark 1.4 (iptables-nft)', cni: 'CNI bridge + host-local + portmap',
};
const ORDER = ['netmodes', 'cfloorv4', 'cfloorgroup', 'cfloor', 'floorgroup', 'ipbatch', 'ip', 'netavark', 'cni'];

function f(x, d) {
  if (x === null || x === undefined || !Number.isFinite(Number(x))) return '';
  const v = Number(x);
  if (d === undefined) d = v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}
const x = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${f(a / b, a / b >= 10 ? 0 : a / b >= 1 ? 1 : 2)}x` : '');

function markdown(R) {
  const out = [];
  const S = (R.churn && R.churn.summary) || {};
  const names = ORDER.filter((n) => S[n]);
  const ours = S.netmodes;
  const cheapest = cheapestFloor(S);
  const floor = cheapest ? cheapest.cycleMs : null;
  out.push(`| sequential, ms per container | N | attach (p50 / p99) | detach (p50 / p99) | attach + detach | cycles/s | vs floor | vs netmodes |`);
  out.push('|---|---|---|---|---|---|---|---|');
  for (const n of names) {
    const s = S[n];
    const pp = (o) => (o.p50 === null ? f(o.ms) : `${f(o.ms)} (${f(o.p50)} / ${f(o.p99)})`);
    out.push(`| ${LABEL[n] || n} | ${s.n} | ${pp(s.attach)} | ${pp(s.detach)} | ${n === 'netmodes' ? `**${f(s.cycleMs)}**` : f(s.cycleMs)} | ${f(s.cyclesPerSecond, 0)} | ${x(s.cycleMs, floor)} | ${n === 'netmodes' ? '1x' : x(s.cycleMs, ours && ours.cycleMs)} |`);
  }
  if (cheapest) out.push('', `"vs floor" is relative to the cheapest floor measured: ${LABEL[cheapest.name].replace(/ \(total \/ N\)$/, '')}.`);
  const w = R.churn && R.churn.warmup;
  if (w) out.push('', `netmodes ran ${w.cycles} untimed attach + detach cycles first (${f(w.cycleMs)} ms each), so that V8 had compiled its hot paths.`);
  const levels = [...new Set(names.flatMap((n) => S[n].concurrent.map((c) => c.inFlight)))].sort((a, b) => a - b);
  const cn = names.filter((n) => S[n].concurrent.length);
  if (levels.length) {
    out.push('');
    out.push(`| in flight | ${cn.map((n) => (LABEL[n] || n).replace(/ \(.*\)$/, '')).join(' | ')} |`);
    out.push(`|---|${cn.map(() => '---').join('|')}|`);
    for (const l of levels) {
      const mine = ours && ours.concurrent.find((c) => c.inFlight === l);
      out.push(`| ${l} | ${cn.map((n) => {
        const c = S[n].concurrent.find((y) => y.inFlight === l);
        if (!c) return '';
        const ahead = n === 'netmodes' || !mine ? '' : ` — ${x(mine.cyclesPerSecond, c.cyclesPerSecond)}`;
        return `${f(c.cyclesPerSecond, 0)} (${f(c.attach.p50)} / ${f(c.attach.p99)})${ahead}`;
      }).join(' | ')} |`);
    }
  }
  const sc = R.scaling || [];
  if (sc.length) {
    const peers = ORDER.filter((n) => sc.some((s) => s.peer === n));
    const rows = [...new Set(sc.map((s) => s.label))].sort((a, b) => parseInt(a, 10) - parseInt(b, 10) || a.length - b.length);
    const base = {};
    for (const s of sc) if (s.label === '10') base[s.peer] = s.setup.p50;
    out.push('');
    out.push(`| K attached | ${peers.map((n) => (LABEL[n] || n).replace(/ \(.*\)$/, '')).join(' | ')} | netmodes: bare veth (kernel) |`);
    out.push(`|---|${peers.map(() => '---').join('|')}|---|`);
    const probe10 = (sc.find((s) => s.label === '10' && s.kernelProbe) || {}).kernelProbe;
    for (const r of rows) {
      const cells = peers.map((n) => {
        const s = sc.find((y) => y.peer === n && y.label === r);
        return s ? `${f(s.setup.p50)}${r === '10' ? '' : ` (${x(s.setup.p50, base[n])})`}` : '';
      });
      const kp = (sc.find((y) => y.peer === 'netmodes' && y.label === r && y.kernelProbe) || {}).kernelProbe;
      const label = r === String(parseInt(r, 10)) ? f(Number(r), 0) : `${r.replace(/^(\d+)/, (m) => f(Number(m), 0))} (${f(r.split(' ')[0] * 10, 0)} published)`;
      out.push(`| ${label} | ${cells.join(' | ')} | ${kp ? `${f(kp.vethAddP50)}${r === '10' || !probe10 ? '' : ` (${x(kp.vethAddP50, probe10.vethAddP50)})`}` : ''} |`);
    }
  }
  if (R.datapath && R.datapath.length) {
    out.push('');
    out.push('| data path | published ports | connections/s (median) | runs |');
    out.push('|---|---|---|---|');
    for (const d of R.datapath) out.push(`| ${LABEL[d.peer] || d.peer} | ${f(d.publishedPorts, 0)} | ${f(d.connectionsPerSecond, 0)} | ${d.runs.map((y) => f(y.perSecond, 0)).join(', ')} |`);
  }
  if (R.churnMemory) {
    const m = R.churnMemory; const ks = Object.keys(m.cycles);
    out.push('');
    out.push(`Long churn: ${ks[ks.length - 1]} cycles, ${m.inFlight} in flight, ${f(m.cyclesPerSecond, 0)} cycles/s; 1 ms timer late by ${f(m.eventLoopLag.p99)} ms at p99, ${f(m.eventLoopLag.max)} ms at most; ` +
      `RSS${m.cycles[ks[0]].rssBeforeGcMiB !== undefined ? ' after a full GC' : ''} ${ks.map((k) => `${f(m.cycles[k].rssMiB, 1)} MiB after ${f(Number(k), 0)}`).join(', ')}` +
      (ks.every((k) => m.cycles[k].youngMiB != null) ? ` (V8's young generation ${ks.map((k) => f(m.cycles[k].youngMiB, 0)).join(' → ')} MiB)` : '') + '.');
    const w = m.afterWarmup;
    if (w) {
      const kw = Object.keys(w.cycles);
      out.push(`After a warm-up of ${f(w.warmup, 0)} cycles (V8's heap sized): RSS ${kw.map((k) => `${f(w.cycles[k].rssMiB, 1)} MiB after ${f(Number(k), 0)} more`).join(', ')} (growth ${f(w.rssGrowthMiB, 1)} MiB).`);
    }
    const y = m.youngFixed;
    if (y) {
      const ky = Object.keys(y.cycles);
      out.push(`With the young generation at its final size from the start (\`node ${y.v8Flags.join(' ')}\`): RSS ${ky.map((k) => `${f(y.cycles[k].rssMiB, 1)} MiB after ${f(Number(k), 0)}`).join(', ')}; ` +
        `live JS heap ${ky.map((k) => f(y.cycles[k].heapUsedMiB, 1)).join(' → ')} MiB.`);
    }
  }
  return out.join('\n');
}

module.exports = { markdown };

if (require.main === module) {
  let file = process.argv[2];
  if (!file) {
    const dir = path.join(__dirname, 'results');
    const list = fs.readdirSync(dir).filter((n) => /^bench-.*\.json$/.test(n)).sort();
    file = path.join(dir, list[list.length - 1]);
  }
  console.log(markdown(JSON.parse(fs.readFileSync(file, 'utf8'))));
}
