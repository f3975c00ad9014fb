/**
 * Handing back what churn freed. A process that connects and disconnects containers at a high
 * rate frees most of what each one took, but glibc's allocator keeps freed pages in its arenas
 * (one per thread that allocates: the pool threads, V8's compiler and GC threads), and only
 * trims what sits at the top of one. Measured in the churn shape (500 -> 5,000 cycles, 8 in
 * flight; README, "Attach + detach against the floor", session 15): with V8's young generation
 * held at one size, RSS +14.8 MiB, of it ~8 MiB free C heap, and +6.6 MiB with a trim after each
 * batch; with V8's defaults and the trims below, a median of +16.1 MiB against +20.7 without.
 *
 * So once the reaper has deleted a batch of veths (bridge-reaper.ts), the process's C heap is
 * trimmed (malloc_trim(0) on a pool thread: never on the event loop), at most once per
 * TRIM_INTERVAL_MS; a batch inside that interval gets one trailing trim at its end. A process that
 * prefers to leave its allocator alone turns it off with setMemoryTrim(false), or starts with
 * NETMODES_MALLOC_TRIM=0 in its environment.
 */
import { native } from './native';

/** At most one trim per this many ms. */
export const TRIM_INTERVAL_MS = 1000;

let enabled = process.env.NETMODES_MALLOC_TRIM !== '0';
let last = -Infinity; // performance.now() of the last trim's start
let running = false;
let timer: NodeJS.Timeout | undefined;
let trims = 0;

/** Turns the trims after reaps on or off for this process (default on, unless NETMODES_MALLOC_TRIM=0). */
export function setMemoryTrim(on: boolean): void {
  enabled = on;
  if (!on && timer) {
    clearTimeout(timer);
    timer = undefined;
  }
}

/** How many trims this process has started (tests and benchmarks). @internal */
export function memoryTrims(): number {
  return trims;
}

function trim(): void {
  timer = undefined;
  if (!enabled) return;
  if (running) {
    // The running one may have walked past what was freed since: one more after it.
    timer = setTimeout(trim, TRIM_INTERVAL_MS);
    timer.unref();
    return;
  }
  running = true;
  last = performance.now();
  trims++;
  native()
    .mallocTrim()
    .catch(() => false)
    .finally(() => {
      running = false;
    });
}

/** A batch of containers' kernel objects is gone (the reaper): trims now, or once the interval allows. */
export function afterChurn(): void {
  if (!enabled || timer) return;
  const wait = last + TRIM_INTERVAL_MS - performance.now();
  if (wait <= 0 && !running) return trim();
  timer = setTimeout(trim, Math.max(0, wait));
  timer.unref();
}
