/**
 * InternVL (Chen et al. 2024, type C): dynamic tiling on the host (`internvlTiles`: the grid of tiles whose
 * aspect ratio is closest to the image's, up to maxTiles, plus a thumbnail when there is more than one
 * tile; ImageNet normalisation), every tile through the ViT, patch features -> pixel shuffle (2x2 neighbours
 * merged: 4x fewer tokens) -> mlp1 (LayerNorm, Linear, GELU, Linear) -> the tiles' tokens in order at the
 * image's placeholders (tiles x tokens per tile, so the count follows the image's shape).
 * Reference names: InternVLChatModel `mlp1.*`. Reference sizes: 448-px tiles, maxTiles 12; here the tower's
 * 32-px input and 6.
 */
import * as tf from '@tensorflow/tfjs';
import { IMAGENET_MEAN, IMAGENET_STD, internvlTileCount, internvlTiles, specialId, toFloatCHW, type DynamicTilingOptions, type Tokenizer } from '@vlmix/data';
import { PixelShuffleProjectorMixin, VisionEncoderMixin } from '@vlmix/mixins';
import { baseLm, finish, patchTokens, vitConfig, type RecipeOptions } from '../common.js';
import type { VlmPreset } from '../presets.js';
import { Vlm } from '../vlm.js';

export function buildInternvl(tok: Tokenizer, opts: RecipeOptions & { maxTiles?: number } = {}): Vlm {
  const model = baseLm(tok, opts);
  const vit = vitConfig({ ...opts, vision: { positionInit: 'normal', ...opts.vision } });
  model.addMixin('vision', new VisionEncoderMixin({ vit, selectLayer: -1, selectFeature: 'patch', packed: true }));
  model.addMixin('mlp1', new PixelShuffleProjectorMixin({ imageTokenId: specialId(tok, '<image>'), inputSize: vit.hiddenSize }));
  finish(model, opts, ['mlp1']);
  const perTile = patchTokens(vit) / 4;
  const s = vit.imageSize;
  const tiling: DynamicTilingOptions = { minTiles: 1, maxTiles: opts.maxTiles ?? 6, tileSize: s, thumbnail: true };
  const most = perTile * (tiling.maxTiles! + 1);
  return new Vlm({
    type: 'C', model, tokenizer: tok, imageSize: s, imageTokens: most, usesPixels: false,
    imageTokensFor: (x) => perTile * internvlTileCount(x.image.width, x.image.height, tiling),
    extraMedia: (_b, samples) => {
      // every tile of every image, in order: [sum of tiles, 3, s, s] (InternVL's pixel_values + num_patches_list)
      const tiles = samples.flatMap((x) => internvlTiles(x.image, tiling).images);
      const data = new Float32Array(tiles.length * 3 * s * s);
      tiles.forEach((img, i) => data.set(toFloatCHW(img, IMAGENET_MEAN, IMAGENET_STD), i * 3 * s * s));
      return { pixels: tf.tensor4d(data, [tiles.length, 3, s, s]) };
    },
    description: `InternVL (C): dynamic tiles (up to ${tiling.maxTiles} + thumbnail) -> ViT -> pixel shuffle 0.5 -> mlp1 -> ${perTile} tokens per tile at <image>`,
  });
}

export const internvl: VlmPreset = {
  name: 'internvl', description: 'InternVL (type C): dynamic tiling + thumbnail -> ViT -> pixel shuffle (2x2 -> 1) -> mlp1 MLP projector; InternVLChatModel mlp1 names', build: buildInternvl,
};
