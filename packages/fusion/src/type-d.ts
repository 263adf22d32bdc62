/** Type D, tokenized early fusion (Chameleon): a VQ image tokenizer turns the image into discrete codes
 *  that join the text in one extended vocabulary (<boi> codes <eoi>); one autoregressive LM reads and
 *  can generate both. */
import { specialId, type Tokenizer } from '@vlmix/data';
import { VqImageTokenizerMixin, VqTokenMixin, type VqVocab } from '@vlmix/mixins';
import { baseLm, finish, type RecipeOptions } from './common.js';
import { Vlm } from './vlm.js';

export interface TypeDOptions extends RecipeOptions {
  codebookSize?: number;
  /** Channels per stride-2 stage; 2 stages on 32 px give an 8x8 code grid (a 4x4 grid loses shape detail). */
  vqHidden?: number[];
  imageSize?: number;
  /** Also learn to predict the image codes (lets the model generate images). Default true. */
  imageLoss?: boolean;
}

export function buildTypeD(tok: Tokenizer, opts: TypeDOptions = {}): Vlm {
  const k = opts.codebookSize ?? 128;
  const model = baseLm(tok, opts, k);
  // prefix 'vq.': VqVae appends '.', so the parameters are named `vq..encoder...` (as in every type D
  // checkpoint so far; a cleaner name would re-initialise the tokenizer, since init streams are per name).
  const vae = model.addMixin('vq', new VqImageTokenizerMixin({
    vq: { hidden: opts.vqHidden ?? [32, 64], codebookSize: k, codeDim: 32, seed: opts.seed ?? 0 }, prefix: 'vq.',
  })).vae;
  const size = opts.imageSize ?? 32;
  const grid = size / vae.factor;
  const vocab: VqVocab = { codeOffset: tok.vocabSize, codebookSize: k, boiId: specialId(tok, '<boi>'), eoiId: specialId(tok, '<eoi>') };
  model.addMixin('vq-tokens', new VqTokenMixin({ vocab, tokensPerImage: grid * grid }));
  // The image tokenizer trains on its own objective first (pretrainImageTokenizer); the LM never back-props into it.
  for (const p of model.params.list()) if (p.component === 'vq') { p.trainable = false; p.variable.trainable = false; }
  finish(model, { ...opts, freeze: opts.freeze === 'connector' ? 'all' : opts.freeze }, []);
  return new Vlm({
    type: 'D', model, tokenizer: tok, imageSize: size, imageTokens: grid * grid, usesPixels: false,
    vq: { vae, vocab }, imageLoss: opts.imageLoss ?? true,
    description: `D (Chameleon): VQ-VAE (${k} codes, ${grid}x${grid} grid) -> <boi> ${grid * grid} code tokens <eoi> in one vocabulary`,
  });
}
