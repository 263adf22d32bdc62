/**
 * Emu3 (Wang et al. 2024, type D): images become discrete codes of a MoVQ (HF Emu3VQVAE names: a VQGAN-style
 * encoder on the image repeated over frames, causal Conv3d temporal downsampling, a decoder whose norms are
 * conditioned on the codes), joined with text in one vocabulary; one decoder-only LM predicts both. The
 * tokenizer pre-trains on its own objective and is frozen for the LM, as in chameleon. Reference sizes:
 * base 256, multipliers [1, 2, 2, 4], 32768 codes, 4 frames per image; here 2 frames and 128 codes.
 * As Emu3, each row of codes ends with an end-of-line token (`<eol>` here, `<|extra_200|>` there): an image
 * span holds h * (w + 1) tokens, and generation emits <eol> exactly at row ends (VqTokenMixin rowLength).
 * Emu3's video path (several latent frames, `<|extra_201|>` after each) is not in the preset: HF's Emu3
 * takes images only, and the synthetic set has no videos.
 */
import { specialId, type Tokenizer } from '@vlmix/data';
import { MovqTokenizerMixin, VqTokenMixin, type MovqConfig, type VqVocab } from '@vlmix/mixins';
import { baseLm, finish, type RecipeOptions } from '../common.js';
import { QA_VOCAB_SIZE, qaTokenizer } from '../tokenizer.js';
import type { VlmPreset } from '../presets.js';
import { Vlm } from '../vlm.js';

/** 32-px synthetic images, two downsamplings: an 8x8 code grid. */
export const EMU3_TINY_MOVQ: MovqConfig = {
  baseChannels: 8, channelMultiplier: [1, 2, 2], numResBlocks: 1, latentChannels: 8, embedDim: 8, codebookSize: 128,
  attnResolutions: [], hiddenSize: 16, numAttentionHeads: 1, temporalDownsampleFactor: 2, groups: 8,
};

export function buildEmu3(tok: Tokenizer, opts: RecipeOptions & { imageLoss?: boolean } = {}): Vlm {
  const cfg = { ...EMU3_TINY_MOVQ, seed: opts.seed ?? 0 };
  const model = baseLm(tok, opts, cfg.codebookSize);
  const vae = model.addMixin('vq', new MovqTokenizerMixin({ movq: cfg })).vae; // component 'vq': pretrainImageTokenizer trains it
  const grid = 32 / vae.factor;
  const vocab: VqVocab = { codeOffset: tok.vocabSize, codebookSize: cfg.codebookSize, boiId: specialId(tok, '<boi>'), eoiId: specialId(tok, '<eoi>'), eolId: specialId(tok, '<eol>') };
  model.addMixin('vq-tokens', new VqTokenMixin({ vocab, tokensPerImage: grid * grid, rowLength: grid }));
  for (const p of model.params.list()) if (p.component === 'vq') { p.trainable = false; p.variable.trainable = false; }
  finish(model, { ...opts, freeze: opts.freeze === 'connector' ? 'all' : opts.freeze }, []);
  return new Vlm({
    type: 'D', model, tokenizer: tok, imageSize: 32, imageTokens: grid * (grid + 1), usesPixels: false,
    vq: { vae, vocab }, imageLoss: opts.imageLoss ?? true,
    description: `Emu3 (D): MoVQ (${cfg.codebookSize} codes, ${grid}x${grid} grid, Emu3VQVAE names) -> <boi> code rows, each ending in <eol>, <eoi> in one vocabulary`,
  });
}

export const emu3: VlmPreset = {
  name: 'emu3', description: 'Emu3 (type D): MoVQ image tokenizer (HF Emu3VQVAE names: temporal Conv3d, SpatialNorm decoder) -> image codes in the LM vocabulary', build: buildEmu3,
  tokenizer: () => qaTokenizer(QA_VOCAB_SIZE, ['<eol>']),
};
