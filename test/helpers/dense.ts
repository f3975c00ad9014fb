/** Dense networks (portsPerBridge) as the kernel shows them, for tests 58 and 59. */
import type { BridgeNetwork } from '../../lib';
import { ipj } from './kernel';
import { LIB, startScript } from './reliability';

/** The network's bridges (its own and its leaves) with their ports, from `ip -j`. */
export function bridgesOf(net: BridgeNetwork): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const leaf = new RegExp(`^nm${net.id.slice(0, 8)}b\\d+$`);
  for (const b of ipj(['link', 'show', 'type', 'bridge'])) if (b.ifname === net.bridge || leaf.test(b.ifname)) out.set(b.ifname, []);
  for (const l of ipj(['link', 'show'])) if (l.master && out.has(l.master)) out.get(l.master)!.push(l.ifname);
  return out;
}

/** Frames (received and sent) counted so far on every bridge of the network and its ports. */
function frames(net: BridgeNetwork): number {
  let n = 0;
  for (const b of bridgesOf(net).keys())
    for (const l of [...ipj(['-s', 'link', 'show', 'dev', b]), ...ipj(['-s', 'link', 'show', 'master', b])]) n += l.stats64.rx.packets + l.stats64.tx.packets;
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
