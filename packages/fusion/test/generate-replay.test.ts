// Generation over the static KV cache with replayed decoding steps (core generate.ts, capture.ts), for every
// registered recipe: the same tokens as the dynamic cache and as no cache, every decoding step after the two
// recorded ones replayed, and nothing left behind. Type D's image sampling crosses the VQ mask's span classes
// (codes only, then <eoi> only): a replay that kept the first recording's constants would emit a code where
// <eoi> must come.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { decodeReplayStatus, generate, ops, type GenerateOptions } from '@vlmix/core';
import { makeShapesDataset, specialId } from '@vlmix/data';
import { createVlm, listVlmPresets } from '../src/index.js';

const PRESETS = listVlmPresets().map((p) => p.name).filter((n) => !n.endsWith('-small'));
const data = makeShapesDataset({ seed: 5, train: 1, heldOut: 0 });

describe('generation with replayed decoding steps', () => {
  it('every recipe: replayed == dynamic cache == no cache; replaying; no leak', () => {
    const failures: string[] = [];
    for (const name of PRESETS) {
      const vlm = createVlm(name, { seed: 0 });
      const batch = vlm.encode(data.train, { withAnswer: false });
      try {
        const opts = { maxNewTokens: 6, greedy: true, inputs: { media: batch.inputs.media, tokenTypes: batch.inputs.tokenTypes ?? null } };
        const run = (o: Partial<GenerateOptions>) => generate(vlm.model, batch.ids[0]!, { ...opts, ...o }).newTokens;
        const before = tf.memory().numTensors;
        const replayed = run({ cacheImplementation: 'static' });
        const again = run({ cacheImplementation: 'static' });
        expect(tf.memory().numTensors, `${name}: no leak`).toBe(before);
        for (const other of [again, run({ cacheImplementation: 'dynamic' }), run({ useCache: false })]) expect(other, name).toEqual(replayed);
        const status = decodeReplayStatus(vlm.model);
        if (ops.cacheWritesInPlace()) {
          const notReplaying = status.filter((s) => s.state !== 'replaying');
          if (notReplaying.length) failures.push(`${name}: ${notReplaying.map((s) => `${s.state} ${s.reason ?? ''}`).join('; ')}`);
          // 5 decoding steps per call: 2 recorded + 3 replayed, then 5 replayed
          expect(status.reduce((a, s) => a + s.replays, 0), name).toBe(8);
        } else expect(status, name).toEqual([]);
      } finally {
        tf.dispose(batch.tensors);
        vlm.dispose();
      }
    }
    expect(failures).toEqual([]);
  });

  it('type D image sampling: the span classes change mid-generation; replayed == dynamic, ending in <eoi>', () => {
    const vlm = createVlm('typeD-tiny', { seed: 1 });
    try {
      const vq = vlm.vq!;
      // vlm.generateImage's call, with each cache
      const prompt = [specialId(vlm.tokenizer, '<bos>'), vq.vocab.boiId];
      const run = (o: Partial<GenerateOptions>) => generate(vlm.model, prompt, { maxNewTokens: vlm.imageTokens + 1, seed: 3, temperature: 1, ...o }).newTokens[0]!;
      const replayed = run({ cacheImplementation: 'static' });
      expect(run({ cacheImplementation: 'static' })).toEqual(replayed);
      expect(run({ cacheImplementation: 'dynamic' })).toEqual(replayed);
      expect(vlm.generateImage({ seed: 3 }).tokens).toEqual(replayed);
      expect(replayed.length).toBe(vlm.imageTokens + 1);
      expect(replayed[replayed.length - 1]).toBe(vq.vocab.eoiId);
      expect(replayed.slice(0, -1).every((t) => t >= vq.vocab.codeOffset && t < vq.vocab.codeOffset + vq.vocab.codebookSize)).toBe(true);
      if (ops.cacheWritesInPlace()) {
        const states = decodeReplayStatus(vlm.model);
        expect(states.length, 'a signature per span class').toBeGreaterThanOrEqual(2);
        expect(states.some((s) => s.state === 'replaying' && s.replays > 0)).toBe(true);
      }
    } finally {
      vlm.dispose();
    }
  });
});
