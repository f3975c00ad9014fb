/**
 * Bridge mode, the reaper: a disconnect detaches its veth at once (bridge-disconnect.ts) into
 * REAP_GROUP, and one RTM_DELLINK per link group deletes every detached veth in a batch, so churn
 * does not pay one RCU grace period (about 18 ms) per container.
 *
 * When: once REAP_BATCH veths wait, or once disconnects have paused for REAP_QUIET_MS, and at the
 * latest REAP_MAX_WAIT_MS after the first of them. A group delete costs about 17 ms plus 0.25-0.45 ms
 * per veth here (benchmarks/README: 40 veths 0.65 ms each, 500 veths 0.25-0.43 ms each), so the
 * batch is large: at 64 (the earlier threshold) the fixed part was a third of a churn cycle.
 *
 * A dense network's containers of slot > 0 have their host ends in leaf namespaces
 * (bridge-leaves.ts): the group there is deleted too, one request per namespace that has detached
 * veths waiting (and on a forced flush, in the namespaces the caller names).
 */
import * as nl from '../netlink';
import { isNotFound } from '../errors';
import { afterChurn } from '../memory';
import type { Namespace } from '../netns';

/** Link group that detached veths wait in until one RTM_DELLINK reaps them all ("NM" + 0xdead). */
export const REAP_GROUP = 0x4e4ddead;
/** Detached veths that make the reaper run at once. */
export const REAP_BATCH = 256;
/** A pause in disconnects this long makes the reaper run. */
export const REAP_QUIET_MS = 50;
/** No detached veth waits longer than this for the reaper (while the process's event loop runs). */
export const REAP_MAX_WAIT_MS = 1000;

class Reaper {
  private pending = 0;
  private timer: NodeJS.Timeout | undefined;
  private first = 0; // when the oldest waiting veth was detached (ms, performance.now())
  private capped = false; // the timer is set for REAP_MAX_WAIT_MS after `first`
  private running: Promise<void> | undefined;
  private hooked = false;
  private batched = false;
  /** Leaf namespaces with detached veths of this process waiting. */
  private dirty = new Set<Namespace>();

  /** A leaf namespace about to be closed (what waits there is left to reconcile(), which reaps every leaf). */
  forget(ns: Namespace): void {
    this.dirty.delete(ns);
  }

  /** A veth was detached into REAP_GROUP (in `ns`, a leaf namespace; default: the host's). */
  add(ns?: Namespace): void {
    this.pending++;
    if (ns) this.dirty.add(ns);
    if (!this.hooked) {
      this.hooked = true;
      // A process that ends normally reaps what it detached; one that dies leaves them for
      // reconcile(), which reaps the group too. They are already down and off every bridge.
      process.on('beforeExit', () => {
        if (this.pending) void this.background();
      });
    }
    if (this.pending >= REAP_BATCH) {
      if (!this.batched) {
        this.batched = true; // one flush queued behind a running one is enough
        void this.background().finally(() => {
          this.batched = false;
        });
      }
      return;
    }
    // Debounced: each detach pushes the run back by REAP_QUIET_MS, up to REAP_MAX_WAIT_MS after the first.
    if (this.timer && this.capped) return;
    const now = performance.now();
    if (!this.first) this.first = now;
    const cap = this.first + REAP_MAX_WAIT_MS;
    if (now + REAP_QUIET_MS >= cap) {
      if (this.timer) clearTimeout(this.timer);
      this.capped = true;
      this.timer = setTimeout(() => void this.background(), Math.max(0, cap - now));
      this.timer.unref();
    } else if (this.timer) {
      this.timer.refresh();
    } else {
      this.timer = setTimeout(() => void this.background(), REAP_QUIET_MS);
      this.timer.unref();
    }
  }

  /** A flush nobody awaits: a failure is left for the next one (or reconcile), not thrown. */
  private background(): Promise<void> {
    return this.flush().catch(() => undefined);
  }

  /**
   * Deletes every link in REAP_GROUP now. `force`: even when this process detached none (another
   * process, or a killed one, may have left detached veths behind), in the host and in `also`
   * (leaf namespaces).
   */
  async flush(force = false, also: Namespace[] = []): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.capped = false;
    if (this.running) await this.running;
    if (!this.pending && !force) return;
    const taken = this.pending;
    const where = [...new Set([...this.dirty, ...(force ? also : [])])];
    this.pending = 0;
    this.first = 0;
    this.dirty = new Set();
    const one = (ns?: Namespace) =>
      nl.linkDelGroup(REAP_GROUP, ns).catch((err) => {
        if (isNotFound(err)) return;
        throw err;
      });
    this.running = Promise.all([one(), ...where.map(one)]).then(
      () => undefined,
      (err) => {
        this.pending += taken; // still waiting: the next flush takes them
        for (const ns of where) if (!also.includes(ns)) this.dirty.add(ns);
        throw err;
      },
    );
    try {
      await this.running;
    } finally {
      this.running = undefined;
    }
    // What the reaped containers took is freed by now (their records, claims, chains).
    afterChurn();
  }
}
/** The process's reaper. */
export const reaper = new Reaper();

/** Deletes now every veth that disconnects have detached and not yet reaped. */
export function reapDetached(): Promise<void> {
  return reaper.flush();
}
