/**
 * Reliability checks (tests 70-74): the kernel and the state store read independently (`ip -j`,
 * `nft -j`, the files themselves) and compared with each other. Nothing here uses the library's
 * own dump code.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, ChildProcess } from 'node:child_process';
import { ipj, sh, tryRun } from './kernel';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const LIB = path.join(ROOT, 'dist', 'lib');
export const STATE = process.env.NETMODES_STATE_DIR || '/run/netmodes';

export interface Rec {
  id: string;
  namespace: string;
  ip: string;
  ipv6?: string;
  mac: string;
  hostVeth: string;
  ports: Array<{ protocol: string; hostIp: string; hostPort: number; containerPort: number }>;
  links: Array<{ id: string; ip: string; ipv6?: string }>;
}

/** The endpoint records of a network, straight from the state files. */
export function records(net: string): Rec[] {
  const dir = path.join(STATE, 'networks', net, 'endpoints');
  const out: Rec[] = [];
  for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    if (f.startsWith('.')) continue;
    try {
      const r = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
      if (r.ip) out.push(r);
    } catch {
      /* torn: counted below as a stray file */
    }
  }
  return out;
}

export function networkId(net: string): string {
  return JSON.parse(fs.readFileSync(path.join(STATE, 'networks', `${net}.json`), 'utf8')).id;
}

/** Files below `dir`; without `dots`, temp files (.NAME.*) are left out: they are no reservations. */
export function walk(dir: string, dots = false): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p, dots));
    else if (dots || !e.name.startsWith('.')) out.push(p);
  }
  return out;
}

/** Every element of our nftables sets and maps, as [set, comment, JSON text of the element]. */
export function ourElements(): Array<[string, string, string]> {
  const out: Array<[string, string, string]> = [];
  const r = tryRun('nft', ['-j', 'list', 'ruleset']);
  if (r.status) throw new Error(`nft list ruleset: ${r.stderr}`);
  for (const o of JSON.parse(r.stdout).nftables) {
    const s = o.set ?? o.map;
    if (!s || s.table !== 'netmodes') continue;
    for (const e of s.elem ?? []) {
      const text = JSON.stringify(e);
      const m = /"comment":"([^"]*)"/.exec(text);
      out.push([`${s.family}/${s.name}`, m ? m[1] : '', text]);
    }
  }
  return out;
}

/**
 * Everything the issue asks after a reconcile: records, reservations, veths, container
 * interfaces, neighbour entries and nftables elements all agree; no address or host port twice.
 * Returns a list of problems (empty when consistent).
 */
export function inconsistencies(net: string, bridge: string, nsPaths: string[]): string[] {
  const bad: string[] = [];
  const recs = records(net);
  const id12 = networkId(net).slice(0, 12);
  const icc = JSON.parse(fs.readFileSync(path.join(STATE, 'networks', `${net}.json`), 'utf8')).icc !== false;
  const dir = path.join(STATE, 'networks', net);
  // Store: one record file per endpoint, nothing half-written, no stray temp files.
  const epFiles = fs.existsSync(path.join(dir, 'endpoints')) ? fs.readdirSync(path.join(dir, 'endpoints')) : [];
  if (epFiles.length !== recs.length) bad.push(`endpoint files ${epFiles.join(',')} vs ${recs.length} records`);
  // No address, no host port twice.
  const ips = recs.map((r) => r.ip);
  if (new Set(ips).size !== ips.length) bad.push(`duplicate address among ${ips.join(',')}`);
  const ports = recs.flatMap((r) => r.ports.map((p) => `${p.protocol}/${p.hostIp}/${p.hostPort}`));
  if (new Set(ports).size !== ports.length) bad.push(`duplicate host port among ${ports.join(',')}`);
  // Reservations: exactly the records' addresses and ports, owned by them.
  const ipRes = walk(path.join(dir, 'ip')).map((f) => [path.basename(f), fs.readFileSync(f, 'utf8')]);
  const wantIp = new Map(recs.flatMap((r) => [[r.ip, `${id12}:${r.id}`], ...(r.ipv6 ? [[r.ipv6, `${id12}:${r.id}`]] : [])] as Array<[string, string]>));
  for (const [ip, owner] of ipRes) if (wantIp.get(ip) !== owner) bad.push(`ip reservation ${ip} (${owner}) explained by no record`);
  if (ipRes.length !== wantIp.size) bad.push(`${ipRes.length} ip reservations for ${wantIp.size} records`);
  const portRes = walk(path.join(STATE, 'ports')).map((f) => [path.relative(path.join(STATE, 'ports'), f), fs.readFileSync(f, 'utf8')]);
  const wantPort = new Map(recs.flatMap((r) => r.ports.map((p) => [`${p.protocol}/${p.hostPort}/${p.hostIp}`, `${id12}:${r.id}`])));
  for (const [p, owner] of portRes) if (owner.startsWith(`${id12}:`) && wantPort.get(p) !== owner) bad.push(`port reservation ${p} (${owner}) explained by no record`);
  for (const [p, owner] of wantPort) if (!portRes.some(([q, o]) => q === p && o === owner)) bad.push(`port ${p} of ${owner} not reserved`);
  // Link registrations (linked/TARGET/LINKER): exactly the live links.
  const linkRes = walk(path.join(dir, 'linked')).map((f) => path.relative(path.join(dir, 'linked'), f)).sort();
  const wantLinks = recs.flatMap((r) => r.links.filter((l) => recs.some((x) => x.id === l.id && x.ip === l.ip)).map((l) => `${l.id}/${r.id}`));
  if (linkRes.join() !== [...new Set(wantLinks)].sort().join()) bad.push(`link registrations ${linkRes.join(',')} vs live links ${wantLinks.join(',')}`);
  // Host veths: exactly the records', on the bridge, up, with the final alias.
  const veths = ipj(['-d', 'link', 'show', 'type', 'veth']).filter((l: any) => /^veth/.test(l.ifname)); // the library's names
  const byName = new Map(veths.map((l: any) => [l.ifname, l]));
  for (const l of veths)
    if (!recs.some((r) => r.hostVeth === l.ifname))
      bad.push(`veth ${l.ifname} (alias '${l.ifalias ?? ''}', group ${l.group}, master ${l.master}, ${l.flags.join(',')}) explained by no record`);
  for (const r of recs) {
    const l: any = byName.get(r.hostVeth);
    if (!l) bad.push(`record ${r.id}: veth ${r.hostVeth} missing`);
    else {
      if (l.master !== bridge) bad.push(`veth ${r.hostVeth} not on ${bridge}`);
      if (!l.flags.includes('UP')) bad.push(`veth ${r.hostVeth} down`);
      if (l.ifalias !== `netmodes:${id12}:${r.id}`) bad.push(`veth ${r.hostVeth} alias ${l.ifalias}`);
    }
  }
  // Container side: eth0 with the record's address exactly where a record says so.
  for (const p of nsPaths) {
    const name = path.basename(p);
    const r = recs.find((x) => x.namespace === p);
    const addrs = ipj(['addr', 'show'], name).filter((a: any) => a.ifname !== 'lo');
    if (!r && addrs.length) bad.push(`namespace ${name} has ${addrs.map((a: any) => a.ifname).join(',')} but no record`);
    if (r) {
      const v4 = addrs.flatMap((a: any) => a.addr_info.filter((i: any) => i.family === 'inet').map((i: any) => i.local));
      if (v4.join() !== r.ip) bad.push(`namespace ${name}: addresses ${v4.join(',')} vs record ${r.ip}`);
      const routes = ipj(['route', 'show', 'default'], name);
      if (routes.length !== 1) bad.push(`namespace ${name}: ${routes.length} default routes`);
      if (r.ipv6) {
        const v6 = addrs.flatMap((a: any) => a.addr_info.filter((i: any) => i.family === 'inet6' && i.scope === 'global').map((i: any) => i.local));
        if (v6.join() !== r.ipv6) bad.push(`namespace ${name}: IPv6 addresses ${v6.join(',')} vs record ${r.ipv6}`);
        const routes6 = ipj(['-6', 'route', 'show', 'default'], name);
        if (routes6.length !== 1) bad.push(`namespace ${name}: ${routes6.length} IPv6 default routes`);
      }
    }
  }
  // Permanent neighbour entries on the bridge: exactly the records' addresses.
  const neigh = ipj(['neigh', 'show', 'dev', bridge, 'nud', 'permanent']).map((n: any) => n.dst).sort();
  if (neigh.join() !== [...ips].sort().join()) bad.push(`permanent neighbours ${neigh.join(',')} vs records ${[...ips].sort().join(',')}`);
  // nftables: every endpoint element belongs to a live record, and every record's are there.
  const els = ourElements().filter(([, c]) => c.startsWith(`${id12}:`) && c !== id12);
  const live = new Set(recs.map((r) => `${id12}:${r.id}`));
  for (const [set, c, t] of els) if (!live.has(c)) bad.push(`element in ${set} of ${c} explained by no record: ${t}`);
  let want = 0;
  for (const r of recs) {
    const mine = els.filter(([, c]) => c === `${id12}:${r.id}`);
    // A link whose target left (or is an earlier endpoint of that id) is over: no elements.
    // A port on all addresses is published for both families on a dual-stack endpoint.
    const portEls = r.ports.reduce((n, p) => n + (r.ipv6 && p.hostIp === '0.0.0.0' ? 2 : 1), 0);
    // A live link: both directions, in links4 and (both ends with IPv6) in links6.
    const linkEls = r.links.filter((l) => recs.some((x) => x.id === l.id && x.ip === l.ip)).reduce((n, l) => n + (l.ipv6 && r.ipv6 ? 4 : 2), 0);
    want += portEls + linkEls + (icc ? 0 : 1);
    for (const p of r.ports)
      if (r.ipv6 && p.hostIp === '0.0.0.0' && !mine.some(([s, , t]) => s === 'inet/pub6any' && t.includes(`${p.hostPort}`) && t.includes(`"${r.ipv6}"`)))
        bad.push(`record ${r.id}: no pub6any element for ${p.hostPort} -> ${r.ipv6}`);
    if (!icc && !mine.some(([s, , t]) => s === 'bridge/noicc' && t.includes(`"${r.hostVeth}"`))) bad.push(`record ${r.id}: no noicc element for ${r.hostVeth}`);
    for (const p of r.ports)
      if (!mine.some(([s, , t]) => s === 'inet/pub4any' && t.includes(`${p.hostPort}`) && t.includes(`"${r.ip}"`)))
        bad.push(`record ${r.id}: no pub4any element for ${p.hostPort} -> ${r.ip}`);
  }
  if (els.length !== want) bad.push(`${els.length} endpoint elements, records explain ${want}`);
  return bad;
}

/** Runs `node -e script args...` to completion (inherits the sandbox); resolves with stdout. */
export function nodeScript(script: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, ['-e', script, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    c.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Starts `node -e script args...` and returns the child (for killing it at a random moment). */
export function startScript(script: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): ChildProcess & { out: () => string; err: () => string; done: Promise<void> } {
  const c = spawn(process.execPath, ['-e', script, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }) as any;
  let stdout = '';
  let stderr = '';
  c.stdout.on('data', (d: Buffer) => (stdout += d));
  c.stderr.on('data', (d: Buffer) => (stderr += d));
  c.out = () => stdout;
  c.err = () => stderr;
  // 'close', not 'exit': by then everything the child wrote has been read (its pipes are closed).
  c.done = new Promise<void>((r) => c.on('close', () => r()));
  return c;
}

/** A fresh process opens the network and reconciles twice; resolves with both reports. */
export async function reconcileFresh(net: string): Promise<{ first: any; second: any }> {
  const script = `
    const nm = require(${JSON.stringify(LIB)});
    (async () => {
      const net = await nm.openBridgeNetwork(process.argv[1]);
      const first = await net.reconcile();
      const second = await net.reconcile();
      console.log(JSON.stringify({ first, second }));
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const r = await nodeScript(script, [net]);
  if (r.code !== 0) throw new Error(`reconcile process failed (${r.code ?? r.signal}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** Kernel objects as `ip -j` and `nft -j` print them, for before/after comparisons. */
export function kernelSnapshot(nsNames: string[] = []): string {
  const host = [ipj(['link']), ipj(['addr']), ipj(['route']), ipj(['neigh', 'show', 'nud', 'permanent'])];
  const nft = sh('nft', ['-j', 'list', 'ruleset']);
  const inner = nsNames.map((n) => [ipj(['addr'], n), ipj(['route'], n)]);
  // Carrier state settles asynchronously (a bridge's first port coming up): not a change we made.
  return JSON.stringify({ host, nft: JSON.parse(nft).nftables.filter((o: any) => !o.metainfo), inner })
    .replace(/"operstate":"[A-Z]+",?/g, '')
    .replace(/"(NO-CARRIER|LOWER_UP|linkdown)",?/g, '')
    // nor is IPv6 duplicate address detection finishing on an address of a test peer
    .replace(/"tentative":true,/g, '');
}

/** Open fds of a process. */
export function fdCount(pid: number | string = 'self'): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

export const FAULT_POINTS = [
  'connect:after-reserve',
  'connect:after-record',
  'connect:after-elements',
  'connect:after-veth',
  'connect:after-routes',
  'disconnect:after-elements',
  'disconnect:after-detach',
  'disconnect:after-release',
];

/**
 * The churning child: two workers on disjoint halves of the namespaces; each op disconnects the
 * namespace's endpoint or connects it with a published port and, half the time, a link. After
 * FAULT_AFTER operations it arms NETMODES_FAULT=FAULT_POINT. Prints one '.' per operation.
 */
export const CHURN_JS = `
const nm = require(${JSON.stringify(LIB)});
const [netName, nsJson, port0, nports] = process.argv.slice(1);
const nss = JSON.parse(nsJson);
const faultAfter = Number(process.env.FAULT_AFTER ?? -1);
const OK = new Set(['EPORTINUSE', 'ENOLINK']);
let ops = 0;
(async () => {
  const net = await nm.openBridgeNetwork(netName);
  const worker = async (mine) => {
    for (let i = 0; i < 100000; i++) {
      if (ops === faultAfter) process.env.NETMODES_FAULT = process.env.FAULT_POINT;
      const ns = mine[Math.floor(Math.random() * mine.length)];
      const eps = await net.endpoints();
      const ep = eps.find((e) => e.namespace === ns);
      try {
        if (ep) await net.disconnect(ep.id);
        else {
          const others = eps.filter((e) => e.namespace !== ns);
          const links = others.length && Math.random() < 0.5 ? [{ endpoint: others[Math.floor(Math.random() * others.length)].id, alias: 'peer' }] : [];
          await net.connect(ns, { ports: [(Number(port0) + Math.floor(Math.random() * Number(nports))) + ':80'], links });
        }
      } catch (e) {
        if (!OK.has(e.code)) { console.error('UNEXPECTED', e); process.exit(1); }
      }
      ops++;
      process.stdout.write('.');
    }
  };
  await Promise.all([nss.filter((_, i) => i % 2 === 0), nss.filter((_, i) => i % 2 === 1)].map(worker));
})().catch((e) => { console.error('UNEXPECTED', e); process.exit(1); });`;

