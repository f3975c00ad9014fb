#!/usr/bin/env node
/**
 * The CNI plugin as a Node process of its own: the environment and stdin in, the result or the
 * error object on stdout, status 0 or 1. The plugin executable runs this when no resident server
 * can be reached (or NETMODES_CNI_MODE=process asks for it); a runtime may also be pointed at a
 * wrapper that runs it directly.
 */
import { handle } from './plugin';
import { reapDetached } from '../modes/bridge';

function readStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    process.stdin.on('data', (d: Buffer) => chunks.push(d));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

export async function main(): Promise<number> {
  let stdin = '';
  if (process.env.CNI_COMMAND !== 'VERSION' || !process.stdin.isTTY) {
    try {
      stdin = await readStdin();
    } catch (err) {
      process.stdout.write(JSON.stringify({ cniVersion: '1.1.0', code: 5, msg: `cannot read stdin: ${(err as Error).message}` }));
      return 1;
    }
  }
  const r = await handle({ env: process.env, stdin });
  // Detached veths are deleted before the process ends (one request for all).
  await reapDetached().catch(() => undefined);
  if (r.stdout) process.stdout.write(r.stdout);
  return r.code;
}

if (require.main === module) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stdout.write(JSON.stringify({ cniVersion: '1.1.0', code: 999, msg: String(err) }));
      process.exitCode = 1;
    },
  );
}
