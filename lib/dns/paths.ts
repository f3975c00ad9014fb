/**
 * Where the embedded DNS server keeps its files, below the state directory (lib/state/store.ts):
 *
 * - `dns/server.lock`: the server holds an exclusive flock on it for its whole life. Whoever can
 *   take that lock knows no server runs (the kernel drops the lock with the process, SIGKILL too):
 *   no pid file to trust, no pid to reuse.
 * - `dns/server.pid`: its pid, written once it holds the lock (for stopDnsServer()).
 * - `dns/status.json`: what it serves: per network, the addresses it listens on or why it cannot.
 */
import * as path from 'node:path';
import { stateDir } from '../state/store';

export function dnsDir(): string {
  return path.join(stateDir(), 'dns');
}
export function dnsLockFile(): string {
  return path.join(dnsDir(), 'server.lock');
}
export function dnsPidFile(): string {
  return path.join(dnsDir(), 'server.pid');
}
export function dnsStatusFile(): string {
  return path.join(dnsDir(), 'status.json');
}
/** The server's script (compiled next to this file). */
export function dnsServerScript(): string {
  return path.join(__dirname, 'server.js');
}

/** What status.json holds. */
export interface DnsStatus {
  pid: number;
  /** Per network name: its id, the addresses listened on, or the error that keeps it from listening. */
  networks: Record<string, { id: string; listening: string[]; error?: string; endpoints: number }>;
}
