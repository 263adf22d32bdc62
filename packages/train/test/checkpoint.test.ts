import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import type { Model } from '@vlmix/core';
import {
  Trainer, TrainingDivergedError, checkpointWeights, loadCheckpoint, readMetrics, warmupCosine,
  type LossFn, type TrainerOptions,
} from '../src/index.js';
import { copyData, copyLoss, tinyModel, type CopyBatch } from './helpers.js';
import { tempDirs } from './temp-dirs.js';

const tmp = tempDirs('vlmix-ckpt-');

/** A loss that also uses the trainer's RNG (random token dropout), so RNG state must resume too. */
const noisyLoss: LossFn<CopyBatch> = (batch, ctx) => {
  const labels = batch.labels.map((row) => row.map((t) => (t !== -100 && ctx.rng.next() < 0.2 ? -100 : t)));
  return (ctx.model as Model).loss({ inputIds: batch.ids }, tf.tensor2d(labels, undefined, 'int32'), { ignoreIndex: -100 });
};

type Opts = Partial<TrainerOptions<CopyBatch, Model>>;
// 5 items: epochs wrap mid-run, so resume must land inside a later epoch's permutation.
const baseOpts = (model: Model, extra: Opts): TrainerOptions<CopyBatch, Model> => ({
  model, data: copyData(5, 4), lossFn: noisyLoss, steps: 6, seed: 'resume', log: 'silent',
  optimizer: { lr: 5e-3, weightDecay: 0.1 }, schedule: warmupCosine({ lr: 5e-3, warmupSteps: 2, totalSteps: 6, minLr: 1e-4 }),
  ...extra,
});

async function straightVsResumed(extra: Opts, dropout = 0) {
  const m1 = tinyModel(0, dropout);
  const t1 = new Trainer(baseOpts(m1, extra));
  const straight = (await t1.train()).history;
  const w1 = m1.params.list().map((p) => Array.from(p.variable.dataSync()));
  t1.dispose();
  m1.dispose();

  const out = tmp();
  const m2 = tinyModel(0, dropout);
  // passes run before training must not shift the masks: the trainer seeds each step's dropout itself
  if (dropout) tf.tidy(() => { m2.forward({ inputIds: [[2, 3]] }, { training: true }); });
  const t2 = new Trainer(baseOpts(m2, { ...extra, steps: 3, outDir: out }));
  await t2.train(); // saves at the end (step 3)
  t2.dispose();
  m2.dispose();

  // A fresh model (different init) and trainer: everything must come from the checkpoint.
  const m3 = tinyModel(99, dropout);
  const t3 = new Trainer(baseOpts(m3, { ...extra, outDir: out }));
  const state = await t3.resume(out);
  expect(state.step).toBe(3);
  const resumed = (await t3.train()).history;
  const w3 = m3.params.list().map((p) => Array.from(p.variable.dataSync()));
  t3.dispose();
  m3.dispose();
  return { straight, resumed, w1, w3, out };
}

describe('checkpoint resume', () => {
  it('a resumed run reproduces the uninterrupted loss curve bit for bit', async () => {
    const { straight, resumed, w1, w3, out } = await straightVsResumed({});
    expect(resumed).toHaveLength(6);
    expect(resumed.map((r) => r.loss)).toEqual(straight.map((r) => r.loss));
    expect(resumed.map((r) => r.gradNorm)).toEqual(straight.map((r) => r.gradNorm));
    expect(resumed.map((r) => r.lr)).toEqual(straight.map((r) => r.lr));
    expect(w3).toEqual(w1);
    // Metrics file: steps 1..6 once each (the resumed run appends after step 3).
    expect(readMetrics(join(out, 'metrics.jsonl')).map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('also with gradient accumulation 2 and clipping', async () => {
    const { straight, resumed, w1, w3 } = await straightVsResumed({ gradAccumSteps: 2, clipNorm: 0.5 });
    expect(resumed.map((r) => r.loss)).toEqual(straight.map((r) => r.loss));
    expect(straight.some((r) => r.gradNorm > 0.5)).toBe(true); // clipping was active
    expect(w3).toEqual(w1);
  });

  it('with dropout on (attention, residual, embedding): masks are seeded per step, so resume is still exact', async () => {
    const { straight, resumed, w1, w3 } = await straightVsResumed({ gradAccumSteps: 2 }, 0.2);
    expect(resumed.map((r) => r.loss)).toEqual(straight.map((r) => r.loss));
    expect(w3).toEqual(w1);
    // and dropout really acts: the same run without it gives other losses
    const plain = await straightVsResumed({ gradAccumSteps: 2 }, 0);
    expect(plain.straight.map((r) => r.loss)).not.toEqual(straight.map((r) => r.loss));
  });

  it('refuses a checkpoint from a different seed or data source', async () => {
    const out = tmp();
    const m = tinyModel();
    const t = new Trainer(baseOpts(m, { steps: 1, outDir: out }));
    await t.train();
    t.dispose();
    const other = new Trainer(baseOpts(m, { seed: 'other' }));
    await expect(other.resume(out)).rejects.toThrow(/seed/);
    other.dispose();
    const short = new Trainer(baseOpts(m, { data: copyData(3, 4) }));
    await expect(short.resume(out)).rejects.toThrow(/had 5 items, this one has 3/);
    short.dispose();
    m.dispose();
  });
});

describe('checkpoint files', () => {
  it('layout: state.json + the last 2 step-numbered sets with their states, no temp files, older sets removed', async () => {
    const out = tmp();
    const m = tinyModel();
    const t = new Trainer(baseOpts(m, { steps: 6, checkpointEvery: 2, outDir: out }));
    await t.train();
    const dir = join(out, 'checkpoint');
    expect(readdirSync(dir).sort()).toEqual([
      'model-00000004.safetensors', 'model-00000006.safetensors', 'optimizer-00000004.safetensors', 'optimizer-00000006.safetensors',
      'state-00000004.json', 'state-00000006.json', 'state.json',
    ]);
    expect(readFileSync(join(dir, 'state.json'), 'utf8')).toBe(readFileSync(join(dir, 'state-00000006.json'), 'utf8'));
    const ck = await loadCheckpoint(out);
    expect(ck.warnings).toEqual([]);
    expect(ck.state.step).toBe(6);
    expect(ck.state.kept).toEqual([6, 4]);
    expect(ck.state.sha256.model).toBe(createHash('sha256').update(readFileSync(join(dir, 'model-00000006.safetensors'))).digest('hex'));
    expect(ck.state.schedule).toEqual({ kind: 'warmupCosine', lr: 5e-3, warmupSteps: 2, totalSteps: 6, minLr: 1e-4 });
    expect(ck.state.metrics).toHaveLength(6);
    expect(ck.state.data.epoch).toBe(1);
    expect(ck.state.data.index).toBe(1);
    expect(ck.model.names().sort()).toEqual(m.params.names().sort());
    expect(ck.optimizer.names()).toHaveLength(2 * m.params.trainable().length);
    expect(ck.model.get('transformer.word_embeddings.weight').dtype).toBe('F32');
    t.dispose();
    m.dispose();
  });

  it('a crash mid-save leaves the previous checkpoint valid', async () => {
    const out = tmp();
    const dir = join(out, 'checkpoint');
    const m = tinyModel();
    const t = new Trainer(baseOpts(m, { steps: 2, outDir: out }));
    await t.train();
    const before = readFileSync(join(dir, 'state.json'), 'utf8');
    const weightsBefore = readFileSync(join(dir, 'model-00000002.safetensors'));
    t.trainStep();
    for (const stage of ['model', 'optimizer'] as const) {
      await expect(t.save(dir, { onStage: (s) => { if (s === stage) throw new Error('simulated crash'); } })).rejects.toThrow(/simulated crash/);
      expect(readFileSync(join(dir, 'state.json'), 'utf8')).toBe(before);
      const ck = await loadCheckpoint(dir);
      expect(ck.state.step).toBe(2);
      expect(readFileSync(join(dir, 'model-00000002.safetensors')).equals(weightsBefore)).toBe(true);
    }
    // Debris a killed process could leave: a torn temp file of state.json and a torn tensor file.
    writeFileSync(join(dir, '.state.json.123.abc.def.tmp'), '{"format": "vlmix-tr');
    writeFileSync(join(dir, 'model-00000009.safetensors'), Buffer.from([1, 2, 3]));
    const ck = await loadCheckpoint(dir);
    expect(ck.state.step).toBe(2);
    // The previous checkpoint still loads into a fresh model.
    const fresh = tinyModel(5);
    const w = checkpointWeights(ck);
    fresh.loadStateDict(w);
    for (const x of w.values()) x.dispose();
    fresh.dispose();
    // The next successful save cleans everything up (and keeps step 2 as the fallback).
    await t.save(dir);
    expect(readdirSync(dir).sort()).toEqual([
      'model-00000002.safetensors', 'model-00000003.safetensors', 'optimizer-00000002.safetensors', 'optimizer-00000003.safetensors',
      'state-00000002.json', 'state-00000003.json', 'state.json',
    ]);
    expect((await loadCheckpoint(dir)).state.step).toBe(3);
    t.dispose();
    m.dispose();
  });

  it('NaN loss stops training with a clear error; the last good checkpoint stays intact and loadable', async () => {
    const out = tmp();
    const m = tinyModel();
    const lossFn: LossFn<CopyBatch> = (b, ctx) => {
      const loss = copyLoss(b, ctx) as tf.Scalar;
      return ctx.step === 3 ? (tf.mul(loss, NaN) as tf.Scalar) : loss;
    };
    const t = new Trainer(baseOpts(m, { lossFn, steps: 6, checkpointEvery: 1, outDir: out }));
    const err = await t.train().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrainingDivergedError);
    const d = err as TrainingDivergedError;
    expect(d.step).toBe(4);
    expect(d.quantity).toBe('loss');
    expect(Number.isNaN(d.value)).toBe(true);
    expect(d.message).toContain('training diverged at step 4: loss is NaN');
    expect(d.message).toContain('last good checkpoint (step 3)');
    const dir = join(out, 'checkpoint');
    expect(readdirSync(dir).sort()).toEqual([
      'model-00000002.safetensors', 'model-00000003.safetensors', 'optimizer-00000002.safetensors', 'optimizer-00000003.safetensors',
      'state-00000002.json', 'state-00000003.json', 'state.json',
    ]);
    const ck = await loadCheckpoint(out);
    expect(ck.state.step).toBe(3);
    // Loadable: a new trainer resumes from it and continues with a healthy loss.
    const m2 = tinyModel(1);
    const t2 = new Trainer(baseOpts(m2, { steps: 5, outDir: out }));
    await t2.resume(out);
    const { history } = await t2.train();
    expect(history.map((r) => r.step)).toEqual([1, 2, 3, 4, 5]);
    expect(history.every((r) => Number.isFinite(r.loss))).toBe(true);
    expect(existsSync(join(dir, 'model-00000005.safetensors'))).toBe(true);
    t.dispose();
    t2.dispose();
    m.dispose();
    m2.dispose();
  });
});
