// The small-model tier: one preset per fusion type at 20-60 M parameters (ViT-S/16-like tower on 224 px,
// 8 x 512 LLaMA-style LM, vocabulary padded to 8192), built by the same recipes as the tiny presets.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { makeShapesDataset } from '@vlmix/data';
import { AdamW } from '@vlmix/train';
import { createVlm, SMALL_PRESETS } from '../src/index.js';

describe('small-model tier', () => {
  it('four presets, one per fusion type, each 20-60 M parameters at the documented sizes', () => {
    expect(SMALL_PRESETS.map((p) => p.name)).toEqual(['typeA-small', 'typeB-small', 'typeC-small', 'typeD-small']);
    for (const p of SMALL_PRESETS) {
      const vlm = createVlm(p.name, { seed: 0 });
      try {
        const n = vlm.model.params.list().reduce((a, q) => a + q.variable.size, 0);
        expect(n, p.name).toBeGreaterThan(20e6);
        expect(n, p.name).toBeLessThan(60e6);
        const c = vlm.model.config;
        expect([c.hiddenSize, c.numLayers, c.vocabSize >= 8192, vlm.imageSize], p.name).toEqual([512, 8, true, 224]);
        expect(vlm.type).toBe(p.name[4]);
      } finally {
        vlm.dispose();
      }
    }
  });

  it('typeC-small trains: AdamW on one batch lowers the loss, no tensor leak per step', () => {
    const vlm = createVlm('typeC-small', { seed: 0 });
    const data = makeShapesDataset({ seed: 1, size: 224, train: 2, heldOut: 0 });
    const batch = vlm.encode(data.train.map((s) => ({ image: s.image, question: s.question, answer: s.answer })));
    const params = vlm.model.params.trainable().map((p) => ({ name: p.name, variable: p.variable }));
    const opt = new AdamW(params, { lr: 3e-4 });
    const losses: number[] = [];
    let before = 0;
    for (let i = 0; i < 4; i++) {
      if (i === 2) before = tf.memory().numTensors;
      const { value, grads } = tf.variableGrads(() => vlm.loss(batch), params.map((p) => p.variable));
      losses.push(value.dataSync()[0]!);
      opt.step(new Map(params.filter((p) => grads[p.variable.name]).map((p) => [p.name, grads[p.variable.name]!])));
      tf.dispose([value, ...Object.values(grads)]);
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(losses[3]!).toBeLessThan(losses[0]!);
    tf.dispose(batch.tensors);
    opt.dispose();
    vlm.dispose();
  }, 120_000);
});

describe('small-model tier through trainVlm', () => {
  it('typeD-small trains on the synthetic set (rendered at 32 px, read at 224) and evaluates', async () => {
    const { trainVlm } = await import('../src/index.js');
    const losses: number[] = [];
    const r = await trainVlm('typeD-small', {
      steps: 3, seed: 0, batchSize: 2, trainSize: 16, heldOutSize: 4, log: 'silent', vqSteps: 2, checkpointEverySeconds: false,
      onStep: (s) => losses.push(s.loss),
    });
    expect(losses).toHaveLength(3);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(r.evaluated).toBe(4);
    expect(r.params).toBeGreaterThan(20e6);
  }, 300_000);
});
