import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { assertGradients, checkGradients, countTensorLeak } from '../src/testkit/index.js';

const rnd = (shape: number[], seed: number, scale = 1) => tf.mul(tf.randomNormal(shape, 0, 1, 'float32', seed), scale);

function layerNormLike(x: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const mean = tf.mean(x, -1, true);
  const xc = tf.sub(x, mean);
  const v = tf.mean(tf.square(xc), -1, true);
  return tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(v, 1e-5))), g), b);
}

/** tanh(x) with a gradient that is 10% too large. */
const wrongScale = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
  save([x]);
  return { value: tf.tanh(x), gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(tf.mul(dy, tf.sub(1, tf.square(tf.tanh(saved[0]!)))), 1.1) };
}) as never) as (x: tf.Tensor) => tf.Tensor;

describe('checkGradients', () => {
  it('passes correct gradients: tanh, matmul, softmax, layer-norm composite, attention-like block', () => {
    const x = rnd([4, 6], 1);
    const w = rnd([6, 5], 2);
    const g = rnd([6], 3, 0.1);
    const b = rnd([6], 4);
    const q = rnd([2, 5, 8], 5);
    const k = rnd([2, 7, 8], 6);
    const cases: [string, (...xs: tf.Tensor[]) => tf.Tensor, tf.Tensor[]][] = [
      ['tanh', (a) => tf.tanh(a!), [x]],
      ['matmul', (a, c) => tf.matMul(a!, c!), [x, w]],
      ['softmax', (a) => tf.softmax(tf.mul(a!, 3)), [x]],
      ['layernorm', (a, gg, bb) => layerNormLike(a!, tf.add(gg!, 1), bb!), [x, g, b]],
      ['attention', (qq, kk) => tf.softmax(tf.div(tf.matMul(qq!, kk!, false, true), Math.sqrt(8))), [q, k]],
      ['large values', (a) => tf.sum(tf.mul(tf.square(a!), 50), -1), [tf.mul(x, 20)]],
    ];
    for (const [name, f, inputs] of cases) {
      const r = checkGradients(f, inputs);
      expect(r.ok, `${name}: ${JSON.stringify(r.worst)}`).toBe(true);
      expect(r.checked).toBeGreaterThan(0);
      expect(r.worst!.relErr).toBeLessThan(1e-2);
    }
    tf.dispose([x, w, g, b, q, k]);
  });

  it('catches a gradient that is 10% too large', () => {
    const x = rnd([3, 4], 7);
    const r = checkGradients((a) => wrongScale(a!), [x]);
    expect(r.ok).toBe(false);
    expect(r.failures).toBeGreaterThan(r.checked / 2);
    expect(r.worst!.relErr).toBeGreaterThan(0.04);
    expect(() => assertGradients((a) => tf.matMul(wrongScale(a!), a!, false, true), [x], { label: 'my layer' })).toThrow(
      /my layer: gradient check FAILED: \d+ of \d+ coordinates[\s\S]*worst: input 0 at \[\d+, \d+\]: analytic .* numeric/,
    );
    x.dispose();
  });

  it('catches a wrong gradient in one of several inputs and names it', () => {
    const x = rnd([5], 8);
    const y = rnd([5], 9);
    const r = checkGradients((a, c) => tf.add(tf.mul(a!, 2), wrongScale(c!)), [x, y]);
    expect(r.ok).toBe(false);
    expect(r.worst!.input).toBe(1);
    tf.dispose([x, y]);
  });

  it('honours wrt, maxChecks and seed; skips int inputs; deterministic', () => {
    const x = rnd([10, 10], 10);
    const idx = tf.tensor([1, 3], [2], 'int32');
    const f = (a: tf.Tensor, i: tf.Tensor) => tf.gather(tf.tanh(a), i);
    const r1 = checkGradients(f as never, [x, idx], { maxChecks: 16, seed: 5 });
    const r2 = checkGradients(f as never, [x, idx], { maxChecks: 16, seed: 5 });
    expect(r1.ok).toBe(true);
    expect(r1.checked).toBe(16);
    expect(r1.inputs.map((i) => i.input)).toEqual([0]);
    expect(r1.worst).toEqual(r2.worst);
    expect(() => checkGradients(f as never, [x, idx], { wrt: [1] })).toThrow(/inputs\[1\] has dtype int32/);
    const w = rnd([4], 11);
    const r3 = checkGradients((a, b) => tf.mul(a!, b!), [w, w.clone()], { wrt: [1] });
    expect(r3.inputs.map((i) => i.input)).toEqual([1]);
    tf.dispose([x, idx, w]);
  });

  it('does not leak tensors and leaves inputs intact', () => {
    const x = rnd([3, 3], 12);
    const before = Array.from(x.dataSync());
    expect(countTensorLeak(() => checkGradients((a) => tf.softmax(a!), [x]))).toBe(0);
    expect(Array.from(x.dataSync())).toEqual(before);
    x.dispose();
  });
});

describe('checkGradients input validation', () => {
  it('explains when f ignores a checked input', () => {
    const a = tf.ones([2]);
    const b = tf.ones([2]);
    expect(() => checkGradients((x) => tf.tanh(x!), [a, b])).toThrow(/tf\.grads failed \(does f use every checked input/);
    expect(() => checkGradients((x) => tf.tanh(x!), [a, b], { wrt: [0] })).not.toThrow();
    expect(() => checkGradients((x) => tf.tanh(x!), [])).toThrow(/non-empty/);
    tf.dispose([a, b]);
  });
});
