/**
 * LLaVA-1.6 / LLaVA-NeXT (Liu et al. 2024, type C): any-resolution input. On the host each image is fitted to
 * the best of `image_grid_pinpoints` (select_best_resolution), cut into crop-size tiles, and sent with a
 * crop-size copy of the whole image (anyResTiles); the CLIP tower encodes all crops, the projector maps them,
 * the tiles' tokens are laid out on the image's grid, unpadded to its aspect ratio, with `image_newline` after
 * each row, base tokens first (AnyResProjectorMixin with pinpoints, as HF LlavaNext). The pinpoints are
 * LLaVA-1.6's list scaled to the crop (1x2, 2x1, 2x2, 3x1, 1x3 tiles), so the token count follows each
 * image's size; images of different sizes share a batch (crops padded to the batch's most, as HF).
 */
import * as tf from '@tensorflow/tfjs';
import { CLIP_MEAN, CLIP_STD, anyResTiles, specialId, toFloatCHW, type Tokenizer } from '@vlmix/data';
import { AnyResProjectorMixin, VisionEncoderMixin, anyResTokenCount } from '@vlmix/mixins';
import { baseLm, finish, vitConfig, type RecipeOptions } from '../common.js';
import type { VlmPreset } from '../presets.js';
import { Vlm } from '../vlm.js';

/** LLaVA-1.6's image_grid_pinpoints ([336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]) in crops. */
export const LLAVA16_GRIDS: [number, number][] = [[1, 2], [2, 1], [2, 2], [3, 1], [1, 3]];

export function buildLlava16(tok: Tokenizer, opts: RecipeOptions = {}): Vlm {
  const model = baseLm(tok, { ...opts, lm: { maxSeqLen: 160, ...opts.lm } });
  const vit = vitConfig({ ...opts, vision: { activation: 'quick_gelu', positionInit: 'normal', ...opts.vision } });
  const crop = vit.imageSize;
  const pinpoints = LLAVA16_GRIDS.map(([r, c]) => [r * crop, c * crop] as [number, number]);
  const side = crop / vit.patchSize;
  model.addMixin('vision', new VisionEncoderMixin({ vit, selectLayer: -2, selectFeature: 'patch', mediaKey: 'pixels_tiles' }));
  const projector = model.addMixin('projector', new AnyResProjectorMixin({
    imageTokenId: specialId(tok, '<image>'), projector: { kind: 'mlp2x_gelu', inputSize: vit.hiddenSize }, side, pinpoints, cropSize: crop,
  }));
  finish(model, opts, ['projector']);
  const most = Math.max(...LLAVA16_GRIDS.map((g) => anyResTokenCount(g, side)));
  return new Vlm({
    type: 'C', model, tokenizer: tok, imageSize: crop, imageTokens: most, usesPixels: false,
    imageTokensFor: (s) => projector.tokenCount([s.image.height, s.image.width]),
    extraMedia: (b, samples) => {
      const crops = samples.map((x) => anyResTiles(x.image, pinpoints, crop).images);
      const m = Math.max(...crops.map((c) => c.length));
      const data = new Float32Array(b * m * 3 * crop * crop); // missing crops stay zero (HF pads pixel_values)
      crops.forEach((imgs, i) => imgs.forEach((img, j) => data.set(toFloatCHW(img, CLIP_MEAN, CLIP_STD), (i * m + j) * 3 * crop * crop)));
      return { pixels_tiles: tf.tensor5d(data, [b, m, 3, crop, crop]), image_sizes: samples.map((x) => [x.image.height, x.image.width]) };
    },
    description: `LLaVA-1.6 (C): any-resolution tiles (pinpoints ${LLAVA16_GRIDS.map((g) => g.join('x')).join(', ')}) + base -> CLIP ViT -> mlp2x_gelu -> unpadded grid with row newlines (at most ${most} tokens)`,
  });
}

export const llava16: VlmPreset = {
  name: 'llava-1.6', description: 'LLaVA-1.6 / NeXT (type C): any-resolution tiles (LLaVA-1.6 pinpoints) + base image, unpadding, image_newline per row; HF LlavaNext names', build: buildLlava16,
};
