// variableGrads frees each tape node's saved tensors and its outputs' gradients as soon as the node is done:
// the same gradients as tf.variableGrads, bit for bit, at a lower peak.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { createGpt2, createLlama, fastSavedTensors, variableGrads, type Model } from '../src/index.js';

function setup(model: Model, seed: number) {
  const { vocabSize: v } = model.config;
  const ids = tf.tensor2d(Array.from({ length: 4 * 24 }, (_, i) => (i * 7 + seed) % v), [4, 24], 'int32');
  const labels = tf.tensor2d(Array.from({ length: 4 * 24 }, (_, i) => (i * 5 + 3 * seed) % v), [4, 24], 'int32');
  const vars = model.params.list().map((p) => p.variable);
  return { loss: () => model.loss({ inputIds: ids }, labels), vars, dispose: () => tf.dispose([ids, labels]) };
}

describe('variableGrads (frees as the backward pass goes)', () => {
  for (const [name, make] of [
    ['llama', () => createLlama({ vocabSize: 97, hiddenSize: 48, numLayers: 3, numHeads: 4, numKvHeads: 2, intermediateSize: 96, maxSeqLen: 32, seed: 1 })],
    ['gpt2 (tied embeddings)', () => createGpt2({ vocabSize: 97, hiddenSize: 48, numLayers: 3, numHeads: 4, maxSeqLen: 32, seed: 2 })],
  ] as const) {
    it(`${name}: gradients bit-identical to tf.variableGrads, lower engine peak, no leak`, async () => {
      const model = make();
      const s = setup(model, 3);
      try {
        const theirs = tf.variableGrads(s.loss, s.vars);
        const ours = variableGrads(s.loss, s.vars);
        expect(ours.value.dataSync()[0]).toBe(theirs.value.dataSync()[0]);
        expect(Object.keys(ours.grads).sort()).toEqual(Object.keys(theirs.grads).sort());
        for (const k of Object.keys(theirs.grads)) expect(Array.from(ours.grads[k]!.dataSync()), k).toEqual(Array.from(theirs.grads[k]!.dataSync()));
        tf.dispose([theirs.value, ours.value, ...Object.values(theirs.grads), ...Object.values(ours.grads)]);
        const peak = async (g: typeof variableGrads) => {
          let out: ReturnType<typeof variableGrads> | null = null;
          const info = await tf.profile(() => {
            out = g(s.loss, s.vars);
          });
          tf.dispose([out!.value, ...Object.values(out!.grads)]);
          return info.peakBytes;
        };
        const tfPeak = await peak(tf.variableGrads as typeof variableGrads);
        const ourPeak = await peak(variableGrads);
        expect(ourPeak).toBeLessThan(0.85 * tfPeak);
        const before = tf.memory().numTensors;
        const r = variableGrads(s.loss, s.vars);
        tf.dispose([r.value, ...Object.values(r.grads)]);
        expect(tf.memory().numTensors).toBe(before);
      } finally {
        s.dispose();
        model.dispose();
      }
    });
  }

  it('with gradient checkpointing (custom gradients inside) the gradients equal the plain pass', () => {
    const model = createLlama({ vocabSize: 61, hiddenSize: 32, numLayers: 2, numHeads: 2, intermediateSize: 64, maxSeqLen: 32, seed: 5 });
    const s = setup(model, 1);
    try {
      const plain = variableGrads(s.loss, s.vars);
      model.setGradientCheckpointing(true);
      const ckpt = variableGrads(s.loss, s.vars);
      for (const k of Object.keys(plain.grads)) {
        const a = plain.grads[k]!.dataSync();
        const b = ckpt.grads[k]!.dataSync();
        let d = 0;
        for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
        expect(d, k).toBeLessThan(1e-5);
      }
      tf.dispose([plain.value, ckpt.value, ...Object.values(plain.grads), ...Object.values(ckpt.grads)]);
    } finally {
      s.dispose();
      model.dispose();
    }
  });

  it('errors: a non-scalar f, an empty variable list', () => {
    const v = tf.variable(tf.ones([2]));
    expect(() => variableGrads(() => tf.mul(v, 2) as unknown as tf.Scalar, [v])).toThrow('variableGrads: f must return a scalar tensor, got rank 1');
    expect(() => variableGrads(() => tf.sum(v), [])).toThrow('variableGrads: varList must be a non-empty array of variables');
    v.dispose();
  });
});

describe('fastSavedTensors (saved tensors without an Identity kernel in the outermost gradient)', () => {
  const make = () => createLlama({ vocabSize: 61, hiddenSize: 32, numLayers: 2, numHeads: 4, numKvHeads: 2, intermediateSize: 64, maxSeqLen: 16, seed: 4 });
  it('same gradients bit for bit as tfjs clones, no Identity kernels, no leak', async () => {
    const model = make();
    const s = setup(model, 5);
    const run = async () => {
      let grads: number[][] = [];
      const before = tf.memory().numTensors;
      const prof = await tf.profile(() => {
        const r = variableGrads(s.loss, s.vars);
        grads = Object.keys(r.grads).sort().map((k) => Array.from(r.grads[k]!.dataSync()));
        tf.dispose([r.value, ...Object.values(r.grads)]);
      });
      expect(tf.memory().numTensors).toBe(before);
      return { grads, identities: prof.kernels.filter((k) => k.name === 'Identity').length };
    };
    try {
      const was = fastSavedTensors(true);
      expect(was).toBe(true); // on by default
      const fast = await run();
      fastSavedTensors(false);
      const slow = await run();
      expect(fast.grads).toEqual(slow.grads);
      // every saved tensor was an Identity kernel (composite kernel bodies may run a few of their own)
      expect(slow.identities - fast.identities).toBeGreaterThan(20);
    } finally {
      fastSavedTensors(true);
      s.dispose();
      model.dispose();
    }
  });
  it('a gradient of a gradient still flows through the saved tensors (nested tapes keep tfjs clones)', () => {
    const x = tf.tensor1d([2, -3]);
    // d/dx of d/dx x^3 = 6x: the inner backward reads x through mul's saved tensors
    const g2 = tf.grad((y: tf.Tensor) => tf.sum(tf.grad((z: tf.Tensor) => tf.sum(tf.mul(tf.mul(z, z), z)))(y)))(x);
    expect(Array.from(g2.dataSync())).toEqual([12, -18]);
    tf.dispose([x, g2]);
  });
});
