// Turns (question, answer) pairs into model inputs: token ids, a loss mask, and where the
// image placeholders sit (the fusion layer overwrites those embeddings with vision features).
import { specialId, type Tokenizer } from './tokenizer.js';

export interface QAExample {
  question: string;
  answer: string;
  /**
   * Earlier turns of a multi-turn conversation, in order, before question/answer: the whole
   * conversation becomes one sequence with the loss on every answer (the image goes with the first turn).
   */
  history?: readonly { question: string; answer: string }[];
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
  /**
   * Special tokens that user text may contain and that are encoded as their ids (e.g. Qwen-VL's grounding
   * markup `<ref>`, `</ref>`, `<box>`, `</box>`); every other special literal in text is rejected.
   */
  textSpecials?: readonly string[];
}

/** Encodes text, with the `allowed` special literals in it as their special ids. */
export function encodeWithSpecials(tok: Tokenizer, text: string, allowed: readonly string[]): number[] {
  if (allowed.length === 0) return tok.encode(text);
  const escaped = allowed.map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const out: number[] = [];
  for (const part of text.split(new RegExp(`(${escaped.join('|')})`))) {
    if (part === '') continue;
    if (allowed.includes(part)) out.push(specialId(tok, part));
    else out.push(...tok.encode(part));
  }
  return out;
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
  /** Tokens before the last answer: the prompt a model answers (earlier turns included). Set by formatQA. */
  promptLength?: number;
}

export const IGNORE_INDEX = -1;

function rejectSpecials(tok: Tokenizer, text: string, what: string, allowed: readonly string[] = []): void {
  for (const s of Object.keys(tok.special)) {
    if (allowed.includes(s)) continue;
    if (text.includes(s)) {
      throw new Error(`formatQA: ${what} contains the special token literal "${s}"; user text must not inject control tokens`);
    }
  }
}

export function formatQA(tok: Tokenizer, ex: QAExample, opts: FormatQAOptions): FormattedExample & { promptLength: number } {
  const n = opts.imageTokens;
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`formatQA: imageTokens must be a non-negative integer, got ${n}`);
  const tpl = opts.template ?? DEFAULT_QA_TEMPLATE;
  if (!tpl.prompt.includes('{question}')) throw new Error(`formatQA: template.prompt must contain "{question}", got ${JSON.stringify(tpl.prompt)}`);
  if (!tpl.answer.includes('{answer}')) throw new Error(`formatQA: template.answer must contain "{answer}", got ${JSON.stringify(tpl.answer)}`);
  if (n > 0 && !tpl.prompt.includes('{image}')) {
    throw new Error(`formatQA: imageTokens is ${n} but template.prompt has no "{image}" slot: ${JSON.stringify(tpl.prompt)}`);
  }
  const allowedSpecials = opts.textSpecials ?? [];
  for (const s of allowedSpecials) specialId(tok, s); // each must be a special token of this tokenizer
  const history = ex.history ?? [];
  if (!Array.isArray(history)) throw new TypeError(`formatQA: history must be an array of {question, answer}, got ${typeof history}`);
  const turns = [...history, { question: ex.question, answer: ex.answer }];
  turns.forEach((t, i) => {
    const at = i < history.length ? ` (history[${i}])` : '';
    if (typeof t?.question !== 'string' || typeof t?.answer !== 'string') {
      throw new TypeError(`formatQA: question and answer must be strings${at}, got ${typeof t?.question} and ${typeof t?.answer}`);
    }
    rejectSpecials(tok, t.question, `question${at}`, allowedSpecials);
    rejectSpecials(tok, t.answer, `answer${at}`, allowedSpecials);
  });

  const ids: number[] = [];
  const labels: number[] = [];
  const imagePositions: number[] = [];
  const emit = (xs: number[], loss: boolean) => {
    ids.push(...xs);
    labels.push(...(loss ? xs : xs.map(() => IGNORE_INDEX)));
  };
  if (opts.bos ?? true) emit([specialId(tok, '<bos>')], false);
  const parts = tpl.prompt.split('{image}');
  if (parts.length > 2) throw new Error(`formatQA: template.prompt may contain "{image}" at most once`);
  let promptLength = 0;
  turns.forEach((turn, t) => {
    // Literal text around {image} is encoded by the tokenizer; the image block (first turn only) is emitted as ids.
    parts.forEach((part, i) => {
      if (i > 0 && n > 0 && t === 0) {
        emit([specialId(tok, '<boi>')], false);
        const img = specialId(tok, '<image>');
        for (let k = 0; k < n; k++) {
          imagePositions.push(ids.length);
          emit([img], false);
        }
        emit([specialId(tok, '<eoi>')], false);
      }
      emit(encodeWithSpecials(tok, part.replaceAll('{question}', () => turn.question), allowedSpecials), false);
    });
    promptLength = ids.length;
    emit([...encodeWithSpecials(tok, tpl.answer.replaceAll('{answer}', () => turn.answer), allowedSpecials), specialId(tok, '<eos>')], true);
  });
  return { ids, labels, imagePositions, promptLength };
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
