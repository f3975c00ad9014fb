/** `netmodes demo` (README's first command) runs green: every check of the seed's walk-through passes. */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { sandboxed, ipj, nftj } from '../helpers/kernel';
import { listNamespaces, listBridgeNetworks } from '../../lib';

describe('62 netmodes demo', function () {
  this.timeout(120000);
  it('walks through the seed article with every check passing, and leaves nothing behind', async () => {
    sandboxed();
    const cli = path.join(__dirname, '..', '..', 'lib', 'cli', 'main.js');
    const r = spawnSync(process.execPath, [cli, 'demo'], { encoding: 'utf8', timeout: 110000 });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /Summary: (\d+) checks passed, 0 failed\./);
    assert.ok(Number(/Summary: (\d+) checks passed/.exec(r.stdout)![1]) >= 10);
    assert.match(r.stdout, /ip saddr 172\.17\.0\.0\/16 oifname != "docker0" masquerade/);
    assert.match(r.stdout, /hello from web, you are 198\.18\.0\.2/);
    assert.deepEqual(await listNamespaces(), []);
    assert.deepEqual(await listBridgeNetworks(), []);
    assert.deepEqual(ipj(['link', 'show']).map((l: any) => l.ifname), ['lo']);
    assert.deepEqual(nftj(), []);
  });
});
