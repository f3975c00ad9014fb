/**
 * Running a process inside a sandbox: `child_process.spawn` of the native helper
 * `netmodes-exec`, which enters the namespace, mounts the sandbox's hosts and resolv.conf, sets
 * its host name and then execs the command in place. Because the helper execs, the ChildProcess
 * is the command itself: its pid, stdio, exit code and signals are the command's own. No shell,
 * no `nsenter`, no `ip netns exec`.
 */
import { spawn as nodeSpawn, ChildProcess, SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../errors';

/** What the helper needs to know about a sandbox. */
export interface ExecTarget {
  /** Namespace to enter; undefined: stay in the caller's (host mode). */
  netns?: string;
  /** Files bind-mounted over /etc/hosts and /etc/resolv.conf. */
  hostsFile?: string;
  resolvFile?: string;
  /** Host name, set in a UTS namespace of the process's own. */
  hostname?: string;
}

/** Exit status of the helper when the command never started (as `docker run` reports it). */
export const EXEC_FAILED = 125;
export const EXEC_CANNOT_EXECUTE = 126;
export const EXEC_NOT_FOUND = 127;

let helper: string | undefined;

/** Path of the `netmodes-exec` binary built with the addon. */
export function execHelperPath(): string {
  if (helper) return helper;
  const root = path.join(__dirname, '..', '..', '..'); // dist/lib/sandbox -> package root
  for (const dir of ['Release', 'Debug']) {
    const p = path.join(root, 'build', dir, 'netmodes-exec');
    if (existsSync(p)) return (helper = p);
  }
  throw new Error(
    `netmodes: the exec helper is not built (looked for ${path.join(root, 'build', 'Release', 'netmodes-exec')}). ` +
      'Run `npm run build:native` (needs gcc, make, python3 and the Node.js headers).',
  );
}

/** The helper's arguments for a target: flags, `--`, then the command line. */
export function execArgs(target: ExecTarget, command: string, args: readonly string[], extra: string[] = []): string[] {
  const flags: string[] = [];
  if (target.netns) flags.push('--netns', target.netns);
  if (target.hostsFile) flags.push('--hosts', target.hostsFile);
  if (target.resolvFile) flags.push('--resolv', target.resolvFile);
  if (target.hostname) flags.push('--hostname', target.hostname);
  return [...flags, ...extra, '--', command, ...args];
}

/**
 * `child_process.spawn(command, args, options)` inside the target. Options are Node's, with
 * three handed to the helper instead, since they must take effect after it entered the
 * namespace: `uid` and `gid` (the helper needs root for setns and mounts) and `argv0`.
 * `shell` is refused: the command runs as given, never through a shell.
 */
export function spawnIn(
  target: ExecTarget,
  command: string,
  args: readonly string[] = [],
  options: SpawnOptions = {},
): ChildProcess {
  if (typeof command !== 'string' || command === '') throw new ConfigError('expected a non-empty string', 'command');
  if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) throw new ConfigError('expected an array of strings', 'args');
  const { uid, gid, argv0, shell, ...rest } = options;
  if (shell) throw new ConfigError('sandbox processes are never run through a shell; spawn the shell itself', 'shell');
  const extra: string[] = [];
  for (const [flag, v] of [['--uid', uid], ['--gid', gid]] as const) {
    if (v === undefined) continue;
    if (!Number.isInteger(v) || (v as number) < 0) throw new ConfigError('expected a non-negative integer', flag.slice(2));
    extra.push(flag, String(v));
  }
  if (argv0 !== undefined) extra.push('--argv0', String(argv0));
  return nodeSpawn(execHelperPath(), execArgs(target, command, args, extra), rest);
}
