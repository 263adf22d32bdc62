/**
 * LLaVA-1.6 / LLaVA-NeXT (Liu et al. 2024, type C): any-resolution input. On the host each image is fitted to
 * the best of `image_grid_pinpoints` (select_best_resolution), cut into crop-size tiles, and sent with a
 * crop-size copy of the whole image (anyResTiles); the CLIP tower encodes all crops, the projector maps them,
 * the tiles' tokens are laid out on their grid with `image_newline` after each row, base tokens first
 * (AnyResProjectorMixin). One 2x2 pinpoint here (a fixed token count): 16 + 8 x 9 = 88 tokens.
 */
import * as tf from '@tensorflow/tfjs';
import { CLIP_MEAN, CLIP_STD, anyResTiles, specialId, toFloatCHW, type Tokenizer } from '@vlmix/data';
import { AnyResProjectorMixin, VisionEncoderMixin, anyResTokenCount } from '@vlmix/mixins';
import { baseLm, finish, vitConfig, type RecipeOptions } from '../common.js';
import type { VlmPreset } from '../presets.js';
import { Vlm } from '../vlm.js';

export function buildLlava16(tok: Tokenizer, opts: RecipeOptions = {}): Vlm {
  const model = baseLm(tok, { ...opts, lm: { maxSeqLen: 160, ...opts.lm } });
  const vit = vitConfig({ ...opts, vision: { activation: 'quick_gelu', positionInit: 'normal', ...opts.vision } });
  const crop = vit.imageSize;
  // one pinpoint: every image gets the same 2x2 grid, so the token count is fixed (with LLaVA-1.6's list a
  // small square image picks 1x2: the least padding at full effective resolution)
  const pinpoints: [number, number][] = [[2 * crop, 2 * crop]];
  const side = crop / vit.patchSize;
  model.addMixin('vision', new VisionEncoderMixin({ vit, selectLayer: -2, selectFeature: 'patch', mediaKey: 'pixels_tiles' }));
  model.addMixin('projector', new AnyResProjectorMixin({ imageTokenId: specialId(tok, '<image>'), projector: { kind: 'mlp2x_gelu', inputSize: vit.hiddenSize }, grid: [2, 2], side }));
  finish(model, opts, ['projector']);
  return new Vlm({
    type: 'C', model, tokenizer: tok, imageSize: crop, imageTokens: anyResTokenCount([2, 2], side), usesPixels: false,
    extraMedia: (b, samples) => {
      const crops = samples.map((x) => {
        const t = anyResTiles(x.image, pinpoints, crop);
        return t.images;
      });
      const m = crops[0]!.length;
      const data = new Float32Array(b * m * 3 * crop * crop);
      crops.forEach((imgs, i) => imgs.forEach((img, j) => data.set(toFloatCHW(img, CLIP_MEAN, CLIP_STD), (i * m + j) * 3 * crop * crop)));
      return { pixels_tiles: tf.tensor5d(data, [b, m, 3, crop, crop]) };
    },
    description: `LLaVA-1.6 (C): any-resolution 2x2 tiles + base -> CLIP ViT -> mlp2x_gelu -> ${anyResTokenCount([2, 2], side)} tokens with row newlines`,
  });
}

export const llava16: VlmPreset = {
  name: 'llava-1.6', description: 'LLaVA-1.6 / NeXT (type C): any-resolution tiles + base image, image_newline per row; HF LlavaNext names', build: buildLlava16,
};
