/**
 * InternVL (Chen et al. 2024, type C): ViT (InternViT) patch features -> pixel shuffle (2x2 neighbours
 * merged: 4x fewer tokens) -> mlp1 (LayerNorm, Linear, GELU, Linear) -> tokens at <image>. InternVL's dynamic
 * tiling (up to 12 448-px tiles + a thumbnail) is `internvlTiles` in @vlmix/data; the synthetic 32-px
 * squares always give one tile, so the preset feeds one tile per image.
 * Reference names: InternVLChatModel `mlp1.*`.
 */
import { specialId, type Tokenizer } from '@vlmix/data';
import { PixelShuffleProjectorMixin } from '@vlmix/mixins';
import { addVision, baseLm, finish, patchTokens, type RecipeOptions } from '../common.js';
import type { VlmPreset } from '../presets.js';
import { Vlm } from '../vlm.js';

export function buildInternvl(tok: Tokenizer, opts: RecipeOptions = {}): Vlm {
  const model = baseLm(tok, opts);
  const vit = addVision(model, { ...opts, vision: { positionInit: 'normal', ...opts.vision } });
  model.addMixin('mlp1', new PixelShuffleProjectorMixin({ imageTokenId: specialId(tok, '<image>'), inputSize: vit.hiddenSize }));
  finish(model, opts, ['mlp1']);
  const tokens = patchTokens(vit) / 4;
  return new Vlm({
    type: 'C', model, tokenizer: tok, imageSize: vit.imageSize, imageTokens: tokens, usesPixels: true,
    description: `InternVL (C): ViT patches -> pixel shuffle 0.5 -> mlp1 -> ${tokens} tokens at <image> (one tile)`,
  });
}

export const internvl: VlmPreset = {
  name: 'internvl', description: 'InternVL (type C): ViT -> pixel shuffle (2x2 -> 1) -> mlp1 MLP projector; InternVLChatModel mlp1 names; one tile', build: buildInternvl,
};
