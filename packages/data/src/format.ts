// Turns (question, answer) pairs into model inputs: token ids, a loss mask, and where the
// image placeholders sit (the fusion layer overwrites those embeddings with vision features).
import { specialId, type Tokenizer } from './tokenizer.js';

export interface QAExample {
  question: string;
  answer: string;
}

export interface QATemplate {
  /** Prompt text; "{image}" expands to <boi> <image>×N <eoi>, "{question}" to the question. */
  prompt: string;
  /** Answer text; "{answer}" expands to the answer. <eos> is appended after it. */
  answer: string;
}

export const DEFAULT_QA_TEMPLATE: QATemplate = { prompt: '{image}Question: {question} Answer:', answer: ' {answer}' };

export interface FormatQAOptions {
  /** How many <image> placeholder ids to insert (= number of visual tokens the encoder yields). */
  imageTokens: number;
  template?: QATemplate;
  /** Prepend <bos> (default true). */
  bos?: boolean;
}

export interface FormattedExample {
  ids: number[];
  /**
   * Same length as ids. -1 = no loss (bos, prompt, image positions); otherwise the token's own
   * id (answer tokens and the final <eos>). Labels are NOT shifted: the trainer predicts
   * labels[t] from positions < t, i.e. compares logits[t-1] with labels[t].
   */
  labels: number[];
  /** Indices in ids holding the <image> placeholder. */
  imagePositions: number[];
}

export const IGNORE_INDEX = -1;

function rejectSpecials(tok: Tokenizer, text: string, what: string): void {
  for (const s of Object.keys(tok.special)) {
    if (text.includes(s)) {
      throw new Error(`formatQA: ${what} contains the special token literal "${s}"; user text must not inject control tokens`);
    }
  }
}

export function formatQA(tok: Tokenizer, ex: QAExample, opts: FormatQAOptions): FormattedExample {
  const n = opts.imageTokens;
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`formatQA: imageTokens must be a non-negative integer, got ${n}`);
  const tpl = opts.template ?? DEFAULT_QA_TEMPLATE;
  if (!tpl.prompt.includes('{question}')) throw new Error(`formatQA: template.prompt must contain "{question}", got ${JSON.stringify(tpl.prompt)}`);
  if (!tpl.answer.includes('{answer}')) throw new Error(`formatQA: template.answer must contain "{answer}", got ${JSON.stringify(tpl.answer)}`);
  if (n > 0 && !tpl.prompt.includes('{image}')) {
    throw new Error(`formatQA: imageTokens is ${n} but template.prompt has no "{image}" slot: ${JSON.stringify(tpl.prompt)}`);
  }
  if (typeof ex.question !== 'string' || typeof ex.answer !== 'string') {
    throw new TypeError(`formatQA: question and answer must be strings, got ${typeof ex.question} and ${typeof ex.answer}`);
  }
  rejectSpecials(tok, ex.question, 'question');
  rejectSpecials(tok, ex.answer, 'answer');

  const ids: number[] = [];
  const imagePositions: number[] = [];
  if (opts.bos ?? true) ids.push(specialId(tok, '<bos>'));
  // Literal text around {image} is encoded by the tokenizer; the image block is emitted as ids.
  const parts = tpl.prompt.split('{image}');
  if (parts.length > 2) throw new Error(`formatQA: template.prompt may contain "{image}" at most once`);
  parts.forEach((part, i) => {
    if (i > 0 && n > 0) {
      ids.push(specialId(tok, '<boi>'));
      const img = specialId(tok, '<image>');
      for (let k = 0; k < n; k++) {
        imagePositions.push(ids.length);
        ids.push(img);
      }
      ids.push(specialId(tok, '<eoi>'));
    }
    ids.push(...tok.encode(part.replaceAll('{question}', () => ex.question)));
  });
  const promptLen = ids.length;
  ids.push(...tok.encode(tpl.answer.replaceAll('{answer}', () => ex.answer)), specialId(tok, '<eos>'));
  const labels = ids.map((id, i) => (i < promptLen ? IGNORE_INDEX : id));
  return { ids, labels, imagePositions };
}

export interface CollateOptions {
  padId: number;
  /** Error if any example is longer. */
  maxLen?: number;
  /** Pad every row to maxLen instead of the longest example (fixed shapes avoid retracing). */
  padToMaxLen?: boolean;
}

export interface Batch {
  /** [batch, seqLen] row-major. */
  ids: Int32Array;
  labels: Int32Array;
  /** 1 = real token, 0 = padding. */
  attentionMask: Uint8Array;
  batch: number;
  seqLen: number;
  /** Per-row <image> positions, copied from the examples. */
  imagePositions: number[][];
}

/** Right-pads examples into flat row-major arrays; labels are -1 on padding. */
export function collate(examples: readonly FormattedExample[], opts: CollateOptions): Batch {
  if (examples.length === 0) throw new RangeError('collate: examples must not be empty');
  if (!Number.isInteger(opts.padId) || opts.padId < 0) throw new RangeError(`collate: padId must be a non-negative integer, got ${opts.padId}`);
  const { maxLen } = opts;
  if (maxLen !== undefined && (!Number.isInteger(maxLen) || maxLen <= 0)) {
    throw new RangeError(`collate: maxLen must be a positive integer, got ${maxLen}`);
  }
  if (opts.padToMaxLen && maxLen === undefined) throw new RangeError('collate: padToMaxLen requires maxLen');
  examples.forEach((e, i) => {
    if (e.ids.length !== e.labels.length) {
      throw new RangeError(`collate: example ${i} has ${e.ids.length} ids but ${e.labels.length} labels`);
    }
    if (e.ids.length === 0) throw new RangeError(`collate: example ${i} is empty`);
    if (maxLen !== undefined && e.ids.length > maxLen) {
      throw new RangeError(`collate: example ${i} has ${e.ids.length} tokens, exceeding maxLen ${maxLen}`);
    }
  });
  const batch = examples.length;
  const seqLen = opts.padToMaxLen ? maxLen! : Math.max(...examples.map((e) => e.ids.length));
  const ids = new Int32Array(batch * seqLen).fill(opts.padId);
  const labels = new Int32Array(batch * seqLen).fill(IGNORE_INDEX);
  const attentionMask = new Uint8Array(batch * seqLen);
  examples.forEach((e, b) => {
    ids.set(e.ids, b * seqLen);
    labels.set(e.labels, b * seqLen);
    attentionMask.fill(1, b * seqLen, b * seqLen + e.ids.length);
  });
  return { ids, labels, attentionMask, batch, seqLen, imagePositions: examples.map((e) => [...e.imagePositions]) };
}
