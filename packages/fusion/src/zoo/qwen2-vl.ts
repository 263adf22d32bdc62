/**
 * Qwen2-VL (Wang et al. 2024, type C): images of any size -> the naive-dynamic-resolution ViT (2-D RoPE, no
 * absolute positions, Conv3d patches over frame pairs, packed sequences with block-diagonal attention) ->
 * 2x2 PatchMerger -> tokens at <image>, read by a Qwen2 LM (q/k/v biases, tied embeddings) whose RoPE is
 * M-RoPE (temporal, row, column ids from the image grids). Names: the tower is HF's `visual.*`
 * (loadQwen2Vision). Video: the preset's tokenizer has a <video> token; the mixin takes `pixel_values_videos`
 * + `videoGridThw` at <video> placeholders (frames pairwise, qwen2Patchify). The synthetic set has images only.
 * Any image size: each image is smart-resized (sides multiples of patch x merge = 8, 16x16 to 64x64 pixels
 * here; 28 and 56x56 to 1280 x 28 x 28 in the reference) and gets (h / 8) x (w / 8) tokens.
 */
import * as tf from '@tensorflow/tfjs';
import { createQwen2 } from '@vlmix/core';
import { CLIP_MEAN, CLIP_STD, resizePil, specialId, toFloatCHW, type Tokenizer } from '@vlmix/data';
import { MRopeMixin, qwen2Patchify, qwen2SmartResize, Qwen2VisionMixin, type Qwen2VisionConfig } from '@vlmix/mixins';
import { finish, TINY_LM, type RecipeOptions } from '../common.js';
import { QA_VOCAB_SIZE, qaTokenizer } from '../tokenizer.js';
import type { VlmPreset } from '../presets.js';
import { Vlm } from '../vlm.js';

/** Patch 4 on the 32-px synthetic images: an 8x8 patch grid, 16 merged tokens (14 and 28-px multiples in the reference). */
const VISION: Qwen2VisionConfig = { depth: 2, embedDim: 64, numHeads: 4, patchSize: 4, temporalPatchSize: 2, spatialMergeSize: 2 };
const SIZE = 32;
/** smart_resize bounds of the tiny preset (pixels). */
const MIN_PIXELS = 16 * 16;
const MAX_PIXELS = 64 * 64;

export function buildQwen2Vl(tok: Tokenizer, opts: RecipeOptions = {}): Vlm {
  const model = createQwen2({ ...TINY_LM, ...opts.lm, vocabSize: tok.vocabSize, seed: opts.seed ?? 0 });
  const imageTokenId = specialId(tok, '<image>');
  const videoTokenId = tok.special['<video>'];
  const half = model.config.headDim / 2; // 8 here: sections (t, h, w) = (2, 3, 3); Qwen2-VL-7B: (16, 24, 24)
  const t = Math.floor(half / 4);
  model.addMixin('mrope', new MRopeMixin({ mropeSection: [t, Math.floor((half - t) / 2), half - t - Math.floor((half - t) / 2)], base: 1e6, spatialMergeSize: 2, imageTokenId, videoTokenId, override: true }));
  const visual = model.addMixin('visual', new Qwen2VisionMixin({ vision: { ...VISION, ...(opts.vision as Partial<Qwen2VisionConfig> | undefined) }, imageTokenId, videoTokenId }));
  finish(model, opts, ['visual']);
  const v = visual.tower.config;
  const patchDim = visual.tower.patchDim; // read now: extraMedia must not reach into the model (loadVlm borrows it)
  const grid = SIZE / v.patchSize;
  const factor = v.patchSize * v.spatialMergeSize;
  const sized = (h: number, w: number) => qwen2SmartResize(h, w, { factor, minPixels: MIN_PIXELS, maxPixels: MAX_PIXELS });
  return new Vlm({
    type: 'C', model, tokenizer: tok, imageSize: SIZE, imageTokens: MAX_PIXELS / factor ** 2, usesPixels: false,
    imageTokensFor: (s) => {
      const [h, w] = sized(s.image.height, s.image.width);
      return (h * w) / factor ** 2;
    },
    extraMedia: (b, samples) => {
      const packed = samples.map((s) => {
        const [h, w] = sized(s.image.height, s.image.width);
        const img = h === s.image.height && w === s.image.width ? s.image : resizePil(s.image, w, h);
        return qwen2Patchify([toFloatCHW(img, CLIP_MEAN, CLIP_STD)], 3, h, w, { patchSize: v.patchSize, temporalPatchSize: v.temporalPatchSize, mergeSize: v.spatialMergeSize });
      });
      const data = new Float32Array(packed.reduce((n, p) => n + p.patches.length, 0));
      packed.reduce((o, p) => (data.set(p.patches, o), o + p.patches.length), 0);
      return { pixel_values: tf.tensor2d(data, [data.length / patchDim, patchDim]), imageGridThw: packed.slice(0, b).map((p) => [...p.grid]) };
    },
    description: `Qwen2-VL (C): dynamic-resolution ViT (2-D RoPE, packed, block-diagonal) -> 2x2 PatchMerger -> (h/${factor})x(w/${factor}) tokens at <image> (${(grid / 2) ** 2} for a ${SIZE}-px square); Qwen2 LM with M-RoPE`,
  });
}

export const qwen2Vl: VlmPreset = {
  name: 'qwen2-vl', description: 'Qwen2-VL (type C): naive-dynamic-resolution ViT with 2-D RoPE and PatchMerger -> Qwen2 LM with M-RoPE; HF visual.* names; images and videos', build: buildQwen2Vl,
  tokenizer: () => qaTokenizer(QA_VOCAB_SIZE, ['<video>']),
};
