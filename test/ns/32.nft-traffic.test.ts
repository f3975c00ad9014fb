import { strict as assert } from 'node:assert';
import type { ChildProcess } from 'node:child_process';
import {
  openNamespace, Namespace, nftTransaction, nftList, NftSet, masquerade, dnatMap, dnatTo, sysctlSet,
} from '../../lib';
import { sandboxed, uniq, addNs, delNs, ip, startServer, connect } from '../helpers/kernel';

/**
 * Real packets through rules made by the library. Three throwaway namespaces:
 *
 *   outside (198.18.0.2/15) ==veth== host (198.18.0.1/15 | 172.17.0.1/16) ==veth== ctr (172.17.0.5/16)
 *
 * `host` forwards; `outside` has no route to 172.17.0.0/16, so only NAT lets the two talk.
 */
describe('32 nft traffic: masquerade and published ports rewrite real packets', () => {
  const id = uniq('');
  const names = { host: `nh${id}`, outside: `no${id}`, ctr: `nc${id}` };
  const hOut = `ho${id}`;
  const hCtr = `hc${id}`;
  let host: Namespace;
  const servers: ChildProcess[] = [];

  const T = { family: 'inet' as const, table: 'nm' };
  const PUB: NftSet = { ...T, name: 'published', type: 'ipv4_addr . inet_proto . inet_service', dataType: 'ipv4_addr . inet_service' };
  const ANY: NftSet = { ...T, name: 'published_any', type: 'inet_proto . inet_service', dataType: 'ipv4_addr . inet_service' };

  before(async () => {
    sandboxed();
    for (const n of Object.values(names)) addNs(n);
    ip(['link', 'add', hOut, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', names.outside], names.host);
    ip(['link', 'add', hCtr, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', names.ctr], names.host);
    ip(['addr', 'add', '198.18.0.1/15', 'dev', hOut], names.host);
    ip(['addr', 'add', '172.17.0.1/16', 'dev', hCtr], names.host);
    ip(['addr', 'add', '198.18.0.2/15', 'dev', 'eth0'], names.outside);
    ip(['addr', 'add', '172.17.0.5/16', 'dev', 'eth0'], names.ctr);
    for (const [ns, dev] of [[names.host, hOut], [names.host, hCtr], [names.outside, 'eth0'], [names.ctr, 'eth0']]) ip(['link', 'set', dev, 'up'], ns);
    ip(['route', 'add', 'default', 'via', '172.17.0.1'], names.ctr);
    host = await openNamespace(names.host);
    await sysctlSet('net.ipv4.ip_forward', 1, host);
    servers.push(await startServer(names.outside, 'tcp', 8080, 'OUT'));
    servers.push(await startServer(names.ctr, 'tcp', 80, 'CTR'));
    servers.push(await startServer(names.ctr, 'udp', 5353, 'CTRU'));
    const tx = nftTransaction(host);
    tx.addTable({ family: 'inet', name: 'nm' });
    tx.addChain({ ...T, name: 'nm_pre', type: 'nat', hook: 'prerouting', priority: 'dstnat' });
    tx.addChain({ ...T, name: 'nm_post', type: 'nat', hook: 'postrouting', priority: 'srcnat' });
    tx.addSet(PUB);
    tx.addSet(ANY);
    await tx.commit();
  });

  after(async () => {
    for (const s of servers) s.kill();
    host?.close();
    delNs(...Object.values(names));
  });

  it('masquerade: the outside server sees the host address, not the container', async () => {
    assert.equal(connect(names.ctr, 'tcp', '198.18.0.2', 8080), null, 'no NAT: the outside cannot answer 172.17.0.5');
    const tx = nftTransaction(host);
    tx.addRule({ ...T, chain: 'nm_post', exprs: masquerade({ saddr: '172.17.0.0/16', oifnameNot: hCtr }), comment: 'masq' });
    await tx.commit();
    assert.equal(connect(names.ctr, 'tcp', '198.18.0.2', 8080), 'OUT 198.18.0.1');
  });

  it('a published port is one map element: adding it opens the port, deleting it closes it, no rule changes', async () => {
    const tx = nftTransaction(host);
    tx.addRule({ ...T, chain: 'nm_pre', exprs: dnatMap({ map: 'published' }) });
    await tx.commit();
    const rulesBefore = (await nftList(host, { table: 'nm', elements: false })).rules.map((r) => [r.handle, r.exprs]);
    assert.equal(connect(names.outside, 'tcp', '198.18.0.1', 8081), null);

    const add = nftTransaction(host);
    add.addElements(PUB, [{ key: ['198.18.0.1', 'tcp', 8081], data: ['172.17.0.5', 80], comment: 'ctr 80/tcp' }]);
    await add.commit();
    // the container answers and sees the client's own address (DNAT only)
    assert.equal(connect(names.outside, 'tcp', '198.18.0.1', 8081), 'CTR 198.18.0.2');

    const del = nftTransaction(host);
    del.deleteElements(PUB, [{ key: ['198.18.0.1', 'tcp', 8081] }]);
    await del.commit();
    assert.equal(connect(names.outside, 'tcp', '198.18.0.1', 8081), null);
    const rulesAfter = (await nftList(host, { table: 'nm', elements: false })).rules.map((r) => [r.handle, r.exprs]);
    assert.deepStrictEqual(rulesAfter, rulesBefore);
  });

  it('ports published on every host address: fib daddr type local + a map keyed by protocol and port (tcp and udp)', async () => {
    const tx = nftTransaction(host);
    tx.addRule({ ...T, chain: 'nm_pre', exprs: dnatMap({ map: 'published_any', key: ['meta l4proto', 'th dport'], fibLocal: true }) });
    tx.addElements(ANY, [
      { key: ['tcp', 9090], data: ['172.17.0.5', 80] },
      { key: ['udp', 5353], data: ['172.17.0.5', 5353] },
    ]);
    await tx.commit();
    assert.equal(connect(names.outside, 'tcp', '198.18.0.1', 9090), 'CTR 198.18.0.2');
    assert.equal(connect(names.outside, 'udp', '198.18.0.1', 5353), 'CTRU 198.18.0.2');
    // packets to an address that is not the host's are not published: the container's own
    // address, reached through the host, answers only on its real port
    ip(['route', 'add', '172.17.0.0/16', 'via', '198.18.0.1'], names.outside);
    try {
      assert.equal(connect(names.outside, 'tcp', '172.17.0.5', 9090), null);
      assert.equal(connect(names.outside, 'tcp', '172.17.0.5', 80), 'CTR 198.18.0.2');
    } finally {
      ip(['route', 'del', '172.17.0.0/16', 'via', '198.18.0.1'], names.outside);
    }
    const del = nftTransaction(host);
    del.deleteElements(ANY, [{ key: ['tcp', 9090] }]);
    await del.commit();
    assert.equal(connect(names.outside, 'tcp', '198.18.0.1', 9090), null);
    assert.equal(connect(names.outside, 'udp', '198.18.0.1', 5353), 'CTRU 198.18.0.2');
  });

  it('a single DNAT rule (iifname != bridge ... dnat ip to ADDR:PORT) publishes too', async () => {
    const tx = nftTransaction(host);
    const i = tx.addRule({ ...T, chain: 'nm_pre', exprs: dnatTo({ iifnameNot: hCtr, l4proto: 'tcp', dport: 7070, addr: '172.17.0.5', port: 80 }) });
    const res = await tx.commit();
    assert.equal(connect(names.outside, 'tcp', '198.18.0.1', 7070), 'CTR 198.18.0.2');
    const del = nftTransaction(host);
    del.deleteRule({ ...T, chain: 'nm_pre', handle: res[i].handle! });
    await del.commit();
    assert.equal(connect(names.outside, 'tcp', '198.18.0.1', 7070), null);
  });
});
