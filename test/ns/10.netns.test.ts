import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import { createNamespace, openNamespace, currentNamespace, listNamespaces, sysctlGet, sysctlSet, NetlinkError, ConfigError } from '../../lib';
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

  it('many namespace operations in flight at once', async () => {
    const names = Array.from({ length: 20 }, () => uniq('nmp'));
    const all = await Promise.all(names.map((n) => createNamespace(n)));
    assert.equal(new Set(all.map((n) => n.inode)).size, 20);
    await Promise.all(all.map((n) => n.delete()));
    assert.deepEqual(await listNamespaces(), []);
  });
});
