/**
 * BLIP-2 (Li et al. 2023, type C): ViT -> Q-Former (learned queries attend to the image features through
 * cross-attention every layer) -> language projection -> query embeddings at the <image> placeholders.
 * The reference pairs it with OPT / Flan-T5; here the LM is the tiny LLaMA of every recipe.
 * Reference names: HF Blip2QFormerModel (loadBlip2QFormer).
 */
import { specialId, type Tokenizer } from '@vlmix/data';
import { QFormerConnectorMixin } from '@vlmix/mixins';
import { addVision, baseLm, finish, type RecipeOptions } from '../common.js';
import type { VlmPreset } from '../presets.js';
import { Vlm } from '../vlm.js';

export function buildBlip2(tok: Tokenizer, opts: RecipeOptions & { queries?: number } = {}): Vlm {
  const model = baseLm(tok, opts);
  const vit = addVision(model, { ...opts, vision: { positionInit: 'normal', ...opts.vision } });
  const queries = opts.queries ?? 8; // 32 in the reference
  model.addMixin('qformer', new QFormerConnectorMixin({
    imageTokenId: specialId(tok, '<image>'),
    qformer: { hiddenSize: 64, numLayers: 2, numHeads: 4, intermediateSize: 128, encoderHiddenSize: vit.hiddenSize, numQueryTokens: queries, crossAttentionFrequency: 1 },
  }));
  finish(model, opts, ['qformer']);
  return new Vlm({
    type: 'C', model, tokenizer: tok, imageSize: vit.imageSize, imageTokens: queries, usesPixels: true,
    description: `BLIP-2 (C): ViT -> Q-Former (${queries} queries, cross-attention every layer) -> ${queries} embeddings at <image>`,
  });
}

export const blip2: VlmPreset = {
  name: 'blip2', description: 'BLIP-2 (type C): ViT -> Q-Former (learned queries) -> language projection -> LM; HF Blip2QFormerModel names', build: buildBlip2,
};
