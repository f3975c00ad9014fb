/** Assertions shared by the root-free unit tests. */
import { strict as assert } from 'node:assert';
import { ConfigError, NetmodesError } from '../../lib/errors';

/** fn throws a ConfigError (EINVAL) naming `field`, optionally with a message matching `message`. */
export function throwsConfig(fn: () => unknown, field: string, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    assert.equal(e.code, 'EINVAL');
    assert.equal(e.field, field);
    if (message) assert.match(e.message, message);
    return true;
  });
}

/** fn throws a NetmodesError with `code`. */
export function throwsPolicy(fn: () => unknown, code: string, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof NetmodesError, `expected NetmodesError, got ${String(e)}`);
    assert.equal(e.code, code);
    if (message) assert.match(e.message, message);
    return true;
  });
}

/** A small seeded generator (mulberry32), so randomized tests are repeatable. */
export function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
