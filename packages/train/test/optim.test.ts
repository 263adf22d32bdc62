import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { assertClose, assertNoLeak } from '@vlmix/core/testkit';
import { AdamW, clipGradNorm, constantLr, defaultNoDecay, globalGradNorm, warmupCosine } from '../src/index.js';

/** PyTorch torch.optim.AdamW (amsgrad=False, maximize=False), written out in float64. */
function torchAdamW(p: number[], grads: number[][], o: { lr: number; b1: number; b2: number; eps: number; wd: number }): number[] {
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  const x = [...p];
  grads.forEach((g, t0) => {
    const t = t0 + 1;
    for (let i = 0; i < x.length; i++) {
      x[i]! *= 1 - o.lr * o.wd;
      m[i] = o.b1 * m[i]! + (1 - o.b1) * g[i]!;
      v[i] = o.b2 * v[i]! + (1 - o.b2) * g[i]! * g[i]!;
      const bc1 = 1 - o.b1 ** t;
      const bc2 = 1 - o.b2 ** t;
      const stepSize = o.lr / bc1;
      const denom = Math.sqrt(v[i]!) / Math.sqrt(bc2) + o.eps;
      x[i]! -= stepSize * (m[i]! / denom);
    }
  });
  return x;
}

describe('AdamW', () => {
  const o = { lr: 0.1, b1: 0.9, b2: 0.99, eps: 1e-8, wd: 0.5 };
  const w0 = [0.5, -1.5, 2.0, 0.25];
  const b0 = [0.3, -0.7];
  const gw = [[0.1, -0.2, 0.3, 1.5], [-0.4, 0.05, 0.3, -2.0]];
  const gb = [[1.0, -0.5], [0.2, 0.9]];

  it('matches PyTorch AdamW for two steps (weight decay on the matrix, bias correction)', () => {
    const w = tf.variable(tf.tensor2d(w0, [2, 2]));
    const b = tf.variable(tf.tensor1d(b0));
    const opt = new AdamW([{ name: 'layer.weight', variable: w }, { name: 'layer.bias', variable: b }], { lr: o.lr, beta1: o.b1, beta2: o.b2, eps: o.eps, weightDecay: o.wd });
    expect(opt.decays('layer.weight')).toBe(true);
    expect(opt.decays('layer.bias')).toBe(false);
    for (let t = 0; t < 2; t++) {
      const grads = new Map<string, tf.Tensor>([['layer.weight', tf.tensor2d(gw[t]!, [2, 2])], ['layer.bias', tf.tensor1d(gb[t]!)]]);
      opt.step(grads);
      for (const g of grads.values()) g.dispose();
    }
    expect(opt.stepCount).toBe(2);
    assertClose(w, { shape: [2, 2], data: torchAdamW(w0, gw, o) }, { atol: 1e-6, rtol: 1e-6 });
    assertClose(b, torchAdamW(b0, gb, { ...o, wd: 0 }), { atol: 1e-6, rtol: 1e-6 });
    // Sanity: decay mattered (the decayed result differs from the undecayed one).
    expect(Math.abs(torchAdamW(w0, gw, o)[2]! - torchAdamW(w0, gw, { ...o, wd: 0 })[2]!)).toBeGreaterThan(1e-2);
    opt.dispose();
    w.dispose();
    b.dispose();
  });

  it('uses the lr passed to step() and a custom noDecay rule', () => {
    const w = tf.variable(tf.tensor2d(w0, [2, 2]));
    const e = tf.variable(tf.tensor2d(w0, [2, 2]));
    const opt = new AdamW([{ name: 'mlp.weight', variable: w }, { name: 'embeddings.weight', variable: e }], {
      lr: 123, beta1: o.b1, beta2: o.b2, eps: o.eps, weightDecay: o.wd, noDecay: (n) => n.includes('embeddings'),
    });
    expect(opt.decays('mlp.weight')).toBe(true);
    expect(opt.decays('embeddings.weight')).toBe(false);
    const g = tf.tensor2d(gw[0]!, [2, 2]);
    opt.step(new Map([['mlp.weight', g], ['embeddings.weight', g]]), o.lr);
    assertClose(w, { shape: [2, 2], data: torchAdamW(w0, [gw[0]!], o) }, { atol: 1e-6 });
    assertClose(e, { shape: [2, 2], data: torchAdamW(w0, [gw[0]!], { ...o, wd: 0 }) }, { atol: 1e-6 });
    g.dispose();
    opt.dispose();
    w.dispose();
    e.dispose();
  });

  it('default no-decay groups follow nanoGPT (rank < 2)', () => {
    const v1 = tf.variable(tf.zeros([3]));
    const v2 = tf.variable(tf.zeros([3, 3]));
    expect(defaultNoDecay('x.layernorm.weight', v1)).toBe(true);
    expect(defaultNoDecay('x.bias', v1)).toBe(true);
    expect(defaultNoDecay('word_embeddings.weight', v2)).toBe(false);
    v1.dispose();
    v2.dispose();
  });

  it('state export/import continues identically, and a step leaks nothing', () => {
    const mk = () => tf.variable(tf.tensor2d(w0, [2, 2]));
    const a = mk();
    const b = mk();
    const optA = new AdamW([{ name: 'w', variable: a }], { lr: 0.1, weightDecay: 0.1 });
    const optB = new AdamW([{ name: 'w', variable: b }], { lr: 0.1, weightDecay: 0.1 });
    const g1 = new Map([['w', tf.tensor2d(gw[0]!, [2, 2])]]);
    const g2 = new Map([['w', tf.tensor2d(gw[1]!, [2, 2])]]);
    optA.step(g1);
    b.assign(a);
    optB.loadState(optA.state());
    optA.step(g2);
    optB.step(g2);
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    assertNoLeak(() => optA.step(g2), { label: 'AdamW.step' });
    for (const t of [...g1.values(), ...g2.values(), a, b]) t.dispose();
    optA.dispose();
    optB.dispose();
  });
});

describe('clipGradNorm', () => {
  it('computes the global L2 norm and scales by maxNorm / (norm + 1e-6)', () => {
    const grads = new Map<string, tf.Tensor>([['a', tf.tensor1d([3, 4])], ['b', tf.tensor2d([[0, 12]])]]);
    expect(globalGradNorm(grads)).toBeCloseTo(13, 5);
    const { grads: c, norm, clipped } = clipGradNorm(grads, 1);
    expect(norm).toBeCloseTo(13, 5);
    expect(clipped).toBe(true);
    const s = 1 / (13 + 1e-6);
    assertClose(c.get('a')!, [3 * s, 4 * s], { atol: 1e-7 });
    assertClose(c.get('b')!, { shape: [1, 2], data: [0, 12 * s] }, { atol: 1e-7 });
    expect(globalGradNorm(c)).toBeCloseTo(1, 5);
    // Inputs untouched.
    assertClose(grads.get('a')!, [3, 4]);
    for (const t of c.values()) t.dispose();

    const big = clipGradNorm(grads, 100);
    expect(big.clipped).toBe(false);
    expect(big.grads.get('a')).toBe(grads.get('a'));
    for (const t of grads.values()) t.dispose();
  });
});

describe('schedules', () => {
  it('warmupCosine follows nanoGPT get_lr at key steps', () => {
    const f = warmupCosine({ lr: 1e-3, warmupSteps: 10, totalSteps: 110, minLr: 1e-4 });
    expect(f(0)).toBe(0);
    expect(f(5)).toBeCloseTo(5e-4, 12);
    expect(f(10)).toBeCloseTo(1e-3, 12);
    expect(f(60)).toBeCloseTo((1e-3 + 1e-4) / 2, 12);
    expect(f(35)).toBeCloseTo(1e-4 + 0.5 * (1 + Math.cos(Math.PI * 0.25)) * 9e-4, 12);
    expect(f(110)).toBeCloseTo(1e-4, 12);
    expect(f(500)).toBe(1e-4);
    for (let i = 11; i < 110; i++) expect(f(i)).toBeLessThan(f(i - 1));
  });

  it('constantLr', () => {
    const f = constantLr(3e-4);
    expect([f(0), f(10), f(1e6)]).toEqual([3e-4, 3e-4, 3e-4]);
  });
});
