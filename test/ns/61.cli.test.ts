import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import { listSandboxes, listNamespaces } from '../../lib';
import { sandboxed, uniq } from '../helpers/kernel';
import { cli } from '../helpers/sandbox';

async function ps(): Promise<any[]> {
  const r = await cli(['ps', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

describe('61 cli', () => {
  before(sandboxed);
  afterEach(async () => {
    // Whatever a failed test left: remove it through the CLI itself, sharers first.
    const left = (await listSandboxes()).map((s) => s.name);
    if (left.length) await cli(['rm', ...left]);
  });

  it('run --net none -- ip -j addr: only lo; --rm leaves nothing behind', async () => {
    const r = await cli(['run', '--rm', '--net', 'none', '--', 'ip', '-j', 'addr']);
    assert.equal(r.code, 0, r.stderr);
    const links = JSON.parse(r.stdout);
    assert.deepEqual(links.map((l: any) => l.ifname), ['lo']);
    assert.ok(links[0].flags.includes('UP'));
    assert.deepEqual(await ps(), []);
    assert.deepEqual(await listNamespaces(), []);
  });

  it("passes the command's exit status through, with or without --", async () => {
    assert.equal((await cli(['run', '--rm', '--net', 'none', '--', 'sh', '-c', 'exit 7'])).code, 7);
    assert.equal((await cli(['run', '--rm', '--net=none', 'sh', '-c', 'exit 3'])).code, 3);
    const nf = await cli(['run', '--rm', '--net', 'none', '--', 'no-such-command-xyz']);
    assert.equal(nf.code, 127);
    assert.match(nf.stderr, /no-such-command-xyz/);
    assert.deepEqual(await ps(), []);
  });

  it('forwards signals to the command and exits as it did (a trapped HUP, then 128+15 for TERM); --rm still cleans up', async () => {
    const trap = await cli(['run', '--rm', '--net', 'none', '--', 'sh', '-c', 'trap "echo got-hup; exit 5" HUP; echo ready; while :; do sleep 0.05; done'], (out, child) => {
      if (out.includes('ready')) child.kill('SIGHUP');
    });
    assert.equal(trap.code, 5, trap.stderr);
    assert.match(trap.stdout, /got-hup/);

    const term = await cli(['run', '--rm', '--net', 'none', '--', 'sh', '-c', 'echo ready; exec sleep 30'], (out, child) => {
      if (out.includes('ready')) child.kill('SIGTERM');
    });
    assert.equal(term.code, 128 + 15, term.stderr);
    assert.deepEqual(await ps(), []);
    assert.deepEqual(await listNamespaces(), []);
  });

  it('without --rm the sandbox stays: ps, exec into it, rm it; rm again fails with ENOSANDBOX', async () => {
    const name = uniq('cli');
    const r = await cli(['run', '--name', name, '--net', 'none', '--hostname', 'kept', '--dns', '192.0.2.7', '--', 'true']);
    assert.equal(r.code, 0, r.stderr);
    const [info] = await ps();
    assert.equal(info.name, name);
    assert.equal(info.mode, 'none');
    assert.equal(info.hostname, 'kept');
    assert.equal(info.state, 'ready');
    assert.ok(existsSync(`/run/netns/${name}`));

    const e = await cli(['exec', name, '--', 'sh', '-c', 'hostname; cat /etc/resolv.conf; ls /sys/class/net']);
    assert.equal(e.code, 0, e.stderr);
    assert.equal(e.stdout, 'kept\nnameserver 192.0.2.7\nlo\n');
    assert.equal((await cli(['exec', name, 'sh', '-c', 'exit 9'])).code, 9);

    const table = await cli(['ps']);
    assert.match(table.stdout, /^NAME\s+NETWORK\s+IP\s+PORTS\s+HOSTNAME\s+STATE\n/);
    assert.match(table.stdout, new RegExp(`^${name}\\s+none\\s+kept\\s+ready$`, 'm'));
    assert.equal((await cli(['ps', '-q'])).stdout, `${name}\n`);

    const rm = await cli(['rm', name]);
    assert.deepEqual([rm.code, rm.stdout], [0, `${name}\n`]);
    assert.ok(!existsSync(`/run/netns/${name}`));
    const again = await cli(['rm', name]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, new RegExp(`^netmodes: no such sandbox: ${name} \\(ENOSANDBOX\\)$`, 'm'));
    const ex = await cli(['exec', name, 'true']);
    assert.equal(ex.code, 125);
  });

  it('ps --json lists every mode; rm removes sharers before the sandbox they joined; ESANDBOXINUSE otherwise', async () => {
    const [a, b, h] = [uniq('cli'), uniq('cli'), uniq('cli')];
    assert.equal((await cli(['run', '--name', a, '--net', 'none', 'true'])).code, 0);
    assert.equal((await cli(['run', '--name', b, '--net', `container:${a}`, 'true'])).code, 0);
    assert.equal((await cli(['run', '--name', h, '--net', 'host', 'true'])).code, 0);
    const list = await ps();
    const by = Object.fromEntries(list.map((s) => [s.name, s]));
    assert.deepEqual(Object.keys(by).sort(), [a, b, h].sort());
    assert.deepEqual([by[a].mode, by[a].sharedBy, by[a].namespacePath], ['none', [b], `/run/netns/${a}`]);
    assert.deepEqual([by[b].mode, by[b].container, by[b].namespacePath], ['container', a, `/run/netns/${a}`]);
    assert.deepEqual([by[h].mode, by[h].namespacePath], ['host', '/proc/self/ns/net']);
    for (const s of list) assert.ok(/^[0-9a-f]{64}$/.test(s.id) && !Number.isNaN(Date.parse(s.created)) && Array.isArray(s.ports));

    const inUse = await cli(['rm', a]);
    assert.equal(inUse.code, 1);
    assert.match(inUse.stderr, /ESANDBOXINUSE/);
    const both = await cli(['rm', a, b, h]);
    assert.equal(both.code, 0, both.stderr);
    assert.deepEqual(both.stdout.split('\n').filter(Boolean), [b, a, h]);
    assert.deepEqual(await ps(), []);
  });

  it('host mode: published ports are discarded with a warning; the host name and resolv.conf apply inside', async () => {
    const r = await cli(['run', '--rm', '--net', 'host', '-p', '8080:80', '-h', 'hh', '--dns', '192.0.2.9', '--', 'sh', '-c', 'hostname; cat /etc/resolv.conf']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'hh\nnameserver 192.0.2.9\n');
    assert.equal(r.stderr, 'netmodes: warning: Published ports are discarded when using host network mode\n');
  });

  it('bad arguments: exit 2, the problem and the usage line; nothing is created', async () => {
    const cases: [string[], RegExp][] = [
      [[], /no command given/],
      [['frobnicate'], /unknown command "frobnicate"/],
      [['--bogus'], /unknown option --bogus/],
      [['run'], /no command given/],
      [['run', '--rm'], /no command given/],
      [['run', '--bogus', '--', 'true'], /unknown option --bogus/],
      [['run', '-p'], /option -p needs a value/],
      [['run', '--rm=yes', 'true'], /option --rm takes no value/],
      [['run', '--net', 'bad name', '--', 'true'], /network: invalid namespace name/],
      [['run', '--net', 'none', '-p', '80', '--', 'true'], /ports: not with network mode none/],
      [['run', '--net', 'none', '--name', 'a/b', '--', 'true'], /name: invalid namespace name/],
      [['run', '--net', 'host', '-p', '99999', '--', 'true'], /ports\[0\]/],
      [['run', '--net', 'none', '--dns', 'nope', '--', 'true'], /servers\[0\]/],
      [['run', '--net', 'none', '-h', '-bad-', '--', 'true'], /hostname/],
      [['exec'], /no command given/],
      [['exec', 'x'], /no command given/],
      [['ps', 'extra'], /unexpected argument "extra"/],
      [['rm'], /missing argument/],
      [['network'], /network needs a command/],
      [['network', 'frob'], /unknown network command "frob"/],
      [['network', 'create'], /missing argument/],
      [['network', 'create', 'a', 'b'], /unexpected argument "b"/],
      [['network', 'create', '--mtu', 'x', 'n'], /--mtu: expected a number/],
      [['network', 'create', '--veth-queues', '-1', 'n'], /--veth-queues: expected a number/],
      [['network', 'create', 'host'], /taken by the network mode/],
      [['network', 'ls', '--quiet=1'], /takes no value/],
      [['help', 'frob'], /unknown command "frob"/],
    ];
    for (const [args, problem] of cases) {
      const r = await cli(args);
      assert.equal(r.code, 2, `netmodes ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, problem, `netmodes ${args.join(' ')}`);
      assert.match(r.stderr, /^Usage: netmodes /m, `netmodes ${args.join(' ')}`);
      assert.equal(r.stdout, '');
    }
    assert.deepEqual(await ps(), []);
    assert.deepEqual(await listNamespaces(), []);
  });

  it('netmodes failures in run are 125 with `netmodes: message (CODE)`', async () => {
    const r = await cli(['run', '--net', 'container:nosuch', '--', 'true']);
    assert.equal(r.code, 125);
    assert.equal(r.stderr, 'netmodes: network: no such sandbox: nosuch (ENOSANDBOX)\n');
    const name = uniq('cli');
    assert.equal((await cli(['run', '--name', name, '--net', 'none', 'true'])).code, 0);
    const dup = await cli(['run', '--name', name, '--net', 'none', 'true']);
    assert.equal(dup.code, 125);
    assert.match(dup.stderr, /already exists \(ESANDBOXEXISTS\)/);
  });

  it('--help for every command, help COMMAND, and --version', async () => {
    const commands = ['run', 'exec', 'ps', 'rm', 'network create', 'network ls', 'network inspect', 'network rm', 'demo', 'version'];
    for (const c of commands) {
      const r = await cli([...c.split(' '), '--help']);
      assert.equal(r.code, 0, c);
      assert.ok(r.stdout.startsWith(`Usage: netmodes ${c}`), `${c}: ${r.stdout}`);
      assert.match(r.stdout, /--help\s+show this help/);
      assert.equal((await cli(['help', ...c.split(' ')])).stdout, r.stdout);
    }
    const top = await cli(['--help']);
    assert.equal(top.code, 0);
    for (const c of commands) assert.match(top.stdout, new RegExp(`^  ${c} `, 'm'));
    assert.equal((await cli(['ps', '-h'])).code, 0);
    const v = await cli(['--version']);
    assert.deepEqual([v.code, v.stdout], [0, require('../../../package.json').version + '\n']);
  });
});
