/**
 * Qwen-VL (Bai et al. 2023, type C): ViT patch features -> one cross-attention layer from grid^2 learned
 * queries (2-D sin-cos positions on both sides) -> ln_post -> proj -> query embeddings at <image>
 * (QwenResamplerMixin; 256 queries in the reference, 16 here: the query grid equals the patch grid).
 * Reference names: Qwen-VL `transformer.visual.attn_pool.*`, `ln_post`, `proj`. The preset's tokenizer adds
 * Qwen-VL's grounding tokens `<ref>` `</ref>` `<box>` `</box>`, which questions and answers may contain
 * (`qwenVlRef`, `qwenVlBox` write them); the image span's <boi>/<eoi> play Qwen-VL's <img>/</img>.
 */
import { specialId, type Tokenizer } from '@vlmix/data';
import { QwenResamplerMixin } from '@vlmix/mixins';
import { addVision, baseLm, finish, patchTokens, type RecipeOptions } from '../common.js';
import { QA_VOCAB_SIZE, qaTokenizer } from '../tokenizer.js';
import type { VlmPreset } from '../presets.js';
import { Vlm } from '../vlm.js';

/** Qwen-VL's grounding markup, special tokens of the qwen-vl preset's tokenizer. */
export const QWEN_VL_GROUNDING_TOKENS = ['<ref>', '</ref>', '<box>', '</box>'] as const;

/** `<ref>text</ref>`: a referring expression. */
export function qwenVlRef(text: string): string {
  return `<ref>${text}</ref>`;
}

/**
 * `<box>(x1,y1),(x2,y2)</box>` for a pixel box [x1, y1, x2, y2] of a width x height image: coordinates
 * normalised to integers in [0, 1000), as Qwen-VL writes them.
 */
export function qwenVlBox(box: readonly [number, number, number, number], width: number, height: number): string {
  if (!(width > 0 && height > 0)) throw new RangeError(`qwenVlBox: image size must be positive, got ${width}x${height}`);
  const [x1, y1, x2, y2] = box;
  if (!(x1 <= x2 && y1 <= y2) || box.some((v) => !Number.isFinite(v))) throw new RangeError(`qwenVlBox: expected x1 <= x2 and y1 <= y2, got [${box.join(', ')}]`);
  const n = (v: number, size: number) => Math.min(999, Math.max(0, Math.floor((v / size) * 1000)));
  return `<box>(${n(x1, width)},${n(y1, height)}),(${n(x2, width)},${n(y2, height)})</box>`;
}

export function buildQwenVl(tok: Tokenizer, opts: RecipeOptions = {}): Vlm {
  const model = baseLm(tok, opts);
  const vit = addVision(model, { ...opts, vision: { positionInit: 'normal', ...opts.vision } });
  const grid = vit.imageSize / vit.patchSize;
  model.addMixin('visual', new QwenResamplerMixin({ imageTokenId: specialId(tok, '<image>'), grid, embedDim: vit.hiddenSize, heads: 4, kvDim: vit.hiddenSize }));
  finish(model, opts, ['visual']);
  return new Vlm({
    type: 'C', model, tokenizer: tok, imageSize: vit.imageSize, imageTokens: patchTokens(vit), usesPixels: true,
    textSpecials: QWEN_VL_GROUNDING_TOKENS.filter((t) => tok.special[t] !== undefined),
    description: `Qwen-VL (C): ViT -> position-aware cross-attention resampler (${grid * grid} queries) -> ln_post, proj -> tokens at <image>`,
  });
}

export const qwenVl: VlmPreset = {
  name: 'qwen-vl', description: 'Qwen-VL (type C): ViT -> one cross-attention layer from learned queries with 2-D sin-cos positions -> proj; attn_pool names; <ref>/<box> grounding tokens', build: buildQwenVl,
  tokenizer: () => qaTokenizer(QA_VOCAB_SIZE, QWEN_VL_GROUNDING_TOKENS),
};
