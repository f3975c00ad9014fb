#!/usr/bin/env node
// Test entry point. Refuses to touch the machine's own network: unless it already runs in a
// network namespace of its own, it re-executes itself under `unshare --net --mount`, mounts
// private tmpfs over /run/netns and /run/netmodes, then runs mocha and checks for leaks.
//   node test/run.js            every test (needs root: CI runs as root)
//   node test/run.js --unit     only test/unit (no root, no sandbox)
//   node test/run.js --grep X   mocha's grep
// Ends with the line `N passed, N failed`.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync, spawnSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const unitOnly = args.includes('--unit');
const grepIdx = args.indexOf('--grep');
const grep = grepIdx >= 0 ? args[grepIdx + 1] : undefined;
const fileArgs = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--grep');

const { inSandbox, enterSandbox } = require('../scripts/sandbox'); // prepares the sandbox when inside it

if (!unitOnly && !inSandbox()) {
  process.exit(enterSandbox(__filename, args));
}

if (!unitOnly) execFileSync('ip', ['link', 'set', 'lo', 'up']); // the sandbox host's loopback

if (!fs.existsSync(path.join(root, 'dist', 'test'))) {
  console.error('dist/ is missing: run `npm run build:ts` (npm ci does it)');
  console.log('0 passed, 1 failed');
  process.exit(1);
}

function collect(dir) {
  const out = [];
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...collect(p));
    else if (e.name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

let files = collect(path.join(root, 'dist', 'test', 'unit'));
if (!unitOnly) files = files.concat(collect(path.join(root, 'dist', 'test', 'ns')));
if (fileArgs.length) files = files.filter((f) => fileArgs.some((a) => f.includes(a)));

const Mocha = require('mocha');
const mocha = new Mocha({ timeout: 60000, reporter: 'spec', grep });
files.forEach((f) => mocha.addFile(f));

let passed = 0;
let failed = 0;
process.on('uncaughtException', (err) => {
  // A file that cannot even load (or a stray async throw) still ends with the count line.
  console.error(err);
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
});
const runner = mocha.run((mochaFailures) => {
  if (!unitOnly) {
    const leaks = require('../scripts/sandbox').leakCheck();
    if (leaks.length) {
      failed++;
      console.error('\nLEAK CHECK FAILED (the suite left these behind):\n  ' + leaks.join('\n  '));
    } else {
      console.log('\nleak check: no namespaces, links or nftables tables left behind');
    }
  }
  if (passed + failed === 0) failed++; // a run that executed nothing is a failure
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
});
runner.on('pass', () => passed++);
runner.on('fail', () => failed++);
