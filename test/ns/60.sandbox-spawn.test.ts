import { strict as assert } from 'node:assert';
import { readFileSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { ConfigError, NetmodesError, Sandbox, createSandbox, listSandboxes, openSandbox, listNamespaces, EXEC_FAILED, EXEC_NOT_FOUND, EXEC_CANNOT_EXECUTE } from '../../lib';
import { sandboxed, uniq, addNs, delNs } from '../helpers/kernel';
import { Sandboxes, collect, runIn } from '../helpers/sandbox';

describe('60 sandbox: spawn', () => {
  before(sandboxed);
  const sbs = new Sandboxes();
  let sb: Sandbox;
  before(async () => {
    sb = await sbs.create({ name: uniq('sbs'), network: 'none' });
  });
  after(() => sbs.cleanup());

  it('stdin, stdout and stderr are the command’s own pipes', async () => {
    const r = await runIn(sb, 'sh', ['-c', 'cat; echo oops >&2'], {}, 'hello\nworld\n');
    assert.deepEqual(r, { code: 0, signal: null, stdout: 'hello\nworld\n', stderr: 'oops\n' });
  });

  it('the exit code comes through', async () => {
    assert.equal((await runIn(sb, 'sh', ['-c', 'exit 7'])).code, 7);
    assert.equal((await runIn(sb, 'false')).code, 1);
  });

  it('the child is the command itself (exec in place): its pid, and signals reach it', async () => {
    const child = sb.spawn('sleep', ['30'], { stdio: 'pipe' });
    await new Promise((r) => child.once('spawn', r));
    // Wait for the helper to exec (the process's name becomes `sleep`).
    for (let i = 0; i < 100 && readFileSync(`/proc/${child.pid}/comm`, 'utf8').trim() !== 'sleep'; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(readFileSync(`/proc/${child.pid}/comm`, 'utf8').trim(), 'sleep');
    const done = collect(child);
    child.kill('SIGTERM');
    const r = await done;
    assert.equal(r.code, null);
    assert.equal(r.signal, 'SIGTERM');
  });

  it('env, cwd, argv0, uid and gid, and spawn(command, options)', async () => {
    assert.equal((await runIn(sb, 'sh', ['-c', 'echo $FOO'], { env: { PATH: process.env.PATH, FOO: 'bar' } })).stdout, 'bar\n');
    assert.equal((await runIn(sb, 'pwd', [], { cwd: '/tmp' })).stdout, '/tmp\n');
    assert.equal((await runIn(sb, 'sh', ['-c', 'echo $0'], { argv0: 'renamed' })).stdout, 'renamed\n');
    assert.equal((await runIn(sb, 'id', ['-u'], { uid: 65534, gid: 65534 })).stdout, '65534\n');
    assert.equal((await runIn(sb, 'id', ['-g'], { uid: 65534, gid: 65534 })).stdout, '65534\n');
    assert.equal((await collect(sb.spawn('hostname', { stdio: 'pipe' }))).stdout.trim(), sb.hostname);
  });

  it('a command that cannot start: 127 not found, 126 not executable, 125 sandbox gone; shell is refused', async () => {
    const nf = await runIn(sb, 'no-such-command-xyz');
    assert.equal(nf.code, EXEC_NOT_FOUND);
    assert.match(nf.stderr, /no-such-command-xyz: No such file or directory/);
    writeFileSync('/tmp/netmodes-not-exec', 'data', { mode: 0o644 });
    assert.equal((await runIn(sb, '/tmp/netmodes-not-exec')).code, EXEC_CANNOT_EXECUTE);
    assert.throws(() => sb.spawn('true', [], { shell: true }), (e: ConfigError) => e instanceof ConfigError && e.field === 'shell');
    assert.throws(() => sb.spawn('true', [], { uid: -1 }), (e: ConfigError) => e.field === 'uid');

    const gone = await createSandbox({ name: uniq('sbs'), network: 'none' });
    await gone.remove();
    const r = await runIn(gone, 'true');
    assert.equal(r.code, EXEC_FAILED);
    assert.match(r.stderr, /cannot open network namespace/);
  });
});

describe('60 sandbox: lifecycle and validation', () => {
  before(sandboxed);
  const sbs = new Sandboxes();
  afterEach(() => sbs.cleanup());

  it('rejects bad names and network strings (ConfigError with the field) before any change', async () => {
    for (const name of ['', 'a/b', '..', '-x', 'x'.repeat(65), 'sp ace', 3 as unknown as string])
      await assert.rejects(createSandbox({ name, network: 'none' }), (e: ConfigError) => e instanceof ConfigError && e.field === 'name');
    for (const network of ['container:', 'bad name', 'a/b', 42 as unknown as string])
      await assert.rejects(createSandbox({ name: uniq('sbl'), network }), (e: ConfigError) => e instanceof ConfigError && e.field === 'network');
    for (const [field, extra] of [
      ['ports', { ports: ['80'] }],
      ['ip', { ip: '10.0.0.2' }],
      ['links', { links: ['x'] }],
      ['hostname', { hostname: '-bad-' }],
    ] as [string, object][])
      await assert.rejects(createSandbox({ name: uniq('sbl'), network: 'none', ...extra }), (e: ConfigError) => e instanceof ConfigError && e.field === field);
    await assert.rejects(createSandbox({ name: uniq('sbl'), network: 'none', dns: { servers: ['not-an-ip'] } }), (e: ConfigError) => e instanceof ConfigError && e.field === 'servers[0]');
    assert.deepEqual(await listSandboxes(), []);
    assert.deepEqual(await listNamespaces(), []);
  });

  it('a taken name: ESANDBOXEXISTS for a sandbox, EEXIST for a foreign namespace; neither is touched', async () => {
    const a = await sbs.create({ name: uniq('sbl'), network: 'none' });
    await assert.rejects(createSandbox({ name: a.name, network: 'host' }), (e: NetmodesError) => e instanceof NetmodesError && e.code === 'ESANDBOXEXISTS');
    assert.equal((await openSandbox(a.name)).id, a.id);
    assert.equal((await runIn(a, 'true')).code, 0);

    const foreign = addNs(uniq('sbl'));
    try {
      await assert.rejects(createSandbox({ name: foreign, network: 'none' }), (e: NetmodesError) => e.code === 'EEXIST' && /not a netmodes sandbox/.test(e.message));
      assert.ok(existsSync(`/run/netns/${foreign}`), 'the foreign namespace must stay');
      await assert.rejects(openSandbox(foreign), (e: NetmodesError) => e.code === 'ENOSANDBOX');
    } finally {
      delNs(foreign);
    }
  });

  it('remove is a no-op once removed, and never removes a newer sandbox of the same name', async () => {
    const name = uniq('sbl');
    const old = await createSandbox({ name, network: 'none' });
    await old.remove();
    await old.remove();
    const fresh = await sbs.create({ name, network: 'none' });
    await old.remove();
    assert.equal((await openSandbox(name)).id, fresh.id);
    assert.ok(existsSync(`/run/netns/${name}`));
  });

  it('an interrupted creation (record left in state creating) is listed, can be removed, or is undone by creating the name again', async () => {
    const name = uniq('sbl');
    const interrupted = async () => {
      const sb = await createSandbox({ name, network: 'none' });
      const file = `/run/netmodes/sandboxes/${name}/sandbox.json`;
      writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), state: 'creating' }));
      return sb;
    };
    await interrupted();
    assert.equal((await listSandboxes()).find((s) => s.name === name)!.state, 'creating');
    await assert.rejects(createSandbox({ name: uniq('sbl'), network: `container:${name}` }), (e: NetmodesError) => e.code === 'ENOSANDBOX');
    await (await openSandbox(name)).remove();
    assert.ok(!existsSync(`/run/netns/${name}`));
    assert.deepEqual(await listSandboxes(), []);

    // Creating it again: the half-made one (its namespace too) is undone first.
    const old = await interrupted();
    const oldIno = statSync(`/run/netns/${name}`).ino;
    const fresh = await sbs.create({ name, network: 'none' });
    assert.notEqual(fresh.id, old.id);
    assert.notEqual(statSync(`/run/netns/${name}`).ino, oldIno, 'a new namespace');
    assert.deepEqual((await listSandboxes()).map((s) => [s.name, s.state]), [[name, 'ready']]);
    assert.equal((await runIn(fresh, 'true')).code, 0);
  });

  it('many sandboxes created and removed at once, from one process', async () => {
    const all = await Promise.all(Array.from({ length: 12 }, (_, i) => createSandbox({ name: uniq('sbp'), network: i % 3 ? 'none' : 'host' })));
    assert.equal((await listSandboxes()).length, 12);
    assert.equal((await listNamespaces()).length, 8);
    await Promise.all(all.map((s) => s.remove()));
    assert.deepEqual(await listSandboxes(), []);
    assert.deepEqual(await listNamespaces(), []);
  });
});
