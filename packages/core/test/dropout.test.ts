// Dropout as HF configs declare it: training passes only, seeded per pass, at the configured rate.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { createGpt2, createLlama, dropout, pretrainedSpec, type ForwardContext } from '../src/index.js';
import { countTensorLeak } from '../src/testkit/index.js';

const ids = [[1, 5, 9, 2, 7, 3], [4, 4, 8, 1, 0, 6]];

describe('dropout', () => {
  it('drops at the rate, scales the rest by 1 / (1 - p), reproducibly per seed; nothing outside training', () => {
    const x = tf.ones([200, 500]);
    const ctx = (training: boolean, seed: number) => ({ training, dropoutSeed: seed, layer: 0 }) as unknown as ForwardContext;
    const y = dropout(x, 0.3, ctx(true, 7), 'mlpOutput');
    const v = y.dataSync();
    const zeros = v.filter((e) => e === 0).length / v.length;
    expect(zeros).toBeGreaterThan(0.29);
    expect(zeros).toBeLessThan(0.31);
    expect(v.every((e) => e === 0 || Math.abs(e - 1 / 0.7) < 1e-6)).toBe(true);
    expect(Array.from(dropout(x, 0.3, ctx(true, 7), 'mlpOutput').dataSync())).toEqual(Array.from(v));
    expect(Array.from(dropout(x, 0.3, ctx(true, 8), 'mlpOutput').dataSync())).not.toEqual(Array.from(v));
    expect(Array.from(dropout(x, 0.3, ctx(true, 7), 'attentionOutput').dataSync())).not.toEqual(Array.from(v)); // each site its own mask
    expect(dropout(x, 0.3, ctx(false, 7), 'mlpOutput')).toBe(x);
    tf.dispose([x, y]);
  });

  for (const make of [
    () => createGpt2({ vocabSize: 16, hiddenSize: 16, numLayers: 2, numHeads: 2, maxSeqLen: 16, seed: 1, attentionDropout: 0.2, hiddenDropout: 0.2, embeddingDropout: 0.2 }),
    () => createLlama({ vocabSize: 16, hiddenSize: 16, numLayers: 2, numHeads: 4, numKvHeads: 2, seed: 1, attentionDropout: 0.2 }),
  ]) {
    it(`${make().config.norm}: eval equals the dropout-free model; training passes are seeded; the composite attention is exact`, () => {
      const m = make();
      const plain = make();
      for (const k of ['attentionDropout', 'hiddenDropout', 'embeddingDropout'] as const) delete (plain.config as unknown as Record<string, unknown>)[k];
      const evalA = m.forward({ inputIds: ids }).logits;
      const evalB = plain.forward({ inputIds: ids }).logits;
      expect(Array.from(evalA.dataSync())).toEqual(Array.from(evalB.dataSync())); // off outside training
      const t1 = m.forward({ inputIds: ids, dropoutSeed: 3 }, { training: true }).logits;
      const t2 = m.forward({ inputIds: ids, dropoutSeed: 3 }, { training: true }).logits;
      const t3 = m.forward({ inputIds: ids, dropoutSeed: 4 }, { training: true }).logits;
      expect(Array.from(t1.dataSync())).toEqual(Array.from(t2.dataSync()));
      expect(tf.max(tf.abs(tf.sub(t1, t3))).dataSync()[0]).toBeGreaterThan(1e-3);
      expect(tf.max(tf.abs(tf.sub(t1, evalA))).dataSync()[0]).toBeGreaterThan(1e-3);
      // a vanishing rate takes the composite attention path: it must equal the fused kernel (causal, GQA)
      (m.config as { attentionDropout?: number; hiddenDropout?: number; embeddingDropout?: number }).attentionDropout = 1e-12;
      delete (m.config as unknown as Record<string, unknown>).hiddenDropout;
      delete (m.config as unknown as Record<string, unknown>).embeddingDropout;
      const composite = m.forward({ inputIds: ids, dropoutSeed: 5 }, { training: true }).logits;
      expect(tf.max(tf.abs(tf.sub(composite, evalA))).dataSync()[0]).toBeLessThan(1e-5);
      const labels = tf.tensor2d(ids.map((r) => [...r.slice(1), -1]), undefined, 'int32');
      expect(countTensorLeak(() => tf.tidy(() => tf.variableGrads(() => m.loss({ inputIds: ids, dropoutSeed: 1 }, labels, { ignoreIndex: -1 })).value))).toBeLessThanOrEqual(1);
      tf.dispose([evalA, evalB, t1, t2, t3, composite, labels]);
      m.dispose();
      plain.dispose();
    });
  }

  it('rates come from HF configs (GPT-2 defaults 0.1; LLaMA attention_dropout; nanoGPT dropout); bad rates are named', () => {
    const g = pretrainedSpec({ model_type: 'gpt2', n_embd: 16, n_layer: 1, n_head: 2, vocab_size: 16, n_positions: 16 }).config;
    expect([g.attentionDropout, g.hiddenDropout, g.embeddingDropout]).toEqual([0.1, 0.1, 0.1]);
    const l = pretrainedSpec({ model_type: 'llama', hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, vocab_size: 16, intermediate_size: 32, attention_dropout: 0.05 }).config;
    expect([l.attentionDropout, l.hiddenDropout]).toEqual([0.05, undefined]);
    const n = pretrainedSpec({ block_size: 16, vocab_size: 16, n_layer: 1, n_head: 2, n_embd: 16, bias: false, dropout: 0.2 }).config;
    expect([n.attentionDropout, n.hiddenDropout, n.embeddingDropout]).toEqual([0.2, 0.2, 0.2]);
    expect(() => createGpt2({ vocabSize: 16, hiddenSize: 16, numLayers: 1, numHeads: 2, maxSeqLen: 16, hiddenDropout: 1 })).toThrow('config.hiddenDropout: expected a probability in [0, 1), got 1');
  });
});
