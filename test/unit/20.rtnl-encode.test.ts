/**
 * rtnetlink encoding without root: golden bytes for a few requests (annotated field by field
 * against the uapi structs), encode -> decode round trips, and TypeScript validation.
 */
import { strict as assert } from 'node:assert';
import { ConfigError, currentNamespace } from '../../lib';
import { rtnl, NativeOp, DecodedMsg } from '../../lib/netlink/native';
import { toNative, trustedNative } from '../../lib/netlink/ops';
import type { BatchOp } from '../../lib/netlink/types';

/** Hex with whitespace and `# comments` stripped. */
function hex(s: string): Buffer {
  return Buffer.from(s.replace(/#.*$/gm, '').replace(/\s+/g, ''), 'hex');
}

const encode = (ops: NativeOp[], seq = 1) => rtnl().rtnlEncode(ops, seq);
const roundTrip = (ops: NativeOp[]): DecodedMsg[] => rtnl().rtnlDecode(encode(ops));

describe('20 rtnl encoding (no root)', () => {
  describe('golden bytes', () => {
    it('veth with its peer created as eth0 in another namespace, both up', () => {
      // fd 7 stands for the peer's namespace (encode-only mode takes numbers).
      const got = encode([{ op: 'linkAdd', name: 'vh', kind: 'veth', up: true, peer: { name: 'eth0', ns: 7, up: true } }], 1);
      const want = hex(`
        64000000 1000 0d06 01000000 00000000  # nlmsghdr: len 100, RTM_NEWLINK, REQUEST|ACK|ECHO|EXCL|CREATE, seq 1, pid 0
        00 00 0000 00000000 01000000 01000000 # ifinfomsg: AF_UNSPEC, type 0, index 0, flags UP, change UP
        0700 0300 76680000                    # IFLA_IFNAME "vh\\0"
        3c00 1280                             # IFLA_LINKINFO (nested), len 60
          0900 0100 7665746800000000          #   IFLA_INFO_KIND "veth\\0"
          2c00 0280                           #   IFLA_INFO_DATA (nested), len 44
            2800 0180                         #     VETH_INFO_PEER (nested), len 40
              00000000 00000000 00000000 00000000  # peer ifinfomsg, all zero: IFF_UP here would fail (ENOTCONN)
              0900 0300 6574683000000000      #       IFLA_IFNAME "eth0\\0"
              0800 1c00 07000000              #       IFLA_NET_NS_FD 7
        2c000000 1000 0500 02000000 00000000  # follow-up: len 44, RTM_NEWLINK, REQUEST|ACK, seq 2
        00 00 0000 00000000 01000000 01000000 # ifinfomsg: index 0 (by name), flags UP, change UP
        0900 0300 6574683000000000            # IFLA_IFNAME "eth0\\0" (sent in the peer's namespace)
      `);
      assert.equal(got.toString('hex'), want.toString('hex'));
    });

    it('address add', () => {
      const got = encode([toNative({ op: 'addrAdd', link: 2, cidr: '10.0.0.2/24' })], 7);
      const want = hex(`
        28000000 1400 0506 07000000 00000000  # len 40, RTM_NEWADDR, REQUEST|ACK|EXCL|CREATE, seq 7
        02 18 00 00 02000000                  # ifaddrmsg: AF_INET, /24, flags 0, scope universe, index 2
        0800 0200 0a000002                    # IFA_LOCAL 10.0.0.2
        0800 0100 0a000002                    # IFA_ADDRESS 10.0.0.2
      `);
      assert.equal(got.toString('hex'), want.toString('hex'));
    });

    it('default route via a gateway', () => {
      const got = encode([toNative({ op: 'routeAdd', dst: 'default', gateway: '10.0.0.1' })], 1);
      const want = hex(`
        2c000000 1800 0506 01000000 00000000  # len 44, RTM_NEWROUTE, REQUEST|ACK|EXCL|CREATE, seq 1
        02 00 00 00 fe 03 00 01 00000000      # rtmsg: AF_INET, dst_len 0, src_len 0, tos 0, table main, proto boot, scope universe, unicast, flags 0
        0800 0f00 fe000000                    # RTA_TABLE 254
        0800 0500 0a000001                    # RTA_GATEWAY 10.0.0.1
      `);
      assert.equal(got.toString('hex'), want.toString('hex'));
    });

    it('IPv6 route without gateway gets scope link, as `ip route` does', () => {
      const got = encode([toNative({ op: 'routeAdd', dst: 'fd00:1::/64', link: 3, metric: 100 })], 1);
      const want = hex(`
        48000000 1800 0506 01000000 00000000
        0a 40 00 00 fe 03 fd 01 00000000      # AF_INET6, /64, table main, proto boot, scope link, unicast
        0800 0f00 fe000000                    # RTA_TABLE 254
        1400 0100 fd000001000000000000000000000000  # RTA_DST fd00:1::
        0800 0400 03000000                    # RTA_OIF 3
        0800 0600 64000000                    # RTA_PRIORITY 100
      `);
      assert.equal(got.toString('hex'), want.toString('hex'));
    });

    it('delete every link of a group: one message, ifindex 0 + IFLA_GROUP', () => {
      const got = encode([toNative({ op: 'linkDelGroup', group: 42 })], 1);
      const want = hex(`
        28000000 1100 0500 01000000 00000000  # len 40, RTM_DELLINK, REQUEST|ACK
        00 00 0000 00000000 00000000 00000000 # ifinfomsg: index 0
        0800 1b00 2a000000                    # IFLA_GROUP 42
      `);
      assert.equal(got.toString('hex'), want.toString('hex'));
    });

    it('numbers messages from the given sequence, one per message', () => {
      const msgs = rtnl().rtnlDecode(
        encode([toNative({ op: 'linkDel', link: 'a' }), toNative({ op: 'linkDel', link: 'b' }), toNative({ op: 'linkGet', link: 4 })], 1000),
      );
      assert.deepEqual(msgs.map((m) => [m.type, m.seq]), [['RTM_DELLINK', 1000], ['RTM_DELLINK', 1001], ['RTM_GETLINK', 1002]]);
    });
  });

  describe('round trips (encode -> decode)', () => {
    it('linkAdd: every creating attribute, then the follow-ups the kernel needs', () => {
      const msgs = roundTrip([
        {
          op: 'linkAdd', name: 'veth-h1', kind: 'veth', mtu: 1400, mac: '02:00:00:00:00:01', group: 7, txqlen: 500,
          master: 9, alias: 'container 1', up: true, noIpv6: true,
          peer: { name: 'eth0', ns: 12, mac: '02:00:00:00:00:02', mtu: 1400, up: true },
        },
      ]);
      assert.deepEqual(msgs.map((m) => m.type), ['RTM_NEWLINK', 'RTM_NEWLINK', 'RTM_NEWLINK', 'RTM_NEWLINK']);
      const create = msgs[0].link!;
      assert.equal(msgs[0].flags, 0x1 | 0x4 | 0x8 | 0x200 | 0x400);
      assert.equal(create.name, 'veth-h1');
      assert.equal(create.kind, 'veth');
      assert.equal(create.mtu, 1400);
      assert.equal(create.mac, '02:00:00:00:00:01');
      assert.equal(create.group, 7);
      assert.equal(create.txqlen, 500);
      assert.equal(create.master, 9);
      assert.equal(create.up, false, 'noIpv6: created down, addrgenmode first');
      assert.equal(create.alias, undefined, 'the kernel ignores an alias at creation');
      assert.equal(create.addrGenMode, undefined, 'the kernel refuses IFLA_AF_SPEC at creation');
      assert.deepEqual(create.peer, { index: 0, name: 'eth0', flags: [], up: false, mtu: 1400, mac: '02:00:00:00:00:02', netnsFd: 12 });
      // Peer: addrgenmode none and up in its namespace (its other end is still down: no carrier).
      assert.deepEqual(msgs[1].link, { index: 0, name: 'eth0', flags: ['UP'], up: true, change: ['UP'], addrGenMode: 'none' });
      // Link: addrgenmode none and the alias, then up in a message of its own.
      assert.deepEqual(msgs[2].link, { index: 0, name: 'veth-h1', flags: [], up: false, alias: 'container 1', addrGenMode: 'none' });
      assert.deepEqual(msgs[3].link, { index: 0, name: 'veth-h1', flags: ['UP'], up: true, change: ['UP'] });
      assert.deepEqual(msgs.map((m) => m.seq), [1, 2, 3, 4]);
    });

    it('linkAdd bridge options', () => {
      const [m] = roundTrip([toNative({ op: 'linkAdd', name: 'br0', kind: 'bridge', bridge: { stp: false, forwardDelay: 0, vlanFiltering: true, ageingTime: 30000 } })]);
      assert.deepEqual(m.link!.bridge, { stp: false, forwardDelay: 0, vlanFiltering: true, ageingTime: 30000 });
      assert.equal(m.link!.kind, 'bridge');
    });

    it('linkSet: one message with every change; port flags after a master change go second', () => {
      const one = roundTrip([toNative({ op: 'linkSet', link: 5, up: false, mtu: 9000, name: 'new0', mac: '02:aa:bb:cc:dd:ee', alias: '', group: 3, hairpin: true, learning: false })]);
      assert.equal(one.length, 1);
      assert.deepEqual(one[0].link, {
        index: 5, name: 'new0', flags: [], up: false, change: ['UP'], mtu: 9000, mac: '02:aa:bb:cc:dd:ee', alias: '', group: 3, hairpin: true, learning: false,
      });
      const two = roundTrip([toNative({ op: 'linkSet', link: 5, master: 2, isolated: true })]);
      assert.equal(two.length, 2);
      assert.equal(two[0].link!.master, 2);
      assert.equal(two[0].link!.isolated, undefined);
      assert.equal(two[1].link!.isolated, true);
      const cut = roundTrip([toNative({ op: 'linkSet', link: 5, portState: 'listening', locked: true, unicastFlood: false, mcastFlood: false, bcastFlood: false, fdbFlush: true })]);
      assert.equal(cut.length, 1);
      assert.deepEqual(
        [cut[0].link!.portState, cut[0].link!.locked, cut[0].link!.unicastFlood, cut[0].link!.mcastFlood, cut[0].link!.bcastFlood],
        ['listening', true, false, false, false],
      );
      const nomaster = roundTrip([toNative({ op: 'linkSet', link: 'eth1', master: null })]);
      assert.equal(nomaster[0].link!.name, 'eth1', 'by name: the kernel looks it up');
      assert.equal(nomaster[0].link!.index, 0);
      assert.equal(nomaster[0].link!.master, undefined, 'IFLA_MASTER 0 = nomaster');
    });

    it('address, route and neighbour requests of both families', () => {
      const msgs = roundTrip([
        toNative({ op: 'addrAdd', link: 3, cidr: 'fd00::2/64', noDad: true }),
        toNative({ op: 'addrAdd', link: 3, cidr: '127.0.0.9/8', label: 'lo:x', broadcast: '127.255.255.255' }),
        toNative({ op: 'addrDel', link: 3, cidr: '10.1.2.3/16' }),
        toNative({ op: 'routeReplace', dst: '10.8.0.0/16', gateway: '10.0.0.1', table: 100, metric: 5, onlink: true, protocol: 'static', src: '10.0.0.2' }),
        toNative({ op: 'routeDel', dst: '192.168.0.0/24' }),
        toNative({ op: 'routeAdd', dst: 'default', family: 6, type: 'unreachable' }),
        toNative({ op: 'neighAdd', link: 4, address: '10.0.0.7', lladdr: '02:00:00:00:00:07' }),
        toNative({ op: 'neighDel', link: 4, address: 'fe80::7' }),
        toNative({ op: 'addrAdd', link: 3, cidr: 'fd00::3/64', noDad: true, noPrefixRoute: true }),
      ]);
      assert.deepEqual(msgs[0].addr, { index: 3, family: 6, address: 'fd00::2', prefix: 64, scope: 'universe', flags: ['NODAD'] });
      assert.deepEqual(msgs[1].addr, { index: 3, family: 4, address: '127.0.0.9', prefix: 8, scope: 'host', flags: [], label: 'lo:x', broadcast: '127.255.255.255' });
      assert.equal(msgs[2].type, 'RTM_DELADDR');
      assert.deepEqual(msgs[3].route, {
        family: 4, dst: '10.8.0.0', prefix: 16, gateway: '10.0.0.1', table: 100, metric: 5, scope: 'universe', protocol: 'static', type: 'unicast', flags: ['ONLINK'], src: '10.0.0.2',
      });
      assert.equal(msgs[3].flags & 0x100, 0x100, 'NLM_F_REPLACE');
      assert.deepEqual(msgs[4].route, { family: 4, dst: '192.168.0.0', prefix: 24, table: 254, scope: 'nowhere', protocol: 'unspec', type: 'unspec', flags: [] });
      assert.deepEqual(msgs[5].route, { family: 6, dst: 'default', prefix: 0, table: 254, scope: 'universe', protocol: 'boot', type: 'unreachable', flags: [] });
      assert.deepEqual(msgs[6].neigh, { index: 4, family: 4, address: '10.0.0.7', lladdr: '02:00:00:00:00:07', state: ['PERMANENT'] });
      assert.deepEqual(msgs[7].neigh, { index: 4, family: 6, address: 'fe80::7', state: [] });
      assert.deepEqual(msgs[8].addr, { index: 3, family: 6, address: 'fd00::3', prefix: 64, scope: 'universe', flags: ['NODAD', 'NOPREFIXROUTE'] });
    });

    it('bridge fdb entries: AF_BRIDGE, NTF_MASTER, static (NUD_NOARP), no destination address', () => {
      const msgs = roundTrip([
        toNative({ op: 'fdbAdd', link: 9, lladdr: '02:42:AC:11:00:01' }),
        toNative({ op: 'fdbDel', link: 9, lladdr: '02:42:ac:11:00:01' }),
      ]);
      assert.deepEqual(msgs.map((m) => m.type), ['RTM_NEWNEIGH', 'RTM_DELNEIGH']);
      assert.equal(msgs[0].flags & 0x600, 0x600, 'NLM_F_CREATE | NLM_F_EXCL');
      for (const m of msgs) {
        assert.equal(m.neigh!.family, 7, 'AF_BRIDGE');
        assert.equal(m.neigh!.index, 9);
        assert.equal(m.neigh!.lladdr, '02:42:ac:11:00:01');
        assert.equal(m.neigh!.address, undefined);
        assert.deepEqual(m.neigh!.state, ['NOARP']);
      }
      assert.throws(() => toNative({ op: 'fdbAdd', link: 9 } as never), /lladdr/);
      assert.throws(() => toNative({ op: 'fdbAdd', link: 9, lladdr: '02:42:ac:11:00:01', address: '10.0.0.1' } as never), /address/);
    });

    it('decoding is bounds-checked: truncated and garbage buffers never throw or read past the end', () => {
      const good = encode([{ op: 'linkAdd', name: 'vh', kind: 'veth', up: true, peer: { name: 'eth0', ns: 7 } }]);
      for (let cut = 0; cut < good.length; cut++) rtnl().rtnlDecode(good.subarray(0, cut));
      // Lie about lengths inside: an attribute longer than its message, a nest longer than its parent.
      const bad = Buffer.from(good);
      bad.writeUInt16LE(0xfff0, 32);
      assert.doesNotThrow(() => rtnl().rtnlDecode(bad));
      let seed = 1;
      for (let i = 0; i < 2000; i++) {
        const b = Buffer.from(good);
        for (let k = 0; k < 4; k++) {
          seed = (seed * 1103515245 + 12345) >>> 0;
          b[16 + (seed % (b.length - 16))] = seed >>> 24;
        }
        rtnl().rtnlDecode(b);
      }
    });

    it('names that need an ifindex lookup are refused in encode-only mode', () => {
      assert.throws(() => encode([toNative({ op: 'addrAdd', link: 'eth0', cidr: '10.0.0.2/24' })]), /eth0 needs a lookup/);
    });
  });

  describe('validation (ConfigError before anything reaches the addon)', () => {
    const bad: Array<[BatchOp | Record<string, unknown>, string]> = [
      [{ op: 'linkAdd', name: '', kind: 'bridge' }, 'name'],
      [{ op: 'linkAdd', name: 'x'.repeat(16), kind: 'bridge' }, 'name'],
      [{ op: 'linkAdd', name: 'a/b', kind: 'bridge' }, 'name'],
      [{ op: 'linkAdd', name: 'a b', kind: 'bridge' }, 'name'],
      [{ op: 'linkAdd', name: 'a:1', kind: 'bridge' }, 'name'],
      [{ op: 'linkAdd', name: '..', kind: 'bridge' }, 'name'],
      [{ op: 'linkAdd', name: 'ok', kind: 'vlan' }, 'kind'],
      [{ op: 'linkAdd', name: 'ok', kind: 'veth' }, 'peer'],
      [{ op: 'linkAdd', name: 'ok', kind: 'veth', peer: { name: 'ok' } }, 'peer.name'],
      [{ op: 'linkAdd', name: 'ok', kind: 'veth', peer: { name: 'p', ns: '/run/netns/x' } }, 'peer.ns'],
      [{ op: 'linkAdd', name: 'ok', kind: 'bridge', mtu: 67 }, 'mtu'],
      [{ op: 'linkAdd', name: 'ok', kind: 'bridge', mtu: 65536 }, 'mtu'],
      [{ op: 'linkAdd', name: 'ok', kind: 'bridge', mac: '01:00:5e:00:00:01' }, 'mac'],
      [{ op: 'linkAdd', name: 'ok', kind: 'bridge', mac: '00:00:00:00:00:00' }, 'mac'],
      [{ op: 'linkAdd', name: 'ok', kind: 'bridge', mac: '02:00:00:00:00' }, 'mac'],
      [{ op: 'linkAdd', name: 'ok', kind: 'bridge', group: -1 }, 'group'],
      [{ op: 'linkAdd', name: 'ok', kind: 'bridge', group: 2 ** 32 }, 'group'],
      [{ op: 'linkAdd', name: 'ok', kind: 'bridge', Up: true }, 'Up'],
      [{ op: 'linkAdd', name: 'ok', kind: 'dummy', bridge: {} }, 'bridge'],
      [{ op: 'linkDel', link: 0 }, 'link'],
      [{ op: 'linkDel', link: 1.5 }, 'link'],
      [{ op: 'linkDelGroup', group: 0 }, 'group'],
      [{ op: 'linkSet', link: 'a', netns: {} }, 'netns'],
      [{ op: 'addrAdd', link: 'a', cidr: '10.0.0.300/24' }, 'cidr'],
      [{ op: 'addrAdd', link: 'a', cidr: '10.0.0.1/33' }, 'cidr'],
      [{ op: 'addrAdd', link: 'a', cidr: '10.1/8' }, 'cidr'],
      [{ op: 'addrAdd', link: 'a', cidr: 'fe80::1%eth0/64' }, 'cidr'],
      [{ op: 'addrAdd', link: 'a', cidr: 'fd00::1/129' }, 'cidr'],
      [{ op: 'addrAdd', link: 'a', cidr: 'fd00::1/64', broadcast: 'fd00::ff' }, 'broadcast'],
      [{ op: 'addrAdd', link: 'a', cidr: '10.0.0.1/24', label: 'x'.repeat(16) }, 'label'],
      [{ op: 'routeAdd', dst: '10.0.0.1/24' }, 'dst'],
      [{ op: 'routeAdd', dst: '10.0.0.0/24', gateway: 'fd00::1' }, 'gateway'],
      [{ op: 'routeAdd', dst: 'default', table: 0 }, 'table'],
      [{ op: 'routeAdd', dst: 'default', metric: -1 }, 'metric'],
      [{ op: 'routeAdd', dst: 'default', type: 'nat' }, 'type'],
      [{ op: 'routeAdd', dst: 'default', scope: 'galaxy' }, 'scope'],
      [{ op: 'neighAdd', link: 'a', address: '10.0.0.2' }, 'lladdr'],
      [{ op: 'neighAdd', link: 'a', address: '10.0.0.2', lladdr: 'zz:00:00:00:00:00' }, 'lladdr'],
      [{ op: 'nope' }, 'op'],
    ];
    for (const [op, field] of bad) {
      it(`${JSON.stringify(op)} -> ConfigError on ${field}`, () => {
        assert.throws(
          () => toNative(op as BatchOp),
          (e: ConfigError) => e instanceof ConfigError && e.code === 'EINVAL' && e.field === field,
        );
      });
    }

    it('fields inside a batch are named by position', () => {
      assert.throws(
        () => toNative({ op: 'linkAdd', name: 'ok', kind: 'veth', peer: { name: 'bad name' } }, 'ops[3]'),
        (e: ConfigError) => e.field === 'ops[3].peer.name',
      );
    });

    it('canonicalises what it passes on', () => {
      assert.deepEqual(toNative({ op: 'addrAdd', link: 'eth0', cidr: 'FD00:0::0:2/64' }), { op: 'addrAdd', ns: null, link: 'eth0', address: 'fd00::2', prefix: 64 });
      assert.deepEqual(toNative({ op: 'addrAdd', link: 'eth0', cidr: '10.0.0.2' }), { op: 'addrAdd', ns: null, link: 'eth0', address: '10.0.0.2', prefix: 32 });
      assert.equal(toNative({ op: 'linkAdd', name: 'b', kind: 'bridge', mac: '02:AB:00:00:00:01' }).mac, '02:ab:00:00:00:01');
    });
  });

  describe('trustedNative (the bridge\'s ops, converted without the checks)', () => {
    const ns = currentNamespace();
    // Every shape bridge connect and disconnect send, as they build them.
    const shapes: BatchOp[] = [
      {
        op: 'linkAdd', ns, name: 'veth0123456789a', kind: 'veth', mtu: 1500, queues: 1, master: 4, up: true, alias: 'netmodes-pending:abc:def',
        noIpv6: true, disableIpv6: true, peer: { name: 'eth0', ns, mac: '02:42:AC:11:00:02', mtu: 1500, queues: 1, up: true },
      },
      { op: 'linkAdd', ns, name: 'veth0123456789b', kind: 'veth', master: 'br0', up: true, alias: undefined, peer: { name: 'eth1', ns, up: true } },
      { op: 'neighAdd', ns, link: 4, address: '172.17.0.2', lladdr: '02:42:ac:11:00:02' },
      { op: 'neighAdd', ns, link: 'eth0', address: 'fd00::1', lladdr: '02:42:AC:11:00:01' },
      { op: 'neighDel', ns, link: 'docker0', address: '172.17.0.2' },
      { op: 'fdbAdd', ns, link: 7, lladdr: '02:42:AC:11:00:01' },
      { op: 'linkSet', ns, link: 'lo', up: true },
      { op: 'linkSet', ns, link: 'veth0123456789a', alias: 'netmodes:abc:def', hairpin: true },
      {
        op: 'linkSet', ns, link: 'veth0123456789a', group: 4242, alias: '', portState: 'listening', fdbFlush: true, locked: true,
        learning: false, unicastFlood: false, mcastFlood: false, bcastFlood: false,
      },
      { op: 'addrAdd', ns, link: 'eth0', cidr: '172.17.0.2/16' },
      { op: 'addrAdd', ns, link: 'eth0', cidr: 'fd00::2/64', noDad: true },
      { op: 'routeAdd', ns, dst: 'default', gateway: '172.17.0.1', link: 'eth0' },
      { op: 'routeAdd', ns, dst: 'default', gateway: 'fd00::1', link: 'eth0' },
      { op: 'linkAdd', link: 'x' } as unknown as BatchOp, // not handled: toNative's checks
    ];
    for (const op of shapes.slice(0, -1)) {
      it(`${op.op} ${JSON.stringify(op, (k, x) => (k === 'ns' ? undefined : x))} converts as toNative does`, () => {
        assert.deepEqual(trustedNative(op), toNative(op));
        // ... and encodes to the same bytes (namespaces as fd numbers for the encoder).
        const fds = (o: NativeOp): NativeOp => JSON.parse(JSON.stringify(o, (k, x) => (k === 'ns' ? (x ? 7 : x) : x)));
        if (!/"(link|master)":"/.test(JSON.stringify(op))) assert.deepEqual(encode([fds(trustedNative(op))]), encode([fds(toNative(op))]));
      });
    }
    it('shapes it does not handle go through toNative (and its checks)', () => {
      assert.throws(() => trustedNative(shapes[shapes.length - 1]), ConfigError);
      const detach: BatchOp = { op: 'linkSet', ns, link: 'v', master: null, up: false };
      assert.deepEqual(trustedNative(detach), toNative(detach));
      const local: BatchOp = { op: 'addrAdd', ns, link: 'lo', cidr: '127.0.0.2/8' };
      assert.deepEqual(trustedNative(local), toNative(local));
      const routed: BatchOp = { op: 'routeAdd', ns, dst: '10.1.0.0/16', gateway: '172.17.0.1' };
      assert.deepEqual(trustedNative(routed), toNative(routed));
    });
  });
});
