import { strict as assert } from 'node:assert';
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { createNamespace, openNamespace, currentNamespace, listNamespaces, sysctlGet, sysctlSet, linkList, linkAdd, NetlinkError, ConfigError } from '../../lib';
import { sandboxed, sh, uniq, addNs, delNs } from '../helpers/kernel';

describe('10 namespaces', () => {
  before(sandboxed);

  it('createNamespace makes a namespace `ip netns` sees and can enter; delete removes it', async () => {
    const name = uniq('nmt');
    const ns = await createNamespace(name);
    try {
      assert.equal(ns.name, name);
      assert.equal(ns.path, `/run/netns/${name}`);
      assert.ok(sh('ip', ['netns', 'list']).includes(name));
      // `ip netns exec` enters the same namespace: it sees only lo, and its inode matches.
      const ino = sh('ip', ['netns', 'exec', name, 'stat', '-L', '-c', '%i', '/proc/self/ns/net']).trim();
      assert.equal(Number(ino), ns.inode);
      assert.notEqual(ns.inode, currentNamespace().inode);
      assert.deepEqual(await listNamespaces(), [name]);
    } finally {
      await ns.delete();
    }
    assert.ok(!existsSync(`/run/netns/${name}`));
    await ns.delete(); // twice is a no-op
  });

  it('EEXIST when the name is taken, and the existing namespace is untouched', async () => {
    const name = addNs(uniq('nmt'));
    try {
      await assert.rejects(createNamespace(name), (e: NetlinkError) => e instanceof NetlinkError && e.code === 'EEXIST');
      assert.ok(existsSync(`/run/netns/${name}`));
    } finally {
      delNs(name);
    }
  });

  it('opens by name, path and pid; ENOENT for a missing one; EINVAL for a file that is not a netns', async () => {
    const name = addNs(uniq('nmt'));
    try {
      const a = await openNamespace(name);
      const b = await openNamespace(`/run/netns/${name}`);
      assert.equal(a.inode, b.inode);
      const self = await openNamespace(process.pid);
      assert.equal(self.inode, currentNamespace().inode);
      a.close(); b.close(); self.close();
      await assert.rejects(openNamespace('nosuchns'), (e: NetlinkError) => e.code === 'ENOENT');
      await assert.rejects(openNamespace('/etc/hostname'), (e: NetlinkError) => e.code === 'EINVAL');
    } finally {
      delNs(name);
    }
  });

  it('rejects bad names and paths in TypeScript (ConfigError) before any syscall', async () => {
    for (const bad of ['', 'a/b', '..', '-x', 'x'.repeat(65), 'spa ce']) {
      await assert.rejects(createNamespace(bad), (e: ConfigError) => e instanceof ConfigError && e.code === 'EINVAL' && e.field === 'name');
    }
    await assert.rejects(openNamespace('relative/path'), ConfigError);
    await assert.rejects(openNamespace(-4), ConfigError);
  });

  it('reads and writes per-namespace sysctls without touching the caller namespace', async () => {
    const ns = await createNamespace(uniq('nmt'));
    try {
      const before = await sysctlGet('net.ipv4.ip_forward');
      await sysctlSet('net.ipv4.ip_forward', 1, ns);
      assert.equal(await sysctlGet('net.ipv4.ip_forward', ns), '1');
      assert.equal(sh('ip', ['netns', 'exec', ns.name!, 'cat', '/proc/sys/net/ipv4/ip_forward']).trim(), '1');
      assert.equal(await sysctlGet('net.ipv4.ip_forward'), before);
      await assert.rejects(sysctlGet('kernel.hostname'), ConfigError);
      await assert.rejects(sysctlGet('net.ipv4.conf.nosuchif.forwarding', ns), (e: NetlinkError) => e.code === 'ENOENT');
    } finally {
      await ns.delete();
    }
  });

  it('close() lets the descriptor go at once (no garbage collection needed); a call in flight keeps it until it ends', async () => {
    const name = uniq('nmc');
    // This process's descriptors for namespace `ino` (its handles' fds, opened through the
    // name's bind mount; the pooled sockets are not).
    const fdsOf = (ino: number): number =>
      readdirSync('/proc/self/fd').filter((f) => {
        try {
          const l = readlinkSync(`/proc/self/fd/${f}`);
          return l === `net:[${ino}]` || l === `/run/netns/${name}`;
        } catch {
          return false; // (the directory's own fd, gone already)
        }
      }).length;
    const made = await createNamespace(name);
    try {
      const ino = made.inode;
      made.close();
      assert.equal(fdsOf(ino), 0, 'the handle from createNamespace');
      const handles = await Promise.all(Array.from({ length: 50 }, () => openNamespace(name)));
      assert.equal(fdsOf(ino), 50);
      await linkList(handles[0]); // (a pooled socket inside, released by close too)
      for (const h of handles) h.close();
      assert.equal(fdsOf(ino), 0, '50 handles closed, none collected');
      assert.ok(handles.every((h) => h.inode === ino), 'a closed handle still names its namespace');
      // Calls on a closed handle fail with EBADF and make nothing, as before; named as a veth's
      // peer namespace it is refused by the kernel (it never stands for this process's namespace).
      await assert.rejects(linkList(handles[0]), (e: NetlinkError) => e.code === 'EBADF');
      await assert.rejects(linkAdd({ name: uniq('vc'), kind: 'veth', peer: { name: 'eth0', ns: handles[1] } }), (e: NetlinkError) => e.code === 'EBADF');
      assert.equal((await linkList()).filter((l) => l.kind === 'veth').length, 0);
      // Closed while a call runs on it: the call ends (its own way), then the descriptor goes.
      const h = await openNamespace(name);
      const inFlight = Promise.all(Array.from({ length: 20 }, () => linkList(h).then(() => 'ok', (e: NetlinkError) => e.code)));
      h.close();
      const outcomes = await inFlight;
      assert.ok(outcomes.every((o) => o === 'ok' || o === 'EBADF'), outcomes.join());
      assert.equal(fdsOf(ino), 0, 'the calls ended: the descriptor is gone');
    } finally {
      await made.delete();
    }
  });

  it('many namespace operations in flight at once', async () => {
    const names = Array.from({ length: 20 }, () => uniq('nmp'));
    const all = await Promise.all(names.map((n) => createNamespace(n)));
    assert.equal(new Set(all.map((n) => n.inode)).size, 20);
    await Promise.all(all.map((n) => n.delete()));
    assert.deepEqual(await listNamespaces(), []);
  });
});
