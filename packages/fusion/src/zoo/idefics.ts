/**
 * IDEFICS (Laurençon et al. 2023, type A): the open reproduction of Flamingo. The same parts as `flamingo`
 * (Perceiver resampler, tanh-gated cross-attention with gates at 0) with IDEFICS's choices: a
 * cross-attention block every 2nd layer here (every 4th in IDEFICS-9B), and each text token attends only to
 * the image that immediately precedes it (only_attend_immediate_media). Not reproduced: IDEFICS's extra
 * layer norms and its decoupled embeddings.
 */
import { specialId, type Tokenizer } from '@vlmix/data';
import { GatedCrossAttentionMixin, PerceiverResamplerMixin } from '@vlmix/mixins';
import { addVision, baseLm, finish, type RecipeOptions } from '../common.js';
import type { VlmPreset } from '../presets.js';
import { Vlm } from '../vlm.js';

export function buildIdefics(tok: Tokenizer, opts: RecipeOptions = {}): Vlm {
  const model = baseLm(tok, { ...opts, lm: { numLayers: 4, ...opts.lm } });
  const vit = addVision(model, opts);
  model.addMixin('perceiver', new PerceiverResamplerMixin({ dim: vit.hiddenSize, depth: 2, dimHead: 16, heads: 4, numLatents: 8, ffMult: 2 }));
  model.addMixin('xattn', new GatedCrossAttentionMixin({
    dimVisual: vit.hiddenSize, dimHead: 16, heads: 4, ffMult: 2, everyN: 2, mediaTokenId: specialId(tok, '<image>'),
    gateInit: 0, onlyAttendImmediateMedia: true, noMediaAttention: 'reference',
  }));
  finish(model, opts, ['perceiver', 'xattn']);
  return new Vlm({
    type: 'A', model, tokenizer: tok, imageSize: vit.imageSize, imageTokens: 1, usesPixels: true,
    description: 'IDEFICS (A): ViT -> Perceiver -> gated cross-attention every 2nd layer, immediate-media attention',
  });
}

export const idefics: VlmPreset = {
  name: 'idefics', description: 'IDEFICS (type A): Flamingo reproduction, gated cross-attention every 2nd layer attending only to the immediately preceding image', lr: 5e-4, build: buildIdefics,
};
