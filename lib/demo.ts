/**
 * `netmodes demo`: the seed article ("Docker网络模式介绍") as a live, narrated walk-through.
 *
 * Everything happens inside a throwaway sandbox: the demo re-executes itself under
 * `unshare --net --mount`, so the sandbox's own namespace plays the article's host
 * (10.10.101.105 in the article; 198.18.0.1 here) and an "outside" namespace plays the machine
 * that talks to it (198.18.0.2). Every claim is proven with live traffic and the check is counted;
 * the demo exits non-zero if any check failed.
 */
import * as path from 'node:path';
import { ChildProcess } from 'node:child_process';
import * as nm from './index';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const sandbox = require(path.join(__dirname, '..', '..', 'scripts', 'sandbox.js'));

const color = process.stdout.isTTY;
const bold = (s: string) => (color ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string) => (color ? `\x1b[2m${s}\x1b[0m` : s);
const green = (s: string) => (color ? `\x1b[32m${s}\x1b[0m` : s);
const red = (s: string) => (color ? `\x1b[31m${s}\x1b[0m` : s);

let passed = 0;
let failed = 0;
function check(ok: boolean, what: string, detail = ''): void {
  if (ok) passed++;
  else failed++;
  console.log(`  ${ok ? green('✔ PASS') : red('✘ FAIL')} ${what}${detail ? dim(`  (${detail})`) : ''}`);
}
function say(title: string, quote?: string): void {
  console.log(`\n${bold(title)}`);
  if (quote) console.log(dim(`  「${quote}」`));
}

const SERVER = `require('http').createServer((q,s)=>s.end('hello from '+process.argv[1]+', you are '+q.socket.remoteAddress.replace('::ffff:','')+'\\n')).listen(+process.argv[2],()=>console.log('up'))`;
const CLIENT = `require('http').get({host:process.argv[1],port:+process.argv[2],timeout:1500},r=>{let d='';r.on('data',c=>d+=c);r.on('end',()=>{process.stdout.write(d.trim());process.exit(0)})}).on('error',e=>{process.stdout.write('ERR '+e.code);process.exit(1)}).on('timeout',function(){process.stdout.write('TIMEOUT');this.destroy();process.exit(1)})`;

async function serve(sb: nm.Sandbox, name: string, port: number): Promise<ChildProcess> {
  const child = sb.spawn(process.execPath, ['-e', SERVER, name, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`server ${name} exited ${c}`)));
  });
  return child;
}

function fetchFrom(sb: nm.Sandbox, host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const child = sb.spawn(process.execPath, ['-e', CLIENT, host, String(port)], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.on('exit', () => resolve(out.trim()));
  });
}

async function showTopology(net: nm.BridgeNetwork): Promise<void> {
  const links = await nm.linkList();
  const br = links.find((l) => l.name === net.bridge)!;
  const ports = links.filter((l) => l.master === br.index);
  console.log(dim(`  bridge name     bridge id          STP enabled     interfaces   (brctl show)`));
  console.log(`  ${net.bridge.padEnd(15)} 8000.${(br.mac ?? '').replace(/:/g, '')}  no              ${ports.map((p) => p.name).join('\n' + ' '.repeat(53))}`);
  for (const a of await nm.addrList(undefined, { link: net.bridge })) console.log(`  ${net.bridge}: inet ${a.address}/${a.prefix}`);
}

/** The parts of our ruleset that answer the article's two iptables lines. */
async function showRules(): Promise<void> {
  const text = await nm.nftRulesetText(undefined, { family: 'inet', table: 'netmodes' });
  const want = /^\s*(map pub4any|chain prerouting|chain postrouting) \{/;
  let depth = 0;
  let show = false;
  console.log('  table inet netmodes {');
  for (const line of text.split('\n')) {
    if (depth === 1 && want.test(line)) show = true;
    if (show && line.trim() && !/pub6|ip6/.test(line)) console.log(`  ${line.replace(/\t/g, '  ')}`);
    depth += (line.match(/\{/g) ?? []).length - (line.match(/\}/g) ?? []).length;
    if (depth <= 1) show = false;
  }
  console.log('  }');
}

export async function runDemo(): Promise<number> {
  if (!sandbox.inSandbox()) return sandbox.enterSandbox(path.join(__dirname, 'cli', 'main.js'), ['demo']);
  await nm.linkSet('lo', { up: true });
  const cleanup: Array<() => Promise<unknown>> = [];
  const servers: ChildProcess[] = [];
  try {
    say('0. The stage', '单机环境下的网络拓扑如下，主机地址为10.10.101.105/24');
    console.log('  This sandbox is the Docker host (198.18.0.1, standing in for 10.10.101.105); a second namespace');
    console.log('  "outside" (198.18.0.2) is another machine on its network.');
    const outside = await nm.createSandbox({ name: 'outside', network: 'none' });
    cleanup.push(() => outside.remove());
    const outNs = await nm.openNamespace(outside.namespacePath);
    await nm.linkAdd({ name: 'eth0', kind: 'veth', up: true, peer: { name: 'eth0', ns: outNs, up: true } });
    await nm.addrAdd('eth0', '198.18.0.1/24');
    await nm.addrAdd('eth0', '198.18.0.2/24', {}, outNs);
    outNs.close();
    cleanup.push(() => nm.linkDel('eth0').catch(() => undefined));

    say('1. docker0', '当Docker server启动时，会在主机上创建一个名为docker0的虚拟网桥 … 172.17.0.0/16 … 172.17.42.1/16分配给docker0网桥');
    const net = await nm.createBridgeNetwork({ name: 'bridge', bridge: 'docker0', subnet: '172.17.0.0/16', gateway: '172.17.42.1' });
    cleanup.push(() => net.remove({ force: true }));
    const [br] = (await nm.linkList()).filter((l) => l.name === 'docker0');
    check(!!br && br.kind === 'bridge' && br.up, 'docker0 is a bridge and it is up');
    const braddr = await nm.addrList(undefined, { link: 'docker0' });
    check(braddr.some((a) => a.address === '172.17.42.1' && a.prefix === 16), 'docker0 has 172.17.42.1/16');

    say('2. docker run -d --name web -p 80:80', 'Docker将veth pair设备的一端放在新创建的容器中，并命名为eth0。另一端放在主机中，以veth65f9这样类似的名字命名，并将这个网络设备加入到docker0网桥中');
    const web = await nm.createSandbox({ name: 'web', network: net, ports: ['80:80'] });
    cleanup.push(() => web.remove());
    servers.push(await serve(web, 'web', 80));
    const ep = web.endpoint!;
    console.log(`  container eth0: ${ep.ip}/16, mac ${ep.mac}, default via ${ep.gateway}; host end ${ep.hostVeth}`);
    await showTopology(net);
    const webNs = await nm.openNamespace(web.namespacePath);
    const inside = await nm.linkList(webNs);
    const routes = await nm.routeList(webNs);
    webNs.close();
    check(inside.some((l) => l.name === 'eth0' && l.up), 'the container end is named eth0 and is up');
    check((await nm.linkList()).some((l) => l.name === ep.hostVeth && l.master === br.index), `the host end ${ep.hostVeth} is a port of docker0`);
    check(routes.some((r) => r.prefix === 0 && r.gateway === '172.17.42.1'), 'the container\'s default gateway is docker0 (172.17.42.1)');

    say('3. The rules', '-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE … -A DOCKER ! -i docker0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.17.0.5:80');
    console.log('  In nf_tables (one masquerade rule per network; published ports are map elements, not rules):');
    await showRules();

    say('4. From outside to the container', '外界只需访问10.10.101.105:80就可以访问到容器中得服务');
    const got = await fetchFrom(outside, '198.18.0.1', 80);
    console.log(`  outside$ curl http://198.18.0.1/  →  ${got}`);
    check(got === 'hello from web, you are 198.18.0.2', 'the outside host reaches web through the host\'s port 80 (DNAT)');

    say('5. From the container to the outside', '在外界看来，这个包就是从10.10.101.105上发出来的，Docker容器对外是不可见的');
    servers.push(await serve(outside, 'outside', 8080));
    const back = await fetchFrom(web, '198.18.0.2', 8080);
    console.log(`  web$ curl http://198.18.0.2:8080/  →  ${back}`);
    check(back === 'hello from outside, you are 198.18.0.1', 'the outside server sees the host\'s address, never 172.17.x (MASQUERADE)');

    say('6. Containers on docker0 talk to each other', '连在同一网桥上的容器可以相互通信');
    const client = await nm.createSandbox({ name: 'client', network: net });
    cleanup.push(() => client.remove());
    const direct = await fetchFrom(client, ep.ip, 80);
    check(direct === `hello from web, you are ${client.endpoint!.ip}`, 'client reaches web directly on 172.17.x', direct);

    say('7. --icc=false and --link', '也可以禁止它们之间通信，方法是在DOCKER_OPTS变量中设置--icc=false，这样只有使用--link才能使两个容器通信');
    const iso = await nm.createBridgeNetwork({ name: 'isolated', icc: false });
    cleanup.push(() => iso.remove({ force: true }));
    const db = await nm.createSandbox({ name: 'db', network: iso });
    cleanup.push(() => db.remove());
    servers.push(await serve(db, 'db', 5432));
    const app = await nm.createSandbox({ name: 'app', network: iso, links: [{ name: 'db', alias: 'database' }] });
    cleanup.push(() => app.remove());
    const other = await nm.createSandbox({ name: 'other', network: iso });
    cleanup.push(() => other.remove());
    const viaLink = await fetchFrom(app, db.endpoint!.ip, 5432);
    const blocked = await fetchFrom(other, db.endpoint!.ip, 5432);
    check(viaLink.startsWith('hello from db'), 'app (linked to db as "database") reaches db', viaLink);
    check(!blocked.startsWith('hello'), 'other (no link) cannot reach db', blocked);
    check(/\sdatabase(\s|$)/m.test(app.hosts), 'app\'s hosts file names db as "database"');
  } catch (err) {
    failed++;
    console.error(red(`\ndemo error: ${(err as Error).stack ?? err}`));
  } finally {
    servers.forEach((s) => s.kill());
    for (const c of cleanup.reverse()) await c().catch((e) => console.error(red(`cleanup: ${(e as Error).message}`)));
  }
  console.log(`\n${bold('Summary')}: ${passed} checks passed, ${failed} failed.`);
  return failed ? 1 : 0;
}
