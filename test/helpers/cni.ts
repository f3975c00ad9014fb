/**
 * Runs CNI plugins exactly as a runtime does: a new process per call, CNI_* in the environment,
 * the network configuration on stdin, the result (or error object) on stdout.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { collect, Done } from './sandbox';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const CLI = path.join(ROOT, 'dist', 'lib', 'cli', 'main.js');
export const REFERENCE_DIR = '/usr/lib/cni';

export interface CniCall {
  command: string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  /** More environment (NETMODES_CNI_MODE, NETMODES_FAULT, ...). */
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

export interface CniOutcome extends Done {
  /** stdout parsed, when it is JSON. */
  json?: any;
}

/** Runs `plugin` once with the call's environment and `conf` (an object or raw text) on stdin. */
export async function runPlugin(plugin: string, call: CniCall, conf: unknown, pluginDir = path.dirname(plugin)): Promise<CniOutcome> {
  const env: NodeJS.ProcessEnv = { ...process.env, CNI_COMMAND: call.command, CNI_PATH: pluginDir, ...call.env };
  // The runtime's own environment must not leak a test's fault hook into the plugin by accident.
  if (!call.env || !('NETMODES_FAULT' in call.env)) delete env.NETMODES_FAULT;
  if (call.containerId !== undefined) env.CNI_CONTAINERID = call.containerId;
  if (call.netns !== undefined) env.CNI_NETNS = call.netns;
  if (call.ifname !== undefined) env.CNI_IFNAME = call.ifname;
  if (call.args !== undefined) env.CNI_ARGS = call.args;
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  const child = spawn(plugin, [], { env, stdio: ['pipe', 'pipe', 'pipe'], cwd: '/' });
  const input = typeof conf === 'string' ? conf : JSON.stringify(conf);
  const r: CniOutcome = await collect(child, input, call.timeoutMs ?? 30000);
  try {
    r.json = r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
  } catch {
    /* not JSON */
  }
  return r;
}

/** A temporary directory (removed by the caller). */
export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Installs the netmodes plugin into `dir` with the CLI, run from another directory. */
export async function installNetmodes(dir: string): Promise<string> {
  const child = spawn(process.execPath, [CLI, 'cni', 'install', '--bin-dir', dir], { cwd: os.tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] });
  const r = await collect(child);
  if (r.code !== 0) throw new Error(`cni install failed: ${r.stderr}`);
  return r.stdout.trim();
}

/** The pid of this namespace's resident server, from its lock file, or undefined. */
export function serverPid(stateDir = process.env.NETMODES_STATE_DIR || '/run/netmodes'): number | undefined {
  const ino = fs.statSync('/proc/self/ns/net').ino;
  try {
    const pid = Number(fs.readFileSync(path.join(stateDir, 'cni', `server-${ino}.lock`), 'utf8').trim());
    if (pid > 0 && fs.existsSync(`/proc/${pid}`)) return pid;
  } catch {
    /* none */
  }
  return undefined;
}

/** Stops this namespace's resident server (SIGTERM, then SIGKILL) and waits until it is gone. */
export async function stopServer(stateDir?: string): Promise<void> {
  const pid = serverPid(stateDir);
  if (pid === undefined) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let i = 0; i < 100 && fs.existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 20));
  if (fs.existsSync(`/proc/${pid}`)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    for (let i = 0; i < 100 && fs.existsSync(`/proc/${pid}`) && !fs.readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z'); i++)
      await new Promise((r) => setTimeout(r, 20));
  }
}
