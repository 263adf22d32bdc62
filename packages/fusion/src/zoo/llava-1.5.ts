/**
 * LLaVA-1.5 (Liu et al. 2023, type C): CLIP ViT (quick-GELU, class token, features of the second-to-last
 * layer, patch tokens only) -> 2-layer GELU MLP projector -> embeddings at the <image> placeholders of a
 * LLaMA/Vicuna LM. Reference names: HF LlavaForConditionalGeneration (loadLlava / savePretrained).
 */
import { specialId, type Tokenizer } from '@vlmix/data';
import { ProjectorMixin, VisionEncoderMixin } from '@vlmix/mixins';
import { baseLm, finish, patchTokens, vitConfig, type RecipeOptions } from '../common.js';
import type { VlmPreset } from '../presets.js';
import { Vlm } from '../vlm.js';

export function buildLlava15(tok: Tokenizer, opts: RecipeOptions = {}): Vlm {
  const model = baseLm(tok, opts);
  // CLIP: quick_gelu, pre-norm, no post-norm on the features LLaVA takes (hidden_states[-2])
  const vit = vitConfig({ ...opts, vision: { activation: 'quick_gelu', positionInit: 'normal', ...opts.vision } });
  model.addMixin('vision', new VisionEncoderMixin({ vit, selectLayer: -2, selectFeature: 'patch' }));
  model.addMixin('projector', new ProjectorMixin({ imageTokenId: specialId(tok, '<image>'), projector: { kind: 'mlp2x_gelu', inputSize: vit.hiddenSize } }));
  finish(model, opts, ['projector']);
  return new Vlm({
    type: 'C', model, tokenizer: tok, imageSize: vit.imageSize, imageTokens: patchTokens(vit), usesPixels: true,
    description: `LLaVA-1.5 (C): CLIP ViT hidden_states[-2] patches -> mlp2x_gelu -> ${patchTokens(vit)} tokens at <image>`,
  });
}

export const llava15: VlmPreset = {
  name: 'llava-1.5', description: 'LLaVA-1.5 (type C): CLIP ViT layer -2 -> mlp2x_gelu projector -> LLaMA; HF LlavaForConditionalGeneration names', build: buildLlava15,
};
