import { strict as assert } from 'node:assert';
import { buildHosts, buildResolvConf, assertHostname, DEFAULT_NAMESERVERS, isValidHostname } from '../../lib/dnsfiles';
import { ConfigError } from '../../lib/errors';
import { throwsConfig } from '../helpers/assert';


const HEAD =
  '127.0.0.1\tlocalhost\n' +
  '::1\tlocalhost ip6-localhost ip6-loopback\n' +
  'fe00::0\tip6-localnet\n' +
  'ff00::0\tip6-mcastprefix\n' +
  'ff02::1\tip6-allnodes\n' +
  'ff02::2\tip6-allrouters\n';

describe('dnsfiles', () => {
  describe('buildResolvConf', () => {
    it('systemd-resolved host: loopback stub dropped, defaults used, search/options kept', () => {
      const host = [
        '# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).',
        '# Do not edit.',
        '',
        'nameserver 127.0.0.53',
        'options edns0 trust-ad',
        'search corp.example.com',
        '',
      ].join('\n');
      assert.equal(
        buildResolvConf(host),
        'search corp.example.com\n' + 'nameserver 8.8.8.8\n' + 'nameserver 8.8.4.4\n' + 'options edns0 trust-ad\n',
      );
    });

    it('keeps usable nameservers in order, canonicalised', () => {
      const host = [
        'nameserver 10.0.0.2',
        'nameserver ::1',
        'nameserver 127.1.2.3',
        'nameserver 2001:4860:4860:0:0:0:0:8888',
        'nameserver fe80::1%eth0',
        'nameserver not-an-ip',
        'nameserver',
        'nameserver 192.168.1.1',
      ].join('\n');
      assert.equal(buildResolvConf(host), 'nameserver 10.0.0.2\nnameserver 2001:4860:4860::8888\nnameserver 192.168.1.1\n');
    });

    it('last search/domain wins, options accumulate, comments/CRLF/tabs handled, other lines dropped', () => {
      const host =
        'domain first.example\r\n' +
        '; comment\r\n' +
        'search a.example b.example\r\n' +
        '\toptions   ndots:2\r\n' +
        'sortlist 130.155.160.0/255.255.240.0\r\n' +
        'nameserver 1.1.1.1 # trailing\r\n' +
        'options timeout:1 attempts:3\r\n';
      assert.equal(buildResolvConf(host), 'search a.example b.example\nnameserver 1.1.1.1\noptions ndots:2 timeout:1 attempts:3\n');
      assert.equal(buildResolvConf('search x.example\ndomain y.example z.example\n'), 'search y.example\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n');
    });

    it('empty host file gives the defaults', () => {
      assert.deepEqual(DEFAULT_NAMESERVERS, ['8.8.8.8', '8.8.4.4']);
      assert.equal(buildResolvConf(''), 'nameserver 8.8.8.8\nnameserver 8.8.4.4\n');
    });

    it('explicit options replace the host\'s parts', () => {
      const host = 'nameserver 10.0.0.2\nsearch host.example\noptions ndots:1\n';
      assert.equal(
        buildResolvConf(host, { servers: ['127.0.0.11', 'FD00::53'] }),
        'search host.example\nnameserver 127.0.0.11\nnameserver fd00::53\noptions ndots:1\n',
      );
      assert.equal(
        buildResolvConf(host, { search: ['svc.cluster.local', 'cluster.local.'], options: ['ndots:5', 'edns0'] }),
        'search svc.cluster.local cluster.local.\nnameserver 10.0.0.2\noptions ndots:5 edns0\n',
      );
      assert.equal(buildResolvConf(host, { search: ['.'] }), 'nameserver 10.0.0.2\noptions ndots:1\n');
      assert.equal(buildResolvConf(host, { servers: [], search: [], options: [] }), buildResolvConf(host), 'empty arrays = not given');
    });

    it('validates overrides', () => {
      throwsConfig(() => buildResolvConf('', { servers: ['8.8.8.8', 'dns.google'] }), 'servers[1]', /not a valid IP/);
      throwsConfig(() => buildResolvConf('', { search: ['bad domain'] }), 'search[0]', /not a valid host name/);
      throwsConfig(() => buildResolvConf('', { search: ['a.example', '-x.example'] }), 'search[1]');
      throwsConfig(() => buildResolvConf('', { options: ['ndots:1\nnameserver 1.2.3.4'] }), 'options[0]', /invalid resolver option/);
      throwsConfig(() => buildResolvConf('', { options: [''] }), 'options[0]');
      throwsConfig(() => buildResolvConf('', { servers: '8.8.8.8' as unknown as string[] }), 'servers', /array/);
      throwsConfig(() => buildResolvConf(undefined as unknown as string), 'hostResolvConf');
    });
  });

  describe('buildHosts', () => {
    it('golden: container with links, extra hosts, aliases and IPv6', () => {
      const text = buildHosts({
        hostname: 'web',
        ip: '172.17.0.2',
        ipv6: 'FD00::2',
        aliases: ['www', 'web.local'],
        links: [
          { name: 'db_1', alias: 'database', ip: '172.17.0.3' },
          { name: 'cache', ip: '172.17.0.4' },
          { name: 'queue', alias: 'queue', ip: '172.17.0.5' },
        ],
        extra: [{ host: 'host.docker.internal', ip: '192.168.1.10' }],
      });
      assert.equal(
        text,
        HEAD +
          '172.17.0.3\tdatabase db_1\n' +
          '172.17.0.4\tcache\n' +
          '172.17.0.5\tqueue\n' +
          '192.168.1.10\thost.docker.internal\n' +
          '172.17.0.2\tweb www web.local\n' +
          'fd00::2\tweb www web.local\n',
      );
    });

    it('golden: minimal', () => {
      assert.equal(buildHosts({ hostname: 'a1b2c3d4e5f6', ip: '10.0.0.2' }), HEAD + '10.0.0.2\ta1b2c3d4e5f6\n');
      assert.equal(buildHosts({ hostname: 'isolated' }), HEAD, 'no address, no own line (network "none")');
      assert.equal(buildHosts({ hostname: 'v6only', ip: 'fd00::5' }), HEAD + 'fd00::5\tv6only\n');
    });

    it('validates names and addresses', () => {
      throwsConfig(() => buildHosts({ hostname: 'bad_name', ip: '10.0.0.2' }), 'hostname', /not a valid host name/);
      throwsConfig(() => buildHosts({ hostname: '', ip: '10.0.0.2' }), 'hostname', /empty/);
      throwsConfig(() => buildHosts({ hostname: 'ok', ip: '10.0.0.300' }), 'ip');
      throwsConfig(() => buildHosts({ hostname: 'ok', ipv6: '10.0.0.3' }), 'ipv6', /expected an IPv6 address/);
      throwsConfig(() => buildHosts({ hostname: 'ok', aliases: ['fine', 'not fine'] }), 'aliases[1]');
      throwsConfig(() => buildHosts({ hostname: 'ok', links: [{ name: 'db', ip: 'x' }] }), 'links[0].ip');
      throwsConfig(() => buildHosts({ hostname: 'ok', links: [{ name: 'db\n10.0.0.1 evil', ip: '10.0.0.3' }] }), 'links[0].name');
      throwsConfig(() => buildHosts({ hostname: 'ok', links: [{ name: 'db', alias: '-db', ip: '10.0.0.3' }] }), 'links[0].alias');
      throwsConfig(() => buildHosts({ hostname: 'ok', links: [null as never] }), 'links[0]');
      throwsConfig(() => buildHosts({ hostname: 'ok', extra: [{ host: 'a b', ip: '10.0.0.1' }] }), 'extra[0].host');
      throwsConfig(() => buildHosts({ hostname: 'ok', extra: [{ host: 'gw', ip: '' }] }), 'extra[0].ip');
      throwsConfig(() => buildHosts(null as never), 'hostname');
    });
  });

  describe('host names', () => {
    it('RFC 1123', () => {
      const good = ['a', 'web', 'a-b', 'a1', '1a', '123', 'my.host.example', 'x'.repeat(63), `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`];
      const bad = ['', '-a', 'a-', 'a_b', 'a..b', '.a', 'a.', 'x'.repeat(64), `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}`, 'ä', 'a b', 'a/b'];
      for (const n of good) assert.equal(isValidHostname(n), true, n);
      for (const n of bad) assert.equal(isValidHostname(n), false, n);
      assert.equal(isValidHostname(1 as unknown as string), false);
      assert.equal(assertHostname('ok', 'hostname'), 'ok');
      throwsConfig(() => assertHostname('x'.repeat(254), 'hostname'), 'hostname', /at most 253/);
      throwsConfig(() => assertHostname(undefined as unknown as string, 'hostname'), 'hostname', /string/);
    });
  });
});
