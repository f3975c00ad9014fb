/** Dense networks (portsPerBridge) as the kernel shows them, for tests 58 and 59. */
import type { BridgeNetwork } from '../../lib';
import { ipj } from './kernel';
import { LIB, startScript } from './reliability';

/** The bridge inside each leaf namespace (lib/modes/bridge-leaves.ts LEAF_BRIDGE) and its port to the host. */
export const LEAF_BRIDGE = 'br0';
export const TRUNK = 'trunk';

/** The network's leaves (the host ends of their trunks, also their namespaces' names), from `ip -j`. */
export function leavesOf(net: BridgeNetwork): string[] {
  const leaf = new RegExp(`^nm${net.id.slice(0, 8)}b\\d+$`);
  return ipj(['link', 'show']).map((l: any) => l.ifname).filter((n: string) => leaf.test(n));
}

/**
 * The network's bridges with their container ports, from `ip -j`: its own (in the host), and each
 * leaf's, by the leaf's name (the bridge in the leaf's namespace, the trunk left out).
 */
export function bridgesOf(net: BridgeNetwork): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const host = ipj(['link', 'show']);
  if (host.some((l: any) => l.ifname === net.bridge)) out.set(net.bridge, host.filter((l: any) => l.master === net.bridge).map((l: any) => l.ifname));
  for (const leaf of leavesOf(net)) {
    let ports: string[] = [];
    try {
      ports = ipj(['link', 'show', 'master', LEAF_BRIDGE], leaf).map((l: any) => l.ifname).filter((n: string) => n !== TRUNK);
    } catch {
      /* a half-made leaf, with no namespace (yet) */
    }
    out.set(leaf, ports);
  }
  return out;
}

/** Frames (received and sent) counted so far on every bridge of the network and its ports. */
function frames(net: BridgeNetwork): number {
  let n = 0;
  const count = (ls: any[]) => ls.forEach((l) => (n += l.stats64.rx.packets + l.stats64.tx.packets));
  count([...ipj(['-s', 'link', 'show', 'dev', net.bridge]), ...ipj(['-s', 'link', 'show', 'master', net.bridge])]);
  // A leaf: its trunk's host end, and inside its namespace the bridge and every port.
  for (const leaf of leavesOf(net)) count([...ipj(['-s', 'link', 'show', 'dev', leaf]), ...ipj(['-s', 'link', 'show', 'dev', LEAF_BRIDGE], leaf), ...ipj(['-s', 'link', 'show', 'master', LEAF_BRIDGE], leaf)]);
  return n;
}

/** The frames the network's bridges and ports carry in `ms` at rest, after `settle` ms. */
export async function framesAtRest(net: BridgeNetwork, settle: number, ms: number): Promise<number> {
  await new Promise((r) => setTimeout(r, settle));
  const f0 = frames(net);
  await new Promise((r) => setTimeout(r, ms));
  return frames(net) - f0;
}

/**
 * A process that opens network `name` and connects the namespaces `names` one by one (to the
 * addresses `ips`), printing each; with `killAfter`, it is SIGKILLed once it printed that many.
 * Resolves once it is gone.
 */
export async function growInChild(name: string, names: string[], ips: string[], opts: { killAfter?: number; env?: NodeJS.ProcessEnv } = {}) {
  const script = `
    const nm = require(${JSON.stringify(LIB)});
    (async () => {
      const net = await nm.openBridgeNetwork(${JSON.stringify(name)});
      const ips = JSON.parse(process.argv[2]);
      for (const [i, n] of JSON.parse(process.argv[1]).entries()) { await net.connect(n, { ip: ips[i] }); console.log(n); }
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const child = startScript(script, [JSON.stringify(names), JSON.stringify(ips)], opts.env);
  if (opts.killAfter !== undefined) {
    const k = opts.killAfter;
    // (a child that ends first, e.g. failing, ends the wait too: its exit status tells the test)
    let t: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => {
        t = setInterval(() => {
          if (child.out().split('\n').length > k) {
            child.kill('SIGKILL');
            resolve();
          }
        }, 2);
      }),
      child.done,
    ]);
    clearInterval(t);
  }
  await child.done;
  return child;
}
