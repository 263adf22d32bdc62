/**
 * LLaMA-Adapter v2 (Gao et al. 2023; type A in the taxonomy: the image reaches the LM through gated
 * attention inside its layers, not through tokens): adaption prompts in the top layers with zero-initialised
 * gates (LlamaAdapterMixin, PEFT AdaptionPrompt names), and the ViT's pooled, projected feature added to
 * every prompt (AdapterVisualPromptMixin). The text holds no image tokens. Gates start at 0 as the paper:
 * the prompts only learn once the gates open.
 */
import type { Tokenizer } from '@vlmix/data';
import { AdapterVisualPromptMixin, LlamaAdapterMixin, VISION_FEATURES } from '@vlmix/mixins';
import { stateKey } from '@vlmix/core';
import type * as tf from '@tensorflow/tfjs';
import { addVision, baseLm, finish, type RecipeOptions } from '../common.js';
import type { VlmPreset } from '../presets.js';
import { Vlm } from '../vlm.js';

export function buildLlamaAdapter(tok: Tokenizer, opts: RecipeOptions & { gateInit?: number } = {}): Vlm {
  const model = baseLm(tok, opts);
  const vit = addVision(model, opts);
  const visual = stateKey<tf.Tensor2D>('adapter.visual');
  model.addMixin('visual_prompt', new AdapterVisualPromptMixin(vit.hiddenSize, VISION_FEATURES, visual));
  model.addMixin('adapter', new LlamaAdapterMixin({ layers: model.config.numLayers, length: 4, gateInit: opts.gateInit ?? 0, visualKey: visual }));
  finish(model, opts, ['visual_prompt', 'adapter']);
  return new Vlm({
    type: 'A', model, tokenizer: tok, imageSize: vit.imageSize, imageTokens: 0, usesPixels: true,
    description: 'LLaMA-Adapter v2 (A): zero-gated adaption prompts in every layer, the pooled ViT feature added to them',
  });
}

export const llamaAdapter: VlmPreset = {
  name: 'llama-adapter', description: 'LLaMA-Adapter v2 (type A): zero-initialised gated adaption prompts + projected visual feature; PEFT AdaptionPrompt names', build: buildLlamaAdapter,
};
