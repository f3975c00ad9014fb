#!/usr/bin/env node
// Builds the addon with node-gyp against the installed Node.js headers when they are present
// (/usr/include/node, as Debian and the official tarballs lay them out), so no download is needed.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const args = ['rebuild', '--jobs', 'max'];
const prefix = path.resolve(path.dirname(process.execPath), '..');
for (const dir of [prefix, '/usr', '/usr/local']) {
  if (fs.existsSync(path.join(dir, 'include', 'node', 'node_api.h'))) {
    args.push(`--nodedir=${dir}`);
    break;
  }
}
let gyp;
try {
  gyp = require.resolve('node-gyp/bin/node-gyp.js');
} catch {
  gyp = null;
}
const r = gyp
  ? spawnSync(process.execPath, [gyp, ...args], { stdio: 'inherit' })
  : spawnSync('node-gyp', args, { stdio: 'inherit' });
process.exit(r.status ?? 1);
