/** Type A, standard cross-attention deep fusion (Flamingo): ViT -> Perceiver resampler -> gated
 *  cross-attention before every N-th LM layer; the text holds one <image> media token. */
import { specialId, type Tokenizer } from '@vlmix/data';
import { GatedCrossAttentionMixin, PerceiverResamplerMixin } from '@vlmix/mixins';
import { addVision, baseLm, finish, type RecipeOptions } from './common.js';
import { Vlm } from './vlm.js';

export interface TypeAOptions extends RecipeOptions {
  latents?: number;
  everyN?: number;
}

export function buildTypeA(tok: Tokenizer, opts: TypeAOptions = {}): Vlm {
  const model = baseLm(tok, opts);
  const vit = addVision(model, opts);
  const d = model.config.hiddenSize;
  model.addMixin('perceiver', new PerceiverResamplerMixin({ dim: vit.hiddenSize, depth: 1, dimHead: 16, heads: 4, numLatents: opts.latents ?? 8, ffMult: 2 }));
  model.addMixin('xattn', new GatedCrossAttentionMixin({ dimVisual: vit.hiddenSize, dimHead: 16, heads: 4, ffMult: 2, everyN: opts.everyN ?? 1, mediaTokenId: specialId(tok, '<image>') }));
  finish(model, opts, ['perceiver', 'xattn']);
  return new Vlm({
    type: 'A', model, tokenizer: tok, imageSize: vit.imageSize, imageTokens: 1, usesPixels: true,
    description: `A (Flamingo): ViT -> Perceiver (${opts.latents ?? 8} latents) -> gated cross-attention every ${opts.everyN ?? 1} layer(s), LM width ${d}`,
  });
}
