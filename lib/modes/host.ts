/**
 * Host mode: Docker's `docker run --net=host`. No namespace and nothing in the kernel: processes
 * run in the caller's namespace (HOST_NETNS) and see the host's interfaces. A host name and DNS
 * overrides are the sandbox's own (its resolv.conf is written only when `dns` is given; otherwise
 * processes see the host's files); published ports are discarded with a warning, as Docker does;
 * an address, a MAC, links or aliases are a ConfigError (the option table: lib/sandbox/index.ts).
 */
import { buildResolvConf, ResolvConfOptions } from '../dnsfiles';
import { HOST_NETNS, SandboxRecord, readText, writeRecord, writeSandboxFile } from '../sandbox/records';

/** Docker's warning for `-p` with `--net=host`. */
export function warnPortsDiscarded(): void {
  process.emitWarning('Published ports are discarded when using host network mode', {
    type: 'NetmodesWarning',
    code: 'NETMODES_PORTS_DISCARDED',
  });
}

/**
 * Makes `rec` (a new record, state `creating`, not yet written) a host-mode sandbox. Nothing in
 * the kernel: the record is written once, ready, after its file.
 */
export async function createHostSandbox(rec: SandboxRecord, opts: { hostname?: string; dns?: ResolvConfOptions }): Promise<void> {
  rec.namespacePath = HOST_NETNS;
  rec.state = 'ready';
  if (opts.hostname) rec.hostname = opts.hostname;
  if (opts.dns) rec.resolvFile = await writeSandboxFile(rec.name, 'resolv.conf', buildResolvConf(await readText('/etc/resolv.conf'), opts.dns));
  await writeRecord(rec);
}
