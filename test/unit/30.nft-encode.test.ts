import { strict as assert } from 'node:assert';
import { native } from '../../lib/native';
import { ConfigError, NetlinkError } from '../../lib/errors';
import {
  nftTransaction, rule, masquerade, dnatTo, dnatMap, ctStateAccept, vmap, Expr, NftSet, withoutCounterValues, ruleText, NftFamily as Family,
} from '../../lib';
import type { NftNative } from '../../lib/nft/native';
import { elementsFromNative, setSpec } from '../../lib/nft/model';
import { parseType, encodeInterval, decodeInterval, typeFromId } from '../../lib/nft/types';

const nat = () => native<NftNative>();

/**
 * Payloads (after nlmsghdr + nfgenmsg) that nft 1.0.6 sends for this file, captured with
 * `nft --debug=mnl -f` in the sandbox:
 *   add table inet t
 *   add chain inet t post { type nat hook postrouting priority srcnat; policy accept; }
 *   add map inet t published { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
 *   add element inet t published { 10.0.0.1 . tcp . 80 comment "ctr1" : 172.17.0.5 . 8080 }
 *   add rule inet t post ip saddr 172.17.0.0/16 oifname != "docker0" masquerade
 *   add rule inet t post iifname != "docker0" meta l4proto tcp th dport 80 dnat ip to 172.17.0.5:80
 *   add rule inet t post dnat ip to ip daddr . meta l4proto . th dport map @published
 *   add rule inet t post ct state established,related accept comment "hello"
 *   add rule inet t post fib daddr type local counter
 */
const NFT: Record<string, string> = {
  table:
    '06000100740000000800020000000000',
  chain:
    '060001007400000009000300706f737400000000080007006e6174000800050000000001140004800800010000000004' +
    '0800020000000064',
  mapPublished:
    '06000100740000000e0002007075626c69736865640000000800030000000008080004000000730d080005000000000c' +
    '08000600000001cd080007000000000808000a00000000012a000d00000400000000010400000000030800040d000000' +
    '0100040800040d00000001000604000000000000',
  elemPublished:
    '06000100740000000e0002007075626c6973686564000000080004000000000138000380340001801400018010000100' +
    '0a0000010600000000500000100002800c000100ac1100051f9000000b0006000005637472310000',
  masquerade:
    '060001007400000009000200706f7374000000002401048024000180090001006d657461000000001400028008000200' +
    '0000000f08000100000000012c00018008000100636d700020000280080001000000000108000200000000000c000380' +
    '0500010002000000340001800c0001007061796c6f616400240002800800010000000001080002000000000108000300' +
    '0000000c08000400000000022c00018008000100636d700020000280080001000000000108000200000000000c000380' +
    '06000100ac11000024000180090001006d65746100000000140002800800020000000007080001000000000138000180' +
    '08000100636d70002c000280080001000000000108000200000000011800038014000100646f636b6572300000000000' +
    '0000000014000180090001006d6173710000000004000280',
  dnatTo:
    '060001007400000009000200706f737400000000a001048024000180090001006d657461000000001400028008000200' +
    '0000000608000100000000013800018008000100636d70002c0002800800010000000001080002000000000118000380' +
    '14000100646f636b65723000000000000000000024000180090001006d65746100000000140002800800020000000010' +
    '08000100000000012c00018008000100636d700020000280080001000000000108000200000000000c00038005000100' +
    '06000000340001800c0001007061796c6f61640024000280080001000000000108000200000000020800030000000002' +
    '08000400000000022c00018008000100636d700020000280080001000000000108000200000000000c00038006000100' +
    '005000002c0001800e000100696d6d6564696174650000001800028008000100000000010c00028008000100ac110005' +
    '2c0001800e000100696d6d6564696174650000001800028008000100000000020c000280060001000050000038000180' +
    '080001006e6174002c000280080001000000000108000200000000020800030000000001080005000000000208000700' +
    '00000002',
  dnatMap:
    '060001007400000009000200706f7374000000004c01048024000180090001006d657461000000001400028008000200' +
    '0000000f08000100000000012c00018008000100636d700020000280080001000000000108000200000000000c000380' +
    '0500010002000000340001800c0001007061796c6f616400240002800800010000000001080002000000000108000300' +
    '00000010080004000000000424000180090001006d657461000000001400028008000200000000100800010000000009' +
    '340001800c0001007061796c6f61640024000280080001000000000a0800020000000002080003000000000208000400' +
    '000000023c0001800b0001006c6f6f6b757000002c000280080002000000000108000300000000010e0001007075626c' +
    '6973686564000000080004000000000130000180080001006e6174002400028008000100000000010800020000000002' +
    '08000300000000010800050000000009',
  ctState:
    '060001007400000009000200706f737400000000c4000480200001800700010063740000140002800800020000000000' +
    '0800010000000001440001800c0001006269747769736500340002800800010000000001080002000000000108000300' +
    '000000040c00048008000100060000000c00058008000100000000002c00018008000100636d70002000028008000100' +
    '0000000108000200000000010c0003800800010000000000300001800e000100696d6d6564696174650000001c000280' +
    '0800010000000000100002800c00028008000100000000010c000700000668656c6c6f00',
  fibLocal:
    '060001007400000009000200706f7374000000006c0004802800018008000100666962001c0002800800030000000002' +
    '080002000000000308000100000000012c00018008000100636d70002000028008000100000000010800020000000000' +
    '0c0003800800010002000000140001800c000100636f756e7465720004000280',
};

const T = { family: 'inet' as const, table: 't' };
const PUB: NftSet = { ...T, name: 'published', type: 'ipv4_addr . inet_proto . inet_service', dataType: 'ipv4_addr . inet_service' };

/** The transaction of the file above, built with the library. */
function goldenTx() {
  const tx = nftTransaction();
  tx.addTable({ family: 'inet', name: 't' });
  tx.addChain({ ...T, name: 'post', type: 'nat', hook: 'postrouting', priority: 'srcnat', policy: 'accept' });
  tx.addSet(PUB);
  tx.addElements(PUB, [{ key: ['10.0.0.1', 'tcp', 80], data: ['172.17.0.5', 8080], comment: 'ctr1' }]);
  tx.addRule({ ...T, chain: 'post', exprs: masquerade({ saddr: '172.17.0.0/16', oifnameNot: 'docker0' }) });
  tx.addRule({ ...T, chain: 'post', exprs: dnatTo({ iifnameNot: 'docker0', l4proto: 'tcp', dport: 80, addr: '172.17.0.5', port: 80 }) });
  tx.addRule({ ...T, chain: 'post', exprs: dnatMap({ map: 'published' }) });
  tx.addRule({ ...T, chain: 'post', exprs: ctStateAccept(), comment: 'hello' });
  tx.addRule({ ...T, chain: 'post', exprs: rule().fibDaddrType('local').counter().build() });
  return tx;
}

interface RawMsg { type: number; flags: number; seq: number; family: number; payload: Buffer; whole: Buffer }
function split(buf: Buffer): RawMsg[] {
  const out: RawMsg[] = [];
  for (let off = 0; off < buf.length; ) {
    const len = buf.readUInt32LE(off);
    out.push({
      type: buf.readUInt16LE(off + 4), flags: buf.readUInt16LE(off + 6), seq: buf.readUInt32LE(off + 8), family: buf[off + 16],
      payload: buf.subarray(off + 20, off + len), whole: buf.subarray(off, off + len),
    });
    off += (len + 3) & ~3;
  }
  return out;
}

/** Decodes a payload as a message of `type` (e.g. nft's golden bytes). */
function decodePayload(type: number, hex: string): Record<string, any> {
  const p = Buffer.from(hex, 'hex');
  const h = Buffer.alloc(20);
  h.writeUInt32LE(20 + p.length);
  h.writeUInt16LE(type, 4);
  h[16] = 1; // inet
  return nat().nftDecode(Buffer.concat([h, p]))[0];
}

const NLM_F_REQUEST = 1, NLM_F_ACK = 4, NLM_F_ECHO = 8, NLM_F_EXCL = 0x200, NLM_F_CREATE = 0x400, NLM_F_APPEND = 0x800;

describe('30 nft encoding (no root)', () => {
  describe('golden bytes against nft 1.0.6', () => {
    const msgs = split(goldenTx().encode()).filter((m) => m.type > 0xff);
    const names = ['table', 'chain', 'mapPublished', 'elemPublished', 'masquerade', 'dnatTo', 'dnatMap', 'ctState', 'fibLocal'];
    const hex = (i: number) => msgs[i].payload.toString('hex');

    it('tables, chains and the masquerade, ct state and fib rules are byte for byte what nft sends', () => {
      for (const n of ['table', 'chain', 'masquerade', 'ctState', 'fibLocal']) assert.equal(hex(names.indexOf(n)), NFT[n], n);
    });

    it('sets, elements and NAT rules differ from nft only where documented', () => {
      const strip = (m: Record<string, any>) => {
        const o = JSON.parse(JSON.stringify(m));
        delete o.seq; delete o.nlmsgFlags;
        return o;
      };
      // The set: nft also sends empty "typeof" userdata for concatenations (which our decoder
      // ignores), and numbers its set ids from 1; ours is the operation index + 1.
      const set = strip(decodePayload(msgs[2].type, hex(2)));
      const nftSet = strip(decodePayload(msgs[2].type, NFT.mapPublished));
      assert.equal(set.id, 3);
      delete set.id; delete nftSet.id;
      assert.deepEqual(set, nftSet);
      assert.ok(NFT.mapPublished.length > hex(2).length, 'nft adds typeof userdata');
      // Elements: nft names the set also by its id in this batch (the name alone works).
      const el = strip(decodePayload(msgs[3].type, hex(3)));
      const nftEl = strip(decodePayload(msgs[3].type, NFT.elemPublished));
      assert.equal(nftEl.setId, 1);
      delete nftEl.setId;
      assert.deepEqual(el, nftEl);
      // NAT: we also send the range maxima and MAP_IPS|PROTO_SPECIFIED, which the kernel derives
      // from the minima and dumps; the lookup does not carry nft's set id.
      for (const n of ['dnatTo', 'dnatMap']) {
        const i = names.indexOf(n);
        const ours = strip(decodePayload(msgs[i].type, hex(i)));
        const theirs = strip(decodePayload(msgs[i].type, NFT[n]));
        for (const e of theirs.exprs) {
          if (e.type === 'lookup') delete e.setId;
          if (e.type === 'nat') {
            e.regAddrMax = e.regAddrMin;
            e.regProtoMax = e.regProtoMin;
            e.flags = ['map_ips', 'proto_specified'];
          }
        }
        assert.deepEqual(ours.exprs, theirs.exprs, n);
      }
    });
  });

  describe('batch framing', () => {
    it('BATCH_BEGIN (res_id NFNL_SUBSYS_NFTABLES) ... BATCH_END, consecutive seqs from seqBase, one datagram', () => {
      const ms = split(goldenTx().encode(1000));
      assert.equal(ms.length, 11);
      assert.equal(ms[0].type, 0x10);
      assert.equal(ms[10].type, 0x11);
      assert.equal(ms[0].whole.readUInt16BE(18), 10);
      ms.forEach((m, i) => assert.equal(m.seq, 1000 + i));
      for (const m of ms.slice(1, -1)) {
        assert.equal(m.type >> 8, 10, 'subsystem nftables');
        assert.ok(m.flags & NLM_F_REQUEST && m.flags & NLM_F_ACK, 'every operation asks for an ack');
      }
    });

    it('flags: add = CREATE, create = CREATE|EXCL, rules APPEND|ECHO (the echo carries the handle), insert without APPEND, replace', () => {
      const tx = nftTransaction();
      tx.addTable({ family: 'ip', name: 'a' });
      tx.createTable({ family: 'ip', name: 'b' });
      tx.addRule({ family: 'ip', table: 'a', chain: 'c', exprs: [] });
      tx.insertRule({ family: 'ip', table: 'a', chain: 'c', exprs: [] }, { before: 7 });
      tx.replaceRule({ family: 'ip', table: 'a', chain: 'c', exprs: [], handle: 9 });
      tx.deleteRule({ family: 'ip', table: 'a', chain: 'c', handle: 9 });
      const ms = split(tx.encode()).slice(1, -1);
      assert.equal(ms[0].flags & (NLM_F_CREATE | NLM_F_EXCL), NLM_F_CREATE);
      assert.equal(ms[1].flags & (NLM_F_CREATE | NLM_F_EXCL), NLM_F_CREATE | NLM_F_EXCL);
      assert.equal(ms[2].flags & (NLM_F_APPEND | NLM_F_ECHO | NLM_F_CREATE), NLM_F_APPEND | NLM_F_ECHO | NLM_F_CREATE);
      assert.equal(ms[3].flags & NLM_F_APPEND, 0);
      const dec = nat().nftDecode(tx.encode()).slice(1, -1);
      assert.equal(dec[3].position, 7);
      assert.ok(dec[4].nlmsgFlags.includes('replace|root') && dec[4].handle === 9);
      assert.equal(dec[5].msg, 'delrule');
      assert.equal(ms[5].flags & NLM_F_CREATE, 0);
    });

    it('genid goes in BATCH_BEGIN (NFNL_BATCH_GENID)', () => {
      const tx = nftTransaction();
      tx.addTable({ family: 'ip', name: 'a' });
      const dec = nat().nftDecode(tx.encode(0, { genid: 42 }));
      assert.equal(dec[0].msg, 'batch_begin');
      assert.equal(dec[0].genid, 42);
      assert.equal(dec[0].resId, 10);
    });

    it('thousands of elements become several NEWSETELEM messages (each nest under 64 KiB) in the same batch', () => {
      const tx = nftTransaction();
      const els = Array.from({ length: 5000 }, (_, i) => ({
        key: [`10.${(i >> 8) & 255}.${i & 255}.1`, 'tcp', 1000 + (i % 60000)],
        data: ['172.17.0.2', 80],
        comment: `c${i}`,
      }));
      tx.addElements(PUB, els);
      const buf = tx.encode();
      const ms = split(buf);
      assert.equal(ms[0].type, 0x10);
      assert.equal(ms[ms.length - 1].type, 0x11);
      const parts = ms.slice(1, -1);
      const total = parts.reduce((n, p) => n + p.payload.length, 0);
      assert.ok(parts.length >= Math.ceil(total / 65535) && parts.length > 1, `${parts.length} messages for ${total} bytes`);
      for (const p of parts) assert.ok(p.payload.length < 65536 + 64);
      const dec = nat().nftDecode(buf).slice(1, -1);
      const keys = dec.flatMap((m) => m.elements.map((e: any) => e.key.toString('hex')));
      assert.equal(keys.length, 5000);
      assert.equal(keys[4999], Buffer.concat([Buffer.from([10, 19, 135, 1]), Buffer.from([6, 0, 0, 0]), Buffer.from([0x17, 0x6f, 0, 0])]).toString('hex'));
      assert.equal(dec[0].elements[0].comment, 'c0');
    });

    it('a transaction over maxBytes: EMSGSIZE when atomic, several batches with atomic: false', () => {
      const tx = nftTransaction();
      tx.addElements(PUB, Array.from({ length: 3000 }, (_, i) => ({ key: ['10.0.0.1', 'udp', i + 1], data: ['172.17.0.2', 80] })));
      assert.throws(() => tx.encode(0, { maxBytes: 65536 }), (e: NetlinkError) => e instanceof NetlinkError && e.code === 'EMSGSIZE' && /atomic: false/.test(e.message));
      const ms = split(tx.encode(0, { maxBytes: 65536 + 4096, atomic: false }));
      const begins = ms.filter((m) => m.type === 0x10).length;
      assert.ok(begins >= 2, `${begins} batches`);
      assert.equal(ms.filter((m) => m.type === 0x11).length, begins);
    });
  });

  describe('round trips', () => {
    it('every expression kind encodes and decodes to itself', () => {
      const exprs: Expr[] = [
        { type: 'payload', dreg: 1, base: 'network', offset: 12, len: 4 },
        { type: 'payload', sreg: 1, base: 'transport', offset: 2, len: 2, csumType: 'inet', csumOffset: 16, csumFlags: 1 },
        { type: 'meta', key: 'iifname', dreg: 1 },
        { type: 'meta', key: 'mark', sreg: 1 },
        { type: 'cmp', sreg: 1, op: 'gte', data: Buffer.from([1, 2]) },
        { type: 'range', sreg: 1, op: 'neq', from: Buffer.from([0, 1]), to: Buffer.from([0, 9]) },
        { type: 'bitwise', sreg: 1, dreg: 1, len: 4, mask: Buffer.from('ffff0000', 'hex'), xor: Buffer.alloc(4) },
        { type: 'bitwise', sreg: 1, dreg: 2, len: 4, op: 'lshift', data: Buffer.from('00000008', 'hex') },
        { type: 'lookup', sreg: 1, set: 's', flags: ['inv'] },
        { type: 'lookup', sreg: 1, dreg: 0, set: 'vm', setId: 3 },
        { type: 'immediate', dreg: 0, data: { verdict: 'goto', chain: 'x' } },
        { type: 'immediate', dreg: 0, data: { verdict: 'return' } },
        { type: 'immediate', dreg: 9, data: Buffer.from([1]) },
        { type: 'nat', natType: 'snat', family: 'ip6', regAddrMin: 1, regAddrMax: 2, regProtoMin: 3, regProtoMax: 4, flags: ['map_ips', 'persistent', 'fully_random'] },
        { type: 'masq', flags: ['random'], regProtoMin: 1, regProtoMax: 2 },
        { type: 'redir', regProtoMin: 1, flags: ['proto_specified'] },
        { type: 'ct', key: 'state', dreg: 1 },
        { type: 'ct', key: 'ip saddr', dreg: 1, dir: 'reply' },
        { type: 'ct', key: 'mark', sreg: 1 },
        { type: 'fib', flags: ['saddr', 'iif'], result: 'oif', dreg: 1 },
        { type: 'counter' },
        { type: 'counter', bytes: 10, packets: 1 },
        { type: 'reject', rejectType: 'tcp reset', code: 0 },
        { type: 'log', prefix: 'p', group: 2, snaplen: 64, qthreshold: 5 },
        { type: 'limit', rate: 10, unit: 1, burst: 5, limitType: 'packets', flags: ['inv'] },
        { type: 'notrack' },
        { type: 'raw', name: 'quota', data: Buffer.from('0c000100000000000000006408000200000000', 'hex').subarray(0, 16) },
      ];
      const tx = nftTransaction();
      tx.addRule({ family: 'inet', table: 't', chain: 'c', exprs, comment: 'all of them' });
      const [m] = nat().nftDecode(tx.encode()).slice(1, -1);
      const back = m.exprs.map((e: any) => ('raw' in e ? { type: 'raw', name: e.type, data: e.raw } : e));
      assert.deepStrictEqual(back, exprs);
      assert.equal(m.comment, 'all of them');
    });

    it('objects: table, chain (hook, signed priority, policy, comment), set (flags, desc, timeout, udata)', () => {
      const tx = nftTransaction();
      tx.addTable({ family: 'netdev', name: 'n', flags: ['dormant'], comment: 'hi' });
      tx.addChain({ family: 'netdev', table: 'n', name: 'in', type: 'filter', hook: 'ingress', priority: -500, device: 'eth0', policy: 'drop' });
      tx.addChain({ family: 'inet', table: 't', name: 'pre', type: 'nat', hook: 'prerouting', priority: 'dstnat' });
      tx.addSet({ family: 'inet', table: 't', name: 's', type: 'ipv4_addr . inet_service', flags: ['interval'], size: 100, comment: 'c' });
      tx.addSet({ family: 'inet', table: 't', name: 'm', type: 'mark', flags: ['timeout'], timeout: 60000, policy: 'memory' });
      const d = nat().nftDecode(tx.encode()).slice(1, -1);
      assert.deepEqual([d[0].family, d[0].name, d[0].flags, d[0].comment], ['netdev', 'n', ['dormant'], 'hi']);
      assert.deepEqual(d[1].hook, { hooknum: 0, priority: -500, dev: 'eth0' });
      assert.equal(d[1].policy, 'drop');
      assert.deepEqual(d[2].hook, { hooknum: 0, priority: -100 });
      assert.deepEqual(d[3].flags, ['interval', 'concat']);
      assert.deepEqual(d[3].desc, { size: 100, concat: [{ len: 4 }, { len: 2 }] });
      assert.deepEqual([d[3].keyType, d[3].keyLen, d[3].keyByteorder, d[3].comment], [(7 << 6) | 13, 8, 0, 'c']);
      assert.deepEqual([d[4].keyType, d[4].keyLen, d[4].keyByteorder, d[4].timeout, d[4].policy], [19, 4, 1, 60000, 'memory']);
    });
  });

  describe('data types and intervals', () => {
    it('concatenations: nft type ids, 4-byte aligned fields', () => {
      const t = parseType('ipv4_addr . inet_proto . inet_service', 'type');
      assert.equal(t.id, 0x730d);
      assert.equal(t.len, 12);
      assert.equal(typeFromId(0x730d, 12)!.text, 'ipv4_addr . inet_proto . inet_service');
      assert.equal(typeFromId(0x730d, 11), undefined);
      assert.equal(parseType('ether_addr . ifname', 'type').len, 8 + 16);
      assert.equal(parseType('inet_service', 'type').len, 2);
    });

    it('interval keys: prefixes and ranges per field; reading back merges start/end pairs into prefixes and ranges', () => {
      const spec = setSpec({ family: 'ip', table: 't', name: 's', type: 'ipv4_addr', flags: ['interval'] });
      // As the kernel dumps an rbtree: descending, with nft's leading "0.0.0.0 end" marker.
      const h = (s: string) => Buffer.from(s, 'hex');
      const raw = [
        { key: h('ffffff00') },
        { key: h('c0a80115'), flags: ['interval_end'] }, { key: h('c0a8010a') },
        { key: h('0b000000'), flags: ['interval_end'] }, { key: h('0a000000'), comment: 'ten' },
        { key: h('00000000'), flags: ['interval_end'] },
      ];
      assert.deepEqual(elementsFromNative(spec, raw), [
        { key: '10.0.0.0/8', comment: 'ten' },
        { key: { from: '192.168.1.10', to: '192.168.1.20' } },
        { key: '255.255.255.0/24' },
      ]);
      const c = parseType('ipv4_addr . inet_service', 'type');
      const [lo, hi] = encodeInterval(c, ['10.1.0.0/16', { from: 80, to: 90 }], 'k');
      assert.equal(lo.toString('hex'), '0a01000000500000');
      assert.equal(hi.toString('hex'), '0a01ffff005a0000');
      assert.deepEqual(decodeInterval(c, lo, hi), ['10.1.0.0/16', { from: 80, to: 90 }]);
      const v6 = parseType('ipv6_addr', 'type');
      const [a, b] = encodeInterval(v6, 'fd00:1::/63', 'k');
      assert.equal(decodeInterval(v6, a, b), 'fd00:1::/63');
    });

    it('interval elements: start plus end-flagged element one past the last (none at the top of the range)', () => {
      const tx = nftTransaction();
      const s: NftSet = { family: 'ip', table: 't', name: 's', type: 'ipv4_addr', flags: ['interval'] };
      tx.addElements(s, [{ key: '10.0.0.0/8', comment: 'x' }, { key: { from: '192.168.1.10', to: '192.168.1.20' } }, { key: '255.0.0.0/8' }]);
      tx.deleteElements(s, [{ key: '10.0.0.0/8' }]);
      const [add, del] = nat().nftDecode(tx.encode()).slice(1, -1);
      assert.deepEqual(add.elements.map((e: any) => [e.key.toString('hex'), e.flags ?? [], e.comment]), [
        ['0a000000', [], 'x'], ['0b000000', ['interval_end'], undefined],
        ['c0a8010a', [], undefined], ['c0a80115', ['interval_end'], undefined],
        ['ff000000', [], undefined],
      ]);
      assert.equal(del.elements.length, 2);
    });
  });

  describe('builders produce what nft --debug=netlink shows', () => {
    it('prefixes: whole bytes are loaded short, others masked', () => {
      assert.deepStrictEqual(rule('ip').match('ip saddr', '10.1.2.0/23').build(), [
        { type: 'payload', dreg: 1, base: 'network', offset: 12, len: 4 },
        { type: 'bitwise', sreg: 1, dreg: 1, len: 4, mask: Buffer.from('fffffe00', 'hex'), xor: Buffer.alloc(4) },
        { type: 'cmp', sreg: 1, op: 'eq', data: Buffer.from('0a010200', 'hex') },
      ]);
      assert.deepStrictEqual(rule('ip').match('ip daddr', '10.0.0.0/8', 'neq').build(), [
        { type: 'payload', dreg: 1, base: 'network', offset: 16, len: 1 },
        { type: 'cmp', sreg: 1, op: 'neq', data: Buffer.from([10]) },
      ]);
      assert.deepStrictEqual(rule('ip').match('ip daddr', '0.0.0.0/0').build(), []);
    });

    it('icmpv6 type: one byte of the transport header, after the ipv6 dependency', () => {
      assert.deepStrictEqual(rule('inet').match('icmpv6 type', 'nd-neighbor-solicit').build(), [
        { type: 'meta', key: 'nfproto', dreg: 1 },
        { type: 'cmp', sreg: 1, op: 'eq', data: Buffer.from([10]) },
        { type: 'payload', dreg: 1, base: 'transport', offset: 0, len: 1 },
        { type: 'cmp', sreg: 1, op: 'eq', data: Buffer.from([135]) },
      ]);
      assert.throws(() => rule('inet').match('icmpv6 type', 'nd-nope'), ConfigError);
    });

    it('the inet dependency comes once per rule; ip6 matches are refused in ip tables', () => {
      const e = rule('inet').match('ip saddr', '1.2.3.4').match('ip daddr', '5.6.7.8').build();
      assert.equal(e.filter((x) => x.type === 'meta' && x.key === 'nfproto').length, 1);
      assert.throws(() => rule('ip').match('ip6 saddr', '::1'), ConfigError);
      assert.deepStrictEqual(rule('bridge').match('ip saddr', '1.2.3.4').build().slice(0, 2), [
        { type: 'payload', dreg: 1, base: 'll', offset: 12, len: 2 },
        { type: 'cmp', sreg: 1, op: 'eq', data: Buffer.from([8, 0]) },
      ]);
    });

    it('ranges, interface wildcards, vmaps and concatenated registers', () => {
      assert.deepStrictEqual(rule().match('th dport', { from: 8000, to: 8080 }).build()[1], {
        type: 'range', sreg: 1, op: 'eq', from: Buffer.from([0x1f, 0x40]), to: Buffer.from([0x1f, 0x90]),
      });
      assert.deepStrictEqual(rule().match('iifname', 'veth*').build()[1], { type: 'cmp', sreg: 1, op: 'eq', data: Buffer.from('veth') });
      assert.deepStrictEqual(vmap('oifname', 'dispatch'), [
        { type: 'meta', key: 'oifname', dreg: 1 },
        { type: 'lookup', sreg: 1, dreg: 0, set: 'dispatch' },
      ]);
      const m = dnatMap({ map: 'p6', key: ['ip6 daddr', 'meta l4proto', 'th dport'], natFamily: 'ip6' });
      assert.deepStrictEqual(m.filter((x) => x.type !== 'meta' || x.key !== 'nfproto').slice(1).map((x: any) => x.dreg ?? x.regProtoMin), [1, 12, 13, 1, 12]);
      assert.deepStrictEqual(withoutCounterValues([{ type: 'counter', bytes: 5, packets: 1 }]), [{ type: 'counter' }]);
    });
  });

  describe('ruleText prints the nft text each builder documents', () => {
    it('builders and their nft text', () => {
      const cases: [Expr[], string, Family?][] = [
        [masquerade({ saddr: '172.17.0.0/16', oifnameNot: 'docker0' }), 'ip saddr 172.17.0.0/16 oifname != "docker0" masquerade'],
        [dnatTo({ iifnameNot: 'docker0', l4proto: 'tcp', dport: 80, addr: '172.17.0.5', port: 80 }), 'iifname != "docker0" tcp dport 80 dnat ip to 172.17.0.5:80'],
        [dnatMap({ map: 'published' }), 'dnat ip to ip daddr . meta l4proto . th dport map @published'],
        [dnatMap({ map: 'published_any', key: ['meta l4proto', 'th dport'], fibLocal: true }), 'fib daddr type local dnat ip to meta l4proto . th dport map @published_any'],
        [ctStateAccept(), 'ct state established,related accept'],
        [vmap('oifname', 'dispatch'), 'oifname vmap @dispatch'],
        [rule().inSet('ip daddr', 'nets').counter().drop().build(), 'ip daddr @nets counter packets 0 bytes 0 drop'],
        [rule().inSet(['ip saddr', 'th dport'], 'allow', { not: true }).log('no').reject().build(), 'ip saddr . th dport != @allow log prefix "no" reject'],
        [rule().match('th dport', { from: 8000, to: 8080 }).match('iifname', 'veth*').accept().build(), 'th dport 8000-8080 iifname "veth*" accept'],
        [rule().match('ip6 saddr', 'fd00::/64').match('meta mark', 16, 'neq').ctStatus(['dnat']).jump('c1').build(), 'ip6 saddr fd00::/64 meta mark != 0x00000010 ct status dnat jump c1'],
        [rule().match('meta l4proto', 'udp').redirect(5353).build(), 'meta l4proto udp redirect to :5353'],
        [rule().match('meta l4proto', 'ipv6-icmp').match('icmpv6 type', 'nd-neighbor-advert').accept().build(), 'meta l4proto ipv6-icmp icmpv6 type nd-neighbor-advert accept'],
        [rule().match('ip saddr', '10.0.0.1').snat('198.18.0.1').build(), 'ip saddr 10.0.0.1 snat ip to 198.18.0.1'],
        [rule('ip').match('ip daddr', '10.1.2.0/23').setMark(5).return().build(), 'ip daddr 10.1.2.0/23 meta mark set 0x00000005 return', 'ip'],
        [rule('ip').dnat('172.17.0.5', 80).build(), 'dnat to 172.17.0.5:80', 'ip'],
        [[{ type: 'raw', name: 'quota', data: Buffer.alloc(0) }], '<quota>'],
      ];
      for (const [exprs, text, fam] of cases) assert.equal(ruleText(exprs, fam ?? 'inet'), text);
    });
  });

  describe('bad input never reaches the kernel', () => {
    it('ConfigError with the field: names, families, hooks, priorities, comments', () => {
      const tx = nftTransaction();
      const bad: [() => unknown, string][] = [
        [() => tx.addTable({ family: 'inet', name: '' }), 'table.name'],
        [() => tx.addTable({ family: 'inet', name: 'x'.repeat(256) }), 'table.name'],
        [() => tx.addTable({ family: 'inet', name: 'a\0b' }), 'table.name'],
        [() => tx.addTable({ family: 'ipx' as any, name: 'a' }), 'table.family'],
        [() => tx.addChain({ family: 'inet', table: 't', name: 'c', type: 'nat', hook: 'egress', priority: 0 }), 'chain.hook'],
        [() => tx.addChain({ family: 'inet', table: 't', name: 'c', type: 'nat', hook: 'toString' as any, priority: 0 }), 'chain.hook'],
        [() => tx.addChain({ family: 'inet', table: 't', name: 'c', type: 'nat', hook: 'input', priority: 1.5 }), 'chain.priority'],
        [() => tx.addChain({ family: 'inet', table: 't', name: 'c', type: 'nat', hook: 'input', priority: 'constructor' as any }), 'chain.priority'],
        [() => rule().ctState(['toString' as any]), 'ctState'],
        [() => tx.addChain({ family: 'inet', table: 't', name: 'c', policy: 'drop' }), 'chain.policy'],
        [() => tx.addRule({ family: 'inet', table: 't', chain: 'c', exprs: [], comment: 'x'.repeat(129) }), 'rule.comment'],
        [() => tx.addRule({ family: 'inet', table: 't', chain: 'c', exprs: [{ type: 'bogus' } as any] }), 'rule.exprs[0]'],
        [() => tx.deleteRule({ family: 'inet', table: 't', chain: 'c', handle: 0 }), 'rule.handle'],
        [() => tx.addSet({ family: 'inet', table: 't', name: 's', type: 'ipv4_addr . port' }), 'set.type'],
        [() => tx.addSet({ family: 'inet', table: 't', name: 's', type: 'mark', timeout: 5 }), 'set.timeout'],
      ];
      for (const [f, field] of bad) assert.throws(f, (e: ConfigError) => e instanceof ConfigError && e.field === field, field);
      assert.equal(tx.length, 0);
    });

    it('elements must match the set: types, arity, ports, map data, intervals', () => {
      const tx = nftTransaction();
      const iv: NftSet = { family: 'inet', table: 't', name: 'iv', type: 'inet_service', flags: ['interval'] };
      const bad: [NftSet, any, string][] = [
        [PUB, { key: ['10.0.0.1', 'tcp'], data: ['1.1.1.1', 1] }, 'elements[0].key'],
        [PUB, { key: ['10.0.0.300', 'tcp', 1], data: ['1.1.1.1', 1] }, 'elements[0].key[0]'],
        [PUB, { key: ['10.0.0.1', 'tcpx', 1], data: ['1.1.1.1', 1] }, 'elements[0].key[1]'],
        [PUB, { key: ['10.0.0.1', 'toString', 1], data: ['1.1.1.1', 1] }, 'elements[0].key[1]'],
        [PUB, { key: ['10.0.0.1', 'tcp', 65536], data: ['1.1.1.1', 1] }, 'elements[0].key[2]'],
        [PUB, { key: ['10.0.0.1', 'tcp', 80] }, 'elements[0].data'],
        [PUB, { key: ['10.0.0.1', 'tcp', 80], data: ['fd00::1', 1] }, 'elements[0].data[0]'],
        [PUB, { key: ['10.0.0.0/8', 'tcp', 80], data: ['1.1.1.1', 1] }, 'elements[0].key[0]'],
        [{ ...PUB, dataType: undefined }, { key: ['10.0.0.1', 'tcp', 80], data: ['1.1.1.1', 1] }, 'elements[0].data'],
        [iv, { key: { from: 90, to: 80 } }, 'elements[0].key'],
        [{ family: 'inet', table: 't', name: 'v', type: 'ifname', dataType: 'verdict' }, { key: 'eth0', data: 'jump' }, 'elements[0].data'],
        [{ family: 'inet', table: 't', name: 'v', type: 'ifname' }, { key: 'a-very-long-interface-name' }, 'elements[0].key'],
      ];
      for (const [s, el, field] of bad) assert.throws(() => tx.addElements(s, [el]), (e: ConfigError) => e instanceof ConfigError && e.field === field, field);
      assert.throws(() => tx.addElements({ family: 'inet', table: 't', name: 'nosuch' }, [{ key: 1 }]), (e: ConfigError) => e.field === 'set');
    });

    it('the addon itself refuses malformed messages with a TypeError', async () => {
      // nftTransact encodes on the libuv pool: the TypeError arrives as a rejection, before any socket
      await assert.rejects(nat().nftTransact(null, [{ msg: 'newtable', family: 'inet', name: 't', bogus: 1 } as any]), (e: Error) => e instanceof TypeError && /unknown field "bogus"/.test(e.message));
      assert.throws(() => nat().nftEncode([{ msg: 'newtable', family: 'inet', name: 't', bogus: 1 } as any]), /unknown field "bogus"/);
      assert.throws(() => nat().nftEncode([{ msg: 'gettable', family: 'inet' } as any]), TypeError);
      assert.throws(() => nat().nftEncode([{ msg: 'newtable', family: 'nope', name: 't' } as any]), TypeError);
      assert.throws(() => nat().nftEncode([{ msg: 'newrule', family: 'ip', table: 't', chain: 'c', exprs: [{ type: 'cmp', sreg: -1 }] } as any]), /out of range/);
      assert.throws(() => nat().nftEncode([{ msg: 'newrule', family: 'ip', table: 't', chain: 'c', exprs: [{ type: 'immediate', dreg: 0, data: { verdict: 'jump' } }] } as any]), /need a chain/);
      assert.throws(() => nat().nftEncode([{ msg: 'newtable', family: 'ip', name: 'x'.repeat(70000) } as any]), /too long/);
      assert.throws(() => nat().nftEncode([{ msg: 'newrule', family: 'ip', table: 't', chain: 'c', exprs: [{ type: 'cmp', sreg: 1, op: 'eq', data: Buffer.alloc(65531) }] } as any]), /more than 65535 bytes/);
    });
  });

  describe('decoding is bounds-checked', () => {
    it('truncations, bit flips and garbage never throw or read out of bounds', () => {
      const good = goldenTx().encode();
      let seed = 12345;
      const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8);
      for (let cut = 0; cut <= good.length; cut += 3) nat().nftDecode(good.subarray(0, cut));
      for (let i = 0; i < 3000; i++) {
        const b = Buffer.from(good);
        for (let k = 0; k < 1 + (i % 8); k++) b[rnd() % b.length] = rnd() & 0xff;
        nat().nftDecode(b);
      }
      for (let i = 0; i < 500; i++) {
        const b = Buffer.alloc(rnd() % 2048);
        for (let k = 0; k < b.length; k++) b[k] = rnd() & 0xff;
        if (b.length >= 8) b.writeUInt32LE(Math.min(b.length, b.readUInt32LE(0) & 0xfff), 0);
        nat().nftDecode(b);
      }
      // an unaligned view decodes the same as an aligned copy
      const shifted = Buffer.concat([Buffer.alloc(1), good]).subarray(1);
      assert.deepStrictEqual(nat().nftDecode(shifted), nat().nftDecode(good));
    });
  });
});
