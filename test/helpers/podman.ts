/**
 * A real runtime, Podman 4.3 (Debian's `podman`, `crun`, `conmon`), confined to the test sandbox,
 * with a CNI config directory and a CNI plugin directory of the test's choosing.
 *
 * Every Podman made by `Podman.create()` has its own temporary tree (removed by `cleanup()`):
 *   DIR/root, DIR/runroot     --root / --runroot (vfs storage)
 *   DIR/tmp                   engine.tmp_dir (exit files, alive lock)
 *   DIR/net.d                 network_config_dir: the test writes a conflist there (writeConflist)
 *   DIR/cni-bin               cni_plugin_dirs: the test puts plugins there (e.g. copyReferencePlugins)
 *   DIR/rootfs                a busybox root file system for `--rootfs`
 *   DIR/containers.conf       CONTAINERS_CONF (and DIR/storage.conf, CONTAINERS_STORAGE_CONF)
 *
 * Every podman command (and the conmon, crun and `podman container cleanup` they start) runs in
 * the network namespace of the test sandbox and in a mount namespace of its own, made by one
 * long-lived holder process (`unshare --mount --propagation private`) and entered with `nsenter
 * --mount=/proc/HOLDER/ns/mnt`. In that namespace, private tmpfs cover every place Podman, crun
 * and libcni write to outside DIR, so nothing reaches the machine's file system:
 *   /run        (crun's state in /run/crun, /run/containers, /run/libpod, xtables.lock); the
 *               sandbox's own /run/netns and /run/netmodes are moved back in on top of it, so
 *               the container's namespace file and netmodes' store are the sandbox's
 *   /var/lib    (libcni's cache /var/lib/cni, /var/lib/containers)
 *   /dev/shm    (podman's lock segment libpod_lock)
 * and read-only empty tmpfs mask the machine's CNI directories (/etc/cni/net.d, /usr/lib/cni,
 * /usr/libexec/cni, /opt/cni/bin, where they exist), so only DIR's configuration and plugins
 * can be used. On a hybrid cgroup host (v1 controllers on a tmpfs /sys/fs/cgroup, cgroup2 at
 * /sys/fs/cgroup/unified holding a controller) crun refuses to start anything ("cgroups in
 * hybrid mode not supported"), even with --cgroups=disabled: the holder binds the cgroup2 tree
 * over /sys/fs/cgroup, so crun sees a unified host (and, --cgroups=disabled, creates no cgroup).
 * Nothing is ever created outside DIR: a mount point that does not exist is left alone. (So a
 * plugin symlinked into /usr/lib/cni does not resolve in there: copy it, see copyPlugins.) What
 * is not covered is the same as in the sandbox: /run/netns and /run/netmodes, the checkout, /tmp.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Done, collect } from './sandbox';

export type { Done };

/** The reference plugins (Debian's containernetworking-plugins). */
export const REFERENCE_PLUGIN_DIR = '/usr/lib/cni';

/** Debian's busybox-static; copied into every container's root file system. */
export const BUSYBOX = '/bin/busybox';

/** Busybox applets linked in the container's root file system. */
const APPLETS = ['sh', 'nc', 'ip', 'ifconfig', 'route', 'cat', 'echo', 'sleep', 'ping', 'ls', 'ps', 'kill', 'true', 'false', 'hostname', 'env', 'id', 'netstat', 'grep', 'wc'];

// The holder: makes the private mounts, says "ready", then lives until its stdin closes.
// $1 = DIR. Mount with -n: libmount would otherwise make /run/mount on the real /run.
const HOLDER_SH = `
set -e
T="$1"
keep() { mkdir -p "$T/keep$1"; mount -n --rbind "$1" "$T/keep$1"; }
[ -d /run/netns ] && keep /run/netns
[ -d /run/netmodes ] && keep /run/netmodes
mount -n -t tmpfs -o mode=755,size=64m nmpodman-run /run
for d in /run/netns /run/netmodes; do
  if [ -d "$T/keep$d" ]; then mkdir -p "$d"; mount -n --move "$T/keep$d" "$d"; fi
done
mount -n -t tmpfs -o mode=755,size=64m nmpodman-varlib /var/lib
mount -n -t tmpfs -o mode=1777,size=64m nmpodman-shm /dev/shm
for d in /etc/cni/net.d /usr/lib/cni /usr/libexec/cni /opt/cni/bin; do
  if [ -d "$d" ]; then mount -n -t tmpfs -o ro,mode=755,size=4k nmpodman-mask "$d"; fi
done
if [ "$(stat -f -c %T /sys/fs/cgroup)" != cgroup2fs ] && [ "$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
  mount -n --bind /sys/fs/cgroup/unified /sys/fs/cgroup
fi
echo ready
read -r _ || true
`;

export interface RunOptions {
  /** The CNI network (its conflist's `name`). */
  network: string;
  /** The command inside the container (busybox applets). */
  cmd: string[];
  name?: string;
  /** `-p` arguments, e.g. '8080:80'. */
  publish?: string[];
  /** More `podman run` arguments (before the --rootfs DIR). */
  extra?: string[];
}

export class Podman {
  /** The container ids this Podman started. */
  readonly ids: string[] = [];
  private holder?: ChildProcess;
  private holderMnt = '';
  private runs = 0;

  private constructor(readonly dir: string) {}

  get root(): string { return path.join(this.dir, 'root'); }
  get runroot(): string { return path.join(this.dir, 'runroot'); }
  get tmpDir(): string { return path.join(this.dir, 'tmp'); }
  /** The CNI configuration directory (network_config_dir). */
  get netDir(): string { return path.join(this.dir, 'net.d'); }
  /** The CNI plugin directory (cni_plugin_dirs). */
  get pluginDir(): string { return path.join(this.dir, 'cni-bin'); }
  get rootfs(): string { return path.join(this.dir, 'rootfs'); }
  get conf(): string { return path.join(this.dir, 'containers.conf'); }
  get storageConf(): string { return path.join(this.dir, 'storage.conf'); }
  /** The pid of the process holding the private mount namespace. */
  get holderPid(): number { return this.holder!.pid!; }

  /** A fresh tree, busybox root file system, configuration and mount namespace holder. */
  static async create(): Promise<Podman> {
    const pm = new Podman(fs.mkdtempSync(path.join(os.tmpdir(), 'nmpodman-')));
    try {
      pm.writeTree();
      await pm.startHolder();
    } catch (err) {
      await pm.cleanup();
      throw err;
    }
    return pm;
  }

  private writeTree(): void {
    for (const d of [this.root, this.runroot, this.tmpDir, this.netDir, this.pluginDir, path.join(this.rootfs, 'bin'), path.join(this.rootfs, 'etc'), path.join(this.rootfs, 'tmp')]) {
      fs.mkdirSync(d, { recursive: true });
    }
    if (!isStatic(BUSYBOX)) throw new Error(`${BUSYBOX} is not a static executable (install busybox-static): the container has no libc`);
    fs.copyFileSync(BUSYBOX, path.join(this.rootfs, 'bin', 'busybox'));
    fs.chmodSync(path.join(this.rootfs, 'bin', 'busybox'), 0o755);
    for (const a of APPLETS) fs.symlinkSync('busybox', path.join(this.rootfs, 'bin', a));
    fs.writeFileSync(path.join(this.rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
    fs.writeFileSync(path.join(this.rootfs, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
    const q = JSON.stringify;
    fs.writeFileSync(this.conf, [
      '[containers]',
      // also for a `podman run` not made by runArgs: no cgroup is ever made on the machine
      'cgroups = "disabled"',
      'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
      '[network]',
      'network_backend = "cni"',
      `cni_plugin_dirs = [${q(this.pluginDir)}]`,
      `network_config_dir = ${q(this.netDir)}`,
      '[engine]',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      `events_logfile_path = ${q(path.join(this.dir, 'events.log'))}`,
      'runtime = "crun"',
      `tmp_dir = ${q(this.tmpDir)}`,
      `volume_path = ${q(path.join(this.root, 'volumes'))}`,
      '',
    ].join('\n'));
    fs.writeFileSync(this.storageConf, ['[storage]', 'driver = "vfs"', `graphroot = ${q(this.root)}`, `runroot = ${q(this.runroot)}`, ''].join('\n'));
  }

  private async startHolder(): Promise<void> {
    const h = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', HOLDER_SH, 'nmpodman-holder', this.dir], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.holder = h;
    let err = '';
    h.stderr!.on('data', (d) => (err += d));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`the mount namespace holder did not start: ${err}`)), 10000);
      h.stdout!.once('data', () => {
        clearTimeout(t);
        resolve();
      });
      h.once('exit', (c) => {
        clearTimeout(t);
        reject(new Error(`the mount namespace holder exited ${c}: ${err}`));
      });
      h.once('error', reject);
    });
    this.holderMnt = fs.readlinkSync(`/proc/${h.pid}/ns/mnt`);
    if (this.holderMnt === fs.readlinkSync('/proc/self/ns/mnt')) throw new Error('the holder is in our mount namespace');
  }

  /** Runs CMD ARGS in the Podman mount namespace (e.g. `ip -n netns-…`, `ls /var/lib/cni`). */
  inNs(cmd: string, args: string[], timeoutMs = 30000): Promise<Done> {
    return run('nsenter', [`--mount=/proc/${this.holderPid}/ns/mnt`, cmd, ...args], timeoutMs, this.env());
  }

  /** `podman --root … --runroot … --storage-driver vfs ARGS`; throws on a non-zero exit unless allowFail. */
  async podman(args: string[], opts: { allowFail?: boolean; timeoutMs?: number } = {}): Promise<Done> {
    const r = await this.inNs('podman', ['--root', this.root, '--runroot', this.runroot, '--storage-driver', 'vfs', ...args], opts.timeoutMs ?? 60000);
    if (r.code !== 0 && !opts.allowFail) throw new Error(`podman ${args.join(' ')} exited ${r.code ?? r.signal}: ${r.stderr}${r.stdout}`);
    return r;
  }

  private env(): NodeJS.ProcessEnv {
    return { ...process.env, CONTAINERS_CONF: this.conf, CONTAINERS_STORAGE_CONF: this.storageConf };
  }

  /** Writes DIR/net.d/NAME.conflist; returns its path. */
  writeConflist(conflist: { name: string }): string {
    const p = path.join(this.netDir, `${conflist.name}.conflist`);
    fs.writeFileSync(p, JSON.stringify(conflist, null, 2));
    return p;
  }

  /** Copies plugins (names in /usr/lib/cni, or absolute paths) into the plugin directory. */
  copyPlugins(plugins: string[], from = REFERENCE_PLUGIN_DIR): void {
    for (const p of plugins) {
      const src = path.isAbsolute(p) ? p : path.join(from, p);
      const dst = path.join(this.pluginDir, path.basename(src));
      fs.copyFileSync(src, dst);
      fs.chmodSync(dst, 0o755);
    }
  }

  /** The arguments every `podman run` here needs (see the file comment). */
  runArgs(o: RunOptions): string[] {
    const cid = path.join(this.dir, `cid-${++this.runs}`);
    return [
      'run', '--cidfile', cid, '--network', o.network, '--cgroups=disabled', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024',
      ...(o.name ? ['--name', o.name] : []), ...(o.publish ?? []).flatMap((p) => ['-p', p]), ...(o.extra ?? []),
      '--rootfs', this.rootfs, ...o.cmd,
    ];
  }

  /** Remembers the id in a `--cidfile` (written before the container starts, even when it fails). */
  noteId(args: string[]): string {
    const cid = args[args.indexOf('--cidfile') + 1];
    const id = fs.existsSync(cid) ? fs.readFileSync(cid, 'utf8').trim() : '';
    if (id && !this.ids.includes(id)) this.ids.push(id);
    return id;
  }

  /**
   * Stops everything: `podman rm -f -a -t 0`, then SIGKILL for any process still running from
   * this Podman (podman, conmon, crun, the containers' processes: everything whose command line
   * names DIR or that runs in the holder's mount namespace, and their descendants), then the
   * holder, then removes DIR. Returns what had to be killed (empty when Podman cleaned up itself).
   */
  async cleanup(): Promise<string[]> {
    const killed: string[] = [];
    if (this.holder && this.holder.exitCode === null && this.holderMnt) {
      await this.podman(['rm', '-f', '-a', '-t', '0'], { allowFail: true, timeoutMs: 60000 }).catch(() => undefined);
      for (let i = 0; i < 50 && this.leftovers().length; i++) await sleep(100);
      for (const p of this.leftovers()) {
        killed.push(`${p.pid} ${p.cmd}`);
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          /* gone already */
        }
      }
      for (let i = 0; i < 50 && this.leftovers().length; i++) await sleep(100);
    }
    if (this.holder && this.holder.exitCode === null && this.holder.signalCode === null) {
      const gone = new Promise((r) => this.holder!.once('exit', r));
      this.holder.stdin!.end();
      const t = setTimeout(() => this.holder!.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(t);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
    return killed;
  }

  /** Live processes that belong to this Podman (zombies excluded: their parent reaps them). */
  leftovers(): { pid: number; cmd: string }[] {
    const procs = listProcesses();
    const mine = new Set<number>();
    for (const p of procs) {
      if (p.pid === this.holder?.pid || p.pid === process.pid) continue;
      if (p.cmd.includes(this.dir) || (this.holderMnt && p.mnt === this.holderMnt)) mine.add(p.pid);
    }
    for (let grew = true; grew; ) {
      grew = false;
      for (const p of procs) {
        if (!mine.has(p.pid) && mine.has(p.ppid)) {
          mine.add(p.pid);
          grew = true;
        }
      }
    }
    return procs.filter((p) => mine.has(p.pid) && p.state !== 'Z').map((p) => ({ pid: p.pid, cmd: p.cmd }));
  }
}

/** Starts a container detached (`podman run -d`); returns its id. */
export async function podmanRun(pm: Podman, o: RunOptions): Promise<string> {
  const args = pm.runArgs(o);
  args.splice(1, 0, '-d');
  const r = await pm.podman(args, { allowFail: true });
  const id = pm.noteId(args);
  if (r.code !== 0) throw new Error(`podman run exited ${r.code ?? r.signal}: ${r.stderr}${r.stdout}`);
  return id || r.stdout.trim();
}

/** Runs a container attached (`podman run`, no -d) until it exits; its output and exit code. */
export async function podmanRunAttached(pm: Podman, o: RunOptions, timeoutMs = 60000): Promise<Done & { id: string }> {
  const args = pm.runArgs(o);
  const r = await pm.podman(args, { allowFail: true, timeoutMs });
  return { ...r, id: pm.noteId(args) };
}

/** `podman exec ID CMD…` (throws unless it exits 0 when check). */
export async function podmanExec(pm: Podman, id: string, cmd: string[], check = true): Promise<Done> {
  return pm.podman(['exec', id, ...cmd], { allowFail: !check });
}

/** `podman stop -t SECONDS ID` (busybox sh as pid 1 ignores SIGTERM: the default waits 10 s). */
export async function podmanStop(pm: Podman, id: string, seconds = 0): Promise<void> {
  await pm.podman(['stop', '-t', String(seconds), id]);
}

/** `podman rm [-f -t 0] ID`. */
export async function podmanRm(pm: Podman, id: string, force = true): Promise<void> {
  await pm.podman(['rm', ...(force ? ['-f', '-t', '0'] : []), id]);
}

/** `podman inspect ID`, parsed. */
export async function podmanInspect(pm: Podman, id: string): Promise<any> {
  return JSON.parse((await pm.podman(['inspect', id])).stdout)[0];
}

/** Waits until podman reports the container's state as STATUS (e.g. 'exited'). */
export async function podmanWaitStatus(pm: Podman, id: string, status: string, timeoutMs = 15000): Promise<any> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const info = await podmanInspect(pm, id);
    if (info.State.Status === status || Date.now() > until) return info;
    await sleep(200);
  }
}

/** Runs a command; never throws for a non-zero exit (the result says). */
export async function run(cmd: string, args: string[], timeoutMs = 30000, env?: NodeJS.ProcessEnv): Promise<Done> {
  try {
    return await collect(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env }), undefined, timeoutMs);
  } catch (err) {
    throw new Error(`${cmd} ${args.join(' ')}: ${(err as Error).message}`);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** An ELF executable without a program interpreter (PT_INTERP), i.e. one that needs no ld.so or libc. */
function isStatic(file: string): boolean {
  const b = fs.readFileSync(file);
  if (b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2 || b[5] !== 1) return false; // 64-bit little-endian ELF
  const phoff = Number(b.readBigUInt64LE(0x20));
  const size = b.readUInt16LE(0x36);
  for (let i = 0; i < b.readUInt16LE(0x38); i++) if (b.readUInt32LE(phoff + i * size) === 3) return false;
  return true;
}

interface Proc {
  pid: number;
  ppid: number;
  state: string;
  cmd: string;
  mnt: string;
}

function listProcesses(): Proc[] {
  const out: Proc[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cmd = fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      let mnt = '';
      try {
        mnt = fs.readlinkSync(`/proc/${e}/ns/mnt`);
      } catch {
        /* a zombie has no namespaces */
      }
      out.push({ pid: Number(e), state: rest[0], ppid: Number(rest[1]), cmd, mnt });
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/**
 * Where Podman, crun and libcni would write on the machine's own file system if the confinement
 * failed (seen from the test sandbox, whose mount namespace shares them with the machine): each
 * path with what it holds now, for a before/after comparison.
 */
export function hostFootprint(): Record<string, string[] | null> {
  const out: Record<string, string[] | null> = {};
  for (const p of ['/var/lib/cni', '/var/lib/containers', '/run/containers', '/run/libpod', '/run/crun', '/run/cni', '/opt/cni', '/etc/cni/net.d', '/etc/containers', '/run/mount', '/run/xtables.lock']) {
    try {
      out[p] = fs.statSync(p).isDirectory() ? fs.readdirSync(p).sort() : [];
    } catch {
      out[p] = null;
    }
  }
  out['/dev/shm (libpod)'] = fs.readdirSync('/dev/shm').filter((f) => f.startsWith('libpod')).sort();
  return out;
}
