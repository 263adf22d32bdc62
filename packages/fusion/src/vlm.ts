/**
 * A vision-language model assembled by a recipe: the Model (base LM + mixins) plus how an
 * (image, question, answer) sample becomes its inputs. Fusion types differ only in `imageSlot`
 * (how many placeholder ids the prompt holds and what fills them) and in their mixins.
 *
 * `encode` runs once per batch, outside the gradient tape: it formats the samples, runs the model's host
 * stage (`model.prepareInputs`: token types, positions, placeholder and routing indices from the integer
 * ids) and uploads everything as tensors, so `loss(batch)` and the backward pass read nothing back.
 */
import * as tf from '@tensorflow/tfjs';
import { collectTensors, fail, generate, type ForwardInputs, type Model } from '@vlmix/core';
import { CLIP_MEAN, CLIP_STD, collate, formatQA, fromFloatCHW, specialId, toFloatCHW, type RgbImage, type Tokenizer } from '@vlmix/data';
import { IMAGE_CODES, imageTokens as vqImageTokens, tokensToImages, type ImageVqModule, type VqVocab } from '@vlmix/mixins';
import type { RecipeOptions } from './common.js';
// cycle by design: save.ts builds Vlms; used only when save() is called
import { saveVlm } from './save.js';

export type FusionType = 'A' | 'B' | 'C' | 'D' | 'LM';

export interface QASample {
  image: RgbImage;
  question: string;
  answer?: string;
  /** Earlier turns of a conversation (one sequence, loss on every answer; accuracy is on the last). */
  history?: readonly { question: string; answer: string }[];
}

export interface VlmBatch {
  /** Model inputs, with `prepared` (the host stage's tensors): a forward pass on them reads nothing back. */
  inputs: ForwardInputs;
  /** [B, T] next-token targets (labels shifted left), -1 = no loss. */
  targets: tf.Tensor2D;
  /** Tokens that carry loss. */
  lossTokens: number;
  /** Tokens of the batch (prompt + answer, no padding): the numerator of tokens/s. */
  tokens: number;
  /** Every input tensor, for dispose(). */
  tensors: tf.Tensor[];
  /** The token ids on the host, one row per sample (padding included). */
  ids: number[][];
}

export const TEMPLATE = { prompt: '{image}{question} Answer:', answer: ' {answer}' };
export const IGNORE = -1;

export interface VlmParts {
  type: FusionType;
  model: Model;
  tokenizer: Tokenizer;
  imageSize: number;
  /** Placeholder ids per image in the prompt (0 for a text-only LM); with `imageTokensFor`, the most an image gets. */
  imageTokens: number;
  /**
   * Any-resolution models (LLaVA-1.6 pinpoints, InternVL tiles): the placeholders this sample's image gets,
   * from its own size. Images then reach the model at their own size (pipelines do not resize them).
   */
  imageTokensFor?: (sample: QASample) => number;
  /** Type D: the image tokenizer and its vocabulary mapping. */
  vq?: { vae: ImageVqModule; vocab: VqVocab };
  /** Type D: also train on predicting the image's code tokens. */
  imageLoss?: boolean;
  /** Whether the model reads pixels through ctx.media.pixels. */
  usesPixels: boolean;
  /** Set tokenTypes = 1 at image placeholders (visual expert routing). */
  imageTokenTypes?: boolean;
  /** Extra per-batch media (e.g. M-RoPE image grids). */
  extraMedia?: (batch: number, samples: readonly QASample[]) => Record<string, unknown>;
  /** Special tokens questions and answers may contain (e.g. Qwen-VL's `<ref>`/`<box>` grounding markup). */
  textSpecials?: readonly string[];
  description: string;
}

export class Vlm {
  readonly type: FusionType;
  readonly model: Model;
  readonly tokenizer: Tokenizer;
  readonly imageSize: number;
  readonly imageTokens: number;
  readonly vq?: { vae: ImageVqModule; vocab: VqVocab };
  readonly description: string;
  /** The registered preset and options that built it (set by buildVlm; saved by vlm.save). */
  preset?: { name: string; options: RecipeOptions };
  private readonly parts: VlmParts;

  constructor(parts: VlmParts) {
    this.parts = parts;
    this.type = parts.type;
    this.model = parts.model;
    this.tokenizer = parts.tokenizer;
    this.imageSize = parts.imageSize;
    this.imageTokens = parts.imageTokens;
    this.vq = parts.vq;
    this.description = parts.description;
  }

  /** Images keep their own size (the token count follows it); otherwise they must be imageSize squares. */
  get anyResolution(): boolean {
    return this.parts.imageTokensFor != null;
  }

  /** Placeholder ids for this sample's image (an empty 0x0 image: the most any image gets). */
  imageTokensOf(sample: QASample): number {
    const f = this.parts.imageTokensFor;
    if (!f || sample.image.width === 0 || sample.image.height === 0) return this.imageTokens;
    const n = f(sample);
    if (!Number.isInteger(n) || n < 1) fail(`imageTokensFor: expected a positive integer token count, got ${n} for a ${sample.image.width}x${sample.image.height} image`);
    return n;
  }

  /** The parts it was constructed from (what saveVlm records). */
  get construction(): Readonly<VlmParts> {
    return this.parts;
  }

  /** Saves the whole model (recipe of mixins, weights, tokenizer) to `dir`; loadVlm(dir) rebuilds it. */
  save(dir: string, opts: { overwrite?: boolean } = {}): Promise<void> {
    return saveVlm(this, dir, opts);
  }

  get eosId(): number {
    return specialId(this.tokenizer, '<eos>');
  }

  /** [B, 3, H, W] normalised pixels. */
  pixels(images: RgbImage[]): tf.Tensor4D {
    const s = this.imageSize;
    const data = new Float32Array(images.length * 3 * s * s);
    images.forEach((img, i) => {
      if (img.width !== s || img.height !== s) fail(`image ${i}: expected ${s}x${s} pixels, got ${img.width}x${img.height} (resize it first)`);
      data.set(toFloatCHW(img, CLIP_MEAN, CLIP_STD), i * 3 * s * s);
    });
    return tf.tensor4d(data, [images.length, 3, s, s]);
  }

  /** Prompt (and answer, when given) token ids with labels, before batching. */
  private format(samples: QASample[], withAnswer: boolean) {
    const imageId = specialId(this.tokenizer, '<image>');
    return samples.map((s) => {
      const f = formatQA(this.tokenizer, { question: s.question, answer: s.answer ?? '', ...(s.history ? { history: s.history } : {}) }, { imageTokens: this.imageTokensOf(s), template: TEMPLATE, textSpecials: this.parts.textSpecials });
      if (withAnswer) return f;
      // Prompt only: cut where the last answer starts (earlier turns stay, as context).
      const end = f.promptLength;
      return { ids: f.ids.slice(0, end), labels: f.labels.slice(0, end).fill(IGNORE), imagePositions: f.imagePositions, promptLength: end, imageId };
    });
  }

  /** Tokens (prompt + answer, no padding) of a batch: the numerator of tokens/s. */
  tokenCount(samples: QASample[]): number {
    return this.format(samples, true).reduce((n, f) => n + f.ids.length, 0);
  }

  /**
   * Builds model inputs for a batch (once per batch, outside the gradient tape). With answers, targets
   * hold the answer tokens (+ <eos>). The returned tensors are the caller's (dispose `batch.tensors`).
   */
  encode(samples: QASample[], opts: { withAnswer?: boolean } = {}): VlmBatch {
    if (samples.length === 0) fail(`encode: samples must not be empty`);
    const withAnswer = opts.withAnswer ?? true;
    if (withAnswer && samples.some((s) => s.answer == null)) fail(`encode: every sample needs an answer when withAnswer is true`);
    const formatted = this.format(samples, withAnswer);
    const pad = specialId(this.tokenizer, '<pad>');
    const batch = collate(formatted, { padId: pad });
    const { batch: b, seqLen: t } = batch;
    const ids = batch.ids;
    const labels = batch.labels;
    const media: Record<string, unknown> = {};
    return tf.tidy(() => {
      if (this.parts.usesPixels) media.pixels = this.pixels(samples.map((s) => s.image));
      Object.assign(media, this.parts.extraMedia?.(b, samples));
      if (this.vq) {
        // Type D: the image block holds the image's VQ code tokens (the image tokenizer's encodeMedia, read here on the host).
        const codeGrid = this.model.encodeMedia({ pixels: this.pixels(samples.map((s) => s.image)) }, b).require(IMAGE_CODES, 'encode');
        const codes = codeGrid.dataSync();
        const per = codes.length / b;
        const vocab = this.vq.vocab;
        batch.imagePositions.forEach((pos, r) => {
          // the span's inner tokens (codes, and <eol> after each row when the vocabulary has one)
          const toks = vqImageTokens(codes.subarray(r * per, (r + 1) * per), vocab, codeGrid.shape[codeGrid.rank - 1]).slice(1, -1);
          if (pos.length !== toks.length) fail(`encode: row ${r} has ${pos.length} image slots, the VQ yields ${toks.length} image tokens`);
          pos.forEach((p, k) => {
            ids[r * t + p] = toks[k]!;
            if (this.parts.imageLoss && withAnswer) labels[r * t + p] = toks[k]!;
          });
          if (this.parts.imageLoss && withAnswer) labels[r * t + pos[pos.length - 1]! + 1] = vocab.eoiId;
        });
      }
      const rows = (a: ArrayLike<number>) => Array.from({ length: b }, (_, r) => Array.from((a as Int32Array).subarray(r * t, (r + 1) * t)));
      let tokenTypes: number[][] | null = null;
      if (this.parts.imageTokenTypes) {
        tokenTypes = Array.from({ length: b }, () => new Array<number>(t).fill(0));
        batch.imagePositions.forEach((pos, r) => pos.forEach((p) => (tokenTypes![r]![p] = 1)));
      }
      const targets = new Int32Array(b * t).fill(IGNORE);
      let lossTokens = 0;
      for (let r = 0; r < b; r++) {
        for (let i = 0; i + 1 < t; i++) {
          targets[r * t + i] = labels[r * t + i + 1]!;
          if (targets[r * t + i] !== IGNORE) lossTokens++;
        }
      }
      const hostIds = rows(ids);
      const prepared = this.model.prepareInputs({ inputIds: hostIds, attentionMask: rows(batch.attentionMask), tokenTypes, media });
      const inputs: ForwardInputs = {
        inputIds: tf.tensor2d(ids, [b, t], 'int32'),
        attentionMask: tf.tensor2d(batch.attentionMask, [b, t], 'int32'),
        tokenTypes: prepared.tokenTypes,
        media,
        prepared,
      };
      const tokens = formatted.reduce((n, f) => n + f.ids.length, 0);
      const out: VlmBatch = { inputs, targets: tf.tensor2d(targets, [b, t], 'int32'), lossTokens, tokens, tensors: [], ids: hostIds };
      out.tensors = [...new Set([inputs.inputIds as tf.Tensor, inputs.attentionMask as tf.Tensor, out.targets,
        ...collectTensors(Object.values(media)), ...prepared.tensors()])];
      // Returned tensors survive this tidy; the caller disposes them (batch.tensors).
      out.tensors.forEach((x) => tf.keep(x));
      return out as unknown as tf.TensorContainer;
    }) as unknown as VlmBatch;
  }

  /** Mean next-token loss over the batch's answer (and, for D with imageLoss, image) tokens. */
  loss(batch: VlmBatch, training = true): tf.Scalar {
    // the answers only, unless the image codes are targets too
    return this.model.loss(batch.inputs, batch.targets, { ignoreIndex: IGNORE, training, sparseLabels: !this.parts.imageLoss });
  }

  /**
   * Exact-match accuracy of greedy answers, computed teacher-forced in one batched pass: greedy decoding
   * reproduces the answer iff every answer token (and <eos>) is the argmax given the gold prefix.
   * Returns per-sample correctness.
   */
  correct(samples: QASample[]): boolean[] {
    const batch = this.encode(samples, { withAnswer: true });
    // Only the last answer counts (a conversation's earlier answers are context).
    const promptLens = samples.some((x) => x.history?.length) ? this.format(samples, false).map((f) => f.ids.length) : null;
    try {
      return tf.tidy(() => {
        const { logits } = this.model.forward(batch.inputs);
        const pred = tf.argMax(logits, -1).dataSync();
        const tgt = batch.targets.dataSync();
        const [b, t] = batch.targets.shape;
        const ok: boolean[] = [];
        const answerOnly = this.answerMask(batch);
        for (let r = 0; r < b; r++) {
          let good = true;
          for (let i = promptLens ? promptLens[r]! - 1 : 0; i < t; i++) {
            if (!answerOnly[r * t + i]) continue;
            if (pred[r * t + i] !== tgt[r * t + i]) good = false;
          }
          ok.push(good);
        }
        return ok;
      }) as unknown as boolean[];
    } finally {
      tf.dispose(batch.tensors);
    }
  }

  /** Target positions that belong to the answer (not to image codes). */
  private answerMask(batch: VlmBatch): Uint8Array {
    const tgt = batch.targets.dataSync();
    const [b, t] = batch.targets.shape;
    const m = new Uint8Array(b * t);
    const vq = this.vq?.vocab;
    for (let i = 0; i < b * t; i++) {
      const v = tgt[i]!;
      if (v === IGNORE) continue;
      if (vq && ((v >= vq.codeOffset && v < vq.codeOffset + vq.codebookSize) || v === vq.eoiId || v === vq.eolId)) continue;
      m[i] = 1;
    }
    return m;
  }

  /** Greedy answer text for one sample (streams tokens to onToken if given). */
  answer(sample: QASample, opts: { maxNewTokens?: number; onToken?: (text: string) => void } = {}): string {
    const batch = this.encode([sample], { withAnswer: false });
    try {
      const prompt = batch.ids[0]!;
      // Host ids in, host stage per step: the model derives token types (a connector marks its placeholders),
      // positions and routing itself, so decoding reads back only the logits of the last position.
      const res = generate(this.model, prompt, {
        maxNewTokens: opts.maxNewTokens ?? 8,
        greedy: true,
        eosTokenId: this.eosId,
        inputs: { media: batch.inputs.media },
        onToken: opts.onToken ? (tok) => opts.onToken!(tok === this.eosId ? '' : this.tokenizer.decode([tok])) : undefined,
      });
      const toks = res.newTokens[0]!.filter((x) => x !== this.eosId);
      return this.tokenizer.decode(toks).trim();
    } finally {
      tf.dispose(batch.tensors);
    }
  }

  /**
   * Type D: samples an image. The LM continues `<bos> <boi>` with code tokens (VqTokenMixin allows only
   * codes, then <eoi>), and the VQ decoder turns the codes into pixels. Seeded: same seed, same image.
   */
  generateImage(opts: { seed?: number | string; temperature?: number; topK?: number } = {}): { image: RgbImage; tokens: number[] } {
    const vq = this.vq;
    if (!vq) fail(`generateImage: a type ${this.type} model has no image tokens (only type D generates images)`);
    const prompt = [specialId(this.tokenizer, '<bos>'), vq.vocab.boiId];
    const res = generate(this.model, prompt, {
      maxNewTokens: this.imageTokens + 1, seed: opts.seed ?? 0, temperature: opts.temperature ?? 1, topK: opts.topK,
    });
    const tokens = res.newTokens[0]!;
    const g = this.imageSize / vq.vae.factor;
    const px = tokensToImages(vq.vae, [vq.vocab.boiId, ...tokens], vq.vocab, [g, g]);
    try {
      return { image: fromFloatCHW(px.dataSync(), this.imageSize, this.imageSize, CLIP_MEAN, CLIP_STD), tokens };
    } finally {
      px.dispose();
    }
  }

  dispose(): void {
    this.model.dispose();
    this.vq?.vae.dispose();
  }
}
