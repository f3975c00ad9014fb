/**
 * The addon's C-heap figures (mallocStats, used by the benchmarks' memory section): they follow
 * allocations the process makes outside the JS heap. Other threads allocate and free meanwhile
 * (V8's compilers, its concurrent sweeper), so the checks leave a margin and wait for the free.
 */
import { strict as assert } from 'node:assert';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { native } from '../../lib/native';

const MiB = 2 ** 20;

describe('45 mallocStats (no root)', () => {
  it('counts a large buffer while it is alive, and not after it is freed', async () => {
    const stats = () => native().mallocStats();
    const before = stats();
    for (const k of ['inUse', 'free', 'mapped'] as const) assert.ok(Number.isFinite(before[k]) && before[k] >= 0, k);
    let buf: Buffer | undefined = Buffer.alloc(16 * MiB, 1); // malloc'd (mmapped: above the threshold)
    const during = stats();
    assert.ok(during.inUse - before.inUse >= 12 * MiB, `in use grew by ${during.inUse - before.inUse}`);
    assert.equal(buf[buf.length - 1], 1);
    buf = undefined;
    // The backing store goes when the Buffer is collected (V8 may sweep it on another thread).
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    let now = during.inUse;
    for (let i = 0; i < 100 && now > during.inUse - 12 * MiB; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 20));
      now = stats().inUse;
    }
    assert.ok(now <= during.inUse - 12 * MiB, `in use ${now} after a full GC, ${during.inUse} with the buffer`);
  });
});
