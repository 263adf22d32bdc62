/**
 * MiniGPT-4 (Zhu et al. 2023, type C): BLIP-2's frozen ViT + Q-Former, then ONE linear layer (`llama_proj`)
 * into a frozen Vicuna; the paper trains only that layer. Here the Q-Former's language projection is
 * llama_proj. `freeze: 'connector'` reproduces the paper's policy (only llama_proj trains), which needs
 * the pretrained frozen parts it is defined by: from random weights it cannot lower the loss, so the tiny
 * preset trains everything by default. `minigpt4QFormerName` maps the LAVIS checkpoint's names
 * (`Qformer.bert.*`, `llama_proj.*`) onto the Q-Former's (HF Blip2) names for loadBlip2QFormer.
 */
import { fail } from '@vlmix/core';
import { specialId, type Tokenizer } from '@vlmix/data';
import { QFormerConnectorMixin } from '@vlmix/mixins';
import { addVision, baseLm, finish, type RecipeOptions } from '../common.js';
import type { VlmPreset } from '../presets.js';
import { Vlm } from '../vlm.js';

/** LAVIS / MiniGPT-4 name -> HF Blip2 name (as loadBlip2QFormer reads them), or null for other tensors. */
export function minigpt4QFormerName(n: string): string | null {
  if (n === 'query_tokens') return n;
  if (n.startsWith('llama_proj.')) return `language_projection.${n.slice('llama_proj.'.length)}`;
  if (!n.startsWith('Qformer.bert.')) return null;
  const rest = n.slice('Qformer.bert.'.length);
  if (rest.startsWith('embeddings.LayerNorm.')) return `qformer.layernorm.${rest.slice('embeddings.LayerNorm.'.length)}`;
  if (!rest.startsWith('encoder.layer.')) return null; // word/position embeddings: unused by the query path
  return `qformer.${rest.replace(/\.(attention|crossattention)\.self\./, '.$1.attention.')}`;
}

export function buildMinigpt4(tok: Tokenizer, opts: RecipeOptions & { queries?: number } = {}): Vlm {
  const model = baseLm(tok, opts);
  const vit = addVision(model, { ...opts, vision: { positionInit: 'normal', ...opts.vision } });
  const queries = opts.queries ?? 8; // 32 in the reference
  model.addMixin('qformer', new QFormerConnectorMixin({
    imageTokenId: specialId(tok, '<image>'),
    qformer: { hiddenSize: 64, numLayers: 2, numHeads: 4, intermediateSize: 128, encoderHiddenSize: vit.hiddenSize, numQueryTokens: queries, crossAttentionFrequency: 1 },
  }));
  finish(model, { ...opts, freeze: opts.freeze === 'connector' ? 'all' : opts.freeze }, ['qformer']);
  if (opts.freeze === 'connector') {
    model.params.setTrainable('**', false);
    const proj = model.params.setTrainable('qformer.language_projection.*', true);
    if (proj.length !== 2) fail(`minigpt4: expected llama_proj's weight and bias, got ${proj.join(', ')}`);
  }
  return new Vlm({
    type: 'C', model, tokenizer: tok, imageSize: vit.imageSize, imageTokens: queries, usesPixels: true,
    description: `MiniGPT-4 (C): ViT -> Q-Former (${queries} queries) -> llama_proj (one linear) -> ${queries} embeddings at <image>`,
  });
}

export const minigpt4: VlmPreset = {
  name: 'minigpt4', description: 'MiniGPT-4 (type C): BLIP-2 ViT + Q-Former -> one linear llama_proj -> LM; --freeze connector trains llama_proj only (the paper)', build: buildMinigpt4,
};
