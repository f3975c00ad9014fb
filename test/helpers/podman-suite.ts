/**
 * The same cases under Podman for any CNI plugin chain: podmanSuite(c) starts busybox containers
 * with `-p` on the network of c's conflist and checks the address (podman inspect and `ip -j` in
 * the container's namespace), outbound traffic to an outside host (masqueraded), the published
 * port from the outside host, two containers reaching each other, and that both `podman rm -f`
 * and a container's own exit (conmon's `podman container cleanup`) run CNI DEL leaving nothing
 * behind. Every case gets a fresh Podman tree (test/helpers/podman.ts) and outside namespace.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import { connect, ipj, sandboxed, startServer, tryRun } from './kernel';
import { makeOutside, Outside } from './topology';
import { stop } from './sandbox';
import { Podman, hostFootprint, podmanExec, podmanInspect, podmanRm, podmanRun, podmanRunAttached, podmanStop, podmanWaitStatus, sleep } from './podman';

export interface PodmanCase {
  /** The suite's title. */
  title: string;
  /** The conflist's `name` (what `podman run --network` names). */
  network: string;
  /** The host bridge the chain attaches containers to. */
  bridge: string;
  /** The IPv4 subnet and gateway the conflist gives containers. */
  subnet: string;
  gateway: string;
  /** Puts the chain's plugins into pm.pluginDir. */
  setupPlugins(pm: Podman): void | Promise<void>;
  /** The conflist (may place state inside pm.dir). */
  conflist(pm: Podman): { name: string; [k: string]: unknown };
  /** What the plugins still keep for an attachment (address reservations, records): [] once DEL ran. */
  attachmentState(pm: Podman, id: string, addr: string): string[] | Promise<string[]>;
  /**
   * After each case, once Podman is gone: removes what the chain keeps between attachments in the
   * sandbox host (e.g. the reference bridge plugin's bridge, iptables' tables); newTables are the
   * `nft list tables` lines that appeared during the case.
   */
  teardown(pm: Podman, newTables: string[]): void | Promise<void>;
  /**
   * Processes the chain may leave running in Podman's mount namespace (e.g. a resident process a
   * thin plugin starts): Podman.cleanup() kills them too, but only others count as left behind.
   */
  residents?: RegExp;
  /** How long after DEL the chain may take to delete what it detached at once (default 0). */
  settleMs?: number;
}

/** `nft list tables` lines of the sandbox host. */
export function nftTables(): string[] {
  return tryRun('nft', ['list', 'tables']).stdout.split('\n').map((l) => l.trim()).filter(Boolean);
}

/** The container's eth0 as `ip -j` shows it inside its namespace (entered through Podman's mount namespace). */
async function containerNet(pm: Podman, info: any): Promise<{ addrs: any[]; routes: any[] }> {
  const key: string = info.NetworkSettings.SandboxKey;
  assert.match(key, /^\/run\/netns\/[\w-]+$/, 'SandboxKey');
  const ns = key.slice('/run/netns/'.length);
  const a = await pm.inNs('ip', ['-n', ns, '-j', 'addr', 'show', 'dev', 'eth0']);
  const r = await pm.inNs('ip', ['-n', ns, '-j', 'route', 'show']);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(r.code, 0, r.stderr);
  return { addrs: JSON.parse(a.stdout), routes: JSON.parse(r.stdout) };
}

export function podmanSuite(c: PodmanCase): void {
  describe(c.title, function () {
    this.timeout(120000);
    let pm: Podman;
    let outside: Outside;
    let tables: string[];
    let footprint: ReturnType<typeof hostFootprint>;
    const servers: Awaited<ReturnType<typeof startServer>>[] = [];
    // what this case made, so that a beforeEach failing halfway cleans up only that
    let made: { pm?: Podman; outside?: Outside } = {};

    beforeEach(async () => {
      sandboxed();
      made = {};
      footprint = hostFootprint();
      tables = nftTables();
      outside = made.outside = makeOutside();
      pm = made.pm = await Podman.create();
      await c.setupPlugins(pm);
      pm.writeConflist(c.conflist(pm));
    });

    afterEach(async function () {
      for (const s of servers.splice(0)) await stop(s);
      const killed = made.pm ? await made.pm.cleanup() : [];
      made.outside?.remove();
      const added = nftTables().filter((t) => !tables.includes(t));
      if (made.pm) await c.teardown(made.pm, added);
      // Checked after the cleanup so that a failed case still cleans up.
      assert.deepEqual(killed.filter((k) => !c.residents?.test(k)), [], 'processes podman left running (killed)');
      assert.deepEqual(hostFootprint(), footprint, "podman wrote to the machine's file system");
    });

    /** Starts the usual server container: answers every connection to port 80 with "hello from NAME". */
    async function server(name: string, publish = ['8080:80']): Promise<{ id: string; info: any; addr: string }> {
      const id = await podmanRun(pm, { network: c.network, name, publish, cmd: ['nc', '-ll', '-p', '80', '-e', 'echo', `hello from ${name}`] });
      const info = await podmanInspect(pm, id);
      assert.equal(info.State.Status, 'running');
      const addr = info.NetworkSettings.Networks[c.network].IPAddress;
      // the container runs before busybox nc has bound its port: wait for the listener
      for (let i = 0; ; i++) {
        if ((await podmanExec(pm, id, ['sh', '-c', 'netstat -ltn | grep -q ":80 "'], false)).code === 0) break;
        assert.ok(i < 50, `nc in ${name} never listened on port 80`);
        await sleep(100);
      }
      return { id, info, addr };
    }

    /** What an attachment has on the sandbox host, in the plugins' state and in libcni's cache. */
    async function traces(id: string, addr: string, key: string | undefined, hostPort: string): Promise<Record<string, unknown>> {
      const rules = tryRun('nft', ['list', 'ruleset']).stdout;
      const cache = await pm.inNs('sh', ['-c', 'ls /var/lib/cni/results 2>/dev/null || true']);
      return {
        'host veths': ipj(['-d', 'link', 'show', 'type', 'veth']).map((l) => l.ifname).filter((n) => n !== outside.hostIf),
        [`ports of ${c.bridge}`]: ipj(['link', 'show', 'master', c.bridge]).map((l) => l.ifname),
        [`nft rules naming ${addr}`]: rules.split('\n').filter((l) => l.includes(addr)).map((l) => l.trim()),
        // a rule matching the port (portmap), or a map element keyed by it (netmodes: `tcp . PORT`)
        [`nft rules naming port ${hostPort}`]: rules.split('\n').filter((l) => new RegExp(`dport ${hostPort}\\b|\\. ${hostPort}\\b`).test(l)).map((l) => l.trim()),
        "the plugins' state": await c.attachmentState(pm, id, addr),
        "libcni's cache": cache.stdout.split('\n').filter((f) => f.includes(id)),
        // unknown key (a container gone before it was inspected): any namespace file Podman made
        'namespace file': key ? (fs.existsSync(key) ? [key] : []) : fs.readdirSync('/run/netns').filter((f) => f.startsWith('netns-')),
      };
    }

    /** Every trace is there while the container is attached (so that assertDetached proves something). */
    async function assertAttached(id: string, addr: string, key: string, hostPort: string): Promise<void> {
      const t = await traces(id, addr, key, hostPort);
      for (const [what, v] of Object.entries(t)) assert.ok((v as unknown[]).length > 0, `${what}: none while attached (${JSON.stringify(t)})`);
    }

    /**
     * Everything an attachment had is gone: at once, or within `c.settleMs` for a plugin that cuts
     * the veth off at DEL and deletes it a moment later (netmodes batches the deletes).
     */
    async function assertDetached(id: string, addr: string, key: string | undefined, hostPort: string): Promise<void> {
      const empty = (t: Record<string, unknown>) => Object.values(t).every((v) => (v as unknown[]).length === 0);
      let t = await traces(id, addr, key, hostPort);
      for (const until = Date.now() + (c.settleMs ?? 0); !empty(t) && Date.now() < until; t = await traces(id, addr, key, hostPort)) await sleep(50);
      assert.deepEqual(t, Object.fromEntries(Object.keys(t).map((k) => [k, []])), 'left behind after CNI DEL');
    }

    it('starts a container with -p: its address in podman inspect and in its namespace, with the default route', async () => {
      const { info, addr } = await server('web');
      const net = info.NetworkSettings.Networks[c.network];
      assert.equal(net.Gateway, c.gateway);
      assert.equal(net.IPPrefixLen, Number(c.subnet.split('/')[1]));
      assert.ok(inSubnet(addr, c.subnet) && addr !== c.gateway, `address ${addr} in ${c.subnet}`);
      assert.deepEqual(info.NetworkSettings.Ports, { '80/tcp': [{ HostIp: '', HostPort: '8080' }] });
      const { addrs, routes } = await containerNet(pm, info);
      const v4 = addrs[0].addr_info.filter((a: any) => a.family === 'inet').map((a: any) => `${a.local}/${a.prefixlen}`);
      assert.deepEqual(v4, [`${addr}/${net.IPPrefixLen}`]);
      assert.equal(addrs[0].address, net.MacAddress);
      const def = routes.find((r: any) => r.dst === 'default');
      assert.ok(def, `default route in ${JSON.stringify(routes)}`);
      assert.deepEqual([def.gateway, def.dev], [c.gateway, 'eth0']);
      // what the container itself sees
      const seen = await podmanExec(pm, info.Id, ['ip', '-4', 'addr', 'show', 'eth0']);
      assert.match(seen.stdout, new RegExp(`inet ${addr.replace(/\./g, '\\.')}/`));
    });

    it('reaches an outside host, masqueraded to the host address', async () => {
      const { id } = await server('web');
      servers.push(await startServer(outside.ns, 'tcp', 7001, 'outside'));
      const r = await podmanExec(pm, id, ['nc', '-w', '3', outside.addr, '7001'], false);
      assert.equal(r.stdout.trim(), `outside ${outside.hostAddr}`, r.stderr);
    });

    it('serves the published port to the outside host', async () => {
      await server('web');
      assert.equal(connect(outside.ns, 'tcp', outside.hostAddr, 8080), 'hello from web');
      assert.equal(connect(outside.ns, 'tcp', outside.hostAddr, 8080), 'hello from web', 'a second connection');
    });

    it('lets two containers on the network reach each other', async () => {
      const a = await server('web');
      const b = await server('web2', ['8081:80']);
      assert.notEqual(a.addr, b.addr);
      const r = await podmanExec(pm, b.id, ['nc', '-w', '3', a.addr, '80'], false);
      assert.equal(r.stdout.trim(), 'hello from web', r.stderr);
      assert.equal(connect(outside.ns, 'tcp', outside.hostAddr, 8081), 'hello from web2');
    });

    it('podman rm -f and podman stop run CNI DEL: no veth, no address reservation, no published port, no namespace left', async () => {
      const { id, info, addr } = await server('web');
      await assertAttached(id, addr, info.NetworkSettings.SandboxKey, '8080');
      await podmanRm(pm, id);
      await assertDetached(id, addr, info.NetworkSettings.SandboxKey, '8080');
      // the host port is free again: the next container publishes it, and it works; podman stop
      // tears the network down before the container is removed
      const again = await server('web3');
      assert.equal(connect(outside.ns, 'tcp', outside.hostAddr, 8080), 'hello from web3');
      await podmanStop(pm, again.id);
      await assertDetached(again.id, again.addr, again.info.NetworkSettings.SandboxKey, '8080');
      await podmanRm(pm, again.id, false);
    });

    it("a container's own exit runs CNI DEL (conmon's podman container cleanup)", async () => {
      // one connection, then the container's only process exits
      const id = await podmanRun(pm, { network: c.network, name: 'once', publish: ['8082:80'], cmd: ['nc', '-l', '-p', '80', '-e', 'echo', 'bye'] });
      const info = await podmanInspect(pm, id);
      const addr = info.NetworkSettings.Networks[c.network].IPAddress;
      await assertAttached(id, addr, info.NetworkSettings.SandboxKey, '8082');
      let answer: string | null = null;
      for (let i = 0; i < 20 && answer === null; i++) {
        answer = connect(outside.ns, 'tcp', outside.hostAddr, 8082);
        if (answer === null) await sleep(100);
      }
      assert.equal(answer, 'bye');
      const done = await podmanWaitStatus(pm, id, 'exited');
      assert.equal(done.State.Status, 'exited');
      // cleanup runs after the exit, asynchronously: wait for its last step
      let left = '';
      for (let i = 0; i < 100; i++) {
        try {
          await assertDetached(id, addr, info.NetworkSettings.SandboxKey, '8082');
          left = '';
          break;
        } catch (err) {
          left = (err as Error).message;
          await sleep(100);
        }
      }
      assert.equal(left, '');
      const after = await podmanInspect(pm, id);
      assert.equal(after.NetworkSettings.Networks[c.network].IPAddress, '');
    });

    it('an attached podman run --rm sees its address, and leaves nothing behind when it returns', async () => {
      const r = await podmanRunAttached(pm, { network: c.network, publish: ['8083:80'], extra: ['--rm'], cmd: ['ip', '-4', '-o', 'addr', 'show', 'eth0'] });
      assert.equal(r.code, 0, r.stderr);
      const m = /inet (\d+\.\d+\.\d+\.\d+)\/(\d+)/.exec(r.stdout);
      assert.ok(m && inSubnet(m[1], c.subnet), `eth0's address: ${r.stdout}`);
      assert.ok(r.id, 'the container id (--cidfile)');
      assert.equal((await pm.podman(['ps', '-aq'])).stdout.trim(), '', 'containers after --rm');
      await assertDetached(r.id, m![1], undefined, '8083');
    });
  });
}

function inSubnet(addr: string, cidr: string): boolean {
  const [net, len] = cidr.split('/');
  const n = (a: string) => a.split('.').reduce((x, o) => x * 256 + Number(o), 0);
  const mask = 2 ** 32 - 2 ** (32 - Number(len));
  return (n(addr) & mask) >>> 0 === (n(net) & mask) >>> 0;
}
