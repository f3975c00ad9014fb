/**
 * The addon's C-heap figures (mallocStats, used by the benchmarks' memory section): they follow
 * allocations the process makes outside the JS heap.
 */
import { strict as assert } from 'node:assert';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { native } from '../../lib/native';

describe('45 mallocStats (no root)', () => {
  it('counts a large buffer while it is alive, and not after it is freed', () => {
    const stats = () => native().mallocStats();
    const before = stats();
    for (const k of ['inUse', 'free', 'mapped'] as const) assert.ok(Number.isFinite(before[k]) && before[k] >= 0, k);
    let buf: Buffer | undefined = Buffer.alloc(16 * 2 ** 20, 1); // malloc'd (mmapped: above the threshold)
    const during = stats();
    assert.ok(during.inUse - before.inUse >= 16 * 2 ** 20, `in use grew by ${during.inUse - before.inUse}`);
    assert.equal(buf[buf.length - 1], 1);
    buf = undefined;
    // The backing store goes when the Buffer is collected.
    setFlagsFromString('--expose-gc');
    (runInNewContext('gc') as () => void)();
    assert.ok(stats().inUse <= during.inUse - 16 * 2 ** 20, 'freed after a full GC');
  });
});
