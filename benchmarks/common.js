// What every benchmark script starts with: refuse to run outside a sandbox of its own (re-execute
// under unshare --net --mount), parse `--name value` options, and time and summarize.
'use strict';
const { inSandbox, enterSandbox } = require('../scripts/sandbox');

/** Call first thing: re-runs `script` in the sandbox (and exits) unless already in it. */
function sandboxed(script) {
  const args = process.argv.slice(2);
  if (!inSandbox()) process.exit(enterSandbox(script, args));
  const opt = (k, d) => {
    const i = args.indexOf(`--${k}`);
    return i >= 0 ? Number(args[i + 1]) : d;
  };
  return { args, opt };
}

/** Milliseconds, monotonic. */
const now = () => Number(process.hrtime.bigint()) / 1e6;
/** The p-th percentile of a list of numbers. */
const pct = (a, p) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const med = (a) => pct(a, 50);

module.exports = { sandboxed, now, pct, med };
