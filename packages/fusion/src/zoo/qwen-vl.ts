/**
 * Qwen-VL (Bai et al. 2023, type C): ViT patch features -> one cross-attention layer from grid^2 learned
 * queries (2-D sin-cos positions on both sides) -> ln_post -> proj -> query embeddings at <image>
 * (QwenResamplerMixin; 256 queries in the reference, 16 here: the query grid equals the patch grid).
 * Reference names: Qwen-VL `transformer.visual.attn_pool.*`, `ln_post`, `proj`. Qwen-VL's <img>/<box>/<ref>
 * tokens are not in the synthetic tokenizer.
 */
import { specialId, type Tokenizer } from '@vlmix/data';
import { QwenResamplerMixin } from '@vlmix/mixins';
import { addVision, baseLm, finish, patchTokens, type RecipeOptions } from '../common.js';
import type { VlmPreset } from '../presets.js';
import { Vlm } from '../vlm.js';

export function buildQwenVl(tok: Tokenizer, opts: RecipeOptions = {}): Vlm {
  const model = baseLm(tok, opts);
  const vit = addVision(model, { ...opts, vision: { positionInit: 'normal', ...opts.vision } });
  const grid = vit.imageSize / vit.patchSize;
  model.addMixin('visual', new QwenResamplerMixin({ imageTokenId: specialId(tok, '<image>'), grid, embedDim: vit.hiddenSize, heads: 4, kvDim: vit.hiddenSize }));
  finish(model, opts, ['visual']);
  return new Vlm({
    type: 'C', model, tokenizer: tok, imageSize: vit.imageSize, imageTokens: patchTokens(vit), usesPixels: true,
    description: `Qwen-VL (C): ViT -> position-aware cross-attention resampler (${grid * grid} queries) -> ln_post, proj -> tokens at <image>`,
  });
}

export const qwenVl: VlmPreset = {
  name: 'qwen-vl', description: 'Qwen-VL (type C): ViT -> one cross-attention layer from learned queries with 2-D sin-cos positions -> proj; attn_pool names', build: buildQwenVl,
};
