// Issue 11 in the library: locks, no accidental overwrite, verified checkpoints with fallback,
// time-based checkpoints, a clean stop on abort, the stored schedule, batches freed by the source.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import type { Model } from '@vlmix/core';
import {
  LOCK_FILE, RunLockedError, Trainer, acquireRunLock, loadCheckpoint, readMetrics, scheduleFromSpec, warmupCosine,
  type DataSource, type TrainerOptions,
} from '../src/index.js';
import { captureStream, copyData, copyLoss, tinyModel, type CopyBatch } from './helpers.js';
import { tempDirs } from './temp-dirs.js';
import { flipBytes, setStateField } from './damage.js';

const tmp = tempDirs('vlmix-safety-');

type Opts = Partial<TrainerOptions<CopyBatch, Model>>;
const opts = (model: Model, extra: Opts): TrainerOptions<CopyBatch, Model> => ({
  model, data: copyData(5, 4), lossFn: copyLoss, steps: 6, seed: 's', log: 'silent', clipNorm: 1,
  optimizer: { lr: 5e-3, weightDecay: 0.1 }, schedule: warmupCosine({ lr: 5e-3, warmupSteps: 2, totalSteps: 6, minLr: 1e-4 }),
  ...extra,
});
const weights = (m: Model) => m.params.list().map((p) => Array.from(p.variable.dataSync()));

/** Losses and final weights of a straight 6-step run. */
async function straight(extra: Opts = {}) {
  const m = tinyModel();
  const t = new Trainer(opts(m, extra));
  const losses = (await t.train()).history.map((r) => r.loss);
  const w = weights(m);
  t.dispose();
  m.dispose();
  return { losses, w };
}

/** Trains `steps` into `out` (checkpoint every step) and stops. */
async function partial(out: string, steps: number, extra: Opts = {}) {
  const m = tinyModel();
  const t = new Trainer(opts(m, { steps, outDir: out, checkpointEvery: 1, ...extra }));
  await t.train();
  t.dispose();
  m.dispose();
}

/** Resumes `out` in a fresh model to 6 steps; returns the metrics-file losses, weights and warnings. */
async function resumeToEnd(out: string, extra: Opts = {}) {
  const m = tinyModel(42);
  const warnings: string[] = [];
  const t = new Trainer(opts(m, { outDir: out, onWarning: (w) => warnings.push(w), ...extra }));
  const state = await t.resume(out);
  await t.train();
  const w = weights(m);
  t.dispose();
  m.dispose();
  return { from: state.step, losses: readMetrics(join(out, 'metrics.jsonl')).map((r) => r.loss), w, warnings };
}

describe('run-directory lock', () => {
  it('a second trainer on the same directory fails naming the holder; released after train()', async () => {
    const out = tmp();
    const lock = acquireRunLock(out, { command: 'vlmix train typeC-tiny' });
    const m = tinyModel();
    const t = new Trainer(opts(m, { outDir: out, steps: 1 }));
    const err = await t.train().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunLockedError);
    expect((err as Error).message).toBe(
      `run directory ${out} is in use by another trainer: pid ${process.pid} (this process) on host ${hostname()}, started ${lock.info.startedAt} (vlmix train typeC-tiny); wait for it to finish or stop it`,
    );
    expect(existsSync(join(out, 'checkpoint'))).toBe(false); // nothing written
    lock.release();
    expect(existsSync(join(out, LOCK_FILE))).toBe(false);
    await t.train();
    expect(existsSync(join(out, LOCK_FILE))).toBe(false);
    expect((await loadCheckpoint(out)).state.step).toBe(1);
    t.dispose();
    m.dispose();
  });

  it('a stale lock (dead pid on this host) is taken over with a warning; another host\'s lock is not', async () => {
    const out = tmp();
    const dead = { pid: 2 ** 22 + 12345, host: hostname(), startedAt: '2026-01-01T00:00:00.000Z', id: 'deadbeef' };
    writeFileSync(join(out, LOCK_FILE), JSON.stringify(dead));
    const m = tinyModel();
    const warnings: string[] = [];
    const t = new Trainer(opts(m, { outDir: out, steps: 1, onWarning: (w) => warnings.push(w) }));
    await t.train();
    expect(warnings).toEqual([`took over the stale lock of pid ${dead.pid} (no longer running) in ${out}`]);
    // Temp files of a lock attempt that died midway go with the next acquisition (a live pid's stay).
    writeFileSync(join(out, `.${LOCK_FILE}.${dead.pid}.abc.tmp`), '{}');
    writeFileSync(join(out, `.${LOCK_FILE}.${process.pid}.abc.tmp`), '{}');
    acquireRunLock(out).release();
    expect(readdirSync(out).filter((f) => f.startsWith('.'))).toEqual([`.${LOCK_FILE}.${process.pid}.abc.tmp`]);
    writeFileSync(join(out, LOCK_FILE), JSON.stringify({ ...dead, pid: process.pid, host: 'elsewhere' }));
    expect(() => acquireRunLock(out)).toThrow(`if it is no longer running on elsewhere, delete ${join(out, LOCK_FILE)}`);
    writeFileSync(join(out, LOCK_FILE), 'garbage');
    expect(() => acquireRunLock(out)).toThrow(`${join(out, LOCK_FILE)}: unreadable lock file`);
    t.dispose();
    m.dispose();
  });
});

describe('no accidental overwrite', () => {
  it('train() in a directory holding a checkpoint refuses unless resumed or overwrite: true', async () => {
    const out = tmp();
    await partial(out, 2);
    const before = readFileSync(join(out, 'checkpoint', 'state.json'), 'utf8');
    const m = tinyModel();
    const t = new Trainer(opts(m, { outDir: out, steps: 3 }));
    await expect(t.train()).rejects.toThrow(`${join(out, 'checkpoint')} already holds a checkpoint; resume it (trainer.resume('${out}')) or pass overwrite: true`);
    expect(readFileSync(join(out, 'checkpoint', 'state.json'), 'utf8')).toBe(before);
    expect(readMetrics(join(out, 'metrics.jsonl'))).toHaveLength(2);
    t.dispose();
    // overwrite: a new run from scratch; the old checkpoints are gone, the result equals a fresh run.
    const t2 = new Trainer(opts(m, { outDir: out, overwrite: true }));
    const res = await t2.train();
    expect(res.history.map((r) => r.loss)).toEqual((await straight()).losses);
    expect((await loadCheckpoint(out)).state.kept).toEqual([6]);
    t2.dispose();
    m.dispose();
  });
});

describe('verified checkpoints', () => {
  it('flipped bytes in the newest model file: resume falls back to the previous checkpoint with a warning, bit-exactly', async () => {
    const ref = await straight();
    const out = tmp();
    await partial(out, 4);
    const dir = join(out, 'checkpoint');
    flipBytes(join(dir, 'model-00000004.safetensors'), 2);
    const r = await resumeToEnd(out);
    expect(r.from).toBe(3);
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toMatch(new RegExp(`^checkpoint step 4 in ${dir} failed verification: model-00000004.safetensors: SHA-256 mismatch \\(state records [0-9a-f]{12}…, the file hashes to [0-9a-f]{12}…\\): the file is damaged; loaded the checkpoint of step 3 instead$`));
    expect(r.losses).toEqual(ref.losses);
    expect(r.w).toEqual(ref.w);
    // The damaged checkpoint was dropped by the next save.
    expect(readdirSync(dir).filter((f) => f.includes('00000004'))).toEqual([]);
  });

  it('damaged optimizer file, relabelled dtype, wrong step: each fails verification by name', async () => {
    const out = tmp();
    await partial(out, 2, { keepCheckpoints: 1 });
    const dir = join(out, 'checkpoint');
    const opt = join(dir, 'optimizer-00000002.safetensors');
    const good = readFileSync(opt);
    flipBytes(opt, 1, 0.9);
    await expect(loadCheckpoint(out)).rejects.toThrow(`checkpoint step 2 in ${dir}: optimizer-00000002.safetensors: SHA-256 mismatch`);
    writeFileSync(opt, good);
    // An F32 tensor relabelled I32 with a recomputed checksum: the dtype check catches it.
    const model = join(dir, 'model-00000002.safetensors');
    const bytes = readFileSync(model);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = bytes.subarray(8, 8 + n).toString('utf8');
    const relabelled = Buffer.concat([bytes.subarray(0, 8), Buffer.from(header.replace('"F32"', '"I32"')), bytes.subarray(8 + n)]);
    writeFileSync(model, relabelled);
    for (const f of ['state.json', 'state-00000002.json']) setStateField(join(dir, f), ['sha256', 'model'], relabelled);
    await expect(loadCheckpoint(out)).rejects.toThrow(/model-00000002\.safetensors: tensor '.*' has dtype I32; checkpoints store F32 only/);
  });

  it('state.json without files, metrics: null or broken: falls back to the per-step state, or fails naming file and field', async () => {
    const out = tmp();
    await partial(out, 3);
    const dir = join(out, 'checkpoint');
    const state = join(dir, 'state.json');
    const text = readFileSync(state, 'utf8');
    for (const [field, value, msg] of [
      ['files', undefined, `field 'files' should be {model, optimizer} file names, got nothing (missing)`],
      ['metrics', null, `field 'metrics' should be an array of step records, got null`],
    ] as const) {
      setStateField(state, [field], value);
      const ck = await loadCheckpoint(out);
      expect(ck.state.step).toBe(3); // state-00000003.json is intact
      expect(ck.warnings).toEqual([`checkpoint ${state}: ${msg}; reading the per-step state files instead`]);
      writeFileSync(state, text);
    }
    // No intact per-step state left: a clear error naming each file.
    writeFileSync(state, text.slice(0, 100));
    for (const s of [3, 2]) setStateField(join(dir, `state-0000000${s}.json`), ['files'], undefined);
    await expect(loadCheckpoint(out)).rejects.toThrow(
      `no checkpoint in ${dir} passed verification: checkpoint ${state}: invalid JSON`,
    );
    await expect(loadCheckpoint(out)).rejects.toThrow(`checkpoint step 2 in ${dir} failed verification: checkpoint ${join(dir, 'state-00000002.json')}: field 'files' should be`);
  });

  it('a version-1 checkpoint (no checksums, one kept) still loads, with a warning that it is unverified', async () => {
    const out = tmp();
    await partial(out, 2, { keepCheckpoints: 1 });
    const state = join(out, 'checkpoint', 'state.json');
    for (const f of ['sha256', 'kept', 'schedule']) setStateField(state, [f], undefined);
    setStateField(state, ['version'], 1);
    const ck = await loadCheckpoint(out);
    expect(ck.state.step).toBe(2);
    expect(ck.warnings).toEqual([`checkpoint ${state} is format version 1: it has no checksums, so it was loaded unverified`]);
  });

  it('keepCheckpoints K keeps the K newest; all damaged: an error naming each, nothing resumed', async () => {
    const out = tmp();
    await partial(out, 5, { keepCheckpoints: 3 });
    const dir = join(out, 'checkpoint');
    expect((await loadCheckpoint(out)).state.kept).toEqual([5, 4, 3]);
    expect(readdirSync(dir).filter((f) => f.startsWith('model-'))).toEqual(['model-00000003.safetensors', 'model-00000004.safetensors', 'model-00000005.safetensors']);
    for (const s of [3, 4, 5]) flipBytes(join(dir, `model-0000000${s}.safetensors`), 1);
    const m = tinyModel();
    const t = new Trainer(opts(m, { outDir: out }));
    const err = (await t.resume(out).catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/^no checkpoint in .* passed verification: checkpoint step 5 .* SHA-256 mismatch.*; checkpoint step 4 .*; checkpoint step 3 .*SHA-256 mismatch/);
    expect(t.step).toBe(0);
    t.dispose();
    m.dispose();
  });
});

describe('checkpoint timing', () => {
  it('checkpointEverySeconds checkpoints by (injected) clock, and the result does not depend on it', async () => {
    const ref = await straight();
    const out = tmp();
    const m = tinyModel();
    let clock = 0;
    const t = new Trainer(opts(m, {
      outDir: out, keepCheckpoints: 10, checkpointEverySeconds: 150, now: () => clock, onStep: () => void (clock += 70_000),
      logStream: captureStream(), log: 'plain',
    }));
    const res = await t.train();
    expect(res.history.map((r) => r.loss)).toEqual(ref.losses);
    // 70 s per step: 210 s at step 3 and 6 (the end), so checkpoints at 3 and 6.
    expect((await loadCheckpoint(out)).state.kept).toEqual([6, 3]);
    t.dispose();
    m.dispose();
  });

  it('validates the new options', () => {
    const m = tinyModel();
    expect(() => new Trainer(opts(m, { outDir: 'x', keepCheckpoints: 0 }))).toThrow('Trainer: keepCheckpoints must be a positive integer, got 0');
    expect(() => new Trainer(opts(m, { outDir: 'x', checkpointEverySeconds: Infinity }))).toThrow('checkpointEverySeconds must be a positive number or false, got Infinity');
    m.dispose();
  });
});

describe('abort signal', () => {
  it('stops after the current step, checkpoints it, and a resumed run is bit-exact', async () => {
    const ref = await straight();
    const out = tmp();
    const m = tinyModel();
    const ac = new AbortController();
    const t = new Trainer(opts(m, { outDir: out, signal: ac.signal, onStep: (r) => (r.step === 3 ? ac.abort('SIGINT') : undefined) }));
    const res = await t.train();
    expect(res.interrupted).toBe(true);
    expect(res.step).toBe(3);
    expect(res.lastCheckpoint?.step).toBe(3);
    expect(existsSync(join(out, LOCK_FILE))).toBe(false);
    t.dispose();
    m.dispose();
    const r = await resumeToEnd(out);
    expect(r.from).toBe(3);
    expect(r.losses).toEqual(ref.losses);
    expect(r.w).toEqual(ref.w);
  });

  it('an abort after the last step is not an interruption; an abort before the first writes step 0', async () => {
    const m = tinyModel();
    const ac = new AbortController();
    const t = new Trainer(opts(m, { steps: 2, signal: ac.signal, onStep: (r) => (r.step === 2 ? ac.abort() : undefined) }));
    expect((await t.train()).interrupted).toBe(false);
    t.dispose();
    const out = tmp();
    const t2 = new Trainer(opts(m, { outDir: out, signal: AbortSignal.abort() }));
    const r2 = await t2.train();
    expect([r2.interrupted, r2.step, r2.lastCheckpoint?.step]).toEqual([true, 0, 0]);
    t2.dispose();
    m.dispose();
  });
});

describe('the learning-rate schedule is part of the checkpoint', () => {
  it('refuses a checkpoint past steps or with another schedule; scheduleFromSpec continues and then holds the final lr', async () => {
    const ref = await straight();
    const out = tmp();
    await partial(out, 4);
    const m = tinyModel();
    const short = new Trainer(opts(m, { outDir: out, steps: 3 }));
    await expect(short.resume(out)).rejects.toThrow(`resume: the checkpoint in ${join(out, 'checkpoint')} is at step 4, past this trainer's steps (3); set steps >= 4`);
    short.dispose();
    const other = new Trainer(opts(m, { outDir: out, steps: 8, schedule: warmupCosine({ lr: 5e-3, warmupSteps: 2, totalSteps: 8, minLr: 1e-4 }) }));
    await expect(other.resume(out)).rejects.toThrow(
      "resume: the checkpoint's learning-rate schedule is warmup-cosine (peak lr 0.005, 2 warmup steps, down to 0.0001 at step 6, then held), this trainer's is warmup-cosine (peak lr 0.005, 2 warmup steps, down to 0.0001 at step 8, then held)",
    );
    other.dispose();
    // Extending to 8 steps with the stored schedule: steps 1-6 as the straight run, then the final lr.
    const ck = await loadCheckpoint(out);
    const ext = new Trainer(opts(m, { outDir: out, steps: 8, schedule: scheduleFromSpec(ck.state.schedule!) }));
    await ext.resume(ck);
    const res = await ext.train();
    expect(res.history.slice(0, 6).map((r) => r.loss)).toEqual(ref.losses);
    expect(res.history.slice(6).map((r) => r.lr)).toEqual([1e-4, 1e-4]);
    ext.dispose();
    m.dispose();
  });
});

describe('data sources that own tensors', () => {
  it('dispose(batch) is called once per batch, also when the loss throws; no tensor is left', async () => {
    const base = copyData(4, 4);
    let live = 0;
    const src: DataSource<{ ids: tf.Tensor2D; labels: tf.Tensor2D }> = {
      length: base.length,
      get: (i) => {
        live++;
        const b = base.get(i);
        return { ids: tf.tensor2d(b.ids, undefined, 'int32'), labels: tf.tensor2d(b.labels, undefined, 'int32') };
      },
      dispose: (b) => {
        live--;
        tf.dispose([b.ids, b.labels]);
      },
    };
    const m = tinyModel();
    let fail = false;
    const t = new Trainer({
      model: m, data: src, steps: 3, log: 'silent', gradAccumSteps: 2,
      lossFn: (b, { model }) => {
        if (fail) throw new Error('boom');
        return (model as Model).loss({ inputIds: b.ids }, b.labels, { ignoreIndex: -100 });
      },
    });
    t.trainStep();
    const before = tf.memory().numTensors;
    t.trainStep();
    expect(tf.memory().numTensors).toBe(before);
    expect(live).toBe(0);
    fail = true;
    expect(() => t.trainStep()).toThrow('boom');
    expect(live).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
    t.dispose();
    m.dispose();
  });
});
