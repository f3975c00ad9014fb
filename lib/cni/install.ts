/**
 * `netmodes cni install`: puts the plugin executable where a runtime looks for plugins. The file
 * is a copy of build/Release/netmodes-cni with a trailer naming this Node.js and this package by
 * absolute path (see native/cni/cni.c), written to a temp file and renamed into place, so a
 * runtime never runs a half-written plugin and the plugin works from any directory.
 */
import { promises as fsp, existsSync } from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../errors';

/** Where runtimes look by default. */
export const DEFAULT_BIN_DIR = '/opt/cni/bin';
/** The configuration `type` that names the plugin, and so its file name. */
export const PLUGIN_TYPE = 'netmodes';

/** The package root (dist/lib/cni -> root). */
export function packageRoot(): string {
  return path.resolve(__dirname, '..', '..', '..');
}

/** The plugin executable built with the addon. */
export function pluginBuildPath(): string {
  const root = packageRoot();
  for (const dir of ['Release', 'Debug']) {
    const p = path.join(root, 'build', dir, 'netmodes-cni');
    if (existsSync(p)) return p;
  }
  throw new Error(`netmodes: the CNI plugin is not built (looked for ${path.join(root, 'build', 'Release', 'netmodes-cni')}); run npm run build:native`);
}

function trailer(node: string, root: string): Buffer {
  const body = Buffer.from(`node=${node}\0root=${root}\0`);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(body.length);
  return Buffer.concat([body, len, Buffer.from('NMCNI\0T1', 'latin1')]);
}

/**
 * Installs the plugin as DIR/netmodes (DIR made if missing). `node`: the Node.js the plugin
 * starts (default: this one). Returns the path written.
 */
export async function installPlugin(opts: { binDir?: string; node?: string; name?: string } = {}): Promise<string> {
  const dir = opts.binDir ?? DEFAULT_BIN_DIR;
  if (typeof dir !== 'string' || !path.isAbsolute(dir)) throw new ConfigError('must be an absolute directory', 'binDir');
  const name = opts.name ?? PLUGIN_TYPE;
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) throw new ConfigError('must be a plain file name', 'name');
  const node = opts.node ?? process.execPath;
  const root = packageRoot();
  if (!existsSync(path.join(root, 'dist', 'lib', 'cni', 'server.js'))) throw new Error(`netmodes: ${root}/dist is not built (npm run build:ts)`);
  const bin = await fsp.readFile(pluginBuildPath());
  await fsp.mkdir(dir, { recursive: true, mode: 0o755 });
  const dest = path.join(dir, name);
  const tmp = path.join(dir, `.${name}.${process.pid}.tmp`);
  try {
    await fsp.writeFile(tmp, Buffer.concat([bin, trailer(node, root)]), { mode: 0o755 });
    await fsp.chmod(tmp, 0o755);
    await fsp.rename(tmp, dest);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  return dest;
}
