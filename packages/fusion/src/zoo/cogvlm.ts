/**
 * CogVLM (Wang et al. 2023, type B): ViT -> SwiGLU (GLU) adapter -> image tokens in the sequence, and a
 * visual expert in every LM layer: image tokens use their own QKV/dense and FFN weights, text tokens the
 * LM's; image tokens share one position id (CogVLM's rule). Reference names: THUDM CogVLM
 * (VisionExpertAttention / VisionExpertMLP per layer: loadVisionExpertAttention / loadVisionExpertMLP).
 */
import { specialId, type Tokenizer } from '@vlmix/data';
import { ProjectorMixin, VisualExpertMixin } from '@vlmix/mixins';
import { addVision, baseLm, finish, patchTokens, type RecipeOptions } from '../common.js';
import type { VlmPreset } from '../presets.js';
import { Vlm } from '../vlm.js';

export function buildCogvlm(tok: Tokenizer, opts: RecipeOptions = {}): Vlm {
  const model = baseLm(tok, opts);
  const vit = addVision(model, opts);
  model.addMixin('projector', new ProjectorMixin({ imageTokenId: specialId(tok, '<image>'), projector: { kind: 'cogvlm_glu', inputSize: vit.hiddenSize } }));
  model.addMixin('expert', new VisualExpertMixin({ cogvlmPositions: true }), { reinit: true });
  finish(model, opts, ['projector'], ['expert']);
  return new Vlm({
    type: 'B', model, tokenizer: tok, imageSize: vit.imageSize, imageTokens: patchTokens(vit), usesPixels: true, imageTokenTypes: true,
    description: `CogVLM (B): ViT -> GLU adapter -> ${patchTokens(vit)} image tokens; visual expert QKV/FFN in every layer`,
  });
}

export const cogvlm: VlmPreset = {
  name: 'cogvlm', description: 'CogVLM (type B): ViT -> GLU adapter -> image tokens + visual-expert QKV/FFN in every layer; CogVLM names', build: buildCogvlm,
};
