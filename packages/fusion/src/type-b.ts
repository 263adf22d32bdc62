/** Type B, custom-layer deep fusion (CogVLM): ViT -> projector -> image tokens in the sequence, and a
 *  visual expert (own QKV/dense and FFN weights for image tokens) in every LM layer. */
import { specialId, type Tokenizer } from '@vlmix/data';
import { ProjectorMixin, VisualExpertMixin } from '@vlmix/mixins';
import { addVision, baseLm, finish, mropeMedia, patchTokens, useMrope, type RecipeOptions } from './common.js';
import { Vlm } from './vlm.js';

export function buildTypeB(tok: Tokenizer, opts: RecipeOptions = {}): Vlm {
  const model = baseLm(tok, opts);
  const vit = addVision(model, opts);
  model.addMixin('projector', new ProjectorMixin({ imageTokenId: specialId(tok, '<image>'), projector: { kind: 'mlp2x_gelu', inputSize: vit.hiddenSize } }));
  model.addMixin('expert', new VisualExpertMixin({ cogvlmPositions: !opts.mrope }), { reinit: true });
  if (opts.mrope) useMrope(model, tok, vit);
  finish(model, opts, ['projector'], ['expert']);
  return new Vlm({
    type: 'B', model, tokenizer: tok, imageSize: vit.imageSize, imageTokens: patchTokens(vit), usesPixels: true, extraMedia: opts.mrope ? (b) => ({ imageGridThw: mropeMedia(b, vit) }) : undefined, imageTokenTypes: true,
    description: `B (CogVLM): ViT -> MLP projector -> ${patchTokens(vit)} image tokens; visual expert QKV/FFN in every layer`,
  });
}
