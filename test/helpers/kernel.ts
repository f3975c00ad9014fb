/**
 * Independent readers of kernel state for tests: `ip -j` and `nft -j`, never our own dump code.
 * Also small process helpers for traffic checks between namespaces.
 */
import { execFileSync, spawn, ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const { assertSandboxed } = require('../../../scripts/sandbox.js');

/** Every test file calls this first: refuses to run outside the sandbox. */
export function sandboxed(): void {
  assertSandboxed();
}

/** Runs a command, returns stdout; throws with stderr on failure. */
export function sh(cmd: string, args: string[], opts: { input?: string; timeout?: number } = {}): string {
  return execFileSync(cmd, args, { input: opts.input, timeout: opts.timeout ?? 20000, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 256 << 20 }).toString();
}

/** Like sh, but returns the exit status instead of throwing. */
export function tryRun(cmd: string, args: string[], timeout = 10000): { status: number; stdout: string; stderr: string } {
  try {
    return { status: 0, stdout: sh(cmd, args, { timeout }), stderr: '' };
  } catch (err) {
    const e = err as { status?: number; stdout?: Buffer; stderr?: Buffer };
    return { status: e.status ?? 1, stdout: e.stdout?.toString() ?? '', stderr: e.stderr?.toString() ?? '' };
  }
}

/** `ip -j [-n NS] ARGS...` parsed. ns: a name under /run/netns, or undefined for the sandbox host. */
export function ipj(args: string[], ns?: string): any[] {
  const out = sh('ip', [...(ns ? ['-n', ns] : []), '-j', ...args]).trim();
  return out ? JSON.parse(out) : [];
}

/** `ip ...` in a namespace (for setting up peers in tests only). */
export function ip(args: string[], ns?: string): string {
  return sh('ip', [...(ns ? ['-n', ns] : []), ...args]);
}

/** `nft -j list ruleset` inside NS, as the list of its nftables objects. */
export function nftj(ns?: string): any[] {
  const out = ns ? sh('ip', ['netns', 'exec', ns, 'nft', '-j', 'list', 'ruleset']) : sh('nft', ['-j', 'list', 'ruleset']);
  return JSON.parse(out).nftables.filter((o: any) => !o.metainfo);
}

/** `nft list ruleset` text inside NS. */
export function nftText(ns?: string): string {
  return ns ? sh('ip', ['netns', 'exec', ns, 'nft', 'list', 'ruleset']) : sh('nft', ['list', 'ruleset']);
}

/** A unique short name for throwaway namespaces and links. */
export function uniq(prefix: string): string {
  return `${prefix}${randomBytes(3).toString('hex')}`;
}

/** Makes a named namespace with `ip netns add` (as a test peer), lo up. */
export function addNs(name: string): string {
  sh('ip', ['netns', 'add', name]);
  sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

/** Removes named namespaces made by a test, ignoring ones already gone. */
export function delNs(...names: string[]): void {
  for (const n of names) tryRun('ip', ['netns', 'del', n]);
}

/** ping -c1 from NS (or the sandbox host) to ADDR; true when a reply came back. */
export function ping(addr: string, ns?: string, count = 1): boolean {
  const args = ['-c', String(count), '-W', '1', '-i', '0.2', addr];
  const r = ns ? tryRun('ip', ['netns', 'exec', ns, 'ping', ...args]) : tryRun('ping', args);
  return r.status === 0;
}

export const SERVER_JS = `
const net=require('net'),dgram=require('dgram');const [proto,host,port,tag]=process.argv.slice(1);
if(proto==='udp'){const s=dgram.createSocket(host.includes(':')?'udp6':'udp4');s.on('message',(m,r)=>s.send(tag+' '+r.address,r.port,r.address));s.bind(+port,host,()=>console.log('ready'));}
else{net.createServer(c=>{c.end(tag+' '+c.remoteAddress.replace('::ffff:',''));}).listen(+port,host,()=>console.log('ready'));}`;

/**
 * Starts a tiny server in NS that answers every TCP connection (or UDP datagram) with
 * "TAG PEER-ADDRESS", so a test sees both who answered and which source address arrived.
 */
export async function startServer(ns: string | undefined, proto: 'tcp' | 'udp', port: number, tag: string, host = '0.0.0.0'): Promise<ChildProcess> {
  const cmd = ns ? 'ip' : process.execPath;
  const args = ns ? ['netns', 'exec', ns, process.execPath, '-e', SERVER_JS, proto, host, String(port), tag] : ['-e', SERVER_JS, proto, host, String(port), tag];
  return serverReady(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] }));
}

/** Resolves with the server once it prints its first line ("ready"); rejects if it exits first. */
export async function serverReady(child: ChildProcess): Promise<ChildProcess> {
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('server did not start')), 10000);
    child.stdout!.once('data', () => {
      clearTimeout(t);
      resolve();
    });
    child.once('exit', (c) => reject(new Error(`server exited ${c}`)));
  });
  return child;
}

export const CLIENT_JS = `
const net=require('net'),dgram=require('dgram');const [proto,host,port]=process.argv.slice(1);
const to=setTimeout(()=>{process.stdout.write('TIMEOUT');process.exit(2)},3000);
if(proto==='udp'){const s=dgram.createSocket(host.includes(':')?'udp6':'udp4');s.on('message',m=>{process.stdout.write(m.toString());process.exit(0)});const go=()=>s.send('x',+port,host);go();setInterval(go,300);}
else{const c=net.connect(+port,host);let d='';c.on('data',x=>d+=x);c.on('end',()=>{process.stdout.write(d);process.exit(0)});c.on('error',e=>{process.stdout.write('ERR '+e.code);process.exit(1)});}`;

/** Connects from NS to HOST:PORT; returns the server's answer ("TAG PEER") or null. */
export function connect(ns: string | undefined, proto: 'tcp' | 'udp', host: string, port: number): string | null {
  const args = ['-e', CLIENT_JS, proto, host, String(port)];
  const r = ns ? tryRun('ip', ['netns', 'exec', ns, process.execPath, ...args], 8000) : tryRun(process.execPath, args, 8000);
  return r.status === 0 ? r.stdout.trim() : null;
}
