// InternVL dynamic tiling in the preset: an image becomes the tiles of the grid closest to its aspect ratio
// (plus a thumbnail when more than one), each tile gives the same number of tokens, and images of different
// shapes share a batch.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { specialId } from '@vlmix/data';
import { createVlm } from '../src/index.js';
import { mixedVsAlone, texturedSample } from './any-res-harness.js';

describe('internvl: dynamic tiles in one batch', () => {
  it('tiles x tokens per tile placeholders per image; a mixed batch equals each image alone', () => {
    const vlm = createVlm('internvl');
    const perTile = (32 / 8) ** 2 / 4; // tiny ViT: 32-px tiles, 8-px patches, pixel shuffle 0.5
    // 32x32 -> 1 tile; 64x32 -> 2x1 + thumbnail; 32x96 -> 1x3 + thumbnail; 200x20 -> 6x1 (maxTiles 6) + thumbnail
    const samples = [texturedSample(32, 32, 1), texturedSample(64, 32, 2), texturedSample(32, 96, 3), texturedSample(200, 20, 4)];
    expect(samples.map((s) => vlm.imageTokensOf(s))).toEqual([1, 3, 4, 7].map((t) => t * perTile));
    const batch = vlm.encode(samples);
    const img = specialId(vlm.tokenizer, '<image>');
    expect(batch.ids.map((r) => r.filter((x) => x === img).length)).toEqual([1, 3, 4, 7].map((t) => t * perTile));
    expect((batch.inputs.media!.pixels as tf.Tensor).shape).toEqual([15, 3, 32, 32]);
    tf.dispose(batch.tensors);
    expect(mixedVsAlone(vlm, samples)).toBeLessThan(1e-4);
    vlm.dispose();
  });

  it('a tile count that does not match the placeholders is refused', () => {
    const vlm = createVlm('internvl');
    const media = vlm.construction.extraMedia!(1, [texturedSample(64, 32, 5)]); // 3 tiles: 12 tokens
    const img = specialId(vlm.tokenizer, '<image>');
    expect(() => vlm.model.forward({ inputIds: [[1, ...new Array(8).fill(img), 2]], media })).toThrow('mlp1: inputIds hold 8 image placeholder token(s) (id ' + img + '; per row 8) but 12 image tokens were projected ([3, 4, 64], packed)');
    tf.dispose(Object.values(media).filter((v): v is tf.Tensor => v instanceof tf.Tensor));
    vlm.dispose();
  });
});

describe('qwen2-vl: images of any size in one batch', () => {
  it('each image is smart-resized to multiples of 8 and gets (h/8)(w/8) tokens; a mixed batch equals each image alone', () => {
    const vlm = createVlm('qwen2-vl');
    // (w x h) 32x32 stays; 50x30 -> 48x32; 100x20 -> 96x16 (Python's round half to even: 12.5 -> 12, 2.5 -> 2)
    const samples = [texturedSample(32, 32, 1), texturedSample(50, 30, 2), texturedSample(100, 20, 3), texturedSample(90, 90, 4)];
    // smart_resize: round to multiples of 8, then bound h*w to [16*16, 64*64]: 90x90 -> 88x88 = 7744 > 4096 -> floor(90/1.406/8)*8 = 64
    const expected = [[32, 32], [32, 48], [16, 96], [64, 64]].map(([h, w]) => (h! * w!) / 64);
    expect(samples.map((s) => vlm.imageTokensOf(s))).toEqual(expected);
    const batch = vlm.encode(samples);
    const img = specialId(vlm.tokenizer, '<image>');
    expect(batch.ids.map((r) => r.filter((x) => x === img).length)).toEqual(expected);
    expect(batch.inputs.media!.imageGridThw).toEqual([[1, 8, 8], [1, 8, 12], [1, 4, 24], [1, 16, 16]]);
    tf.dispose(batch.tensors);
    expect(mixedVsAlone(vlm, samples)).toBeLessThan(1e-4);
    expect(() => vlm.imageTokensOf(texturedSample(4, 40, 5))).toThrow('qwen2SmartResize: height 40 and width 4 must both be >= factor 8');
    vlm.dispose();
  });
});

describe('fuyu: images of any size in one batch', () => {
  it('ceil(h/p) x (ceil(w/p) + 1) tokens per image (padded to the patch, fit into the target); a mixed batch equals each image alone', () => {
    const vlm = createVlm('fuyu');
    // (w x h) 32x32 -> 4 x 5; 20x12 -> 2 x (3 + 1); 40x24 -> 3 x 6; 128x32 -> fit to 64x16 -> 2 x 9
    const samples = [texturedSample(32, 32, 1), texturedSample(20, 12, 2), texturedSample(40, 24, 3), texturedSample(128, 32, 4)];
    const expected = [20, 8, 18, 18];
    expect(samples.map((s) => vlm.imageTokensOf(s))).toEqual(expected);
    const batch = vlm.encode(samples);
    const img = specialId(vlm.tokenizer, '<image>');
    expect(batch.ids.map((r) => r.filter((x) => x === img).length)).toEqual(expected);
    expect((batch.inputs.media!.pixels as tf.Tensor[]).map((t) => t.shape)).toEqual([[1, 3, 32, 32], [1, 3, 16, 24], [1, 3, 24, 40], [1, 3, 16, 64]]);
    // padding is 1.0 (white after Fuyu's normalisation), at the bottom and right
    const second = (batch.inputs.media!.pixels as tf.Tensor[])[1]!.arraySync() as number[][][][];
    expect([second[0]![0]![15]![0], second[0]![2]![0]![23]]).toEqual([1, 1]);
    expect(second[0]![0]![0]![0]).toBeCloseTo(samples[1]!.image.data[0]! / 127.5 - 1, 6);
    tf.dispose(batch.tensors);
    expect(mixedVsAlone(vlm, samples)).toBeLessThan(1e-4);
    vlm.dispose();
  });
});
