import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { ops } from '../src/index.js';
import { assertClose, assertGradients, assertNoLeak } from '../src/testkit/index.js';
import { Rng } from '../src/random.js';

const rng = new Rng('gather-rows-test');
const randn = (shape: number[]) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()), shape);

describe('ops.gatherRows (injective row gather with a gather gradient)', () => {
  const cases: [string, number[]][] = [['a permutation', [3, 0, 4, 1, 2]], ['a subset in any order', [4, 1, 3]], ['nothing', []]];
  for (const [what, idx] of cases) {
    it(`${what}: value and gradient equal tf.gather's`, () => {
      const x = randn([5, 3]);
      const w = randn([idx.length, 3]); // a weighted sum makes every output row's gradient distinct
      assertClose(ops.gatherRows(x, idx), tf.gather(x, tf.tensor1d(idx, 'int32')), { rtol: 0, atol: 0, name: 'value' });
      const loss = (g: (a: tf.Tensor) => tf.Tensor) => (a: tf.Tensor) => tf.sum(tf.mul(g(a), w));
      const mine = tf.grad(loss((a) => ops.gatherRows(a, idx)))(x);
      const ref = tf.grad(loss((a) => tf.gather(a, tf.tensor1d(idx, 'int32'))))(x);
      assertClose(mine, ref, { rtol: 0, atol: 0, name: 'gradient' });
      if (idx.length) assertGradients((a) => tf.sum(tf.mul(ops.gatherRows(a!, idx), w)), [x], { label: `gatherRows ${what}` });
    });
  }

  it('a prepared rowGather (reused across calls) gives the same value and gradient', () => {
    const x = randn([5, 3]);
    const plan = ops.rowGather([3, 0, 4], 5);
    assertClose(ops.gatherRows(x, plan), ops.gatherRows(x, [3, 0, 4]), { rtol: 0, atol: 0, name: 'value' });
    assertClose(tf.grad((a: tf.Tensor) => tf.sum(tf.square(ops.gatherRows(a, plan))))(x),
      tf.grad((a: tf.Tensor) => tf.sum(tf.square(ops.gatherRows(a, [3, 0, 4]))))(x), { rtol: 0, atol: 0, name: 'gradient' });
    expect(() => ops.gatherRows(randn([4, 3]), plan)).toThrow("gatherRows: x: expected 5 rows (the rowGather's source), got 4");
    expect(() => ops.rowGather([5], 5)).toThrow('gatherRows: idx[0]: expected an integer in [0, 5), got 5');
    tf.dispose([plan.idx, plan.inv]);
  });

  it('does not leak (forward and gradient)', () => {
    const x = randn([6, 2]);
    assertNoLeak(() => ops.gatherRows(x, [5, 0, 2]), { label: 'forward' });
    assertNoLeak(() => tf.grad((a: tf.Tensor) => tf.sum(ops.gatherRows(a, [5, 0, 2])))(x), { label: 'gradient' });
  });

  it('errors name the argument and the value', () => {
    const x = randn([4, 2]);
    expect(() => ops.gatherRows(x, [0, 4])).toThrow('gatherRows: idx[1]: expected an integer in [0, 4), got 4');
    expect(() => ops.gatherRows(x, [1, 2, 1])).toThrow('gatherRows: idx picks row 1 twice (at 0 and 2); use tf.gather for repeated rows');
    expect(() => ops.gatherRows(randn([4]), [0])).toThrow(/x: expected rank 2, got rank 1/);
  });
});
