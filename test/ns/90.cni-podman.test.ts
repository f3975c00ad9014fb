/**
 * A real runtime, Podman 4.3 with its CNI backend, confined to the test sandbox
 * (test/helpers/podman.ts), running the reference plugin chain of Debian's
 * containernetworking-plugins: bridge (host-local IPAM) + portmap. podmanSuite runs the same
 * cases for any chain: another plugin is another PodmanCase.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sh, tryRun } from '../helpers/kernel';
import { Podman } from '../helpers/podman';
import { podmanSuite } from '../helpers/podman-suite';

const bridge = 'nmref0';

podmanSuite({
  title: '90 cni under podman: the reference chain (bridge + host-local + portmap)',
  network: 'nmref',
  bridge,
  subnet: '10.88.7.0/24',
  gateway: '10.88.7.1',
  setupPlugins(pm: Podman) {
    pm.copyPlugins(['bridge', 'host-local', 'portmap', 'loopback']);
  },
  conflist(pm: Podman) {
    return {
      cniVersion: '1.0.0',
      name: 'nmref',
      plugins: [
        {
          type: 'bridge',
          bridge,
          isGateway: true,
          ipMasq: true,
          ipam: { type: 'host-local', subnet: '10.88.7.0/24', routes: [{ dst: '0.0.0.0/0' }], dataDir: path.join(pm.dir, 'ipam') },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    };
  },
  attachmentState(pm: Podman, id: string, addr: string) {
    // host-local: a file per reserved address, holding the container id
    const dir = path.join(pm.dir, 'ipam', 'nmref');
    if (!fs.existsSync(dir)) return [];
    return fs.readdirSync(dir).filter((f) => f === addr || (!/^(lock|last_reserved_ip\.\d+)$/.test(f) && fs.readFileSync(path.join(dir, f), 'utf8').includes(id)));
  },
  teardown(_pm: Podman, newTables: string[]) {
    // the reference bridge plugin keeps its bridge, iptables its (by then empty of our rules) tables
    tryRun('ip', ['link', 'del', bridge]);
    for (const t of newTables) sh('nft', ['delete', ...t.split(/\s+/)]);
  },
});
