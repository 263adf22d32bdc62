/**
 * Fuyu (Adept 2023, type C without an encoder): raw image patches linearly projected straight into the
 * decoder's sequence, a newline embedding after each row of patches (FuyuPatchMixin). Reference names:
 * HF FuyuForCausalLM `vision_embed_tokens` (the newline is the |NEWLINE| token's embedding row there).
 */
import { specialId, type Tokenizer } from '@vlmix/data';
import { FuyuPatchMixin } from '@vlmix/mixins';
import { baseLm, finish, type RecipeOptions } from '../common.js';
import type { VlmPreset } from '../presets.js';
import { Vlm } from '../vlm.js';

export function buildFuyu(tok: Tokenizer, opts: RecipeOptions & { imageSize?: number; patchSize?: number } = {}): Vlm {
  const model = baseLm(tok, opts);
  const imageSize = opts.imageSize ?? 32;
  const patch = opts.patchSize ?? 8; // 30 in the reference
  model.addMixin('patches', new FuyuPatchMixin({ imageTokenId: specialId(tok, '<image>'), patchSize: patch }));
  finish(model, opts, ['patches']);
  const n = imageSize / patch;
  return new Vlm({
    type: 'C', model, tokenizer: tok, imageSize, imageTokens: n * (n + 1), usesPixels: true,
    description: `Fuyu (C, no encoder): ${n}x${n} raw ${patch}-px patches -> linear -> tokens, a newline after each row`,
  });
}

export const fuyu: VlmPreset = {
  name: 'fuyu', description: 'Fuyu (type C, no vision encoder): raw patches -> linear (vision_embed_tokens) -> decoder, newline per patch row', build: buildFuyu,
};
