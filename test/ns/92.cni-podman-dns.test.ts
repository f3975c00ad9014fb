/**
 * Podman 4.3 (CNI backend, confined as in test 90) on a netmodes network with the embedded DNS
 * server (`"embeddedDns": true`, the `aliases` capability): a container started with
 * `--name db --network-alias database` is found by those names from another container, through
 * the resolv.conf Podman writes from the plugin's result; the names go with the container.
 */
import { strict as assert } from 'node:assert';
import { sandboxed } from '../helpers/kernel';
import { Podman, podmanRun, podmanRunAttached, podmanRm, podmanInspect } from '../helpers/podman';
import { installNetmodes, stopServer } from '../helpers/cni';
import { openBridgeNetwork, dnsServerRunning } from '../../lib';

const network = 'nmpoddns';

describe('92 cni under podman: the netmodes plugin with embedded DNS', function () {
  this.timeout(120000);
  let pm: Podman | undefined;

  before(sandboxed);
  afterEach(async () => {
    const killed = pm ? await pm.cleanup() : [];
    pm = undefined;
    await stopServer();
    try {
      await (await openBridgeNetwork(network)).remove({ force: true });
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENONETWORK') throw err;
    }
    assert.equal(await dnsServerRunning(), false, 'the DNS server stops with the last network that uses it');
    assert.deepEqual(killed.filter((k) => !/dist\/lib\/(cni|dns)\/server\.js/.test(k)), [], 'processes podman left running (killed)');
  });

  it('containers find each other by name and --network-alias; resolv.conf names the gateway', async () => {
    pm = await Podman.create();
    await installNetmodes(pm.pluginDir);
    pm.writeConflist({
      name: network,
      cniVersion: '1.0.0',
      plugins: [{ type: 'netmodes', bridge: 'nmpoddns0', isGateway: true, embeddedDns: true, ipam: { subnet: '10.88.14.0/24' }, capabilities: { aliases: true, portMappings: true } }],
    } as { name: string });
    const db = await podmanRun(pm, { network, name: 'db', extra: ['--network-alias', 'database'], cmd: ['sh', '-c', 'sleep 600'] });
    const dbIp = (await podmanInspect(pm, db)).NetworkSettings.Networks[network].IPAddress;
    assert.match(dbIp, /^10\.88\.14\.\d+$/);
    const r = await podmanRunAttached(pm, {
      network,
      extra: ['--rm'],
      cmd: ['sh', '-c', 'cat /etc/resolv.conf; for n in db database DATABASE; do nslookup $n 10.88.14.1 2>&1 | grep -A2 "^Name:" | grep Address; done'],
    });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^nameserver 10\.88\.14\.1$/m, r.stdout);
    const found = [...r.stdout.matchAll(/Address(?: \d+)?:\s*([0-9.]+)/g)].map((m) => m[1]);
    assert.deepEqual(found, [dbIp, dbIp, dbIp], r.stdout);
    // Once db is gone, so are its names.
    await podmanRm(pm, db);
    const after = await podmanRunAttached(pm, { network, extra: ['--rm'], cmd: ['sh', '-c', 'nslookup database 10.88.14.1 2>&1; true'] });
    assert.doesNotMatch(after.stdout, new RegExp(dbIp.replace(/\./g, '\\.')), after.stdout);
  });
});
