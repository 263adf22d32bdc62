// The training recipe as a library: batches encoded once per step outside the gradient tape, one
// preset registry, trainVlm/evaluate/loadRun.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { createModel, getPreset, listPresets, unregisterPreset } from '@vlmix/core';
import { Trainer, epochPermutation } from '@vlmix/train';
import {
  buildTypeC, createVlm, encodedBatches, evaluate, getVlmPreset, listVlmPresets, loadRun, registerVlmPreset, shapesSplit, trainVlm,
  SMALL_PRESETS, VLM_PRESETS, ZOO_PRESETS, type VlmBatch,
} from '../src/index.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('encoded batches', () => {
  it('each micro-batch is encoded once, outside the gradient tape, and freed after its step', () => {
    const vlm = createVlm('typeB-tiny', { seed: 0 });
    const data = shapesSplit({ seed: 1, trainSize: 16, heldOutSize: 0 });
    const source = encodedBatches(vlm, data.train, 4);
    const encode = vlm.encode.bind(vlm);
    const calls: boolean[] = [];
    const engine = tf.engine() as unknown as { state: { activeTape: unknown } };
    vlm.encode = (samples, opts) => {
      calls.push(engine.state.activeTape != null);
      return encode(samples, opts);
    };
    let losses = 0;
    const trainer = new Trainer<VlmBatch>({
      model: vlm.model, data: source, steps: 3, gradAccumSteps: 2, log: 'silent',
      lossFn: (b) => {
        expect(engine.state.activeTape).not.toBeNull(); // the loss does run on the tape
        losses++;
        return vlm.loss(b);
      },
      tokens: (b) => b.tokens,
    });
    trainer.trainStep();
    const before = tf.memory().numTensors;
    const rec = trainer.trainStep();
    expect(tf.memory().numTensors).toBe(before);
    trainer.trainStep();
    expect(calls).toEqual(new Array(6).fill(false)); // 3 steps x 2 micro-batches, none inside the tape
    expect(losses).toBe(6);
    // tokens/s counts the tokens of the batches actually drawn (prompt + answer, no padding): step 2
    // drew items 2 and 3 of epoch 0's permutation.
    const perm = epochPermutation('0', 0, source.length);
    const tokensOf = (i: number) => vlm.tokenCount(data.train.slice(4 * i, 4 * i + 4));
    expect(rec.tokens).toBe(tokensOf(perm[2]!) + tokensOf(perm[3]!));
    const drawn = [0, 1, 2, 3].map((i) => source.get(i));
    expect(drawn.map((b) => b.tokens)).toEqual([0, 1, 2, 3].map(tokensOf));
    drawn.forEach((b) => source.dispose!(b));
    trainer.dispose();
    vlm.dispose();
  });
});

describe('one preset registry', () => {
  it('fusion presets live in core\'s registry; a registered one is found everywhere', () => {
    const names = listPresets().map((p) => p.name);
    for (const p of VLM_PRESETS) expect(names).toContain(p.name);
    // built-in presets first, then the zoo's (registered on import), in registration order
    expect(listVlmPresets().map((p) => p.name)).toEqual([...VLM_PRESETS, ...ZOO_PRESETS, ...SMALL_PRESETS].map((p) => p.name));
    expect(() => getVlmPreset('gpt2-tiny')).toThrow(/'gpt2-tiny' is a language-model preset, not a fusion preset; fusion presets: typeA-tiny, /);
    expect(() => getVlmPreset('nope')).toThrow(/unknown fusion preset 'nope'; available: typeA-tiny/);
    registerVlmPreset({ name: 'test-linear-c', description: 'type C with a linear projector', build: (t, o) => buildTypeC(t, { ...o, connector: 'linear' }) });
    try {
      expect(listVlmPresets().map((p) => p.name)).toContain('test-linear-c');
      expect(getPreset('test-linear-c').description).toBe('type C with a linear projector');
      const m = createModel('test-linear-c', { seed: 0 });
      expect(m.mixinNames()).toContain('projector');
      m.dispose();
      expect(() => registerVlmPreset({ name: 'test-linear-c', description: '', build: () => null as never })).toThrow(/already registered/);
    } finally {
      unregisterPreset('test-linear-c');
    }
    expect(listVlmPresets().map((p) => p.name)).not.toContain('test-linear-c');
  });
});

describe('trainVlm / evaluate / loadRun', () => {
  it('evaluate says when nothing was evaluated; trainVlm returns accuracy null for heldOutSize 0', async () => {
    const vlm = createVlm('lm-tiny', { seed: 0 });
    expect(evaluate(vlm, [])).toEqual({ accuracy: null, byKind: {}, count: 0 });
    vlm.dispose();
    const r = await trainVlm('lm-tiny', { steps: 1, trainSize: 8, heldOutSize: 0, batchSize: 8, log: 'silent' });
    expect([r.accuracy, r.evaluated]).toEqual([null, 0]);
  });

  it('type D checkpoints right after its tokenizer pre-training; a run stopped there resumes bit-exactly without redoing it', async () => {
    const opts = { steps: 3, vqSteps: 3, trainSize: 16, heldOutSize: 4, batchSize: 8, log: 'silent' as const };
    const straight = await trainVlm('typeD-tiny', opts);
    const dir = mkdtempSync(join(tmpdir(), 'vlmix-run-d-'));
    dirs.push(dir);
    const stopped = await trainVlm('typeD-tiny', { ...opts, outDir: dir, signal: AbortSignal.abort() });
    expect([stopped.interrupted, stopped.steps, stopped.lastCheckpoint?.step, stopped.accuracy]).toEqual([true, 0, 0, null]);
    expect(stopped.vqSeconds).toBeGreaterThan(0);
    const resumed = await trainVlm('typeD-tiny', { ...opts, outDir: dir, resume: true });
    expect(resumed.vqSeconds).toBeUndefined(); // not pre-trained again: the VQ weights came from the checkpoint
    expect([resumed.resumedFrom, resumed.steps]).toEqual([0, 3]);
    expect(resumed.lossCurve).toEqual(straight.lossCurve);
    expect(resumed.accuracy).toBe(straight.accuracy);
  });

  it('option errors name the option (or its label); loadRun rebuilds what trainVlm saved', async () => {
    await expect(trainVlm('lm-tiny', { steps: 0 })).rejects.toThrow('steps: expected a positive integer, got 0');
    await expect(trainVlm('lm-tiny', { steps: 1, lr: Infinity, labels: { lr: '--lr' } })).rejects.toThrow('--lr: expected a positive finite number, got "Infinity"');
    await expect(trainVlm('lm-tiny', { steps: 1, resume: true })).rejects.toThrow('resume needs outDir (the run directory)');
    const dir = mkdtempSync(join(tmpdir(), 'vlmix-run-'));
    dirs.push(dir);
    const r = await trainVlm('typeC-tiny', { steps: 2, outDir: dir, trainSize: 16, heldOutSize: 4, batchSize: 8, log: 'silent' });
    expect(r.lastCheckpoint?.step).toBe(2);
    const vlm = await loadRun(dir);
    const ref = createVlm('typeC-tiny', { seed: 0 });
    expect(vlm.model.params.names()).toEqual(ref.model.params.names());
    // The weights are the trained ones, not the fresh init.
    const name = 'projector.mlp.0.weight';
    const has = vlm.model.params.has(name) ? name : vlm.model.params.names().find((n) => n.startsWith('projector'))!;
    expect(Array.from(vlm.model.param(has).dataSync())).not.toEqual(Array.from(ref.model.param(has).dataSync()));
    const items = shapesSplit({ seed: 0, trainSize: 16, heldOutSize: 4 }).heldOut;
    expect(evaluate(vlm, items).count).toBe(4);
    vlm.dispose();
    ref.dispose();
  });
});
