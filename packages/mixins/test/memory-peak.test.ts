/**
 * Inference memory: a pass frees its intermediates once read (core/src/free.ts), so its peak is one layer's,
 * whatever the depth, and the VQ logit mask costs at most one logits-sized tensor beside the logits and the
 * result. Measured with tf.profile's peak of live tensor bytes (any backend), against hand-counted sizes.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { ParamStore, Rng, consume, createLlama } from '@vlmix/core';
import { assertClose, assertNoLeak } from '@vlmix/core/testkit';
import { perceiverParamSpecs, perceiverResample, resolvePerceiverOptions } from '../src/connectors/perceiver.js';
import { VqTokenMixin, type VqVocab } from '../src/image-tokenizer/vq.js';
import { VitEncoder } from '../src/vision/vit.js';
import { Qwen2VisionTower } from '../src/vision/qwen2-vision.js';

const rng = new Rng('memory-peak');
const randn = (shape: number[], scale = 1) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => scale * rng.normal()), shape);

/** Peak bytes of live tensors during fn above those live before it (fn's result disposed after). */
async function peakOf(fn: () => tf.Tensor): Promise<number> {
  const before = tf.memory().numBytes;
  let out: tf.Tensor | null = null;
  const info = await tf.profile(() => (out = fn()));
  (out as tf.Tensor | null)?.dispose();
  return info.peakBytes - before;
}

describe('consume', () => {
  it('applies the functions in order and disposes the input and every intermediate, not the result', () => {
    const x = tf.tensor1d([1, 2, 3]);
    const seen: tf.Tensor[] = [];
    const y = consume(x, (a) => (seen.push(a), tf.mul(a, 2)), (b) => (seen.push(b), tf.add(b, 1)));
    expect(Array.from(y.dataSync())).toEqual([3, 5, 7]);
    expect(seen.map((t) => t.isDisposed)).toEqual([true, true]);
    expect(y.isDisposed).toBe(false);
    y.dispose();
  });

  it('keeps a tensor a function returns unchanged', () => {
    const x = tf.tensor1d([1]);
    const y = consume(x, (a) => a);
    expect(y).toBe(x);
    expect(x.isDisposed).toBe(false);
    x.dispose();
  });
});

describe('inference peak does not grow with depth', () => {
  it('ViT encoder: the same peak for 2 and 5 layers (a layer keeps no earlier layer output); no leak; same features as with the outputs kept', async () => {
    const cfg = { imageSize: 16, patchSize: 4, hiddenSize: 32, numLayers: 5, numHeads: 4, intermediateSize: 128 };
    const enc = new VitEncoder(new ParamStore(0), 'v.', cfg, { initStd: 0.2 });
    const px = randn([2, 3, 16, 16]);
    const two = await peakOf(() => enc.forward(px, { numLayers: 2 }).lastHiddenState);
    const five = await peakOf(() => enc.forward(px, { numLayers: 5 }).lastHiddenState);
    expect(five).toBe(two);
    const kept = enc.forward(px, { outputHiddenStates: true });
    const freed = enc.forward(px);
    assertClose(freed.lastHiddenState, kept.lastHiddenState, { atol: 0, rtol: 0 });
    tf.dispose([kept.lastHiddenState, ...(kept.hiddenStates ?? []), freed.lastHiddenState]);
    assertNoLeak(() => enc.forward(px).lastHiddenState.dispose());
    px.dispose();
  });

  it('Qwen2-VL vision tower: the same peak for 2 and 5 blocks; no leak; same tokens as with the hidden states kept', async () => {
    const grids = [[1, 4, 4]];
    const tower = (depth: number) => new Qwen2VisionTower(new ParamStore(3), 'v.', { depth, embedDim: 16, numHeads: 2, patchSize: 2, initStd: 0.2 }, 8);
    const [two, five] = [tower(2), tower(5)];
    const patches = randn([16, two.patchDim]);
    expect(await peakOf(() => five.forward(patches, grids).tokens)).toBe(await peakOf(() => two.forward(patches, grids).tokens));
    const kept = five.forward(patches, grids, undefined, { outputHiddenStates: true });
    const freed = five.forward(patches, grids);
    expect(kept.hiddenStates).toHaveLength(5);
    assertClose(freed.tokens, kept.tokens, { atol: 0, rtol: 0 });
    tf.dispose([kept.tokens, ...(kept.hiddenStates ?? []), freed.tokens]);
    assertNoLeak(() => five.forward(patches, grids).tokens.dispose());
    patches.dispose();
  });

  it('perceiver resampler: the same peak for depth 2 and 4', async () => {
    const peak = async (depth: number) => {
      const o = resolvePerceiverOptions({ dim: 16, depth, dimHead: 8, heads: 2, numLatents: 4, ffMult: 4 });
      const params = new Map(perceiverParamSpecs(o).map((s) => [s.name, randn(s.shape, 0.3)] as const));
      const x = randn([2, 1, 1, 24, 16]);
      const p = await peakOf(() => perceiverResample(x, (n) => params.get(n)!, o));
      tf.dispose([x, ...params.values()]);
      return p;
    };
    expect(await peak(4)).toBe(await peak(2));
  });

  it('transformer: the same forward peak for 2 and 6 layers', async () => {
    const peak = async (numLayers: number) => {
      const m = createLlama({ vocabSize: 32, hiddenSize: 32, numLayers, numHeads: 4, intermediateSize: 96, maxSeqLen: 64, seed: 1 });
      try {
        const ids = tf.tensor2d(Array.from({ length: 2 * 24 }, (_, i) => (i * 5) % 32), [2, 24], 'int32');
        const p = await peakOf(() => m.forward({ inputIds: ids }).logits);
        ids.dispose();
        return p;
      } finally {
        m.dispose();
      }
    };
    expect(await peak(6)).toBe(await peak(2));
  });
});

describe('VqTokenMixin logit mask', () => {
  const vocab: VqVocab = { codeOffset: 400, codebookSize: 100, boiId: 20, eoiId: 21 };
  const make = () => createLlama({ vocabSize: 512, hiddenSize: 8, numLayers: 1, numHeads: 2, intermediateSize: 16, maxSeqLen: 64, seed: 2 });

  it('adds the class rows to every batch row (batch 3 equals a hand-built bias), and peaks below 2.5 logits', async () => {
    const m = make();
    try {
      const rows = [[1, 20, 401, 402, 21, 5], [20, 403, 404, 405, 406, 7], [3, 4, 5, 6, 20, 410]];
      const ids = tf.tensor2d(rows, [3, 6], 'int32');
      const raw = m.forward({ inputIds: ids }).logits;
      const mx = m.addMixin('vqtok', new VqTokenMixin({ vocab, tokensPerImage: 3 }));
      const masked = m.forward({ inputIds: ids }).logits;
      const { cls } = mx.classify(rows);
      const bias = new Float32Array(3 * 6 * 512);
      for (let i = 0; i < 18; i++) {
        for (let v = 0; v < 512; v++) {
          const code = v >= 400 && v < 500;
          const c = cls[i]!;
          const allowed = c === 0 ? !(code || v === 21) : c === 1 ? code : v === 21;
          bias[i * 512 + v] = allowed ? 0 : -1e9;
        }
      }
      assertClose(masked, tf.add(raw, tf.tensor3d(bias, [3, 6, 512])), { atol: 0, rtol: 0 });
      const logitsBytes = 3 * 6 * 512 * 4;
      // the logits, the masked result, and one batch row's bias and sum at a time (was: a whole bias too, 3x)
      expect(await peakOf(() => m.forward({ inputIds: ids }).logits)).toBeLessThan(2.5 * logitsBytes);
      // logitsToKeep: the mask of the kept (last) positions only
      const last2 = m.forward({ inputIds: ids }, { logitsToKeep: 2 }).logits;
      assertClose(last2, tf.slice(masked, [0, 4, 0], [-1, 2, -1]), { atol: 1e-6, rtol: 0 });
      tf.dispose([ids, raw, masked, last2]);
    } finally {
      m.dispose();
    }
  });
});
