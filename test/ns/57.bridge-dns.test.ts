/**
 * The embedded DNS server (lib/dns/): names of a network's containers from its containers only,
 * everything else forwarded to a fake upstream in a namespace of its own (198.18.0.0/15), the
 * server's life across kills and the creator's exit, and malformed packets.
 * All queries are real traffic from container namespaces (test/helpers/dns/query.ts run there).
 */
import { strict as assert } from 'node:assert';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import * as dgram from 'node:dgram';
import {
  createBridgeNetwork,
  createNamespace,
  openBridgeNetwork,
  listBridgeNetworks,
  createSandbox,
  dnsServerRunning,
  dnsServerStatus,
  stopDnsServer,
  ConfigError,
  NetmodesError,
  BridgeNetwork,
  Namespace,
} from '../../lib';
import { sandboxed, uniq, sh, tryRun } from '../helpers/kernel';
import { dnsLockFile } from '../../lib/dns/paths';
import { makeOutside, Outside } from '../helpers/topology';
import { cli, runIn } from '../helpers/sandbox';

const QUERY_JS = path.join(__dirname, '..', 'helpers', 'dns', 'query.js');
const UPSTREAM_JS = path.join(__dirname, '..', 'helpers', 'dns', 'upstream.js');
const LIB = path.join(__dirname, '..', '..', 'lib', 'index.js');

interface Answer {
  rcode?: string;
  tc?: boolean;
  aa?: boolean;
  answers?: { type: string; data: string }[];
  timeout?: boolean;
}
interface Q {
  name?: string;
  type?: string;
  proto?: 'udp' | 'tcp';
  raw?: string;
  edns?: number;
}

/** Sends queries from inside namespace NS to SERVER:53 (one node process for all of them). */
function query(ns: string, server: string, queries: Q[], timeout = 2000): Answer[] {
  const out = sh('ip', ['netns', 'exec', ns, process.execPath, QUERY_JS, '-'], { timeout: 60000, input: JSON.stringify({ server, timeout, queries }) });
  return JSON.parse(out);
}
function q1(ns: string, server: string, q: Q, timeout = 2000): Answer {
  return query(ns, server, [q], timeout)[0];
}
const addrs = (a: Answer) => (a.answers ?? []).map((x) => x.data).sort();

class Upstream {
  lines: string[] = [];
  private constructor(readonly child: ChildProcess, readonly out: Outside) {}
  static async start(): Promise<Upstream> {
    const out = makeOutside();
    const child = spawn('ip', ['netns', 'exec', out.ns, process.execPath, UPSTREAM_JS, out.addr], { stdio: ['ignore', 'pipe', 'inherit'] });
    const up = new Upstream(child, out);
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      const t = setTimeout(() => reject(new Error('upstream did not start')), 10000);
      child.stdout!.on('data', (d) => {
        buf += d;
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const l of lines) {
          if (l === 'ready') {
            clearTimeout(t);
            resolve();
          } else up.lines.push(l);
        }
      });
      child.once('exit', (c) => reject(new Error(`upstream exited ${c}`)));
    });
    return up;
  }
  get addr(): string {
    return this.out.addr;
  }
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const gone = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGKILL');
      await gone;
    }
    this.out.remove();
  }
}

/** Pids of running DNS server processes of this sandbox (there must be one at most). */
function serverPids(): number[] {
  const out: number[] = [];
  const own = fs.statSync('/proc/self/ns/net').ino; // other sandboxes' servers are theirs
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('dns/server.js') && fs.statSync(`/proc/${p}/ns/net`).ino === own) out.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return out;
}

async function waitFor(what: string, fn: () => boolean | Promise<boolean>, ms = 3000): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await fn()) return Date.now() - t0;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('57 bridge mode: embedded DNS', function () {
  this.timeout(120000);
  before(sandboxed);

  let up: Upstream;
  const nets: BridgeNetwork[] = [];
  const nss: Namespace[] = [];
  beforeEach(async () => {
    up = await Upstream.start();
  });
  afterEach(async () => {
    for (const n of nets.splice(0)) await n.remove({ force: true }).catch(() => undefined);
    for (const n of nss.splice(0)) await n.delete().catch(() => undefined);
    await stopDnsServer();
    await up.stop();
    assert.deepEqual(serverPids(), [], 'no DNS server survives a test');
  });
  async function net(name: string, opts: Record<string, unknown> = {}): Promise<BridgeNetwork> {
    const n = await createBridgeNetwork({ name, embeddedDns: true, ...opts });
    nets.push(n);
    return n;
  }
  async function ns(): Promise<Namespace> {
    const n = await createNamespace(uniq('d'));
    nss.push(n);
    return n;
  }

  it('answers the names of its containers: id, host name, aliases; any case, trailing dot or not; PTR; the rest forwarded', async () => {
    const n = await net('dns1', { subnet: '10.57.1.0/24' });
    const [a, b] = [await ns(), await ns()];
    const db = await n.connect(a, { id: 'db-1', hostname: 'dbhost', aliases: ['database', 'Store'], dns: { servers: [up.addr], search: ['corp.test'], options: ['ndots:1'] } });
    const app = await n.connect(b, { id: 'app', dns: { servers: [up.addr] } });
    // resolv.conf names the embedded server (the gateway), search and options are kept; the
    // upstream went into the record, not into the file.
    assert.equal(db.resolvConf, `search corp.test\nnameserver ${n.gateway}\noptions ndots:1\n`);
    assert.deepEqual((db as unknown as { dnsUpstreams: string[] }).dnsUpstreams, [up.addr]);
    assert.match(db.hosts, /10\.57\.1\.\d+\tdbhost database Store\n$/);
    // Without dns.servers the host's nameservers become the upstreams (read here, never asked:
    // this endpoint sends no query in this test).
    const c = await n.connect(await ns(), { id: 'quiet' });
    const { upstreamsFor } = require('../../lib/dns/control');
    assert.deepEqual((c as unknown as { dnsUpstreams: string[] }).dnsUpstreams, upstreamsFor(fs.readFileSync('/etc/resolv.conf', 'utf8'), undefined));
    assert.deepEqual(c.resolvConf.match(/^nameserver .*$/gm), [`nameserver ${n.gateway}`]);
    const r = query(b.name!, n.gateway, [
      { name: 'db-1' },
      { name: 'dbhost' },
      { name: 'database' },
      { name: 'DataBase.' },
      { name: 'store' },
      { name: 'db-1', proto: 'tcp' },
      { name: 'app' },
      { name: 'db-1', type: 'AAAA' },
      { name: db.ip.split('.').reverse().join('.') + '.in-addr.arpa', type: 'PTR' },
      { name: 'example.test' },
      { name: 'nx.test' },
      { name: 'fail.test' },
      { name: 'example.test', proto: 'tcp' },
    ]);
    for (const i of [0, 1, 2, 3, 4, 5]) {
      assert.equal(r[i].rcode, 'NOERROR', JSON.stringify(r[i]));
      assert.ok(r[i].aa, 'authoritative');
      assert.deepEqual(addrs(r[i]), [db.ip], `query ${i}`);
    }
    assert.deepEqual(addrs(r[6]), [app.ip]);
    assert.equal(r[7].rcode, 'NOERROR', 'AAAA of a container on an IPv4 network: no data, not forwarded');
    assert.deepEqual(r[7].answers, []);
    assert.deepEqual(addrs(r[8]), ['Store', 'database', 'db-1', 'dbhost'].sort());
    assert.deepEqual(addrs(r[9]), ['198.18.200.1'], 'forwarded, answer relayed');
    assert.equal(r[10].rcode, 'NXDOMAIN');
    assert.equal(r[11].rcode, 'SERVFAIL');
    assert.deepEqual(addrs(r[12]), ['198.18.200.1'], 'forwarded over TCP');
    // The container names never reached the upstream; the other names did, over the protocol asked.
    await waitFor('the upstream log', () => up.lines.includes('Q tcp example.test A'));
    assert.ok(!up.lines.some((l) => /db-1|dbhost|database|store|app|in-addr/.test(l)), up.lines.join('\n'));
    assert.ok(up.lines.includes('Q udp example.test A') && up.lines.includes('Q tcp example.test A'));
  });

  it('relays truncation (and the TCP retry gets the whole answer), times out when no upstream answers', async () => {
    const n = await net('dns2', { subnet: '10.57.2.0/24' });
    const a = await ns();
    await n.connect(a, { id: 'c1', dns: { servers: [up.addr] } });
    const [udp, tcp] = query(a.name!, n.gateway, [{ name: 'big.test' }, { name: 'big.test', proto: 'tcp' }]);
    assert.ok(udp.tc, 'TC relayed over UDP');
    assert.equal(tcp.tc, false);
    assert.equal(tcp.answers!.length, 40);
    const t0 = Date.now();
    assert.deepEqual(q1(a.name!, n.gateway, { name: 'slow.test' }, 5000), { timeout: true });
    assert.ok(Date.now() - t0 >= 1000);
    // glibc's resolver in the container, through the resolv.conf the endpoint got.
    const sb = await createSandbox({ name: uniq('s'), network: n, dns: { servers: [up.addr] } });
    try {
      const r = await runIn(sb, 'getent', ['ahostsv4', 'c1']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^10\.57\.2\.\d+\s/);
      assert.equal(sb.resolvConf.match(/^nameserver .*$/gm)!.join(), `nameserver ${n.gateway}`);
    } finally {
      await sb.remove();
    }
  });

  it('caps its TCP connections (256 at a time) and still answers over UDP and TCP when they are used up and released', async () => {
    const n = await net('dnscap', { subnet: '10.57.9.0/24' });
    const a = await ns();
    await n.connect(a, { id: 'capper', dns: { servers: [up.addr] } });
    // 300 idle connections from the container: the server keeps at most 256 of them open.
    const HOLD = `const net=require('net');const socks=[];let open=0,closed=0;
      for(let i=0;i<300;i++){const c=net.connect(53,process.argv[1]);c.on('connect',()=>open++);c.on('close',()=>closed++);c.on('error',()=>{});socks.push(c);}
      setTimeout(()=>{console.log(JSON.stringify({open,closed,alive:socks.filter((c)=>!c.destroyed).length}));
        process.exit(0)},1500);`;
    const r = spawnSync('ip', ['netns', 'exec', a.name!, process.execPath, '-e', HOLD, n.gateway], { encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 0, r.stderr);
    const held = JSON.parse(r.stdout);
    assert.ok(held.alive <= 256 && held.alive >= 200, JSON.stringify(held));
    assert.ok(held.closed >= 300 - 256, JSON.stringify(held));
    // Released with the holding process: both transports answer again.
    const [u, t] = query(a.name!, n.gateway, [{ name: 'capper' }, { name: 'capper', proto: 'tcp' }]);
    assert.equal(u.answers!.length, 1);
    assert.equal(t.answers!.length, 1);
  });

  it('names of other networks are never answered, queries from outside the subnets are dropped, it listens on gateways only', async () => {
    const n1 = await net('dnsa', { subnet: '10.57.3.0/24' });
    const n2 = await net('dnsb', { subnet: '10.57.4.0/24' });
    const [a, b] = [await ns(), await ns()];
    const ea = await n1.connect(a, { id: 'alpha', dns: { servers: [up.addr] } });
    await n2.connect(b, { id: 'beta', dns: { servers: [up.addr] } });
    assert.deepEqual(addrs(q1(a.name!, n1.gateway, { name: 'alpha' })), [ea.ip]);
    const other = q1(b.name!, n2.gateway, { name: 'alpha' });
    assert.equal(other.rcode, 'NXDOMAIN', "another network's name");
    assert.deepEqual(other.answers, []);
    assert.equal(q1(b.name!, n2.gateway, { name: 'ALPHA.', proto: 'tcp' }).rcode, 'NXDOMAIN');
    assert.equal(q1(b.name!, n2.gateway, { name: ea.ip.split('.').reverse().join('.') + '.in-addr.arpa', type: 'PTR' }).rcode, 'NXDOMAIN');
    // ... answered here, not by the upstream: it never hears another network's names.
    assert.equal(q1(b.name!, n2.gateway, { name: 'nx.test' }).rcode, 'NXDOMAIN');
    await waitFor('the upstream log', () => up.lines.includes('Q udp nx.test A'));
    assert.ok(!up.lines.some((l) => /alpha|in-addr/.test(l)), up.lines.join('\n'));
    // b asks a's network's server (routed through the host): dropped, its source is not of that network.
    assert.deepEqual(q1(b.name!, n1.gateway, { name: 'alpha' }, 800), { timeout: true });
    assert.deepEqual(q1(b.name!, n1.gateway, { name: 'alpha', proto: 'tcp' }, 800), { timeout: true });
    // From the outside host (198.18/15) and from the host itself: dropped.
    assert.deepEqual(q1(up.out.ns, n1.gateway, { name: 'alpha' }, 800), { timeout: true });
    const s = dgram.createSocket('udp4');
    const got = await new Promise<boolean>((resolve) => {
      s.on('message', () => resolve(true));
      s.send(Buffer.from('00010100000100000000000005616c7068610000010001', 'hex'), 53, n1.gateway);
      setTimeout(() => resolve(false), 800);
    });
    s.close();
    assert.equal(got, false, 'the host is not an endpoint: no answer');
    // Sockets on port 53: exactly the two gateways, UDP and TCP, never a wildcard address.
    const udp = sh('ss', ['-Hlnu', 'sport = :53']).trim().split('\n').map((l) => l.split(/\s+/)[3]).sort();
    const tcp = sh('ss', ['-Hlnt', 'sport = :53']).trim().split('\n').map((l) => l.split(/\s+/)[3]).sort();
    assert.deepEqual(udp, [`${n1.gateway}:53`, `${n2.gateway}:53`]);
    assert.deepEqual(tcp, [`${n1.gateway}:53`, `${n2.gateway}:53`]);
    assert.equal(serverPids().length, 1, 'one server for every network');
  });

  it('follows connects and disconnects within a second, with no process or link per container', async () => {
    const n = await net('dns3', { subnet: '10.57.5.0/24' });
    const [a, b, c] = [await ns(), await ns(), await ns()];
    await n.connect(a, { id: 'asker', dns: { servers: [up.addr] } });
    const pids = serverPids();
    const links = sh('ip', ['-o', 'link']).split('\n').length;
    const eb = await n.connect(b, { id: 'late', aliases: ['web'], dns: { servers: [up.addr] } });
    // Right after the connect: found (an unknown name makes the server look at the store at once).
    assert.deepEqual(addrs(q1(a.name!, n.gateway, { name: 'web' })), [eb.ip]);
    // A container asking right after its own connect is answered too.
    await n.connect(c, { id: 'third', dns: { servers: [up.addr] } });
    assert.deepEqual(addrs(q1(c.name!, n.gateway, { name: 'late' })), [eb.ip]);
    assert.deepEqual(serverPids(), pids, 'no process per container');
    assert.equal(sh('ip', ['-o', 'link']).split('\n').length, links + 2, 'two veths, nothing else');
    await n.disconnect(eb);
    const t0 = Date.now();
    // (each try is a node process in the namespace: ~50 ms of the figure is the client's start)
    await waitFor('the name to go', () => q1(a.name!, n.gateway, { name: 'web' }).rcode === 'NXDOMAIN', 1500);
    const ms = Date.now() - t0;
    assert.ok(ms < 1500, `took ${ms} ms`);
    console.log(`      (the disconnected name was gone after ${ms} ms)`);
    // The same id back with another address: the new one, not a stale record.
    const again = await n.connect(b, { id: 'late', ip: '10.57.5.200', dns: { servers: [up.addr] } });
    assert.deepEqual(addrs(q1(a.name!, n.gateway, { name: 'late' })), ['10.57.5.200']);
    assert.equal(again.ip, '10.57.5.200');
    const st = await dnsServerStatus();
    assert.equal(st?.networks.dns3.endpoints, 3);
  });

  it('IPv6 networks: AAAA and ip6.arpa PTR, over the IPv6 gateway too', async () => {
    const n = await net('dns6', { subnet: '10.57.6.0/24', ipv6: { subnet: 'fd57:6::/64' } });
    const [a, b] = [await ns(), await ns()];
    const ea = await n.connect(a, { id: 'six', dns: { servers: [up.addr] } });
    await n.connect(b, { id: 'asker6', dns: { servers: [up.addr] } });
    const r = query(b.name!, n.gateway, [{ name: 'six', type: 'AAAA' }, { name: 'six', type: 'A' }]);
    assert.deepEqual(addrs(r[0]), [ea.ipv6]);
    assert.deepEqual(addrs(r[1]), [ea.ip]);
    const r6 = query(b.name!, n.ipv6!.gateway, [{ name: 'six', type: 'AAAA' }, { name: 'six', type: 'AAAA', proto: 'tcp' }]);
    assert.deepEqual(addrs(r6[0]), [ea.ipv6]);
    assert.deepEqual(addrs(r6[1]), [ea.ipv6]);
    const { reverseName } = require('../../lib/dns/zone');
    assert.deepEqual(addrs(q1(b.name!, n.gateway, { name: reverseName(ea.ipv6), type: 'PTR' })), ['six']);
  });

  it('after SIGKILL the next connect or reconcile() brings the server back; remove() of the last network stops it', async () => {
    const n1 = await net('dnsk1', { subnet: '10.57.7.0/24' });
    const n2 = await net('dnsk2', { subnet: '10.57.8.0/24' });
    const [a, b] = [await ns(), await ns()];
    const ea = await n1.connect(a, { id: 'one', dns: { servers: [up.addr] } });
    let [pid] = serverPids();
    process.kill(pid, 'SIGKILL');
    await waitFor('the server to die', async () => !(await dnsServerRunning()));
    assert.deepEqual(q1(a.name!, n1.gateway, { name: 'one' }, 500), { timeout: true });
    await n1.connect(b, { id: 'two', dns: { servers: [up.addr] } });
    assert.ok(await dnsServerRunning(), 'the connect restarted it');
    assert.deepEqual(addrs(q1(b.name!, n1.gateway, { name: 'one' })), [ea.ip]);
    [pid] = serverPids();
    process.kill(pid, 'SIGKILL');
    await waitFor('the server to die', async () => !(await dnsServerRunning()));
    const rep = await n1.reconcile();
    assert.ok(rep.repaired.includes('dns server'), JSON.stringify(rep));
    assert.deepEqual(addrs(q1(b.name!, n1.gateway, { name: 'one' })), [ea.ip]);
    // A reconcile with the server alive leaves it alone.
    [pid] = serverPids();
    assert.ok(!(await n1.reconcile()).repaired.includes('dns server'));
    assert.deepEqual(serverPids(), [pid]);
    // The bridge deleted from outside and rebuilt by reconcile(): the same server answers again.
    sh('ip', ['link', 'del', n1.bridge]);
    const rep2 = await n1.reconcile();
    assert.ok(rep2.repaired.some((x) => x.startsWith('bridge')), JSON.stringify(rep2));
    const eb = await n1.connect(await ns(), { id: 'again', dns: { servers: [up.addr] } });
    assert.deepEqual(addrs(q1(a.name!, n1.gateway, { name: 'again' })), [eb.ip]);
    assert.deepEqual(addrs(q1(a.name!, n1.gateway, { name: 'again', proto: 'tcp' })), [eb.ip]);
    assert.deepEqual(serverPids(), [pid]);
    await n1.remove({ force: true });
    assert.deepEqual(serverPids(), [pid], 'another network still uses it');
    await waitFor('the removed network to go', async () => !(await dnsServerStatus())?.networks.dnsk1);
    await n2.remove();
    assert.equal(await dnsServerRunning(), false, 'the last remove stopped it');
    assert.deepEqual(serverPids(), []);
  });

  it("a connect refused after its claims keeps no hold on the server's lock: a dead server comes back with the next connect", async () => {
    const n = await net('dnsl', { subnet: '10.57.9.0/24' });
    try {
      const [a, b, c] = [await ns(), await ns(), await ns()];
      await n.connect(a, { id: 'first', dns: { servers: [up.addr] } });
      const [pid] = serverPids();
      process.kill(pid, 'SIGKILL');
      await waitFor('the server to die', async () => !(await dnsServerRunning()));
      // The same id again: refused after the claims' trip (which probed the server's lock and won it).
      await assert.rejects(n.connect(b, { id: 'first' }), (e: any) => e.code === 'EENDPOINTEXISTS');
      const lockFds = fs.readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return fs.readlinkSync(`/proc/self/fd/${fd}`) === dnsLockFile();
        } catch {
          return false;
        }
      });
      assert.deepEqual(lockFds, [], 'no fd of this process holds the DNS lock');
      const ec = await n.connect(c, { id: 'second', dns: { servers: [up.addr] } });
      assert.ok(await dnsServerRunning(), 'the next connect started it');
      assert.deepEqual(addrs(q1(c.name!, n.gateway, { name: 'second' })), [ec.ip]);
    } finally {
      await n.remove({ force: true });
    }
  });

  it("outlives the process that created the network; a later process's remove() stops it", async () => {
    const a = await ns();
    const script = `
      const nm = require(${JSON.stringify(LIB)});
      (async () => {
        const n = await nm.createBridgeNetwork({ name: 'dnsx', subnet: '10.57.9.0/24', embeddedDns: true });
        await n.connect(${JSON.stringify(a.path)}, { id: 'orphan', dns: { servers: [${JSON.stringify(up.addr)}] } });
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(serverPids().length, 1);
    const n = await openBridgeNetwork('dnsx');
    nets.push(n);
    const ep = (await n.endpoints())[0];
    assert.deepEqual(addrs(q1(a.name!, n.gateway, { name: 'orphan' })), [ep.ip]);
    await n.remove({ force: true });
    assert.deepEqual(serverPids(), []);
  });

  it('netmodes network create turns it on (--no-dns off, never for the network bridge); run --network-alias', async () => {
    const name = uniq('n');
    let r = await cli(['network', 'create', '--subnet', '10.57.10.0/24', name]);
    assert.equal(r.code, 0, r.stderr);
    const off = uniq('n');
    assert.equal((await cli(['network', 'create', '--no-dns', '--subnet', '10.57.11.0/24', off])).code, 0);
    assert.equal((await cli(['network', 'create', '--subnet', '10.57.12.0/24', 'bridge'])).code, 0);
    try {
      const ls = await listBridgeNetworks();
      assert.deepEqual(ls.map((x) => [x.name, x.embeddedDns]).sort(), [[name, true], [off, false], ['bridge', false]].sort());
      const srv = uniq('s');
      r = await cli(['run', '--net', name, '--name', srv, '--network-alias', 'web', '--dns', up.addr, 'true']);
      assert.equal(r.code, 0, r.stderr);
      r = await cli(['run', '--net', name, '--rm', '--dns', up.addr, 'getent', 'ahostsv4', 'web']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^10\.57\.10\.\d+\s/);
      assert.equal((await cli(['rm', srv])).code, 0);
    } finally {
      for (const x of [name, off, 'bridge']) await cli(['network', 'rm', '--force', x]);
    }
    assert.deepEqual(serverPids(), []);
  });

  it('bad input: ConfigError embeddedDns / aliases; EDNSSTART when port 53 is taken', async () => {
    await assert.rejects(createBridgeNetwork({ name: 'bad', embeddedDns: 'yes' as unknown as boolean }), (e: ConfigError) => e instanceof ConfigError && e.field === 'embeddedDns');
    const n = await net('dnsbad', { subnet: '10.57.13.0/24' });
    const a = await ns();
    await assert.rejects(n.connect(a, { aliases: ['bad name'] }), (e: ConfigError) => e.field === 'aliases[0]' && e.code === 'EINVAL');
    await assert.rejects(n.connect(a, { aliases: 'web' as unknown as string[] }), (e: ConfigError) => e.field === 'aliases');
    await assert.rejects(createSandbox({ name: uniq('s'), network: 'none', aliases: ['web'] }), (e: ConfigError) => e.field === 'aliases');
    await n.remove();
    nets.length = 0;
    await waitFor('the server to stop', async () => !(await dnsServerRunning()));
    // Port 53 held on every address by another program: the server cannot listen; the network is not made.
    const hog = dgram.createSocket('udp4');
    await new Promise<void>((r) => hog.bind(53, '0.0.0.0', () => r()));
    try {
      await assert.rejects(createBridgeNetwork({ name: 'dnshog', subnet: '10.57.14.0/24', embeddedDns: true }), (e: NetmodesError) => e.code === 'EDNSSTART' && /EADDRINUSE/.test(e.message));
      assert.deepEqual((await listBridgeNetworks()).map((x) => x.name), []);
      assert.equal(sh('ip', ['-o', 'link', 'show', 'type', 'bridge']).trim(), '');
    } finally {
      hog.close();
    }
    assert.equal(await dnsServerRunning(), false);
  });

  it('stopDnsServer(): false when none runs; EDNSSTOP when the lock is held by a process the pid file does not name, which gets no signal', async () => {
    assert.equal(await stopDnsServer(), false);
    const { dnsLockFile, dnsPidFile } = require('../../lib/dns/paths');
    const STORE = path.join(__dirname, '..', '..', 'lib', 'state', 'store.js');
    // A holder of the server's lock that the pid file does not name (as if the server's fd had
    // been passed on): signals to the named process cannot free the lock.
    const holder = spawn(process.execPath, ['-e', `require(${JSON.stringify(STORE)}).batch([{ op: 'lock', file: ${JSON.stringify(dnsLockFile())}, exclusive: true }])
      .then((r) => { console.log(typeof r[0] === 'number' ? 'held' : 'busy'); setInterval(() => {}, 1e6); })`], { stdio: ['ignore', 'pipe', 'inherit'] });
    const decoy = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const said = await new Promise<string>((r) => holder.stdout!.once('data', (d) => r(String(d).trim())));
      assert.equal(said, 'held');
      assert.equal(await dnsServerRunning(), true, 'the lock is what "running" means');
      fs.writeFileSync(dnsPidFile(), String(decoy.pid));
      await assert.rejects(stopDnsServer(), (e: NetmodesError) => e.code === 'EDNSSTOP');
      // The pid file names a process that is no DNS server (a pid taken over): it got no signal.
      assert.equal(decoy.exitCode, null);
      assert.equal(decoy.signalCode, null);
    } finally {
      holder.kill('SIGKILL');
      decoy.kill('SIGKILL');
      fs.rmSync(dnsPidFile(), { force: true });
    }
    await waitFor('the lock to be free', async () => !(await dnsServerRunning()));
  });

  it('survives a fuzz of malformed and hostile packets (FORMERR or dropped), over UDP and TCP', async () => {
    const n = await net('dnsf', { subnet: '10.57.15.0/24' });
    const a = await ns();
    const ep = await n.connect(a, { id: 'victim', dns: { servers: [up.addr] } });
    const [pid] = serverPids();
    const dnsPacket = require('dns-packet');
    const good: Buffer = dnsPacket.encode({ type: 'query', id: 7, flags: 0x100, questions: [{ type: 'A', name: 'victim' }] });
    const hex = (b: Buffer) => b.toString('hex');
    const fixed: Q[] = [
      { raw: hex(Buffer.from([1, 2, 3])) }, // no header: dropped
      { raw: hex(Buffer.concat([good.subarray(0, 4), Buffer.from([0, 2]), good.subarray(6)])) }, // qdcount 2
      { raw: hex(good.subarray(0, good.length - 3)) }, // question cut short
      { raw: hex(Buffer.concat([good.subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])])) }, // compression loop
      { raw: hex(Buffer.concat([good.subarray(0, 2), Buffer.from([0x28, 0]), good.subarray(4)])) }, // opcode UPDATE
      { raw: hex(Buffer.concat([good.subarray(0, 2), Buffer.from([0x81, 0x80]), good.subarray(4)])) }, // a response
    ];
    const fr = query(a.name!, n.gateway, fixed, 500);
    assert.deepEqual(fr[0], { timeout: true });
    assert.equal(fr[1].rcode, 'FORMERR');
    assert.equal(fr[2].rcode, 'FORMERR');
    assert.equal(fr[3].rcode, 'FORMERR');
    assert.equal(fr[4].rcode, 'NOTIMP');
    assert.deepEqual(fr[5], { timeout: true }, 'answers are never answered');
    // Random packets and random mutations of a valid query.
    const fuzz: Q[] = [];
    for (let i = 0; i < 400; i++) {
      let b: Buffer;
      if (i % 2) b = randomBytes(1 + Math.floor(Math.random() * 600));
      else {
        b = Buffer.from(good);
        for (let k = 0; k < 1 + (i % 5); k++) b[Math.floor(Math.random() * b.length)] = Math.floor(Math.random() * 256);
      }
      fuzz.push({ raw: hex(b), proto: i % 10 === 0 ? 'tcp' : 'udp' });
    }
    const res = query(a.name!, n.gateway, fuzz, 60);
    assert.equal(res.length, fuzz.length);
    assert.deepEqual(serverPids(), [pid], 'still the same process');
    assert.deepEqual(addrs(q1(a.name!, n.gateway, { name: 'victim' })), [ep.ip], 'still answering');
    assert.deepEqual(addrs(q1(a.name!, n.gateway, { name: 'victim', proto: 'tcp' })), [ep.ip]);
    // A TCP peer that sends a length and never the message, or garbage framing, is cut off.
    const t = tryRun('ip', ['netns', 'exec', a.name!, process.execPath, '-e', `
      const c=require('net').connect(53, ${JSON.stringify(n.gateway)});
      c.on('connect',()=>c.write(Buffer.from([0,5,1,2,3,4,5])));c.on('close',()=>{console.log('closed');process.exit(0)});
      setTimeout(()=>{console.log('open');process.exit(0)},3000);`]);
    assert.equal(t.stdout.trim(), 'closed');
    assert.deepEqual(serverPids(), [pid]);
  });
});
