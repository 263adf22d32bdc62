/**
 * Flamingo (Alayrac et al. 2022, type A): ViT -> Perceiver resampler -> gated cross-attention blocks
 * (tanh gates initialised at 0, as the paper: the frozen LM starts unchanged) inserted before every N-th LM
 * layer; text attends to the media of its most recent <image> token ('reference' masking: text before any
 * media attends uniformly, as open_flamingo). Reference names: open_flamingo (loadGatedCrossAttention).
 */
import { specialId, type Tokenizer } from '@vlmix/data';
import { GatedCrossAttentionMixin, PerceiverResamplerMixin } from '@vlmix/mixins';
import { addVision, baseLm, finish, type RecipeOptions } from '../common.js';
import type { VlmPreset } from '../presets.js';
import { Vlm } from '../vlm.js';

export function buildFlamingo(tok: Tokenizer, opts: RecipeOptions & { everyN?: number; latents?: number } = {}): Vlm {
  const model = baseLm(tok, opts);
  const vit = addVision(model, opts);
  const latents = opts.latents ?? 8; // 64 in the reference
  model.addMixin('perceiver', new PerceiverResamplerMixin({ dim: vit.hiddenSize, depth: 2, dimHead: 16, heads: 4, numLatents: latents, ffMult: 2 }));
  model.addMixin('xattn', new GatedCrossAttentionMixin({
    dimVisual: vit.hiddenSize, dimHead: 16, heads: 4, ffMult: 2, everyN: opts.everyN ?? 1, mediaTokenId: specialId(tok, '<image>'),
    gateInit: 0, noMediaAttention: 'reference',
  }));
  finish(model, opts, ['perceiver', 'xattn']);
  return new Vlm({
    type: 'A', model, tokenizer: tok, imageSize: vit.imageSize, imageTokens: 1, usesPixels: true,
    description: `Flamingo (A): ViT -> Perceiver (${latents} latents) -> tanh-gated cross-attention (gates at 0)`,
  });
}

export const flamingo: VlmPreset = {
  name: 'flamingo', description: 'Flamingo (type A): ViT -> Perceiver resampler -> zero-initialised gated cross-attention; open_flamingo names', lr: 5e-4, build: buildFlamingo,
};
