import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { ContextLengthError, Mixin, NonFiniteLogitsError, applyRepetitionPenalty, createModel, generate, samplingProbs, type ForwardContext, type HookFn, type HookImpls } from '../src/index.js';
import { countTensorLeak } from '../src/testkit/index.js';

describe('generation', () => {
  const m = createModel('llama-tiny', { seed: 5 });
  const g = createModel('gpt2-tiny', { seed: 5 });

  it('cached and uncached generation give identical tokens (greedy, sampling, beam)', () => {
    for (const model of [m, g]) {
      const opts = { maxNewTokens: 12 };
      const a = generate(model, [3, 1, 4, 1, 5], { ...opts, greedy: true, useCache: true });
      const b = generate(model, [3, 1, 4, 1, 5], { ...opts, greedy: true, useCache: false });
      expect(a.sequences).toEqual(b.sequences);
      expect(a.newTokens[0]!.length).toBe(12);
      const s1 = generate(model, [[3, 1], [2, 7]], { ...opts, temperature: 1.3, topK: 50, topP: 0.9, seed: 11, useCache: true });
      const s2 = generate(model, [[3, 1], [2, 7]], { ...opts, temperature: 1.3, topK: 50, topP: 0.9, seed: 11, useCache: false });
      expect(s1.sequences).toEqual(s2.sequences);
      const b1 = generate(model, [3, 1, 4], { maxNewTokens: 6, numBeams: 3, useCache: true });
      const b2 = generate(model, [3, 1, 4], { maxNewTokens: 6, numBeams: 3, useCache: false });
      expect(b1.sequences).toEqual(b2.sequences);
    }
  });

  it('same seed -> same samples; different seed -> different', () => {
    const a = generate(m, [1, 2], { maxNewTokens: 16, seed: 1 });
    const b = generate(m, [1, 2], { maxNewTokens: 16, seed: 1 });
    const c = generate(m, [1, 2], { maxNewTokens: 16, seed: 2 });
    expect(a.sequences).toEqual(b.sequences);
    expect(a.sequences).not.toEqual(c.sequences);
  });

  it('greedy picks the argmax of the uncached forward at each step', () => {
    const out = generate(m, [5, 6], { maxNewTokens: 3, greedy: true });
    const seq = [5, 6];
    for (let i = 0; i < 3; i++) {
      const logits = m.forward({ inputIds: [seq] }).logits;
      const last = tf.squeeze(tf.slice(logits, [0, seq.length - 1, 0], [1, 1, -1]));
      seq.push(tf.argMax(last).dataSync()[0]!);
    }
    expect(out.sequences[0]).toEqual(seq);
  });

  it('end tokens stop a row; streaming callback sees each token and can stop', () => {
    const first = generate(m, [5, 6], { maxNewTokens: 5, greedy: true }).newTokens[0]!;
    const stopped = generate(m, [5, 6], { maxNewTokens: 5, greedy: true, eosTokenId: first[1] });
    expect(stopped.newTokens[0]).toEqual(first.slice(0, 2));
    expect(stopped.finished).toEqual([true]);
    const seen: number[] = [];
    const r = generate(m, [5, 6], { maxNewTokens: 5, greedy: true, onToken: (t) => { seen.push(t); return seen.length < 3; } });
    expect(seen).toEqual(first.slice(0, 3));
    expect(r.newTokens[0]).toEqual(first.slice(0, 3));
    expect(generate(m, [5, 6], { maxNewTokens: 10, maxLength: 5, greedy: true }).sequences[0]!.length).toBe(5);
  });

  it('top-p on its own keeps the smallest set reaching p; top-k keeps k; temperature sharpens', () => {
    const logits = Float32Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.15), Math.log(0.05)]);
    const p = samplingProbs(logits, { topP: 0.75 });
    expect(Array.from(p).map((x) => +x.toFixed(6))).toEqual([0.625, 0.375, 0, 0]);
    const p2 = samplingProbs(logits, { topP: 0.8 });
    expect(p2[2]).toBe(0);
    expect(p2[0]! + p2[1]!).toBeCloseTo(1, 10);
    const p3 = samplingProbs(logits, { topP: 0.81 });
    expect(p3[2]).toBeGreaterThan(0);
    const k = samplingProbs(logits, { topK: 1 });
    expect(Array.from(k)).toEqual([1, 0, 0, 0]);
    const t = samplingProbs(logits, { temperature: 0.5 });
    expect(t[0]).toBeCloseTo(0.25 / (0.25 + 0.09 + 0.0225 + 0.0025), 6);
  });

  it('repetition penalty follows HF semantics', () => {
    const l = Float32Array.from([2, -2, 1]);
    applyRepetitionPenalty(l, [0, 1, 1], 2);
    expect(Array.from(l)).toEqual([1, -4, 1]);
  });

  it('beam search with one beam equals greedy; more beams score at least as well', () => {
    const greedy = generate(m, [3, 1, 4], { maxNewTokens: 5, greedy: true });
    const one = generate(m, [3, 1, 4], { maxNewTokens: 5, numBeams: 1, greedy: true });
    expect(one.sequences).toEqual(greedy.sequences);
    const logp = (seq: number[]) => tf.tidy(() => {
      const lsm = tf.logSoftmax(m.forward({ inputIds: [seq] }).logits.squeeze([0])).arraySync() as number[][];
      let s = 0;
      for (let i = 3; i < seq.length; i++) s += lsm[i - 1]![seq[i]!]!;
      return s;
    });
    const beam = generate(m, [3, 1, 4], { maxNewTokens: 5, numBeams: 4, lengthPenalty: 0 });
    expect(logp(beam.sequences[0]!)).toBeGreaterThanOrEqual(logp(greedy.sequences[0]!) - 1e-4);
  });

  it('prompts of different lengths: left padding + mask; each row equals its own run (greedy, sampling, beams)', () => {
    const prompts = [[3, 1, 4, 1, 5, 9], [2, 6], [5, 3, 5]];
    for (const model of [m, g]) { // rotary (llama) and learned absolute positions (gpt2)
      for (const useCache of [true, false]) {
        const batched = generate(model, prompts, { maxNewTokens: 5, greedy: true, useCache, padTokenId: 7 });
        prompts.forEach((p, i) => {
          const alone = generate(model, p, { maxNewTokens: 5, greedy: true, useCache });
          expect(batched.sequences[i], `row ${i}`).toEqual(alone.sequences[0]);
          expect(batched.newTokens[i]).toEqual(alone.newTokens[0]);
        });
      }
      // beams: a batch is searched prompt by prompt, each as alone
      const beams = generate(model, prompts, { maxNewTokens: 4, numBeams: 3 });
      prompts.forEach((p, i) => {
        const alone = generate(model, p, { maxNewTokens: 4, numBeams: 3 });
        expect(beams.sequences[i]).toEqual(alone.sequences[0]);
        expect(beams.scores![i]).toBeCloseTo(alone.scores![0]!, 5);
      });
    }
    // sampling: the padded batch is seeded and the padding never leaks into a row's tokens or penalty
    const s1 = generate(m, prompts, { maxNewTokens: 6, temperature: 0.8, seed: 3, repetitionPenalty: 1.3 });
    const s2 = generate(m, prompts, { maxNewTokens: 6, temperature: 0.8, seed: 3, repetitionPenalty: 1.3 });
    expect(s1.sequences).toEqual(s2.sequences);
    s1.sequences.forEach((s, i) => expect(s.slice(0, prompts[i]!.length)).toEqual(prompts[i]));
    expect(countTensorLeak(() => generate(m, prompts, { maxNewTokens: 3, greedy: true }))).toBe(0);
  });

  it('errors and no leaks', () => {
    expect(() => generate(m, [], { maxNewTokens: 2 })).toThrow(/prompt: expected at least one token/);
    expect(() => generate(m, [[1, 2], []], { maxNewTokens: 2 })).toThrow(/prompt: expected at least one token/);
    expect(() => generate(m, [1, 2], { maxNewTokens: 2, numBeams: m.config.vocabSize + 1 })).toThrow(`numBeams: expected at most the vocabulary size (${m.config.vocabSize}), got ${m.config.vocabSize + 1}`);
    expect(() => generate(m, [1], { maxNewTokens: 2, topP: 1.5 })).toThrow(/topP: expected a number in \(0, 1\], got 1.5/);
    expect(countTensorLeak(() => generate(m, [1, 2, 3], { maxNewTokens: 4, useCache: true }))).toBe(0);
    expect(countTensorLeak(() => generate(m, [1, 2, 3], { maxNewTokens: 3, numBeams: 2 }))).toBe(0);
  });

  it('a NaN weight stops generation with an error instead of emitting tokens', () => {
    for (const name of ['llama-tiny', 'gpt2-tiny']) {
      const model = createModel(name, { seed: 1 });
      const w = model.param('transformer.final_layernorm.weight');
      w.assign(tf.tidy(() => tf.concat([tf.tensor1d([NaN]), tf.slice(w, [1], [w.shape[0]! - 1])])));
      const seen: number[] = [];
      for (const opts of [{ greedy: true }, { temperature: 1, seed: 2 }, { numBeams: 2 }]) {
        expect(() => generate(model, [3, 1, 4], { maxNewTokens: 4, ...opts, onToken: (t) => void seen.push(t) }), name).toThrow(NonFiniteLogitsError);
      }
      expect(() => generate(model, [3, 1, 4], { maxNewTokens: 4 })).toThrow(/non-finite logits \(NaN or \+Infinity at 512 of 512 vocabulary positions, row 0\) at generation step 0/);
      expect(seen).toEqual([]);
      model.dispose();
    }
  });

  it('-Infinity logits are masked tokens, not an error (unless every token is masked)', () => {
    class MaskLogits extends Mixin {
      constructor(private readonly allowed: number[]) {
        super();
      }
      hooks(): HookImpls {
        return {
          finalForward: (h: tf.Tensor, ctx: ForwardContext, next: HookFn<'finalForward'>) => {
            const logits = next(h, ctx);
            const v = logits.shape[2]!;
            const bias = new Float32Array(v).fill(-Infinity);
            for (const a of this.allowed) bias[a] = 0;
            return tf.add(logits, tf.tensor1d(bias));
          },
        };
      }
    }
    const model = createModel('llama-tiny', { seed: 1 });
    model.addMixin('mask', new MaskLogits([7, 9]));
    const out = generate(model, [3, 1, 4], { maxNewTokens: 5, temperature: 1, seed: 4 }).newTokens[0]!;
    expect(out).toHaveLength(5);
    expect(out.every((t) => t === 7 || t === 9)).toBe(true);
    model.removeMixin('mask');
    model.addMixin('mask', new MaskLogits([]));
    expect(() => generate(model, [3, 1, 4], { maxNewTokens: 2, greedy: true })).toThrow(/-Infinity at every one of 512 vocabulary positions, row 0\) at generation step 0/);
    model.dispose();
  });

  it('prompt + maxNewTokens past the context fails before the first token (GPT-2 and LLaMA alike)', () => {
    for (const model of [m, g]) {
      const prompt = Array.from({ length: 125 }, (_, i) => 1 + (i % 500));
      const seen: number[] = [];
      const err = (() => {
        try {
          generate(model, prompt, { maxNewTokens: 8, greedy: true, onToken: (t) => void seen.push(t) });
        } catch (e) {
          return e;
        }
        return null;
      })();
      expect(err).toBeInstanceOf(ContextLengthError);
      expect((err as Error).message).toMatch(/the prompt \(125 tokens\) \+ maxNewTokens \(8\) = 133 exceeds the model's context \(config.maxSeqLen 128\); lower maxNewTokens to at most 3/);
      expect(seen).toEqual([]);
      expect(() => generate(model, prompt, { maxNewTokens: 8, numBeams: 2 })).toThrow(ContextLengthError);
      // Exactly filling the context works; maxLength caps the new tokens so the request fits.
      expect(generate(model, prompt, { maxNewTokens: 3, greedy: true }).sequences[0]).toHaveLength(128);
      expect(generate(model, prompt, { maxNewTokens: 8, maxLength: 128, greedy: true }).sequences[0]).toHaveLength(128);
    }
    // Explicitly past the context: RoPE (LLaMA) can, learned positions (GPT-2) cannot.
    const prompt = Array.from({ length: 125 }, (_, i) => 1 + (i % 500));
    expect(generate(m, prompt, { maxNewTokens: 8, greedy: true, allowPastContext: true }).sequences[0]).toHaveLength(133);
    expect(() => generate(g, prompt, { maxNewTokens: 8, greedy: true, allowPastContext: true })).toThrow(ContextLengthError);
  });
});
