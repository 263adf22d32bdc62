// Qwen2-VL vision tower: patch layout, smart_resize, 2-D RoPE, block-diagonal packing and the merger
// against a plain-torch re-implementation of HF's modules (fixtures/qwen2_vision); the mixin's packed
// scatter in a model with M-RoPE; gradients, leaks, errors.
import * as tf from '@tensorflow/tfjs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createLlama, openSafetensorsFile, ParamStore, Rng } from '@vlmix/core';
import { assertClose, assertGradients, assertNoLeak, loadFixtureSync } from '@vlmix/core/testkit';
import { assertParity } from './helpers.js';
import { MRopeMixin } from '../src/positions/mrope.js';
import {
  loadQwen2Vision, qwen2Patchify, qwen2SmartResize, Qwen2VisionMixin, Qwen2VisionTower, type Qwen2VisionConfig,
} from '../src/vision/qwen2-vision.js';

const here = dirname(fileURLToPath(import.meta.url));
const rng = new Rng('qwen2-vision-test');
const randn = (shape: number[], scale = 1) => tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => scale * rng.normal()), shape);
const FIX: Qwen2VisionConfig = { depth: 2, embedDim: 32, numHeads: 2, patchSize: 4, temporalPatchSize: 2, spatialMergeSize: 2, hiddenSize: 40 };
const IMG = 60;
const VID = 61;

describe('Qwen2-VL vision tower vs the torch reference (fixtures/qwen2_vision)', () => {
  const fx = loadFixtureSync(join(here, 'fixtures/qwen2_vision'));
  const io = fx.io;
  const model = createLlama({ vocabSize: 64, hiddenSize: 40, numLayers: 1, numHeads: 4, numKvHeads: 2, intermediateSize: 48, maxSeqLen: 64, seed: 1 });
  const mixin = model.addMixin('visual', new Qwen2VisionMixin({ vision: FIX, imageTokenId: IMG, videoTokenId: VID }));
  const res = loadQwen2Vision(model, 'visual', openSafetensorsFile(join(here, 'fixtures/qwen2_vision/weights.safetensors')));
  const grids = (n: string) => {
    const v = io.toInt32(n);
    return Array.from({ length: v.length / 3 }, (_, i) => Array.from(v.subarray(3 * i, 3 * i + 3)));
  };

  it('loads HF names (patch_embed.proj [E, C, tp, p, p], blocks.N.*, merger.*), nothing missing', () => {
    expect(res.missing).toEqual([]);
    expect(res.loaded).toContain('visual.patch_embed.proj.weight');
    expect(res.loaded).toContain('visual.merger.mlp.2.bias');
    expect(model.param('visual.patch_embed.proj.weight').shape).toEqual([32, 3, 2, 4, 4]);
  });

  it('patchify lays patches out as Qwen2VLImageProcessor (image: 2 identical frames; video: frames pairwise)', () => {
    const opts = { patchSize: 4, temporalPatchSize: 2, mergeSize: 2 };
    const a = qwen2Patchify([io.toFloat32('frames_a')], 3, 8, 16, opts);
    const b = qwen2Patchify([io.toFloat32('frames_b')], 3, 16, 8, opts);
    expect([a.grid, b.grid]).toEqual([[1, 2, 4], [1, 4, 2]]);
    const packed = new Float32Array([...a.patches, ...b.patches]);
    expect(Array.from(packed)).toEqual(Array.from(io.toFloat32('pixel_values')));
    const vid = io.toFloat32('video');
    const frames = [0, 1, 2, 3].map((f) => vid.subarray(f * 192, (f + 1) * 192));
    const v = qwen2Patchify(frames, 3, 8, 8, opts);
    expect(v.grid).toEqual([2, 2, 2]);
    expect(Array.from(v.patches)).toEqual(Array.from(io.toFloat32('pixel_values_videos')));
    // 3 frames: the last one is repeated to make the second pair
    expect(qwen2Patchify(frames.slice(0, 3), 3, 8, 8, opts).patches).toEqual(qwen2Patchify([frames[0]!, frames[1]!, frames[2]!, frames[2]!], 3, 8, 8, opts).patches);
  });

  it('two images of different sizes packed: every block output and the merged tokens (1e-4); a video (t = 2)', () => {
    const out = mixin.tower.forward(io.toTensor('pixel_values'), grids('image_grid_thw'), undefined, { outputHiddenStates: true });
    out.hiddenStates!.forEach((h, i) => assertParity(h, io.toTensor(`image_hidden_${i}`), `block ${i}`));
    assertParity(out.tokens, io.toTensor('image_tokens'), 'merged image tokens');
    assertParity(mixin.tower.forward(io.toTensor('pixel_values_videos'), grids('video_grid_thw')).tokens, io.toTensor('video_tokens'), 'video tokens');
  });

  it('in a model: the merged tokens land at the <image>/<video> placeholders in order across rows of different counts', () => {
    // row 0: image a (2 tokens) then the video (2); row 1: image b (2 tokens); padding with 3
    const ids = [[1, IMG, IMG, 2, VID, VID, 3], [4, 5, IMG, IMG, 6, 3, 3]];
    const media = {
      pixel_values: io.toTensor('pixel_values'), imageGridThw: grids('image_grid_thw'),
      pixel_values_videos: io.toTensor('pixel_values_videos'), videoGridThw: grids('video_grid_thw'),
    };
    const h0 = model.forward({ inputIds: ids, media }, { outputHiddenStates: true }).hiddenStates![0]!;
    const img = io.toTensor('image_tokens');
    const vid = io.toTensor('video_tokens');
    const at = (r: number, t: number) => tf.slice(h0, [r, t, 0], [1, 1, -1]).reshape([40]);
    const row = (x: tf.Tensor, i: number) => tf.slice(x, [i, 0], [1, -1]).reshape([40]);
    assertParity(tf.stack([at(0, 1), at(0, 2), at(1, 2), at(1, 3), at(0, 4), at(0, 5)]), tf.stack([row(img, 0), row(img, 1), row(img, 2), row(img, 3), row(vid, 0), row(vid, 1)]), 'placeholders');
    const wte = model.param('transformer.word_embeddings.weight');
    assertClose(at(1, 4), tf.slice(wte, [6, 0], [1, -1]).reshape([40]), { rtol: 0, atol: 0, name: 'a text position' });
    expect(() => model.forward({ inputIds: [[1, IMG, 2]], media })).toThrow(/inputIds hold 1 image placeholder\(s\) but media.imageGridThw \[\[1,2,4\], \[1,4,2\]\] gives 4 merged tokens/);
  });
});

describe('Qwen2-VL smart_resize (HF rule, hand-checked against its Python)', () => {
  it('rounds to multiples of 28 (half to even), scales into [min, max] pixels', () => {
    const cases: [number, number, number, number][] = [[100, 50, 112, 56], [42, 70, 56, 56], [29, 33, 56, 84], [1080, 1920, 728, 1316], [4000, 3000, 1148, 840], [224, 224, 224, 224], [70, 98, 56, 112]];
    for (const [h, w, eh, ew] of cases) expect(qwen2SmartResize(h, w)).toEqual([eh, ew]);
    expect(() => qwen2SmartResize(20, 300)).toThrow(/height 20 and width 300 must both be >= factor 28/);
    expect(() => qwen2SmartResize(30, 9000)).toThrow(/aspect ratio must be <= 200, got 300/);
    expect(() => qwen2Patchify([new Float32Array(3 * 30 * 28)], 3, 30, 28)).toThrow(/height 30 and width 28 must be multiples of patchSize \* mergeSize = 28 \(resize with qwen2SmartResize first\)/);
  });
});

describe('Qwen2-VL tower: gradients, M-RoPE in a model, leaks, errors', () => {
  const tiny: Qwen2VisionConfig = { depth: 1, embedDim: 8, numHeads: 2, patchSize: 2, temporalPatchSize: 2, spatialMergeSize: 2, hiddenSize: 6, initStd: 0.3 };

  it('finite-difference gradients w.r.t. the patches through RoPE, the block mask and the merger', () => {
    const t = new Qwen2VisionTower(new ParamStore(3), 'v.', tiny, 6);
    const grids = [[1, 2, 2], [1, 2, 4]];
    assertGradients((x) => tf.sum(tf.square(t.forward(x, grids).tokens)), [randn([12, 24], 0.5)], { label: 'dL/dpatches' });
  });

  it('packing: an image alone gives its rows of the packed result (block-diagonal attention)', () => {
    const t = new Qwen2VisionTower(new ParamStore(4), 'v.', tiny, 6);
    const x = randn([12, 24]);
    const packed = t.forward(x, [[1, 2, 2], [1, 2, 4]]).tokens;
    const second = t.forward(tf.slice(x, [4, 0], [8, -1]), [[1, 2, 4]]).tokens;
    assertClose(tf.slice(packed, [1, 0], [2, -1]), second, { rtol: 1e-5, atol: 1e-6, name: 'image 2' });
  });

  it('a model with M-RoPE and the tower trains (gradients reach the tower), no leaks', () => {
    const m = createLlama({ vocabSize: 64, hiddenSize: 16, numLayers: 1, numHeads: 2, maxSeqLen: 32, seed: 2 });
    m.addMixin('mrope', new MRopeMixin({ mropeSection: [1, 1, 2], imageTokenId: IMG, override: true }));
    m.addMixin('visual', new Qwen2VisionMixin({ vision: { ...tiny, hiddenSize: 16 }, imageTokenId: IMG }));
    const media = { pixel_values: randn([8, 24]), imageGridThw: [[1, 2, 4]] };
    const ids = [[1, IMG, IMG, 2, 3]];
    const labels = tf.tensor2d([[IMG, IMG, 2, 3, 4]], undefined, 'int32');
    const { grads } = tf.variableGrads(() => m.loss({ inputIds: ids, media }, labels) as tf.Scalar);
    const key = Object.keys(grads).find((k) => k.includes('visual.patch_embed.proj.weight'))!;
    expect(tf.max(tf.abs(grads[key]!)).dataSync()[0]).toBeGreaterThan(0);
    tf.dispose(Object.values(grads));
    assertNoLeak(() => m.forward({ inputIds: ids, media }).logits);
    m.dispose();
  });

  it('errors name the argument', () => {
    const t = new Qwen2VisionTower(new ParamStore(5), 'v.', tiny, 6);
    expect(() => t.forward(randn([7, 24]), [[1, 2, 4]])).toThrow(/pixel values: expected shape \[8, 24\] \(sum of t\*h\*w over the grids, C\*tp\*p\*p\), got \[7, 24\]/);
    expect(() => t.forward(randn([6, 24]), [[1, 3, 2]])).toThrow(/gridThw\[0\]: .*divisible by spatialMergeSize 2, got \[1,3,2\]/);
    expect(() => new Qwen2VisionTower(new ParamStore(5), 'v.', { ...tiny, numHeads: 4 }, 6)).toThrow(/embedDim \/ numHeads must be a multiple of 4/);
  });
});
