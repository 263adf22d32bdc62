import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { assertNoLeak, assertNoLeakAsync, countTensorLeak, countTensorLeakAsync } from '../src/testkit/index.js';

describe('leak detection', () => {
  it('returns 0 for tidy code and disposes what fn returns (tensor, array, object, Map)', () => {
    const x = tf.ones([3]);
    expect(countTensorLeak(() => tf.tidy(() => tf.add(x, 1)))).toBe(0);
    expect(countTensorLeak(() => [tf.add(x, 1), { a: tf.mul(x, 2), b: [tf.neg(x)] }])).toBe(0);
    expect(countTensorLeak(() => new Map([['k', tf.exp(x)]]))).toBe(0);
    expect(countTensorLeak(() => 42)).toBe(0);
    x.dispose();
  });

  it('counts leaked intermediates and names the label', () => {
    const x = tf.ones([3]);
    const leaky = () => {
      const y = tf.add(x, 1); // leaked
      tf.mul(y, 2); // leaked
      return tf.sub(y, 1); // returned: disposed by the helper
    };
    expect(countTensorLeak(leaky)).toBe(2);
    expect(() => assertNoLeak(leaky, { label: 'MyFusion.forward' })).toThrow(/MyFusion\.forward: leaked 2 tensors/);
    expect(() => assertNoLeak(() => tf.tidy(() => tf.add(x, 1)), { label: 'ok' })).not.toThrow();
    x.dispose();
  });

  it('warm-up runs keep lazily created caches out of the count', () => {
    let cache: tf.Tensor | null = null;
    const fn = () => {
      cache ??= tf.keep(tf.ones([4])); // created once, on first call
      return tf.add(cache, 1);
    };
    expect(countTensorLeak(fn, { warmup: 1 })).toBe(0);
    cache = null;
    expect(countTensorLeak(fn, { warmup: 0 })).toBe(1);
    expect(() => assertNoLeak(fn, { warmup: 2 })).not.toThrow();
  });

  it('reports tensors disposed that fn did not create, and refuses promises in the sync API', () => {
    const keep = Array.from({ length: 3 }, () => tf.zeros([1]));
    let i = 0;
    expect(() => assertNoLeak(() => keep[i++]!.dispose(), { warmup: 0, label: 'over' })).toThrow(/over: disposed 1 tensor it did not create/);
    expect(() => countTensorLeak(async () => 1)).toThrow(/Async variant/);
    tf.dispose(keep);
  });

  it('async variants', async () => {
    const x = tf.ones([2]);
    expect(await countTensorLeakAsync(async () => { const y = tf.add(x, 1); await y.data(); return y; })).toBe(0);
    await expect(assertNoLeakAsync(async () => { tf.add(x, 1); }, { label: 'async fn' })).rejects.toThrow(/async fn: leaked 1 tensor /);
    x.dispose();
  });
});
