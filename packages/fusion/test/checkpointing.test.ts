// Gradient checkpointing: the gradients of every parameter equal those of the plain pass (every preset
// family, incl. cross-attention reading media features and type D), on the second and later steps where the
// layers really are checkpointed; fewer tensors alive at the loss; no leaks; off by default.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { makeShapesDataset } from '@vlmix/data';
import { createVlm, trainVlm, type QASample, type Vlm } from '../src/index.js';

const data = makeShapesDataset({ seed: 4, size: 32, train: 4, heldOut: 0 });
const samples: QASample[] = data.train.map((x) => ({ image: x.image, question: x.question, answer: x.answer }));

function grads(vlm: Vlm): { loss: number; grads: Map<string, Float32Array>; alive: number } {
  const b = vlm.encode(samples);
  let alive = 0;
  const before = tf.memory().numTensors;
  const { value, grads: g } = tf.variableGrads(() => {
    const l = vlm.loss(b, true);
    alive = tf.memory().numTensors - before;
    return l;
  });
  const out = new Map([...vlm.model.params.list()].filter((p) => g[p.variable.name]).map((p) => [p.name, g[p.variable.name]!.dataSync() as Float32Array] as const));
  const loss = value.dataSync()[0]!;
  tf.dispose([value, ...Object.values(g), ...b.tensors]);
  return { loss, grads: out, alive };
}

describe('gradient checkpointing', () => {
  for (const preset of ['lm-tiny', 'typeA-tiny', 'typeB-tiny', 'typeC-tiny', 'typeD-tiny', 'cogagent', 'qwen2-vl']) {
    it(`${preset}: the same loss and gradients as the plain pass (1e-5), fewer tensors alive at the loss`, () => {
      const vlm = createVlm(preset, { seed: 1 });
      const plain = grads(vlm);
      vlm.model.setGradientCheckpointing(true);
      grads(vlm); // first pass: plain, records each layer's parameters
      const ck = grads(vlm);
      expect(ck.loss).toBeCloseTo(plain.loss, 6);
      expect([...ck.grads.keys()].sort()).toEqual([...plain.grads.keys()].sort());
      for (const [n, g] of plain.grads) {
        const h = ck.grads.get(n)!;
        let worst = 0;
        let scale = 1e-8;
        for (let i = 0; i < g.length; i++) {
          worst = Math.max(worst, Math.abs(g[i]! - h[i]!));
          scale = Math.max(scale, Math.abs(g[i]!));
        }
        expect(worst / scale, n).toBeLessThan(1e-5);
      }
      expect(ck.alive).toBeLessThan(plain.alive);
      const t0 = tf.memory().numTensors;
      grads(vlm);
      expect(tf.memory().numTensors).toBe(t0); // no leak per step
      vlm.dispose();
    }, 60_000);
  }

  it('trainVlm({ gradientCheckpointing }) follows the plain run\'s losses (1e-5 relative) over 6 steps', async () => {
    const base = { steps: 6, trainSize: 32, heldOutSize: 0, batchSize: 8, log: 'silent' as const, seed: 2 };
    const plain = await trainVlm('typeA-tiny', base);
    const ck = await trainVlm('typeA-tiny', { ...base, gradientCheckpointing: true });
    ck.lossCurve.forEach((r, i) => expect(Math.abs(r.loss - plain.lossCurve[i]!.loss) / plain.lossCurve[i]!.loss).toBeLessThan(1e-5));
  }, 60_000);
});
