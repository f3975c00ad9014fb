/**
 * The addon's C-heap figures (mallocStats, used by the benchmarks' memory section): they follow
 * allocations the process makes outside the JS heap. Other threads allocate and free meanwhile
 * (V8's compilers, its concurrent sweeper), so the checks leave a margin and wait for the free.
 */
import { strict as assert } from 'node:assert';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { readFileSync } from 'node:fs';
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

describe('45 mallocTrim (no root)', () => {
  it('hands the C heap\'s free pages in the middle of an arena back to the kernel', async () => {
    if (process.env.NETMODES_ASAN_PRELOAD) {
      // Under AddressSanitizer (scripts/sanitize.sh) the allocator is the sanitizer's, which glibc's
      // trim does not reach: the call says so and changes nothing.
      assert.equal(await native().mallocTrim(), false);
      return;
    }
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    // (VmRSS in kB: no page size to assume, as statm's pages would)
    const resident = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
    // 24 MiB in 6,000 blocks of 4 KiB (below the mmap threshold: from an arena), the last one kept
    // so that the freed ones are not at the arena's top (which free() itself trims).
    let blocks: Buffer[] | undefined = Array.from({ length: 6000 }, () => Buffer.alloc(4096, 1));
    const keep = blocks[blocks.length - 1];
    const base = native().mallocStats().free;
    blocks = undefined;
    for (let i = 0; i < 100 && native().mallocStats().free - base < 16 * MiB; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(native().mallocStats().free - base >= 16 * MiB, 'the blocks were not freed');
    const before = resident();
    assert.equal(await native().mallocTrim(), true);
    const after = resident();
    assert.ok(before - after >= 12 * MiB, `RSS ${before} -> ${after} after the trim`);
    assert.equal(keep[0], 1);
  });
});
