/**
 * The `netmodes` commands: what each accepts (the spec, also its --help) and what it does.
 * Handlers return the exit code; they throw UsageError for bad arguments (exit 2) and let
 * library errors through (main prints them).
 */
import { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import * as path from 'node:path';
import { ConfigError } from '../errors';
import { Sandbox, SandboxInfo, SandboxOptions, createSandbox, listSandboxes, openSandbox, DEFAULT_NETWORK } from '../sandbox';
import { createBridgeNetwork, listBridgeNetworks, openBridgeNetwork } from '../modes/bridge';
import type { BridgeNetworkOptions, PublishedPort } from '../modes/bridge';
import { CommandSpec, JSON_OPT, OptValue, Parsed, UsageError } from './args';
import { progress, table } from './output';

export interface Command {
  spec: CommandSpec;
  run(p: Parsed): Promise<number>;
}

/** Exit status of `run` and `exec` when netmodes itself fails (the command's own codes stay free), as docker run. */
export const EXIT_RUN_FAILED = 125;

const str = (v: OptValue): string | undefined => (typeof v === 'string' ? v : undefined);
const list = (v: OptValue): string[] => (Array.isArray(v) ? v : []);

// ---------------------------------------------------------------------------------------------
// run / exec: a child in a sandbox, with signals forwarded and its exit status returned.

/** Signals netmodes passes on to the command (SIGINT from a terminal reaches both anyway). */
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

/**
 * Holds the forwarded signals for as long as netmodes has something to finish: before the child
 * exists they are remembered (and end the run once the sandbox is made), while it runs they are
 * passed on to it, afterwards they are remembered again so that `--rm` still cleans up.
 */
class SignalGate {
  child?: ChildProcess;
  received?: NodeJS.Signals;
  private handlers = FORWARDED.map((sig) => [sig, () => this.on(sig)] as const);
  constructor() {
    for (const [sig, h] of this.handlers) process.on(sig, h);
  }
  private on(sig: NodeJS.Signals): void {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill(sig);
    else this.received ??= sig;
  }
  close(): void {
    for (const [sig, h] of this.handlers) process.off(sig, h);
  }
}

function statusOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + ((signal && osConstants.signals[signal]) || 0);
}

/** Runs the command line in the sandbox with inherited stdio; resolves with its exit status. */
function runChild(sb: Sandbox, command: string[], gate: SignalGate): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = sb.spawn(command[0], command.slice(1), { stdio: 'inherit' });
    gate.child = child;
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      gate.child = undefined;
      resolve(statusOf(code, signal));
    });
  });
}

const run: Command = {
  spec: {
    name: 'run',
    usage: '[OPTIONS] [--] COMMAND [ARGS...]',
    summary: 'Run a command in a new sandbox.',
    details:
      'The networking of `docker run --net=...`, for any process.\n\n' +
      'Network modes: bridge (the default network `bridge`, made on first use), host (the host\'s own\n' +
      'network; published ports are discarded), none (only lo), container:NAME (the namespace of sandbox\n' +
      'NAME), or the name of a bridge network (`netmodes network create`).\n\n' +
      'Signals (INT, TERM, HUP, QUIT, USR1, USR2) are passed on to the command and netmodes exits with its\n' +
      'status (128+N when signal N killed it; 125 when netmodes itself failed, 126/127 when the command\n' +
      'cannot be run or is not found). Without --rm the sandbox stays for `netmodes exec` and `netmodes rm`.',
    commandLine: true,
    options: [
      { name: 'net', aliases: ['network'], type: 'string', value: 'MODE', help: 'bridge (default), host, none, container:NAME or a network name' },
      { name: 'publish', short: 'p', type: 'list', value: 'SPEC', help: 'publish a port: [IP:][HOSTPORT:]PORT[/PROTO]' },
      { name: 'ip', type: 'string', value: 'ADDR', help: 'fixed IPv4 address on the network' },
      { name: 'mac-address', aliases: ['mac'], type: 'string', value: 'MAC', help: 'fixed MAC address of eth0' },
      { name: 'name', type: 'string', value: 'NAME', help: 'sandbox name (default: nm- and 8 hex digits)' },
      { name: 'link', type: 'list', value: 'NAME[:ALIAS]', help: 'link to a sandbox on the same network' },
      { name: 'network-alias', aliases: ['net-alias'], type: 'list', value: 'NAME', help: 'another name of the sandbox on its network (embedded DNS, hosts)' },
      { name: 'dns', type: 'list', value: 'IP', help: 'nameserver for resolv.conf' },
      { name: 'dns-search', type: 'list', value: 'DOMAIN', help: 'search domain for resolv.conf' },
      { name: 'dns-option', type: 'list', value: 'OPT', help: 'resolver option for resolv.conf' },
      { name: 'hostname', short: 'h', type: 'string', value: 'NAME', help: 'host name inside the sandbox' },
      { name: 'rm', type: 'boolean', help: 'remove the sandbox when the command ends' },
    ],
  },
  async run({ opts, command }) {
    const dns = { servers: list(opts.dns), search: list(opts['dns-search']), options: list(opts['dns-option']) };
    const sbOpts: SandboxOptions = {
      name: str(opts.name) ?? `nm-${randomBytes(4).toString('hex')}`,
      ...(str(opts.net) !== undefined && { network: str(opts.net) }),
      ...(list(opts.publish).length > 0 && { ports: list(opts.publish) }),
      ...(str(opts.ip) !== undefined && { ip: str(opts.ip) }),
      ...(str(opts['mac-address']) !== undefined && { mac: str(opts['mac-address']) }),
      ...(list(opts.link).length > 0 && { links: list(opts.link) }),
      ...(list(opts['network-alias']).length > 0 && { aliases: list(opts['network-alias']) }),
      ...(str(opts.hostname) !== undefined && { hostname: str(opts.hostname) }),
      ...((dns.servers.length || dns.search.length || dns.options.length) > 0 && { dns }),
    };
    const gate = new SignalGate();
    try {
      const sb = await progress(`creating sandbox ${sbOpts.name}`, () => createSandbox(sbOpts));
      let status: number;
      try {
        status = gate.received ? statusOf(null, gate.received) : await runChild(sb, command, gate);
      } finally {
        if (opts.rm) await progress(`removing sandbox ${sb.name}`, () => sb.remove());
      }
      return status;
    } finally {
      gate.close();
    }
  },
};

const exec: Command = {
  spec: {
    name: 'exec',
    usage: 'NAME [--] COMMAND [ARGS...]',
    summary: 'Run a command in an existing sandbox.',
    details: 'The command sees the sandbox\'s network, hosts, resolv.conf and host name. Signals and the exit status\npass through as for `netmodes run`.',
    commandLine: true,
    options: [],
  },
  async run({ command }) {
    // The first word of the command line is the sandbox's name.
    const [name, ...rest] = command;
    const cmd = rest[0] === '--' ? rest.slice(1) : rest;
    if (!cmd.length) throw new UsageError('no command given', exec.spec);
    const sb = await openSandbox(name);
    const gate = new SignalGate();
    try {
      return await runChild(sb, cmd, gate);
    } finally {
      gate.close();
    }
  },
};

// ---------------------------------------------------------------------------------------------
// ps / rm

function portsText(ports: PublishedPort[]): string {
  return ports.map((p) => `${p.hostIp}:${p.hostPort}->${p.containerPort}/${p.protocol}`).join(', ');
}

function networkText(s: SandboxInfo): string {
  if (s.mode === 'container') return `container:${s.container}`;
  return s.mode === 'bridge' ? s.network ?? '' : s.mode;
}

const ps: Command = {
  spec: {
    name: 'ps',
    usage: '[--json] [-q]',
    summary: 'List sandboxes.',
    details: 'STATE is `creating` for a sandbox whose creation was interrupted: remove it with `netmodes rm`\n(creating a sandbox of that name again also undoes it).',
    max: 0,
    options: [JSON_OPT, { name: 'quiet', short: 'q', type: 'boolean', help: 'print names only' }],
  },
  async run({ opts }) {
    const all = await listSandboxes();
    if (opts.json) process.stdout.write(JSON.stringify(all, null, 2) + '\n');
    else if (opts.quiet) process.stdout.write(all.map((s) => s.name + '\n').join(''));
    else
      process.stdout.write(
        table(
          ['NAME', 'NETWORK', 'IP', 'PORTS', 'HOSTNAME', 'STATE'],
          all.map((s) => [s.name, networkText(s), s.ip ?? '', portsText(s.ports), s.hostname ?? '', s.state]),
        ),
      );
    return 0;
  },
};

const rm: Command = {
  spec: {
    name: 'rm',
    usage: 'NAME...',
    summary: 'Remove sandboxes.',
    details:
      'Takes down everything each one added: endpoint, published ports, namespace, files.\n' +
      'Sandboxes that joined another\'s namespace (container:NAME) are removed before it when both are named;\n' +
      'a sandbox others still share cannot be removed (ESANDBOXINUSE).',
    min: 1,
    options: [],
  },
  async run({ args }) {
    // Sharers first: sort by how deep each sits in a chain of container: joins.
    const byName = new Map((await listSandboxes()).map((s) => [s.name, s]));
    const depth = (n: string, seen = 0): number => {
      const c = byName.get(n)?.container;
      return c && seen < 64 ? 1 + depth(c, seen + 1) : 0;
    };
    const names = [...new Set(args)].sort((a, b) => depth(b) - depth(a));
    let failed = 0;
    for (const name of names) {
      try {
        const sb = await openSandbox(name);
        await progress(`removing sandbox ${name}`, () => sb.remove());
        process.stdout.write(name + '\n');
      } catch (err) {
        if (err instanceof UsageError || err instanceof ConfigError) throw err;
        process.stderr.write(`netmodes: ${describe(err)}\n`);
        failed++;
      }
    }
    return failed ? 1 : 0;
  },
};

// ---------------------------------------------------------------------------------------------
// network create / ls / inspect / rm

const RESERVED = new Set(['host', 'none', 'default']);

const networkCreate: Command = {
  spec: {
    name: 'network create',
    usage: '[OPTIONS] NAME',
    summary: 'Create a bridge network.',
    details: 'The names host, none and default are taken by the network modes. The network `bridge` is the\ndefault one: create it by hand to choose its subnet.',
    min: 1,
    max: 1,
    options: [
      { name: 'subnet', type: 'string', value: 'CIDR', help: 'IPv4 subnet (default: 172.17.0.0/16 when free, else a free private range)' },
      { name: 'gateway', type: 'string', value: 'IP', help: "the bridge's address (default: the subnet's first)" },
      { name: 'ip-range', type: 'string', value: 'CIDR', help: 'allocate sandbox addresses from this part of the subnet only' },
      { name: 'bridge', type: 'string', value: 'IFNAME', help: 'bridge device name (default: br- and 12 hex digits)' },
      { name: 'mtu', type: 'string', value: 'N', help: 'MTU of the bridge and its veths (default 1500)' },
      { name: 'veth-queues', type: 'string', value: 'N', help: 'transmit and receive queues of each veth end (default 1)' },
      { name: 'ports-per-bridge', type: 'string', value: 'N', help: 'a dense network: N addresses (a power of two, 2-512) per bridge, beyond 1,023 containers' },
      { name: 'host-ip', type: 'string', value: 'IP', help: 'default host address for published ports' },
      { name: 'internal', type: 'boolean', help: 'no route out, no published ports' },
      { name: 'no-icc', type: 'boolean', help: 'sandboxes on the network talk only through links' },
      { name: 'no-masquerade', type: 'boolean', help: 'do not masquerade traffic leaving the subnet' },
      { name: 'no-dns', type: 'boolean', help: 'no embedded DNS server (on by default, except for the network bridge)' },
      { name: 'ipv6-subnet', type: 'string', value: 'CIDR', help: 'also IPv6, on this subnet' },
      { name: 'ipv6-gateway', type: 'string', value: 'IP', help: 'IPv6 gateway (default: the subnet\'s first)' },
    ],
  },
  async run({ opts, args }) {
    const name = args[0];
    if (RESERVED.has(name)) throw new UsageError(`the name ${name} is taken by the network mode of that name`, networkCreate.spec);
    const o: BridgeNetworkOptions = { name };
    if (str(opts.subnet) !== undefined) o.subnet = str(opts.subnet);
    if (str(opts.gateway) !== undefined) o.gateway = str(opts.gateway);
    if (str(opts['ip-range']) !== undefined) o.ipRange = str(opts['ip-range']);
    if (str(opts.bridge) !== undefined) o.bridge = str(opts.bridge);
    if (str(opts['host-ip']) !== undefined) o.hostIp = str(opts['host-ip']);
    if (opts.mtu !== undefined) {
      if (!/^\d{1,5}$/.test(str(opts.mtu)!)) throw new UsageError(`--mtu: expected a number, got ${JSON.stringify(opts.mtu)}`, networkCreate.spec);
      o.mtu = Number(opts.mtu);
    }
    if (opts['veth-queues'] !== undefined) {
      if (!/^\d{1,4}$/.test(str(opts['veth-queues'])!)) throw new UsageError(`--veth-queues: expected a number, got ${JSON.stringify(opts['veth-queues'])}`, networkCreate.spec);
      o.vethQueues = Number(opts['veth-queues']);
    }
    if (opts['ports-per-bridge'] !== undefined) {
      if (!/^\d{1,4}$/.test(str(opts['ports-per-bridge'])!)) throw new UsageError(`--ports-per-bridge: expected a number, got ${JSON.stringify(opts['ports-per-bridge'])}`, networkCreate.spec);
      o.portsPerBridge = Number(opts['ports-per-bridge']);
    }
    if (opts.internal) o.internal = true;
    if (opts['no-icc']) o.icc = false;
    if (opts['no-masquerade']) o.masquerade = false;
    // As Docker: sandboxes of a user-defined network find each other by name; of the default one, not.
    o.embeddedDns = !opts['no-dns'] && name !== DEFAULT_NETWORK;
    if (str(opts['ipv6-subnet']) !== undefined) o.ipv6 = { subnet: str(opts['ipv6-subnet'])!, ...(str(opts['ipv6-gateway']) !== undefined && { gateway: str(opts['ipv6-gateway']) }) };
    else if (opts['ipv6-gateway'] !== undefined) throw new UsageError('--ipv6-gateway needs --ipv6-subnet', networkCreate.spec);
    const net = await progress(`creating network ${name}`, () => createBridgeNetwork(o));
    process.stdout.write(net.name + '\n');
    return 0;
  },
};

const networkLs: Command = {
  spec: { name: 'network ls', usage: '[--json] [-q]', summary: 'List bridge networks.', max: 0, options: [JSON_OPT, { name: 'quiet', short: 'q', type: 'boolean', help: 'print names only' }] },
  async run({ opts }) {
    const all = await listBridgeNetworks();
    if (opts.json) process.stdout.write(JSON.stringify(all, null, 2) + '\n');
    else if (opts.quiet) process.stdout.write(all.map((n) => n.name + '\n').join(''));
    else
      process.stdout.write(
        table(
          ['NAME', 'BRIDGE', 'SUBNET', 'GATEWAY', 'ENDPOINTS'],
          all.map((n) => [n.name, n.bridge, n.subnet + (n.ipv6 ? ` ${n.ipv6.subnet}` : ''), n.gateway, String(n.endpoints)]),
        ),
      );
    return 0;
  },
};

const networkInspect: Command = {
  spec: {
    name: 'network inspect',
    usage: 'NAME...',
    summary: 'Show bridge networks in detail (JSON).',
    details: 'Prints a JSON array with each network and its endpoints; --json is accepted and implied.',
    min: 1,
    options: [JSON_OPT],
  },
  async run({ args }) {
    const out: unknown[] = [];
    let failed = 0;
    for (const name of args) {
      try {
        out.push(await (await openBridgeNetwork(name)).inspect());
      } catch (err) {
        process.stderr.write(`netmodes: ${describe(err)}\n`);
        failed++;
      }
    }
    process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    return failed ? 1 : 0;
  },
};

const networkRm: Command = {
  spec: {
    name: 'network rm',
    usage: '[-f] NAME...',
    summary: 'Remove bridge networks.',
    details: 'Takes down the bridge, its firewall rules and its state. A network with endpoints is refused unless --force, which disconnects them first.',
    min: 1,
    options: [{ name: 'force', short: 'f', type: 'boolean', help: 'disconnect endpoints first' }],
  },
  async run({ opts, args }) {
    let failed = 0;
    for (const name of args) {
      try {
        const net = await openBridgeNetwork(name);
        await progress(`removing network ${name}`, () => net.remove({ force: !!opts.force }));
        process.stdout.write(name + '\n');
      } catch (err) {
        process.stderr.write(`netmodes: ${describe(err)}\n`);
        failed++;
      }
    }
    return failed ? 1 : 0;
  },
};

// ---------------------------------------------------------------------------------------------
// cni install / cni server / cni stop

const cniInstall: Command = {
  spec: {
    name: 'cni install',
    usage: '[--bin-dir DIR] [--node PATH]',
    summary: 'Install the CNI plugin (type "netmodes") for Podman, containerd, CRI-O and the kubelet.',
    details:
      'Writes DIR/netmodes (default /opt/cni/bin/netmodes): a small native executable that hands each call to a\n' +
      'resident netmodes server of the host namespace, starting it when absent. It names this Node.js and this\n' +
      'package by absolute path, so it keeps working from any directory. Rerun it after moving the package.',
    max: 0,
    options: [
      { name: 'bin-dir', type: 'string', value: 'DIR', help: 'plugin directory (default /opt/cni/bin)' },
      { name: 'node', type: 'string', value: 'PATH', help: 'the Node.js the plugin starts (default: this one)' },
    ],
  },
  async run({ opts }) {
    const { installPlugin } = await import('../cni/install');
    const dir = str(opts['bin-dir']);
    const p = await installPlugin({ binDir: dir === undefined ? undefined : path.resolve(dir), node: str(opts.node) });
    process.stdout.write(p + '\n');
    return 0;
  },
};

const cniServer: Command = {
  spec: {
    name: 'cni server',
    usage: '',
    summary: "Run the CNI plugin's resident server in the foreground (the plugin starts one by itself).",
    details: 'Serves this network namespace until `netmodes cni stop`, SIGTERM, or 10 minutes without a call (NETMODES_CNI_IDLE_MS).',
    max: 0,
    options: [],
  },
  async run() {
    const { serve } = await import('../cni/server');
    if (!(await serve())) {
      process.stderr.write('netmodes: a CNI server already runs for this network namespace\n');
      return 1;
    }
    return 0;
  },
};

const cniStop: Command = {
  spec: { name: 'cni stop', usage: '', summary: "Stop this network namespace's resident CNI server, if one runs.", max: 0, options: [] },
  async run() {
    const { control } = await import('../cni/server');
    const r = await control('stop');
    process.stdout.write(r === undefined ? 'no server running\n' : 'stopped\n');
    return 0;
  },
};

// ---------------------------------------------------------------------------------------------
// demo / version

const demo: Command = {
  spec: {
    name: 'demo',
    usage: '',
    summary: 'A live, narrated walk-through of the network modes.',
    details: 'Runs inside a throwaway sandbox of its own; nothing outside it is changed.',
    max: 0,
    options: [],
  },
  async run() {
    let mod: { runDemo?: () => Promise<number | void> };
    try {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      mod = require('../demo');
    } catch (err) {
      if ((err as { code?: string }).code !== 'MODULE_NOT_FOUND') throw err;
      process.stderr.write('netmodes: the demo is not part of this build\n');
      return 1;
    }
    const r = await mod.runDemo!();
    return typeof r === 'number' ? r : 0;
  },
};

const version: Command = {
  spec: { name: 'version', usage: '', summary: 'Print the version of netmodes.', max: 0, options: [] },
  async run() {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    process.stdout.write(require('../../../package.json').version + '\n');
    return 0;
  },
};

export const COMMANDS: Command[] = [run, exec, ps, rm, networkCreate, networkLs, networkInspect, networkRm, cniInstall, cniServer, cniStop, demo, version];

/** `message (CODE)`, with the parts of an AggregateError below it. */
export function describe(err: unknown): string {
  const e = err as { message?: string; code?: string };
  let msg = e?.message ?? String(err);
  if (e?.code && !msg.includes(`(${e.code})`)) msg += ` (${e.code})`;
  if (err instanceof AggregateError) msg += err.errors.map((x) => `\n  - ${describe(x)}`).join('');
  return msg;
}
