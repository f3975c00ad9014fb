#!/usr/bin/env node
// The embedded DNS server (lib/dns/) against aardvark-dns (Podman's, Debian package aardvark-dns)
// serving the same names, and what embeddedDns costs a connect.
//   node benchmarks/50.dns.js [--quick] [--seconds 3] [--names 50] [--connects 200]
// Also a section of `npm run bench` (benchmarks/run.js, --no-dns to leave it out).
//
// Queries: a client process inside a container's namespace sends A queries for container names over
// UDP in a closed loop (concurrency 1 and 16) to its network's gateway, where netmodes' server or
// aardvark-dns listens: queries per second, p50 and p99 latency. The two servers serve two
// networks with the same container names (netmodes from its state store, aardvark-dns from its
// config file), one after the other, on the same machine. Connect cost: connect + disconnect of
// a container on a network with embeddedDns and on one without, in alternating rounds.
// Runs only inside its own sandbox (unshare --net --mount), like the tests.
'use strict';
const path = require('node:path');
const fs = require('node:fs');
const { spawn, execFileSync } = require('node:child_process');
const sb = require('./peers/sandbox');
const { now, pct } = require('./common');

const QUERY_JS = path.join(__dirname, '..', 'dist', 'test', 'helpers', 'dns', 'query.js');

function queryBench(ns, server, name, seconds, concurrency) {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, QUERY_JS, '-'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`query client exited ${code}`));
      const r = JSON.parse(out);
      resolve({ ...r, qps: Math.round(r.count / seconds) });
    });
    child.stdin.end(JSON.stringify({ server, bench: { name, seconds, concurrency } }));
  });
}

function waitPort53(addr, ms = 5000) {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const out = execFileSync('ss', ['-Hlnu', 'sport = :53']).toString();
    if (out.includes(`${addr}:53`)) return;
    execFileSync('sleep', ['0.05']);
  }
  throw new Error(`nothing listens on ${addr}:53`);
}

/** The aardvark-dns config of a network: the gateway, then `ID IPV4 IPV6 NAMES` per container. */
function aardvarkConfig(gateway, eps) {
  return `${gateway}\n${eps.map((e) => `${e.id} ${e.ip}  ${[e.id, e.hostname].join(',')}`).join('\n')}\n`;
}

async function dnsAll(opts, log, nm) {
  const seconds = opts.seconds || (opts.quick ? 1 : 3);
  const names = opts.names || (opts.quick ? 20 : 50);
  const connects = opts.connects || (opts.quick ? 60 : 200);
  const aardvark = sb.findTool('aardvark-dns');
  const out = { seconds, names, servers: [], connect: null, aardvark: aardvark ? execFileSync(aardvark, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() : null };
  const nsList = [];
  const mkNs = async (p) => {
    const n = await nm.createNamespace(`${p}${nsList.length}`);
    nsList.push(n);
    return n;
  };
  const dnsNet = await nm.createBridgeNetwork({ name: 'benchdns', subnet: '10.90.0.0/22', embeddedDns: true });
  const plainNet = await nm.createBridgeNetwork({ name: 'benchplain', subnet: '10.91.0.0/22' });
  let aproc;
  const confDir = sb.workPath('aardvark');
  try {
    // The same container names on both networks (no upstream is ever asked: all names are local).
    const eps = { dns: [], plain: [] };
    for (let i = 0; i < names; i++) {
      eps.dns.push(await dnsNet.connect(await mkNs('dq'), { id: `svc${i}`, hostname: `svc${i}` }));
      eps.plain.push(await plainNet.connect(await mkNs('pq'), { id: `svc${i}`, hostname: `svc${i}` }));
    }
    const clientDns = await mkNs('dc');
    await dnsNet.connect(clientDns, { id: 'client', dns: { servers: ['198.18.0.1'] } });
    const clientPlain = await mkNs('pc');
    await plainNet.connect(clientPlain, { id: 'client' });
    const target = `svc${Math.floor(names / 2)}`;
    const servers = [{ name: 'netmodes', ns: clientDns.name, gw: dnsNet.gateway }];
    if (aardvark) {
      fs.writeFileSync(path.join(confDir, 'benchplain'), aardvarkConfig(plainNet.gateway, [...eps.plain, { id: 'client', ip: (await plainNet.endpoint('client')).ip, hostname: 'client' }]));
      // `run` daemonizes: the parent returns once the server runs; its pid is in the config dir.
      execFileSync(aardvark, ['--config', confDir, '-p', '53', 'run'], { stdio: 'ignore', timeout: 10000 });
      waitPort53(plainNet.gateway);
      aproc = Number(fs.readFileSync(path.join(confDir, 'aardvark.pid'), 'utf8').trim());
      servers.push({ name: 'aardvark-dns', ns: clientPlain.name, gw: plainNet.gateway });
    } else log('dns: aardvark-dns is not installed: netmodes alone');
    for (const s of servers) {
      const check = await queryBench(s.ns, s.gw, target, 0.2, 1);
      if (!check.count) throw new Error(`${s.name} does not answer ${target}`);
      for (const conc of [1, 16]) {
        const r = await queryBench(s.ns, s.gw, target, seconds, conc);
        log(`dns: ${s.name} concurrency ${conc}: ${r.qps} queries/s, p50 ${r.p50} us, p99 ${r.p99} us, ${r.timeouts} timeouts`);
        out.servers.push({ server: s.name, concurrency: conc, ...r });
      }
    }
    // Connect + disconnect cost, alternating rounds of 10 so that neither side always goes first.
    const cost = { dns: [], plain: [] };
    const pool = [];
    for (let i = 0; i < 10; i++) pool.push(await mkNs('cc'));
    for (let round = 0; round < connects / 10; round++) {
      for (const [key, net] of round % 2 ? [['plain', plainNet], ['dns', dnsNet]] : [['dns', dnsNet], ['plain', plainNet]]) {
        for (const ns of pool) {
          const t = now();
          const e = await net.connect(ns, { hostname: 'x' });
          const t1 = now();
          await e.disconnect();
          cost[key].push({ connect: t1 - t, total: now() - t });
        }
        await nm.reapDetached();
      }
    }
    const sum = (a) => ({ n: a.length, connectP50: +pct(a.map((x) => x.connect), 50).toFixed(3), connectP99: +pct(a.map((x) => x.connect), 99).toFixed(3), cycleP50: +pct(a.map((x) => x.total), 50).toFixed(3) });
    out.connect = { embeddedDns: sum(cost.dns), plain: sum(cost.plain) };
    log(`dns: connect p50 ${out.connect.embeddedDns.connectP50} ms with embeddedDns, ${out.connect.plain.connectP50} ms without`);
  } finally {
    if (aproc) {
      try {
        process.kill(aproc, 'SIGTERM');
      } catch {
        /* gone */
      }
    }
    await dnsNet.remove({ force: true });
    await plainNet.remove({ force: true });
    for (const n of nsList) await n.delete();
    await nm.stopDnsServer();
  }
  return out;
}

function report(d) {
  const lines = ['', '### Embedded DNS: queries from a container (UDP, closed loop)', '', '| server | concurrency | queries/s | p50 µs | p99 µs | timeouts |', '| --- | --- | --- | --- | --- | --- |'];
  for (const s of d.servers) lines.push(`| ${s.server} | ${s.concurrency} | ${s.qps} | ${s.p50} | ${s.p99} | ${s.timeouts} |`);
  lines.push('', `${d.names} container names per network, ${d.seconds} s per run${d.aardvark ? `; ${d.aardvark}` : ''}.`, '');
  if (d.connect) {
    lines.push('| connect | n | connect p50 ms | connect p99 ms | connect + disconnect p50 ms |', '| --- | --- | --- | --- | --- |');
    for (const [k, v] of [['embeddedDns', d.connect.embeddedDns], ['without', d.connect.plain]]) lines.push(`| ${k} | ${v.n} | ${v.connectP50} | ${v.connectP99} | ${v.cycleP50} |`);
  }
  return lines.join('\n');
}

module.exports = { dnsAll, report };

if (require.main === module) {
  const argv = process.argv.slice(2);
  const num = (k) => {
    const i = argv.indexOf(`--${k}`);
    return i >= 0 ? Number(argv[i + 1]) : undefined;
  };
  sb.ensureSandbox({ tools: ['ip', 'nft', 'unshare', 'aardvark-dns'] });
  process.env.NETMODES_STATE_DIR = sb.workPath('netmodes-state');
  const nm = require(path.join(__dirname, '..', 'dist', 'lib', 'index.js'));
  const log = (m) => console.error(`${new Date().toISOString().slice(11, 19)} ${m}`);
  dnsAll({ quick: argv.includes('--quick'), seconds: num('seconds'), names: num('names'), connects: num('connects') }, log, nm)
    .then((d) => console.log(report(d)))
    .catch((e) => {
      console.error(e.stack || e.message);
      process.exit(1);
    });
}
