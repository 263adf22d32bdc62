/**
 * The tokenizer of the tiny presets: byte-level BPE trained on the synthetic QA templates. Training is
 * deterministic, so a preset rebuilds the identical tokenizer every time (checkpoints also store it).
 */
import { BpeTokenizer, shapesTemplates, type Tokenizer } from '@vlmix/data';

export const QA_VOCAB_SIZE = 320;

export function qaTokenizer(vocabSize = QA_VOCAB_SIZE, extraSpecials: readonly string[] = []): Tokenizer {
  const corpus: string[] = [];
  for (const t of shapesTemplates()) for (const a of t.answers) corpus.push(`${t.question} Answer: ${a}`, `${t.question} ${a}`);
  return BpeTokenizer.train(corpus, { vocabSize: vocabSize + extraSpecials.length, ...(extraSpecials.length ? { specialTokens: extraSpecials } : {}) });
}
