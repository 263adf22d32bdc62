/**
 * InstructBLIP (Dai et al. 2023, type C): BLIP-2 with an instruction-aware Q-Former: the question, tokenized
 * for the Q-Former, joins the learned queries in its self-attention, so the visual tokens it extracts depend
 * on the instruction (InstructQFormerConnectorMixin). The Q-Former shares the LM tokenizer's vocabulary here
 * (the reference uses BERT's). Reference names: HF InstructBlipQFormerModel (`qformer.embeddings.*`,
 * `intermediate` / `output` text FFN; its `embeddings.layernorm` is `qformer.layernorm` here).
 */
import * as tf from '@tensorflow/tfjs';
import { specialId, type Tokenizer } from '@vlmix/data';
import { InstructQFormerConnectorMixin, QFORMER_ATTENTION_MASK, QFORMER_INPUT_IDS } from '@vlmix/mixins';
import { addVision, baseLm, finish, type RecipeOptions } from '../common.js';
import type { VlmPreset } from '../presets.js';
import { Vlm } from '../vlm.js';

const MAX_INSTRUCTION = 32;

export function buildInstructblip(tok: Tokenizer, opts: RecipeOptions = {}): Vlm {
  const model = baseLm(tok, opts);
  const vit = addVision(model, { ...opts, vision: { positionInit: 'normal', ...opts.vision } });
  const queries = 8;
  model.addMixin('qformer', new InstructQFormerConnectorMixin({
    imageTokenId: specialId(tok, '<image>'),
    qformer: {
      hiddenSize: 64, numLayers: 2, numHeads: 4, intermediateSize: 128, encoderHiddenSize: vit.hiddenSize, numQueryTokens: queries,
      crossAttentionFrequency: 1, instructionVocabSize: tok.vocabSize, maxInstructionLength: MAX_INSTRUCTION,
    },
  }));
  finish(model, opts, ['qformer']);
  return new Vlm({
    type: 'C', model, tokenizer: tok, imageSize: vit.imageSize, imageTokens: queries, usesPixels: true,
    // the question, tokenized for the Q-Former (right-padded, masked), per sample
    extraMedia: (b, samples) => {
      const rows = samples.map((s) => tok.encode(s.question).slice(0, MAX_INSTRUCTION));
      const len = Math.max(1, ...rows.map((r) => r.length));
      const ids = rows.map((r) => [...r, ...new Array<number>(len - r.length).fill(0)]);
      const mask = rows.map((r) => Array.from({ length: len }, (_, i) => (i < r.length ? 1 : 0)));
      return { [QFORMER_INPUT_IDS]: tf.tensor2d(ids, [b, len], 'int32'), [QFORMER_ATTENTION_MASK]: tf.tensor2d(mask, [b, len], 'int32') };
    },
    description: `InstructBLIP (C): ViT -> instruction-aware Q-Former (${queries} queries + the question) -> embeddings at <image>`,
  });
}

export const instructblip: VlmPreset = {
  name: 'instructblip', description: 'InstructBLIP (type C): ViT -> instruction-aware Q-Former (queries read the question) -> LM; HF InstructBlipQFormerModel names', build: buildInstructblip,
};
