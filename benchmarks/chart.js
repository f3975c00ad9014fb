#!/usr/bin/env node
'use strict';
// Turns a results JSON of benchmarks/run.js into an SVG (no dependencies):
//   left:  attach + detach, ms per container, per implementation (sequential; log scale)
//   right: one more attach (p50 ms) against the number already attached (log/log)
//
//   node benchmarks/chart.js [results.json] [out.svg]     (defaults: newest bench-*.json, results/chart.svg)

const fs = require('fs');
const path = require('path');

const COLORS = { netmodes: '#d6336c', cfloor: '#212529', cfloorgroup: '#adb5bd', cfloorv4: '#5f3dc4', ipbatch: '#495057', floorgroup: '#868e96', ip: '#1c7ed6', netavark: '#f59f00', cni: '#37b24d' };
const LABEL = {
  netmodes: 'netmodes', cfloor: 'C floor: raw netlink', cfloorgroup: 'C floor, bulk delete', cfloorv4: 'C floor, no IPv6, 1 queue', ipbatch: 'floor: ip -batch + nft -f', floorgroup: 'floor, bulk delete by group', ip: 'ip/nft, process per op',
  netavark: 'netavark 1.4', cni: 'CNI bridge+portmap',
};
const ORDER = ['netmodes', 'cfloor', 'cfloorgroup', 'cfloorv4', 'ipbatch', 'floorgroup', 'ip', 'netavark', 'cni'];

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const num = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
function text(x, y, s, { size = 12, anchor = 'start', weight = 'normal', fill = '#212529' } = {}) {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" font-size="${size}" text-anchor="${anchor}" font-weight="${weight}" fill="${fill}">${esc(s)}</text>`;
}
function logTicks(lo, hi) {
  const out = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) out.push(10 ** e);
  return out;
}
const tickLabel = (t) => (t >= 1000 ? `${t / 1000}k` : t >= 1 ? String(t) : String(t));

/** Left panel: horizontal bars on a log axis. */
function barPanel(R, x0, y0, w, h) {
  const S = (R.churn && R.churn.summary) || {};
  const names = ORDER.filter((n) => S[n] && Number.isFinite(S[n].cycleMs));
  const out = [];
  out.push(text(x0, y0 - 8, 'attach + detach, ms per container (sequential, log scale)', { size: 14, weight: 'bold' }));
  if (!names.length) return out.join('\n');
  const vals = names.map((n) => S[n].cycleMs);
  // The axis starts at least half a decade below the smallest bar, so that bar stays visible.
  const lo = 10 ** Math.floor(Math.log10(Math.min(...vals) / 3)); const hi = 10 ** Math.ceil(Math.log10(Math.max(...vals) * 5));
  const labelW = 170; const px = x0 + labelW; const pw = w - labelW - 10;
  const X = (v) => px + ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * pw;
  for (const t of logTicks(lo, hi)) {
    out.push(`<line x1="${X(t)}" y1="${y0}" x2="${X(t)}" y2="${y0 + h}" stroke="#dee2e6"/>`);
    out.push(text(X(t), y0 + h + 16, tickLabel(t), { anchor: 'middle', size: 11, fill: '#495057' }));
  }
  out.push(text(px + pw / 2, y0 + h + 34, 'ms per container (lower is better)', { anchor: 'middle', size: 11, fill: '#495057' }));
  const slot = (h - 10) / names.length; const bh = Math.min(30, slot - 10);
  const ours = S.netmodes ? S.netmodes.cycleMs : null;
  names.forEach((n, k) => {
    const y = y0 + 5 + k * slot + (slot - bh) / 2;
    const v = S[n].cycleMs;
    out.push(text(x0, y + bh / 2 + 4, LABEL[n] || n, { size: 12, weight: n === 'netmodes' ? 'bold' : 'normal' }));
    out.push(`<rect x="${px}" y="${y.toFixed(1)}" width="${Math.max(1, X(v) - px).toFixed(1)}" height="${bh.toFixed(1)}" fill="${COLORS[n] || '#868e96'}"/>`);
    const rel = ours && n !== 'netmodes' ? `  (${(v / ours) >= 10 ? (v / ours).toFixed(0) : (v / ours).toFixed(1)}x netmodes)` : '';
    out.push(text(X(v) + 5, y + bh / 2 + 4, `${num(v)} ms${rel}`, { size: 11 }));
  });
  return out.join('\n');
}

/** Right panel: attach p50 vs K on log/log axes, one line per implementation. */
function linePanel(R, x0, y0, w, h) {
  const out = [];
  out.push(text(x0, y0 - 8, 'one more attach (p50 ms) vs containers already attached', { size: 14, weight: 'bold' }));
  const sc = (R.scaling || []).filter((s) => s.label === String(s.k) && s.k > 0 && Number.isFinite(s.setup.p50));
  if (!sc.length) return out.join('\n');
  const ks = sc.map((s) => s.k);
  const vs = [...sc.map((s) => s.setup.p50), ...sc.filter((s) => s.kernelProbe).map((s) => s.kernelProbe.vethAddP50)];
  const kLo = 10 ** Math.floor(Math.log10(Math.min(...ks))); const kHi = 10 ** Math.ceil(Math.log10(Math.max(...ks)));
  const vLo = 10 ** Math.floor(Math.log10(Math.min(...vs))); const vHi = 10 ** Math.ceil(Math.log10(Math.max(...vs)));
  const pl = x0 + 40; const pw = w - 200; const pt = y0; const ph = h;
  const X = (k) => pl + ((Math.log10(k) - Math.log10(kLo)) / (Math.log10(kHi) - Math.log10(kLo) || 1)) * pw;
  const Y = (v) => pt + ph - ((Math.log10(v) - Math.log10(vLo)) / (Math.log10(vHi) - Math.log10(vLo) || 1)) * ph;
  for (const t of logTicks(vLo, vHi)) {
    out.push(`<line x1="${pl}" y1="${Y(t)}" x2="${pl + pw}" y2="${Y(t)}" stroke="#dee2e6"/>`);
    out.push(text(pl - 6, Y(t) + 4, tickLabel(t), { anchor: 'end', size: 11, fill: '#495057' }));
  }
  for (const t of logTicks(kLo, kHi)) {
    out.push(`<line x1="${X(t)}" y1="${pt}" x2="${X(t)}" y2="${pt + ph}" stroke="#dee2e6"/>`);
    out.push(text(X(t), pt + ph + 16, tickLabel(t), { anchor: 'middle', size: 11, fill: '#495057' }));
  }
  out.push(text(pl + pw / 2, pt + ph + 34, 'containers already attached (log)', { anchor: 'middle', size: 11, fill: '#495057' }));
  out.push(`<text x="${x0}" y="${pt + ph / 2}" font-size="11" fill="#495057" text-anchor="middle" transform="rotate(-90 ${x0} ${pt + ph / 2})">ms (log)</text>`);
  let ly = pt + 6;
  for (const n of ORDER) {
    const pts = sc.filter((s) => s.peer === n).sort((a, b) => a.k - b.k);
    if (!pts.length) continue;
    const col = COLORS[n] || '#868e96';
    const wdt = n === 'netmodes' ? 3 : 2;
    out.push(`<polyline fill="none" stroke="${col}" stroke-width="${wdt}" points="${pts.map((s) => `${X(s.k).toFixed(1)},${Y(s.setup.p50).toFixed(1)}`).join(' ')}"/>`);
    for (const s of pts) {
      out.push(`<circle cx="${X(s.k).toFixed(1)}" cy="${Y(s.setup.p50).toFixed(1)}" r="3.5" fill="${col}"><title>${esc(`${LABEL[n]}: ${num(s.setup.p50)} ms with ${s.k} attached`)}</title></circle>`);
    }
    const last = pts[pts.length - 1];
    out.push(text(X(last.k) + 6, Y(last.setup.p50) + 4, num(last.setup.p50), { size: 10, fill: col }));
    out.push(`<rect x="${pl + pw + 30}" y="${ly - 8}" width="12" height="4" fill="${col}"/>`);
    out.push(text(pl + pw + 46, ly - 2, LABEL[n] || n, { size: 10 }));
    ly += 16;
  }
  // The kernel probe: a bare veth pair (one RTM_NEWLINK) at the same K, dashed.
  const kp = sc.filter((s) => s.peer === 'netmodes' && s.kernelProbe && Number.isFinite(s.kernelProbe.vethAddP50)).sort((a, b) => a.k - b.k);
  if (kp.length) {
    out.push(`<polyline fill="none" stroke="${COLORS.netmodes}" stroke-width="1.5" stroke-dasharray="5 4" points="${kp.map((s) => `${X(s.k).toFixed(1)},${Y(Math.max(vLo, s.kernelProbe.vethAddP50)).toFixed(1)}`).join(' ')}"/>`);
    out.push(`<line x1="${pl + pw + 30}" y1="${ly - 6}" x2="${pl + pw + 42}" y2="${ly - 6}" stroke="${COLORS.netmodes}" stroke-width="1.5" stroke-dasharray="3 2"/>`);
    out.push(text(pl + pw + 46, ly - 2, 'bare veth add (kernel)', { size: 10 }));
    ly += 16;
  }
  const ports = (R.scaling || []).find((s) => s.peer === 'netmodes' && s.publishedPorts);
  if (ports) {
    out.push(text(pl + pw + 30, ly + 14, `netmodes, 1000 attached`, { size: 10, fill: COLORS.netmodes }));
    out.push(text(pl + pw + 30, ly + 27, `with ${ports.publishedPorts.toLocaleString('en-US')} ports: ${num(ports.setup.p50)} ms`, { size: 10, fill: COLORS.netmodes }));
  }
  return out.join('\n');
}

function svg(R) {
  const W = 1100; const H = 400;
  const m = R.machine || {};
  const foot = `${m.cpus} cores, kernel ${m.kernel}, Node ${m.node}; ${String(R.date || '').slice(0, 10)}; ` +
    `one published TCP port per container; median of ${R.options ? R.options.repeat : '?'} run(s); namespace creation excluded`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif">
<rect width="${W}" height="${H}" fill="#ffffff"/>
${barPanel(R, 20, 40, 520, 280)}
${linePanel(R, 580, 40, 500, 280)}
${text(20, H - 12, foot, { size: 11, fill: '#868e96' })}
</svg>
`;
}

function writeChart(R, out) {
  fs.writeFileSync(out, svg(R));
  return out;
}

module.exports = { svg, writeChart };

if (require.main === module) {
  const dir = path.join(__dirname, 'results');
  let file = process.argv[2];
  if (!file) {
    const list = fs.readdirSync(dir).filter((f) => /^bench-.*\.json$/.test(f)).sort();
    if (!list.length) { console.error('no benchmarks/results/bench-*.json: run `npm run bench` first'); process.exit(1); }
    file = path.join(dir, list[list.length - 1]);
  }
  const out = process.argv[3] || path.join(dir, 'chart.svg');
  writeChart(JSON.parse(fs.readFileSync(file, 'utf8')), out);
  console.log(`${path.relative(process.cwd(), out)} from ${path.relative(process.cwd(), file)}`);
}
