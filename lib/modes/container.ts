/**
 * Container mode: Docker's `docker run --net=container:X`. The sandbox joins sandbox X's namespace:
 * nothing in the kernel, and X's interfaces, host name, hosts and resolv.conf. X lists the
 * sandboxes that joined it (`sharedBy`, an index checked against their records) and cannot be
 * removed before them: ESANDBOXINUSE. Published ports, an address, a MAC, links, aliases, a host
 * name or DNS options are a ConfigError (X's are used; the option table: lib/sandbox/index.ts).
 */
import { NetmodesError } from '../errors';
import { SandboxRecord, liveSharers, noSandbox, readRecord, writeRecord } from '../sandbox/records';

/**
 * Makes `rec` (a new record, state `creating`, not yet written) join sandbox `owner`'s namespace,
 * and writes it. Throws NetmodesError ENOSANDBOX when there is no such sandbox, or it is half-made.
 */
export async function joinSandbox(rec: SandboxRecord, owner: string): Promise<void> {
  const o = await readRecord(owner);
  if (!o) throw noSandbox(owner, 'network');
  if (o.state !== 'ready') throw new NetmodesError('ENOSANDBOX', `network: sandbox ${o.name} is half-made (remove it)`);
  Object.assign(rec, {
    state: 'ready',
    namespacePath: o.namespacePath,
    container: o.name,
    hostname: o.hostname,
    hostsFile: o.hostsFile,
    resolvFile: o.resolvFile,
  });
  // The owner lists its sharers first: a crash in between leaves an entry remove() ignores.
  await writeRecord({ ...o, sharedBy: [...(o.sharedBy ?? []).filter((n) => n !== rec.name), rec.name] });
  await writeRecord(rec);
}

/** Throws NetmodesError ESANDBOXINUSE while other sandboxes share `rec`'s namespace. */
export async function refuseWhileShared(rec: SandboxRecord): Promise<void> {
  const sharers = await liveSharers(rec);
  if (sharers.length)
    throw new NetmodesError(
      'ESANDBOXINUSE',
      `sandbox ${rec.name} is in use: ${sharers.join(', ')} share${sharers.length === 1 ? 's' : ''} its network namespace; remove ${sharers.length === 1 ? 'it' : 'them'} first`,
    );
}

/** On remove: takes a container-mode sandbox off the list of the sandbox it joined. */
export async function leaveSandbox(rec: SandboxRecord): Promise<void> {
  if (!rec.container) return;
  const owner = await readRecord(rec.container);
  if (owner?.sharedBy?.includes(rec.name)) await writeRecord({ ...owner, sharedBy: owner.sharedBy.filter((n) => n !== rec.name) });
}
