// LLaVA-1.6 (LLaVA-NeXT) any resolution in the preset: each image's grid is the pinpoint select_best_resolution
// picks for its size, the grid is unpadded to the image's aspect ratio (HF unpad_image), and images of
// different sizes share a batch with different placeholder counts (packed image tokens).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { specialId } from '@vlmix/data';
import { anyResTokenCount, type AnyResProjectorMixin } from '@vlmix/mixins';
import { createVlm, loadVlm } from '../src/index.js';
import { mixedVsAlone, rowLogits, texturedSample } from './any-res-harness.js';

const sample = texturedSample;

describe('llava-1.6: any-resolution images in one batch', () => {
  it('each image gets its own grid and unpadded token count; a mixed batch equals each image alone', async () => {
    const vlm = createVlm('llava-1.6');
    const proj = vlm.model.getMixin<AnyResProjectorMixin>('projector');
    const side = proj.side;
    // square 32 -> 1x2 (least waste, as LLaVA-1.6 picks for a small square), 64 wide x 32 high -> 1x2, 32 x 96 -> 3x1
    expect(proj.gridsFor([[32, 32], [32, 64], [96, 32]])).toEqual([[1, 2], [1, 2], [3, 1]]);
    const samples = [sample(32, 32, 1), sample(64, 32, 2), sample(32, 96, 3)];
    const want = [anyResTokenCount([1, 2], side, [32, 32]), anyResTokenCount([1, 2], side, [32, 64]), anyResTokenCount([3, 1], side, [96, 32])];
    expect(new Set(want).size).toBe(3);
    expect(samples.map((s) => vlm.imageTokensOf(s))).toEqual(want);
    expect(Math.max(...want)).toBeLessThanOrEqual(vlm.imageTokens);
    const img = specialId(vlm.tokenizer, '<image>');
    const batch = vlm.encode(samples);
    expect(batch.ids.map((r) => r.filter((x) => x === img).length)).toEqual(want);
    tf.dispose(batch.tensors);
    expect(mixedVsAlone(vlm, samples)).toBeLessThan(1e-4);
    const together = rowLogits(vlm, samples);
    // a saved model keeps the per-image counts (taken from the registered preset)
    const dir = mkdtempSync(join(tmpdir(), 'vlmix-llava16-'));
    try {
      await vlm.save(join(dir, 'm'));
      const back = loadVlm(join(dir, 'm'));
      expect(back.anyResolution).toBe(true);
      expect(samples.map((s) => back.imageTokensOf(s))).toEqual(want);
      const again = rowLogits(back, samples);
      expect(again[2]![5]![3]).toBeCloseTo(together[2]![5]![3]!, 5);
      back.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    vlm.dispose();
  });

  it('placeholders that do not match the image size are refused', () => {
    const vlm = createVlm('llava-1.6');
    const s = sample(64, 32, 4);
    const media = vlm.construction.extraMedia!(1, [s]);
    const n = vlm.imageTokensOf(s);
    const img = specialId(vlm.tokenizer, '<image>');
    const out = vlm.model.forward({ inputIds: [[1, ...new Array(n).fill(img), 2]], media });
    expect(out.logits.shape).toEqual([1, n + 2, vlm.tokenizer.vocabSize]);
    out.logits.dispose();
    expect(() => vlm.model.forward({ inputIds: [[1, ...new Array(n + 1).fill(img), 2]], media })).toThrow(/row 0 of inputIds has \d+ image placeholder/);
    const noSizes = { pixels_tiles: media.pixels_tiles };
    expect(() => vlm.model.forward({ inputIds: [[1, ...new Array(n).fill(img), 2]], media: noSizes })).toThrow('projector: with pinpoints each image\'s grid comes from media.image_sizes');
    tf.dispose(Object.values(media).filter((v): v is tf.Tensor => v instanceof tf.Tensor));
    vlm.dispose();
  });
});
