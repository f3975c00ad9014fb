/**
 * Helpers for sandbox tests: real processes started with Sandbox.spawn, their output collected,
 * and the sandboxes a test made removed afterwards (sharers before the sandboxes they joined).
 */
import { ChildProcess, SpawnOptions, spawn } from 'node:child_process';
import * as path from 'node:path';
import { Sandbox, SandboxOptions, createSandbox } from '../../lib';
import { SERVER_JS, CLIENT_JS, serverReady } from './kernel';

const CLI = path.join(__dirname, '..', '..', 'lib', 'cli', 'main.js');

/** Runs `netmodes ARGS` (the built CLI); onStdout sees its output as it comes. */
export function cli(args: string[], onStdout?: (chunk: string, child: ChildProcess) => void): Promise<Done> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NETMODES_NO_PROGRESS: '1' } });
  if (onStdout) child.stdout!.on('data', (d) => onStdout(String(d), child));
  return collect(child, undefined, 30000);
}

export interface Done {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Waits for a child to exit; feeds it `input` (then EOF) when given. */
export function collect(child: ChildProcess, input?: string, timeoutMs = 15000): Promise<Done> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d) => (stdout += d));
    child.stderr?.on('data', (d) => (stderr += d));
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`timed out; stdout=${stdout} stderr=${stderr}`));
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, stdout, stderr });
    });
    if (child.stdin) {
      child.stdin.on('error', () => undefined); // EPIPE when the command exits without reading
      if (input === undefined) child.stdin.end();
      else child.stdin.end(input);
    }
  });
}

/** Runs a command in the sandbox and collects it. */
export function runIn(sb: Sandbox, cmd: string, args: string[] = [], opts: SpawnOptions = {}, input?: string): Promise<Done> {
  return collect(sb.spawn(cmd, args, { stdio: 'pipe', ...opts }), input);
}

/** Starts kernel.ts's tiny TCP server inside the sandbox ("TAG PEER" to every connection). */
export async function serveIn(sb: Sandbox, port: number, tag: string, host = '0.0.0.0'): Promise<ChildProcess> {
  return serverReady(sb.spawn(process.execPath, ['-e', SERVER_JS, 'tcp', host, String(port), tag], { stdio: ['ignore', 'pipe', 'inherit'] }));
}

/** Connects from inside the sandbox to HOST:PORT; the server's answer or null. */
export async function connectIn(sb: Sandbox, host: string, port: number): Promise<string | null> {
  const r = await runIn(sb, process.execPath, ['-e', CLIENT_JS, 'tcp', host, String(port)]);
  return r.code === 0 ? r.stdout.trim() : null;
}

/** Kills a child and waits for it. */
export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
}

/** Sandboxes made by one test, removed newest first (so sharers go before their owner). */
export class Sandboxes {
  private made: Sandbox[] = [];
  private children: ChildProcess[] = [];
  async create(opts: SandboxOptions): Promise<Sandbox> {
    const sb = await createSandbox(opts);
    this.made.push(sb);
    return sb;
  }
  track(child: ChildProcess): ChildProcess {
    this.children.push(child);
    return child;
  }
  async cleanup(): Promise<void> {
    for (const c of this.children.splice(0)) await stop(c);
    for (const sb of this.made.splice(0).reverse()) await sb.remove();
  }
}
