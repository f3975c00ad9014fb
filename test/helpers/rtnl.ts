/**
 * Helpers for the rtnetlink tests: throwaway namespaces and `ip -j -d` readers (never our own
 * dump code when checking what the kernel holds).
 */
import { createNamespace, Namespace } from '../../lib';
import { ipj, tryRun, uniq } from './kernel';

/** Runs fn with `n` fresh named namespaces (lo up), deleted afterwards whatever happens. */
export async function withNamespaces<T>(n: number, fn: (ns: Namespace[]) => Promise<T>): Promise<T> {
  const list: Namespace[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const ns = await createNamespace(uniq('nmr'));
      list.push(ns);
      tryRun('ip', ['-n', ns.name!, 'link', 'set', 'lo', 'up']);
    }
    return await fn(list);
  } finally {
    for (const ns of list) await ns.delete();
  }
}

/** Deletes links of the sandbox host (or of NS) left by a test, ignoring ones already gone. */
export function delLinks(names: string[], ns?: string): void {
  for (const n of names) tryRun('ip', [...(ns ? ['-n', ns] : []), 'link', 'del', n]);
}

/** `ip -j -d link show dev NAME` in NS, or undefined when there is no such link. */
export function ipLink(name: string, ns?: string): any {
  const r = tryRun('ip', [...(ns ? ['-n', ns] : []), '-j', '-d', 'link', 'show', 'dev', name]);
  return r.status === 0 ? JSON.parse(r.stdout)[0] : undefined;
}

/** Names of the links in NS, sorted. */
export function linkNames(ns?: string): string[] {
  return ipj(['link', 'show'], ns).map((l) => l.ifname).sort();
}

/** `ip -j addr show dev NAME` address entries. */
export function ipAddrs(name: string, ns?: string): any[] {
  return ipj(['addr', 'show', 'dev', name], ns)[0]?.addr_info ?? [];
}

/** `ip -d -j route show table all` of one family (every table; -d shows table, protocol, scope, type always). */
export function ipRoutes(ns?: string, family: '-4' | '-6' = '-4'): any[] {
  return ipj([family, '-d', 'route', 'show', 'table', 'all'], ns);
}

/** Polls cond until it holds or `ms` pass; returns its last value. */
export async function waitUntil(cond: () => boolean, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (cond()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}
