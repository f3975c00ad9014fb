/**
 * Sandboxes: what `docker run --net=...` does for networking, for any process, without Docker.
 *
 * A sandbox is a named network setup plus the files a process inside it should see:
 *
 * | mode        | namespace                                   | interfaces                     |
 * |-------------|---------------------------------------------|--------------------------------|
 * | `bridge`    | its own, `/run/netns/NAME`                  | `lo`, `eth0` on a bridge network |
 * | `none`      | its own, `/run/netns/NAME`                  | `lo` only, up                  |
 * | `host`      | none: the caller's                          | the host's                     |
 * | `container` | the one of another sandbox (`container:X`) | X's                            |
 *
 * Options each mode accepts, as Docker does (`docker run` refuses the same combinations):
 *
 * | option     | bridge | host                | none        | container:X |
 * |------------|--------|---------------------|-------------|-------------|
 * | `ports`    | yes    | ignored, warning    | ConfigError | ConfigError |
 * | `ip`/`mac` | yes    | ConfigError         | ConfigError | ConfigError |
 * | `links`    | yes    | ConfigError         | ConfigError | ConfigError |
 * | `hostname` | yes    | yes                 | yes         | ConfigError (X's is used) |
 * | `dns`      | yes    | yes                 | yes         | ConfigError (X's is used) |
 *
 * (Docker accepts `-p` with `--net=none` and publishes nothing; here it is an error, since a
 * port that can never be reached is more likely a mistake than an intent.)
 *
 * Each mode's own steps are in lib/modes/: bridge-sandbox.ts (the default network, the connect
 * with links and ports, the disconnect; over bridge.ts's networks), host.ts, container.ts and
 * none.ts. This layer checks the options (the table above), keeps the record and the sandbox's
 * files (records.ts), makes and deletes the namespace of bridge and none sandboxes, and runs
 * processes inside (exec.ts).
 *
 * Processes run inside with {@link Sandbox.spawn}. Removing a sandbox takes down everything it
 * added (endpoint, published ports, namespace, files). A sandbox whose namespace others joined
 * (`container:NAME`) cannot be removed before them: `remove()` throws ESANDBOXINUSE.
 * Processes still running inside a removed sandbox are not killed: they keep the namespace alive
 * (no longer named, its links gone in bridge mode) until they exit.
 */
import { ChildProcess, SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { ConfigError, NetmodesError, isNotFound, wrap } from '../errors';
import { assertNamespaceName, createNamespace, NETNS_DIR, Namespace } from '../netns';
import { native } from '../native';
import { assertHostname, buildResolvConf } from '../dnsfiles';
import { parsePortSpecs } from '../portspec';
import type { BridgeNetwork, Endpoint, PortSpec } from '../modes/bridge';
import {
  DEFAULT_NETWORK,
  SandboxLink,
  bridgeSandboxEndpoint,
  connectBridgeSandbox,
  disconnectBridgeSandbox,
  isBridgeNetwork,
  prepareBridgeSandbox,
} from '../modes/bridge-sandbox';
import { createHostSandbox, warnPortsDiscarded } from '../modes/host';
import { joinSandbox, leaveSandbox, refuseWhileShared } from '../modes/container';
import { setupNone } from '../modes/none';
import { spawnIn, ExecTarget } from './exec';
import {
  HOST_NETNS,
  SandboxMode,
  SandboxRecord,
  allRecords,
  deleteRecord,
  noSandbox,
  readRecord,
  readText,
  sharersOf,
  withSandboxLock,
  writeRecord,
  writeSandboxFile,
} from './records';

export { SandboxMode, HOST_NETNS };
export { execHelperPath, EXEC_FAILED, EXEC_CANNOT_EXECUTE, EXEC_NOT_FOUND } from './exec';

export { DEFAULT_NETWORK, DEFAULT_BRIDGE } from '../modes/bridge-sandbox';

export interface SandboxOptions {
  /** Sandbox name: also the namespace's name under /run/netns (1-64 of A-Z a-z 0-9 _ . -). */
  name: string;
  /**
   * `'bridge'` (default: the default network, created on first use), `'host'`, `'none'`,
   * `'container:NAME'` (join sandbox NAME's namespace), a bridge network object, or the name
   * of a bridge network.
   */
  network?: 'bridge' | 'host' | 'none' | `container:${string}` | BridgeNetwork | string;
  /** Published ports: objects or `docker run -p` strings (`8080:80`, `127.0.0.1:53:53/udp`). */
  ports?: (PortSpec | string)[];
  /** Fixed IPv4 address on the network (bridge mode). */
  ip?: string;
  /** Fixed MAC address of eth0 (bridge mode). */
  mac?: string;
  /** Legacy links to sandboxes on the same network: `'NAME'`, `'NAME:ALIAS'` or `{ name, alias }`. */
  links?: (string | { name: string; alias?: string })[];
  /** Host name inside. Default: the first 12 hex digits of the sandbox id (host mode: the host's). */
  hostname?: string;
  /** resolv.conf overrides (Docker's --dns, --dns-search, --dns-option). */
  dns?: { servers?: string[]; search?: string[]; options?: string[] };
  /** More names on the network (Docker's --network-alias; bridge mode): hosts and embedded DNS. */
  aliases?: string[];
}

/** A sandbox as listed: the record (less its file paths and version), plus who shares its namespace. */
export interface SandboxInfo extends Omit<SandboxRecord, 'version' | 'hostsFile' | 'resolvFile' | 'sharedBy'> {
  /** Sandboxes that joined this one's namespace (live ones only). */
  sharedBy: string[];
}

type Link = SandboxLink;

/** Options checked and sorted by mode, before anything is changed. */
interface Plan {
  mode: SandboxMode;
  /** Bridge mode: a network object, or a name to open (DEFAULT_NETWORK: create on first use). */
  network?: BridgeNetwork | string;
  container?: string;
  ports: (PortSpec | string)[];
  links: Link[];
  hostname?: string;
  dns?: SandboxOptions['dns'];
  aliases?: string[];
}

function parseLinks(links: unknown): Link[] {
  if (links === undefined) return [];
  if (!Array.isArray(links)) throw new ConfigError('expected an array of sandbox names', 'links');
  return links.map((l, i) => {
    const field = `links[${i}]`;
    let link: Link;
    if (typeof l === 'string') {
      const [name, alias, ...more] = l.split(':');
      if (more.length) throw new ConfigError(`expected NAME or NAME:ALIAS, got ${JSON.stringify(l)}`, field);
      link = alias === undefined ? { name } : { name, alias };
    } else if (l && typeof l === 'object' && typeof l.name === 'string') {
      link = l.alias === undefined ? { name: l.name } : { name: l.name, alias: l.alias };
    } else {
      throw new ConfigError('expected NAME, NAME:ALIAS or { name, alias }', field);
    }
    assertNamespaceName(link.name, `${field}.name`);
    if (link.alias !== undefined && (typeof link.alias !== 'string' || !/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(link.alias)))
      throw new ConfigError(`invalid alias ${JSON.stringify(link.alias)}`, `${field}.alias`);
    return link;
  });
}

function plan(opts: SandboxOptions): Plan {
  if (!opts || typeof opts !== 'object') throw new ConfigError('expected sandbox options', 'options');
  assertNamespaceName(opts.name, 'name');
  const net = opts.network ?? DEFAULT_NETWORK;
  let p: Plan;
  if (isBridgeNetwork(net)) p = { mode: 'bridge', network: net, ports: [], links: [] };
  else if (typeof net !== 'string') throw new ConfigError('expected bridge, host, none, container:NAME, a network name or a network object', 'network');
  else if (net === 'host' || net === 'none') p = { mode: net, ports: [], links: [] };
  else if (net.startsWith('container:')) {
    const owner = net.slice('container:'.length);
    assertNamespaceName(owner, 'network');
    if (owner === opts.name) throw new ConfigError('a sandbox cannot join its own namespace', 'network');
    p = { mode: 'container', container: owner, ports: [], links: [] };
  } else {
    const name = net === 'default' ? DEFAULT_NETWORK : net;
    assertNamespaceName(name, 'network');
    p = { mode: 'bridge', network: name, ports: [], links: [] };
  }

  const conflict = (field: string, why: string) => new ConfigError(`not with network mode ${p.mode}: ${why}`, field);
  if (opts.ports !== undefined) {
    if (!Array.isArray(opts.ports)) throw new ConfigError('expected an array of port specs', 'ports');
    if (opts.ports.length) {
      if (p.mode === 'none') throw conflict('ports', 'there is no network to publish on');
      if (p.mode === 'container') throw conflict('ports', `publish them on sandbox ${p.container}`);
      parsePortSpecs(opts.ports, 'ports'); // syntax errors before anything is created
      if (p.mode === 'bridge') p.ports = opts.ports;
    }
  }
  for (const field of ['ip', 'mac'] as const) {
    if (opts[field] !== undefined && p.mode !== 'bridge') throw conflict(field, 'only bridge-mode sandboxes get an address of their own');
  }
  p.links = parseLinks(opts.links);
  if (p.links.length && p.mode !== 'bridge') throw conflict('links', 'links join sandboxes on one bridge network');
  if (opts.aliases !== undefined) {
    if (!Array.isArray(opts.aliases)) throw new ConfigError('expected an array of names', 'aliases');
    if (opts.aliases.length && p.mode !== 'bridge') throw conflict('aliases', 'aliases are names on a bridge network');
    opts.aliases.forEach((a, i) => assertHostname(a, `aliases[${i}]`));
    if (opts.aliases.length) p.aliases = opts.aliases;
  }
  if (opts.hostname !== undefined) {
    if (p.mode === 'container') throw conflict('hostname', `the sandbox uses ${p.container}'s`);
    p.hostname = assertHostname(opts.hostname, 'hostname');
  }
  if (opts.dns !== undefined) {
    if (p.mode === 'container') throw conflict('dns', `the sandbox uses ${p.container}'s resolv.conf`);
    if (!opts.dns || typeof opts.dns !== 'object') throw new ConfigError('expected { servers?, search?, options? }', 'dns');
    buildResolvConf('', opts.dns); // its checks, before anything is created
    p.dns = opts.dns;
  }
  return p;
}

/** Takes down what a record says was set up. Every step tolerates what is already gone. */
async function teardown(rec: SandboxRecord): Promise<void> {
  const errors: unknown[] = [];
  if (rec.mode === 'bridge') await disconnectBridgeSandbox(rec, errors);
  if (rec.mode === 'bridge' || rec.mode === 'none') {
    try {
      await native().nsDelete(rec.namespacePath); // as Namespace.delete(), also for a half-made one
    } catch (err) {
      if (!isNotFound(err)) errors.push(wrap(`delete namespace ${rec.namespacePath}`, err));
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length) throw new AggregateError(errors, `removing sandbox ${rec.name} failed in ${errors.length} steps`);
}

export class Sandbox {
  readonly name: string;
  readonly id: string;
  readonly mode: SandboxMode;
  /**
   * The namespace processes run in: `/run/netns/NAME` (bridge, none), the joined sandbox's
   * (container), or `/proc/self/ns/net` (host: whichever namespace the caller is in).
   */
  readonly namespacePath: string;
  /** Bridge mode: the network's name. */
  readonly network?: string;
  /** Container mode: the sandbox whose namespace this one joined. */
  readonly container?: string;
  /** The host name processes see (undefined in host mode without one: the host's). */
  readonly hostname?: string;
  /** Bridge mode: the endpoint (address, MAC, veth, published ports). */
  readonly endpoint?: Endpoint;
  /** The /etc/resolv.conf processes inside see. */
  readonly resolvConf: string;
  /** The /etc/hosts processes inside see. */
  readonly hosts: string;
  readonly created: string;
  private readonly target: ExecTarget;

  /** @internal Use createSandbox / openSandbox. */
  constructor(rec: SandboxRecord, texts: { resolvConf: string; hosts: string }, endpoint?: Endpoint) {
    this.name = rec.name;
    this.id = rec.id;
    this.mode = rec.mode;
    this.namespacePath = rec.namespacePath;
    if (rec.network !== undefined) this.network = rec.network;
    if (rec.container !== undefined) this.container = rec.container;
    if (rec.hostname !== undefined) this.hostname = rec.hostname;
    if (endpoint) this.endpoint = endpoint;
    this.resolvConf = texts.resolvConf;
    this.hosts = texts.hosts;
    this.created = rec.created;
    this.target = {
      netns: rec.namespacePath === HOST_NETNS ? undefined : rec.namespacePath,
      hostsFile: rec.hostsFile,
      resolvFile: rec.resolvFile,
      hostname: rec.hostname,
    };
  }

  /**
   * Runs `command` inside the sandbox, like `child_process.spawn` (same options, same
   * ChildProcess: stdio, exit code and signals are the command's own; PATH is searched).
   * `uid`, `gid` and `argv0` are applied after entering the sandbox; `shell` is refused.
   * When the command cannot be started, the process exits 127 (not found), 126 (not
   * executable) or 125 (the sandbox could not be entered, e.g. it was removed) with a message on
   * its stderr, as `docker run` does.
   * Equivalent to: `ip netns exec NAME COMMAND ARGS...` (plus hosts, resolv.conf and host name)
   */
  spawn(command: string, args?: readonly string[], options?: SpawnOptions): ChildProcess;
  spawn(command: string, options?: SpawnOptions): ChildProcess;
  spawn(command: string, args?: readonly string[] | SpawnOptions, options?: SpawnOptions): ChildProcess {
    if (args !== undefined && !Array.isArray(args)) return spawnIn(this.target, command, [], args as SpawnOptions);
    return spawnIn(this.target, command, (args as readonly string[] | undefined) ?? [], options);
  }

  /**
   * Takes down everything the sandbox added: its endpoint and published ports (bridge), its
   * namespace (bridge, none) and its files. Removing twice is a no-op (as is removing after
   * another sandbox took the name). Throws NetmodesError ESANDBOXINUSE while other sandboxes
   * share its namespace (`container:NAME`). When a step fails, the record stays so that a
   * later remove can finish.
   */
  async remove(): Promise<void> {
    await withSandboxLock(async () => {
      const rec = await readRecord(this.name);
      if (!rec || rec.id !== this.id) return;
      await refuseWhileShared(rec);
      await teardown(rec);
      await leaveSandbox(rec);
      await deleteRecord(this.name);
    });
  }

  toString(): string {
    return this.name;
  }
}

async function fromRecord(rec: SandboxRecord, endpoint?: Endpoint): Promise<Sandbox> {
  if (!endpoint && rec.mode === 'bridge') endpoint = await bridgeSandboxEndpoint(rec);
  const [resolvConf, hosts] = await Promise.all([readText(rec.resolvFile ?? '/etc/resolv.conf'), readText(rec.hostsFile ?? '/etc/hosts')]);
  return new Sandbox(rec, { resolvConf, hosts }, endpoint);
}

/**
 * Creates a sandbox. See the module documentation for what each mode does and accepts.
 * A sandbox of that name left half-made by a killed process (state `creating`) is undone first.
 * Throws ConfigError for bad options (before any change), NetmodesError ESANDBOXEXISTS when
 * the name is taken, ENOSANDBOX for a missing `container:NAME` or link, ENONETWORK for a missing
 * network; any failure midway undoes what was done.
 * Equivalent to: the networking part of `docker run --name NAME --net=... [-p ...] ...`
 */
export async function createSandbox(opts: SandboxOptions): Promise<Sandbox> {
  const p = plan(opts);
  const name = opts.name;
  if (p.mode === 'host' && opts.ports?.length) warnPortsDiscarded();

  return withSandboxLock(async () => {
    const existing = await readRecord(name);
    if (existing?.state === 'ready') throw new NetmodesError('ESANDBOXEXISTS', `a sandbox named ${name} already exists`);
    if (existing) {
      // Left `creating`: every creation holds this lock to the end, so its creator died midway.
      // Undo what it did (as remove() would) and take the name.
      try {
        await teardown(existing);
        await deleteRecord(name);
      } catch (err) {
        throw new NetmodesError('ESANDBOXEXISTS', `a sandbox named ${name} was left half-made and cannot be undone: ${(err as Error).message}`, { cause: err });
      }
    }
    const rec: SandboxRecord = {
      version: 1,
      name,
      id: randomBytes(32).toString('hex'),
      mode: p.mode,
      state: 'creating',
      namespacePath: path.join(NETNS_DIR, name),
      ports: [],
      created: new Date().toISOString(),
    };

    if (p.mode === 'container') {
      await joinSandbox(rec, p.container!);
      return fromRecord(rec);
    }

    if (p.mode === 'host') {
      await createHostSandbox(rec, p);
      return fromRecord(rec);
    }

    // bridge, none: a namespace of its own. Everything that can fail without a change first.
    rec.hostname = p.hostname ?? rec.id.slice(0, 12);
    const bridge = p.mode === 'bridge' ? await prepareBridgeSandbox(rec, p.network!, p.links) : undefined;
    await writeRecord(rec);
    let ns: Namespace;
    try {
      ns = await createNamespace(name);
    } catch (err) {
      await deleteRecord(name).catch(() => undefined); // and nothing else: the namespace may be someone else's
      if ((err as { code?: string }).code === 'EEXIST')
        throw new NetmodesError('EEXIST', `${rec.namespacePath} already exists and is not a netmodes sandbox: remove it or pick another name`, { cause: err });
      throw err;
    }
    try {
      // The mode's own step: a bridge connect (lo up in its batch), or none mode's lo up.
      let texts: { resolvConf: string; hosts: string };
      let endpoint: Endpoint | undefined;
      if (bridge) {
        ({ endpoint, texts } = await connectBridgeSandbox(bridge.net, ns, rec, bridge.links, { ip: opts.ip, mac: opts.mac, ports: p.ports, dns: p.dns, aliases: p.aliases }));
      } else {
        texts = await setupNone(ns, rec.hostname, p.dns);
      }
      rec.resolvFile = await writeSandboxFile(name, 'resolv.conf', texts.resolvConf);
      rec.hostsFile = await writeSandboxFile(name, 'hosts', texts.hosts);
      rec.state = 'ready';
      await writeRecord(rec);
      return new Sandbox(rec, texts, endpoint);
    } catch (err) {
      await teardown(rec).catch(() => undefined); // the first error is the one to report
      await deleteRecord(name).catch(() => undefined);
      throw err;
    } finally {
      ns.close();
    }
  });
}

/** Opens an existing sandbox. Throws NetmodesError ENOSANDBOX when there is none by that name. */
export async function openSandbox(name: string): Promise<Sandbox> {
  assertNamespaceName(name, 'name');
  const rec = await readRecord(name);
  if (!rec) throw noSandbox(name);
  return fromRecord(rec);
}

/** Every sandbox, by name. Equivalent to: `docker ps -a` (the networking columns) */
export async function listSandboxes(): Promise<SandboxInfo[]> {
  const all = await allRecords();
  return all.map(({ version, hostsFile, resolvFile, sharedBy, ...info }) => ({ ...info, sharedBy: sharersOf(info.name, all) }));
}
