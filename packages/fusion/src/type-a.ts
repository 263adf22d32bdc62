/** Type A, standard cross-attention deep fusion (Flamingo): ViT -> Perceiver resampler -> gated
 *  cross-attention before every N-th LM layer; the text holds one <image> media token. */
import { specialId, type Tokenizer } from '@vlmix/data';
import { GatedCrossAttentionMixin, PerceiverResamplerMixin } from '@vlmix/mixins';
import { addVision, baseLm, finish, type RecipeOptions } from './common.js';
import { Vlm } from './vlm.js';

export interface TypeAOptions extends RecipeOptions {
  /** Perceiver latents per image. Default 8. */
  latents?: number;
  /** Perceiver layers. Default 1. */
  perceiverDepth?: number;
  /** A gated cross-attention block before every N-th layer. Default 1. */
  everyN?: number;
  /**
   * Initial tanh gates. Default 0.5, not Flamingo's 0: the tiny LM trains from scratch with the blocks, and
   * closed gates starve them of gradient (seed 0, 3000 steps: position questions 97% with 0.5, 71% with 0).
   */
  gateInit?: number;
  /** Heads and head width of the Perceiver and the cross-attention blocks. Default 4 x 16. */
  crossHeads?: number;
  crossDimHead?: number;
}

export function buildTypeA(tok: Tokenizer, opts: TypeAOptions = {}): Vlm {
  const model = baseLm(tok, opts);
  const vit = addVision(model, opts);
  const d = model.config.hiddenSize;
  const latents = opts.latents ?? 8;
  const everyN = opts.everyN ?? 1;
  const heads = opts.crossHeads ?? 4;
  const dimHead = opts.crossDimHead ?? 16;
  model.addMixin('perceiver', new PerceiverResamplerMixin({ dim: vit.hiddenSize, depth: opts.perceiverDepth ?? 1, dimHead, heads, numLatents: latents, ffMult: 2 }));
  model.addMixin('xattn', new GatedCrossAttentionMixin({
    dimVisual: vit.hiddenSize, dimHead, heads, ffMult: 2, everyN, mediaTokenId: specialId(tok, '<image>'), gateInit: opts.gateInit ?? 0.5,
    // text before the <image> token gets no cross-attention output (the numbers this recipe was tuned with)
    noMediaAttention: 'zero',
  }));
  finish(model, opts, ['perceiver', 'xattn']);
  return new Vlm({
    type: 'A', model, tokenizer: tok, imageSize: vit.imageSize, imageTokens: 1, usesPixels: true,
    description: `A (Flamingo): ViT -> Perceiver (${latents} latents) -> gated cross-attention every ${everyN} layer(s), LM width ${d}`,
  });
}
