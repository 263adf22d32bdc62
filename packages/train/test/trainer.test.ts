import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Mixin, createModel, type HookImpls, type Model } from '@vlmix/core';
import { assertClose } from '@vlmix/core/testkit';
import { MetricsWriter, Progress, Trainer, TrainingDivergedError, readMetrics, warmupCosine, type DataSource, type LossFn } from '../src/index.js';
import { captureStream, copyData, copyLoss, countTokens, mergedData, tinyModel, type CopyBatch } from './helpers.js';
import { tempDirs } from './temp-dirs.js';

const tmp = tempDirs('vlmix-train-');

describe('Trainer', () => {
  it('learns the copy task: loss decreases over 30 steps', async () => {
    const model = tinyModel();
    const trainer = new Trainer({
      model, data: copyData(64, 16), lossFn: copyLoss, steps: 30, seed: 1, log: 'silent',
      optimizer: { lr: 1e-2, weightDecay: 0.01 }, schedule: warmupCosine({ lr: 1e-2, warmupSteps: 3, totalSteps: 30, minLr: 1e-3 }),
      clipNorm: 1,
    });
    const { history } = await trainer.train();
    expect(history).toHaveLength(30);
    const first = (history[0]!.loss + history[1]!.loss + history[2]!.loss) / 3;
    const last = (history[27]!.loss + history[28]!.loss + history[29]!.loss) / 3;
    expect(first).toBeGreaterThan(Math.log(16) * 0.8);
    expect(last).toBeLessThan(first * 0.8);
    expect(history[0]!.lr).toBe(0); // warmup from 0
    trainer.dispose();
    model.dispose();
  });

  it('trains the gpt2-tiny preset too', async () => {
    const model = createModel('gpt2-tiny');
    const trainer = new Trainer({ model, data: copyData(8, 4), lossFn: copyLoss, steps: 3, log: 'silent', optimizer: { lr: 3e-3 } });
    const { history } = await trainer.train();
    expect(history.map((r) => Number.isFinite(r.loss))).toEqual([true, true, true]);
    trainer.dispose();
    model.dispose();
  });

  it('gradient accumulation 2 x B equals one step with 2B (mean loss)', async () => {
    const src = copyData(2, 8);
    // accum: two micro-batches of 8 (the trainer shuffles [0, 1]); merged: one batch of 16 with both.
    const make = (accum: boolean, model: Model) => new Trainer({
      model, data: accum ? src : mergedData(src, [[0, 1]]), lossFn: copyLoss, steps: 2, log: 'silent',
      gradAccumSteps: accum ? 2 : 1, optimizer: { lr: 1e-2 }, tokens: countTokens,
    });
    // The mean gradients themselves.
    const mA = tinyModel();
    const mB = tinyModel();
    const tA = make(true, mA);
    const tB = make(false, mB);
    const ga = tA.computeGradients();
    const gb = tB.computeGradients();
    tA.dispose();
    tB.dispose();
    expect(Math.abs(ga.loss - gb.loss)).toBeLessThan(1e-5);
    expect(ga.tokens).toBe(gb.tokens);
    expect([...ga.grads.keys()].sort()).toEqual([...gb.grads.keys()].sort());
    for (const [k, g] of ga.grads) assertClose(g, gb.grads.get(k)!, { atol: 1e-5, rtol: 1e-4, name: k });
    for (const t of [...ga.grads.values(), ...gb.grads.values()]) t.dispose();
    // Whole steps: loss and grad norm per step, then the weights.
    const run = async (accum: boolean, model: Model) => {
      const trainer = make(accum, model);
      const { history } = await trainer.train();
      trainer.dispose();
      return history;
    };
    const a = await run(true, mA);
    const b = await run(false, mB);
    for (let i = 0; i < 2; i++) {
      expect(Math.abs(a[i]!.loss - b[i]!.loss)).toBeLessThan(1e-5);
      expect(Math.abs(a[i]!.gradNorm - b[i]!.gradNorm)).toBeLessThan(1e-5 * Math.max(1, b[i]!.gradNorm));
    }
    // Adam divides by sqrt(v): float noise in near-zero gradients moves weights by up to ~lr * noise / |g|,
    // so weights get a looser bound than gradients.
    for (const p of mA.params.list()) assertClose(p.variable, mB.param(p.name), { atol: 1e-4, name: p.name });
    mA.dispose();
    mB.dispose();
  });

  it('leaks no tensors across steps (accumulation and clipping on)', () => {
    const model = tinyModel();
    const trainer = new Trainer({ model, data: copyData(5, 4), lossFn: copyLoss, steps: 10, log: 'silent', gradAccumSteps: 2, clipNorm: 0.5 });
    trainer.trainStep();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 4; i++) trainer.trainStep();
    expect(tf.memory().numTensors).toBe(before);
    trainer.dispose();
    model.dispose();
  });

  it('records loss/lr/gradNorm/tokens/step ms and lossFn metrics; writes JSONL lines', async () => {
    const out = tmp();
    const model = tinyModel();
    const lossFn: LossFn<CopyBatch> = (b, ctx) => {
      const loss = copyLoss(b, ctx) as tf.Scalar;
      return { loss, metrics: { doubled: tf.mul(loss, 2) as tf.Scalar, constant: 7 } };
    };
    const trainer = new Trainer({
      model, data: copyData(4, 4), lossFn, steps: 4, log: 'silent', tokens: countTokens,
      evalEvery: 2, evalData: copyData(2, 4, 4, 'eval'), outDir: out, config: { note: 'hi' },
    });
    await trainer.train();
    const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(4);
    const recs = lines.map((l) => JSON.parse(l) as Record<string, number>);
    for (const [i, r] of recs.entries()) {
      expect(r.step).toBe(i + 1);
      for (const k of ['loss', 'lr', 'gradNorm', 'stepMs', 'tokensPerSec']) expect(typeof r[k], k).toBe('number');
      expect(r.tokens).toBe(4 * 8);
      expect(r.doubled).toBeCloseTo(2 * r.loss!, 5);
      expect(r.constant).toBe(7);
    }
    expect(recs[0]!.eval_loss).toBeUndefined();
    expect(typeof recs[1]!.eval_loss).toBe('number');
    expect(typeof recs[3]!.eval_loss).toBe('number');
    expect(readMetrics(join(out, 'metrics.jsonl'))).toHaveLength(4);
    trainer.dispose();
    model.dispose();
  });

  it('plain log mode prints a line every N steps; tty mode redraws with \\r', async () => {
    const plain = captureStream(false);
    const model = tinyModel();
    const t1 = new Trainer({ model, data: copyData(4, 2), lossFn: copyLoss, steps: 6, log: 'auto', logStream: plain, logEvery: 2, tokens: countTokens });
    await t1.train();
    const lines = plain.text().trim().split('\n');
    expect(lines.map((l) => l.split(' |')[0])).toEqual(['step 1/6', 'step 2/6', 'step 4/6', 'step 6/6']);
    expect(lines[0]).toMatch(/loss \d+\.\d{4} \| lr .* tok\/s \| ETA /);
    expect(plain.text()).not.toContain('\r');
    t1.dispose();

    const tty = captureStream(true);
    const t2 = new Trainer({ model, data: copyData(4, 2), lossFn: copyLoss, steps: 3, log: 'auto', logStream: tty });
    await t2.train();
    expect(tty.text()).toContain('\r[');
    expect(tty.text()).toContain('3/3');
    expect(tty.text().endsWith('\n')).toBe(true);
    t2.dispose();

    const silent = captureStream(false);
    const t3 = new Trainer({ model, data: copyData(4, 2), lossFn: copyLoss, steps: 2, log: 'silent', logStream: silent });
    await t3.train();
    expect(silent.text()).toBe('');
    t3.dispose();
    model.dispose();
  });

  it('stops with TrainingDivergedError on a NaN gradient norm, without applying the step', () => {
    const model = tinyModel();
    const name = 'transformer.layers.0.mlp.dense_h_to_4h.weight';
    const lossFn: LossFn<CopyBatch> = (b, ctx) => {
      const loss = copyLoss(b, ctx) as tf.Scalar;
      if (ctx.step < 1) return loss;
      // Value 0, gradient sqrt'(0) = Inf - Inf = NaN.
      const w = (ctx.model as Model).param(name);
      return tf.add(loss, tf.sum(tf.sqrt(tf.sub(w, w)))) as tf.Scalar;
    };
    const trainer = new Trainer({ model, data: copyData(4, 2), lossFn, steps: 3, log: 'silent' });
    trainer.trainStep();
    const w = Array.from(model.param(name).dataSync());
    let err: unknown;
    try {
      trainer.trainStep();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TrainingDivergedError);
    expect((err as TrainingDivergedError).step).toBe(2);
    expect((err as TrainingDivergedError).quantity).toBe('gradNorm');
    expect((err as Error).message).toMatch(/step 2: gradient norm is NaN/);
    expect(Array.from(model.param(name).dataSync())).toEqual(w);
    expect(trainer.step).toBe(1);
    expect(trainer.optimizer.stepCount).toBe(1);
    trainer.dispose();
    model.dispose();
  });

  it('validates its options', () => {
    const model = tinyModel();
    const base = { model, data: copyData(2, 2), lossFn: copyLoss, steps: 1 };
    expect(() => new Trainer({ ...base, gradAccumSteps: 0 })).toThrow(/gradAccumSteps/);
    expect(() => new Trainer({ ...base, clipNorm: -1 })).toThrow(/clipNorm/);
    expect(() => new Trainer({ ...base, checkpointEvery: 2 })).toThrow(/outDir/);
    expect(() => new Trainer({ ...base, data: { length: 0, get: () => ({ ids: [], labels: [] }) } })).toThrow(/length/);
    const bad = new Trainer({ ...base, log: 'silent', lossFn: () => tf.zeros([2]) as unknown as tf.Scalar });
    expect(() => bad.trainStep()).toThrow(/scalar/);
    bad.dispose();
    model.dispose();
  });
});

describe('MetricsWriter', () => {
  it('appends one parsable line per record; on resume drops lines after the checkpoint step', () => {
    const path = join(tmp(), 'sub', 'm.jsonl');
    const w = new MetricsWriter(path, { truncate: true });
    for (let step = 1; step <= 5; step++) w.write({ step, loss: 1 / step, bad: step === 5 ? NaN : 0 });
    // Flushed per line: readable before close.
    expect(readMetrics(path)).toHaveLength(5);
    expect(readMetrics(path)[4]!.bad).toBe('NaN');
    w.close();
    writeFileSync(path, readFileSync(path, 'utf8') + '{"step": 6, "lo');
    const w2 = new MetricsWriter(path, { keepUpToStep: 3 });
    w2.write({ step: 4, loss: 0.1 });
    w2.close();
    expect(readMetrics(path).map((r) => r.step)).toEqual([1, 2, 3, 4]);
  });
});

describe('Progress', () => {
  it('throttles TTY redraws but always draws the last step, and keeps messages on their own lines', () => {
    const s = captureStream(true);
    let now = 0;
    const p = new Progress({ stream: s, throttleMs: 100, now: () => now });
    p.start(10);
    for (let step = 1; step <= 10; step++) {
      now += 30;
      p.update({ step, loss: 1, tokensPerSec: 2500 });
      if (step === 5) p.log('eval loss 0.5');
    }
    p.finish();
    const draws = s.text().split('\r').filter((x) => x.startsWith('['));
    expect(draws.length).toBeLessThan(10);
    expect(s.text()).toContain('10/10');
    expect(s.text()).toContain('2.5k tok/s');
    expect(s.text()).toContain('eval loss 0.5\n');
  });
});

describe('asynchronous data sources (prefetch / ready)', () => {
  it('DataStream.upcoming lists what next() returns, across epoch ends, without advancing', async () => {
    const { DataStream } = await import('../src/data.js');
    const s = new DataStream(copyData(5, 2), 'up');
    s.next();
    const want = s.upcoming(12);
    expect(s.position()).toEqual({ epoch: 0, index: 1 });
    const t = new DataStream(copyData(5, 2), 'up');
    t.next();
    const got: number[] = [];
    const src = t.source;
    const orig = src.get.bind(src);
    (src as { get: (i: number) => CopyBatch }).get = (i: number) => (got.push(i), orig(i));
    for (let k = 0; k < 12; k++) t.next();
    expect(got).toEqual(want);
  });

  it('the trainer announces each step\'s batches and the next ones, waits for them, and trains as a synchronous source would', async () => {
    const base = copyData(7, 4);
    const announced: number[][] = [];
    const loaded = new Set<number>();
    const source = {
      length: base.length,
      get: (i: number) => {
        if (!loaded.has(i)) throw new Error(`batch ${i} drawn before it was ready`);
        loaded.delete(i);
        return base.get(i);
      },
      prefetch: (idx: readonly number[]) => void announced.push([...idx]),
      ready: (i: number) => new Promise<void>((r) => setTimeout(() => (loaded.add(i), r()), 2)),
    };
    const run = async (data: typeof base) => {
      const m = tinyModel();
      const t = new Trainer({ model: m, data, lossFn: copyLoss, steps: 5, seed: 'pf', log: 'silent', optimizer: { lr: 1e-2 }, gradAccumSteps: 2, prefetchSteps: 1 });
      const h = (await t.train()).history.map((r) => r.loss);
      t.dispose();
      m.dispose();
      return h;
    };
    const asyncLosses = await run(source as typeof base);
    expect(asyncLosses).toEqual(await run(base));
    expect(announced).toHaveLength(5);
    expect(announced.every((a) => a.length === 4)).toBe(true); // 2 micro-batches x (1 + 1 step ahead)
    expect(announced[1]!.slice(0, 2)).toEqual(announced[0]!.slice(2)); // the look-ahead is what comes next
  });
});

describe('Trainer captureSteps (StepReplayer)', () => {
  interface TensorBatch { ids: tf.Tensor2D; labels: tf.Tensor2D }
  const tensorData = (n: number, b: number): DataSource<TensorBatch> => {
    const src = copyData(n, b);
    return {
      length: n,
      get: (i) => { const c = src.get(i) as CopyBatch; return { ids: tf.tensor2d(c.ids, undefined, 'int32'), labels: tf.tensor2d(c.labels, undefined, 'int32') }; },
      dispose: (x) => tf.dispose([x.ids, x.labels]),
    };
  };
  const tensorLoss: LossFn<TensorBatch> = (batch, { model }) => (model as Model).loss({ inputIds: batch.ids }, batch.labels, { ignoreIndex: -100 });
  const run = async <B>(data: DataSource<B>, lossFn: LossFn<B>, captureSteps: boolean) => {
    const model = tinyModel(3);
    const warnings: string[] = [];
    const trainer = new Trainer({ model, data, lossFn, steps: 8, seed: 2, log: 'silent', clipNorm: 1, optimizer: { lr: 1e-2 }, captureSteps, onWarning: (w) => warnings.push(w) });
    const { history } = await trainer.train();
    const status = trainer.replayStatus();
    const weights = model.params.list().map((p) => Array.from(p.variable.dataSync()));
    trainer.dispose();
    model.dispose();
    return { history: history.map((r) => [r.loss, r.gradNorm]), weights, status, warnings };
  };

  it('tensor batches: the same losses, gradient norms and weights, bit for bit, as eager steps', async () => {
    const eager = await run(tensorData(4, 4), tensorLoss, false);
    const captured = await run(tensorData(4, 4), tensorLoss, true);
    expect(captured.history).toEqual(eager.history);
    expect(captured.weights).toEqual(eager.weights);
    expect(captured.status).toHaveLength(1);
    expect(captured.status[0]).toMatchObject({ state: 'replaying', replays: 6 });
    expect(captured.warnings).toEqual([]);
  });

  it('a mixin added between steps: the recordings are dropped, the steps follow the new hook table as eager ones do', async () => {
    // halves the logits from step 4 on (no parameters, no host state: only the hook table changes)
    class Halve extends Mixin {
      hooks(): HookImpls {
        return { finalForward: (h, ctx, next) => tf.mul(next(h, ctx), 0.5) };
      }
    }
    const losses = async (captureSteps: boolean) => {
      const model = tinyModel(3);
      const trainer = new Trainer({ model, data: tensorData(4, 4), lossFn: tensorLoss, steps: 8, seed: 2, log: 'silent', optimizer: { lr: 1e-2 }, captureSteps,
        onStep: (r) => { if (r.step === 4) model.addMixin('halve', new Halve()); } });
      const { history } = await trainer.train();
      trainer.dispose();
      model.dispose();
      return history.map((r) => r.loss);
    };
    const eager = await losses(false);
    expect(await losses(true)).toEqual(eager);
  });

  it('host-built batches (tensors made inside the loss) stay eager with a warning, results unchanged', async () => {
    const eager = await run(copyData(4, 4), copyLoss, false);
    const captured = await run(copyData(4, 4), copyLoss, true);
    expect(captured.history).toEqual(eager.history);
    expect(captured.status[0]!.state).toBe('eager');
    expect(captured.warnings).toHaveLength(1);
    expect(captured.warnings[0]).toMatch(/run eagerly: the step changed between two calls with the same input shapes at operation 1: 'write int32\[4x\d+\]/);
  });
});
