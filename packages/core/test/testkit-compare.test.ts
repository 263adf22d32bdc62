import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { assertClose, compareTensors } from '../src/testkit/index.js';

describe('compareTensors / assertClose', () => {
  it('passes close tensors and reports statistics', () => {
    const a = tf.tensor([[1, 2], [3, 4]]);
    const b = tf.tensor([[1, 2.00001], [3, 4]]);
    const r = compareTensors(a, b, { rtol: 1e-4 });
    expect(r.ok).toBe(true);
    expect(r.count).toBe(0);
    expect(r.size).toBe(4);
    expect(r.maxAbs).toBeCloseTo(1e-5, 6);
    expect(r.maxRel).toBeCloseTo(5e-6, 6);
    expect(r.worstIndex).toEqual([0, 1]);
    expect(assertClose(a, b, { rtol: 1e-4 }).ok).toBe(true);
    tf.dispose([a, b]);
  });

  it('fails with name, shape, max abs/rel error, multi-dim worst index and values', () => {
    const e = tf.zeros([2, 3, 4]);
    const data = new Float32Array(24);
    data[1 * 12 + 2 * 4 + 3] = 0.5; // index [1, 2, 3]
    data[5] = 1e-7;
    const a = tf.tensor(data, [2, 3, 4]);
    const r = compareTensors(a, e, { atol: 1e-6 });
    expect(r.ok).toBe(false);
    expect(r.count).toBe(1);
    expect(r.worstIndex).toEqual([1, 2, 3]);
    expect(r.worstActual).toBe(0.5);
    expect(r.maxRel).toBe(Infinity);
    expect(() => assertClose(a, e, { name: 'logits', atol: 1e-6 })).toThrow(
      /logits \[2, 3, 4\]: 1 of 24 elements not close \(rtol 0\.00001, atol 0\.000001\); max abs err 5\.000e-1, max rel err Infinity; worst at \[1, 2, 3\]: actual 0\.5, expected 0/,
    );
    tf.dispose([a, e]);
  });

  it('shape mismatch names both shapes', () => {
    expect(() => compareTensors({ shape: [2, 3], data: new Float32Array(6) }, { shape: [3, 2], data: new Float32Array(6) }, { name: 'h' })).toThrow(
      'h: shape mismatch: actual [2, 3] vs expected [3, 2]',
    );
  });

  it('NaN / Inf handling and plain arrays', () => {
    expect(compareTensors([NaN, Infinity, 1], [NaN, Infinity, 1]).ok).toBe(true);
    expect(compareTensors([NaN], [NaN], { equalNan: false }).ok).toBe(false);
    expect(compareTensors([Infinity], [-Infinity]).ok).toBe(false);
    const r = compareTensors([1, NaN], [1, 2]);
    expect(r.ok).toBe(false);
    expect(r.worstIndex).toEqual([1]);
    expect(r.maxAbs).toBe(Infinity);
    // rtol relative to expected: |1.1 - 1| <= 0 + 0.2 * 1
    expect(compareTensors([1.1], [1], { rtol: 0.2, atol: 0 }).ok).toBe(true);
    expect(compareTensors(new Int32Array([1, 2]), [1, 2], { rtol: 0, atol: 0 }).ok).toBe(true);
  });
});
