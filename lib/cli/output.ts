/** Terminal output for the CLI: aligned tables and a progress indicator for slow steps. */

/** Rows under upper-case headers, columns separated by three spaces (as `docker ps`). */
export function table(headers: string[], rows: string[][]): string {
  const all = [headers, ...rows];
  const widths = headers.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
  return all.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : (cell ?? '').padEnd(widths[c]))).join('   ').trimEnd()).join('\n') + '\n';
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/**
 * Runs `fn`; when it takes longer than `delayMs` and stderr is a terminal, shows a spinner with
 * `label` on stderr until it ends, then erases it. Nothing is printed when stderr is not a
 * terminal (logs and pipes stay clean).
 */
export async function progress<T>(label: string, fn: () => Promise<T>, delayMs = 250): Promise<T> {
  const err = process.stderr;
  if (!err.isTTY || process.env.NETMODES_NO_PROGRESS) return fn();
  let frame = 0;
  let shown = false;
  let timer: NodeJS.Timeout | undefined;
  const start = setTimeout(() => {
    shown = true;
    const draw = () => err.write(`\r${FRAMES[frame++ % FRAMES.length]} ${label}\x1b[K`);
    draw();
    timer = setInterval(draw, 80);
  }, delayMs);
  try {
    return await fn();
  } finally {
    clearTimeout(start);
    if (timer) clearInterval(timer);
    if (shown) err.write('\r\x1b[K');
  }
}
