/**
 * Bridge mode, the reaper: a disconnect detaches its veth at once (bridge-disconnect.ts) into
 * REAP_GROUP, and one RTM_DELLINK per link group deletes every detached veth in a batch, so churn
 * does not pay one RCU grace period (about 18 ms) per container.
 */
import * as nl from '../netlink';
import { isNotFound } from '../errors';

/** Link group that detached veths wait in until one RTM_DELLINK reaps them all ("NM" + 0xdead). */
export const REAP_GROUP = 0x4e4ddead;

class Reaper {
  private pending = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private hooked = false;

  /** A veth was detached into REAP_GROUP. */
  add(): void {
    this.pending++;
    if (!this.hooked) {
      this.hooked = true;
      // A process that ends normally reaps what it detached; one that dies leaves them for
      // reconcile(), which reaps the group too. They are already down and off every bridge.
      process.on('beforeExit', () => {
        if (this.pending) void this.flush();
      });
    }
    if (this.pending >= 64) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), 100);
      this.timer.unref();
    }
  }

  /**
   * Deletes every link in REAP_GROUP now. `force`: even when this process detached none (another
   * process, or a killed one, may have left detached veths behind).
   */
  async flush(force = false): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running) await this.running;
    if (!this.pending && !force) return;
    this.pending = 0;
    this.running = nl.linkDelGroup(REAP_GROUP).catch((err) => {
      if (!isNotFound(err)) throw err;
    });
    try {
      await this.running;
    } finally {
      this.running = undefined;
    }
  }
}
/** The process's reaper. */
export const reaper = new Reaper();

/** Deletes now every veth that disconnects have detached and not yet reaped. */
export function reapDetached(): Promise<void> {
  return reaper.flush();
}
