/**
 * A real runtime, Podman 4.3 with its CNI backend, confined to the test sandbox
 * (test/helpers/podman.ts), running the netmodes plugin as installed by `netmodes cni install`:
 * the same cases as test 90 runs for the reference chain (address, outbound masquerade, published
 * port, two containers, DEL by rm -f, stop, a container's own exit and run --rm leaving nothing).
 * The plugin's resident server starts inside Podman's mount namespace (the sandbox's /run/netmodes
 * is the same store there) and is stopped after each case.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Podman } from '../helpers/podman';
import { podmanSuite } from '../helpers/podman-suite';
import { installNetmodes, stopServer } from '../helpers/cni';
import { STATE, ourElements, walk } from '../helpers/reliability';
import { openBridgeNetwork } from '../../lib';

const network = 'nmpod';
const bridge = 'nmpod0';

podmanSuite({
  title: '91 cni under podman: the netmodes plugin',
  network,
  bridge,
  subnet: '10.88.7.0/24',
  gateway: '10.88.7.1',
  async setupPlugins(pm: Podman) {
    await installNetmodes(pm.pluginDir);
  },
  conflist() {
    return {
      cniVersion: '1.0.0',
      name: network,
      plugins: [{ type: 'netmodes', bridge, isGateway: true, ipMasq: true, ipam: { type: 'host-local', subnet: '10.88.7.0/24', routes: [{ dst: '0.0.0.0/0' }] }, capabilities: { portMappings: true } }],
    };
  },
  attachmentState(_pm: Podman, id: string, addr: string) {
    // The store: the endpoint record (the attachment of container `id` on eth0 is endpoint `id`),
    // the address reservation; the kernel: set and map elements that name the endpoint.
    const dir = path.join(STATE, 'networks', network);
    const files = [...walk(path.join(dir, 'endpoints')), ...walk(path.join(dir, 'ip'))].filter((f) => f.includes(id) || path.basename(f) === addr || fs.readFileSync(f, 'utf8').includes(id));
    const els = ourElements().filter(([, comment]) => comment.endsWith(`:${id}`)).map(([set, , text]) => `${set} ${text}`);
    return [...files, ...els];
  },
  async teardown() {
    await stopServer();
    try {
      await (await openBridgeNetwork(network)).remove({ force: true });
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENONETWORK') throw err;
    }
  },
  residents: /dist\/lib\/cni\/server\.js/,
  // DEL detaches the veth at once (off the network) and the server deletes detached veths in
  // batches, 100 ms after the first (lib/modes/bridge-reaper.ts).
  settleMs: 1000,
});
