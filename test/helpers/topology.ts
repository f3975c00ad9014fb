/**
 * Test topologies built with `ip` (test peers only; the library never runs it): an "outside"
 * host joined to the sandbox host by a veth on 198.18.0.0/24 (RFC 2544 benchmarking space).
 */
import { ip, addNs, delNs, uniq, tryRun } from './kernel';

export interface Outside {
  ns: string;
  /** The sandbox host's address on the outside link. */
  hostAddr: string;
  /** The outside host's address. */
  addr: string;
  hostIf: string;
  remove(): void;
}

let n = 0;
export function makeOutside(): Outside {
  const k = (n++ % 200) + 1;
  const ns = addNs(uniq('out'));
  const hostIf = uniq('nmo');
  const hostAddr = `198.18.${k}.1`;
  const addr = `198.18.${k}.2`;
  ip(['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  ip(['addr', 'add', `${hostAddr}/24`, 'dev', hostIf]);
  ip(['link', 'set', hostIf, 'up']);
  ip(['addr', 'add', `${addr}/24`, 'dev', 'eth0'], ns);
  ip(['link', 'set', 'eth0', 'up'], ns);
  return {
    ns,
    hostAddr,
    addr,
    hostIf,
    remove() {
      // Deleting the namespace takes the pair with it, but asynchronously (and only once no
      // process holds it): delete our end first so nothing outlives the test.
      tryRun('ip', ['link', 'del', hostIf]);
      delNs(ns);
    },
  };
}
