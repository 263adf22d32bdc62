/**
 * Unit-testing your own fusion layer with @vlmix/core/testkit: gradients, leaks, errors, and a
 * hand-computed reference. The kit throws plain Errors, so it works under any test runner.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { assertClose, assertGradients, assertNoLeak } from '@vlmix/core/testkit';
import { gatedFusion, type FusionWeights } from './my-fusion-layer.js';

const [B, T, N, C, DV] = [2, 3, 4, 8, 6];
const h = tf.randomNormal([B, T, C], 0, 1, 'float32', 1);
const media = tf.randomNormal([B, N, DV], 0, 1, 'float32', 2);
const w: FusionWeights = {
  wq: tf.randomNormal([C, C], 0, 0.4, 'float32', 3),
  wk: tf.randomNormal([C, DV], 0, 0.4, 'float32', 4),
  wv: tf.randomNormal([C, DV], 0, 0.4, 'float32', 5),
  gate: tf.tensor1d([0.7]),
};
afterAll(() => tf.dispose([h, media, w.wq, w.wk, w.wv, w.gate]));

describe('gatedFusion (a user fusion layer)', () => {
  it('has correct gradients for the input, the media and every weight', () => {
    const f = (h: tf.Tensor, m: tf.Tensor, wq: tf.Tensor, wk: tf.Tensor, wv: tf.Tensor, g: tf.Tensor) =>
      gatedFusion(h, m, { wq: wq as tf.Tensor2D, wk: wk as tf.Tensor2D, wv: wv as tf.Tensor2D, gate: g as tf.Tensor1D });
    const r = assertGradients(f, [h, media, w.wq, w.wk, w.wv, w.gate], { label: 'gatedFusion' });
    expect(r.failures).toBe(0);
  });

  it('leaks no tensors', () => {
    assertNoLeak(() => gatedFusion(h, media, w), { label: 'gatedFusion' });
  });

  it('names the wrong argument on a bad shape', () => {
    const bad = tf.zeros([B, N, DV + 1]);
    expect(() => gatedFusion(h, media, { ...w, wk: tf.zeros([C, DV + 1]) as tf.Tensor2D })).toThrow(/wk must be \[8, 6\], got \[8, 7\]/);
    expect(() => gatedFusion(h, tf.zeros([1, N, DV]), w)).toThrow(/media must be \[2, N, Dv\], got \[1, 4, 6\]/);
    expect(() => gatedFusion(tf.zeros([T, C]), bad, w)).toThrow(/h must be \[B, T, C\]/);
    bad.dispose();
  });

  it('matches a reference computed by hand in float64', () => {
    const [hv, mv, q, k, v] = [h, media, w.wq, w.wk, w.wv].map((t) => t.arraySync()) as [number[][][], number[][][], number[][], number[][], number[][]];
    const lin = (x: number[], W: number[][]) => W.map((row) => row.reduce((s, wij, j) => s + wij * x[j]!, 0));
    const g = Math.tanh(0.7);
    const expected = hv.map((rows, b) => rows.map((x) => {
      const qi = lin(x, q);
      const ks = mv[b]!.map((m) => lin(m, k));
      const vs = mv[b]!.map((m) => lin(m, v));
      const s = ks.map((kj) => kj.reduce((a, kjd, d) => a + kjd * qi[d]!, 0) / Math.sqrt(C));
      const mx = Math.max(...s);
      const e = s.map((x) => Math.exp(x - mx));
      const z = e.reduce((a, b) => a + b, 0);
      return x.map((xc, c) => xc + g * vs.reduce((a, vj, j) => a + (e[j]! / z) * vj[c]!, 0));
    }));
    const out = gatedFusion(h, media, w);
    assertClose(out, { shape: [B, T, C], data: expected.flat(2) }, { name: 'gatedFusion', rtol: 1e-5, atol: 1e-5 });
    out.dispose();
  });
});
