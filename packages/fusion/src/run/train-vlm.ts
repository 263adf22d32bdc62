/**
 * The training recipe of a fusion preset, as the CLI's `vlmix train` and `vlmix demo` run it: build the
 * model, (type D) pre-train its image tokenizer, train with AdamW + warmup-cosine on encoded batches,
 * checkpoint (by steps and by time, the last K kept), and measure held-out exact-match accuracy.
 *
 * With `outDir` the run directory is locked for the whole call, never overwritten without `overwrite`,
 * and a `resume` continues exactly: the seed, data and batch size must match the checkpoint's, and the
 * learning-rate schedule is the one stored in it (a larger `steps` holds its final lr; see
 * docs/training.md). vlmix-run.json is written only once everything has been validated.
 */
import { fail } from '@vlmix/core';
import { DecodePool, defaultDecodeWorkers, loadSharp, type ImageDecoder, type QAKind } from '@vlmix/data';
import {
  Trainer, acquireRunLock, describeSchedule, hasCheckpoint, loadCheckpoint, scheduleFromSpec,
  type DataParallelGroup, type LoadedCheckpoint, type LogMode, type ProgressStream, type ScheduleSpec, type StepRecord,
} from '@vlmix/train';
import { join } from 'node:path';
import type { RecipeOptions } from '../common.js';
import { buildVlm, getVlmPreset, type VlmPreset } from '../presets.js';
import type { Vlm, VlmBatch } from '../vlm.js';
import { pretrainImageTokenizerAsync } from '../vq-pretrain.js';
import { TRAIN_VLM_DEFAULTS, encodedBatches, folderSplit, shapesSplit, type QASplit } from './data.js';
import { evaluate } from './evaluate.js';
import { readRunMeta, removeRunFiles, runDirEntries, writeRunMeta, type RunMeta } from './run-dir.js';

/** Where trainVlm is: the CLI handles Ctrl-C gracefully only during 'train' (nothing to save before). */
export type TrainVlmPhase = 'prepare' | 'tokenizer' | 'train' | 'evaluate';

export interface TrainVlmOptions {
  /** Optimizer steps in total (with resume: continue up to this). */
  steps: number;
  /** Seed of data, weights and order (default 0). */
  seed?: number;
  batchSize?: number;
  /** Peak learning rate; default the preset's (VlmPreset.lr), else 1e-3. On resume: the checkpoint's. */
  lr?: number;
  /** Run directory: checkpoint/, metrics.jsonl, vlmix-run.json. */
  outDir?: string;
  /** Continue the run in outDir. */
  resume?: boolean;
  /** Start over in a non-empty outDir, removing the previous run's checkpoint/, metrics.jsonl and vlmix-run.json. */
  overwrite?: boolean;
  /** Train on an images/ + labels/ folder (CogVLM-SFT-311K format) instead of the synthetic set. */
  dataDir?: string;
  /** With dataDir: a record that cannot be read stops the run ('error', default) or is skipped with a warning ('skip'). */
  onBadRecord?: 'error' | 'skip';
  /**
   * With dataDir: worker threads that decode and resize the next batches' images while a step computes
   * (default: cores - 1, at least 1); 0 decodes on the main thread when a batch is drawn. Batches are the
   * same either way.
   */
  decodeWorkers?: number;
  /**
   * With dataDir: 'auto' (default: sharp when it is installed and decodeWorkers >= 1, else js), 'js'
   * (vlmix's decoders: the same pixels on every machine, bit-identical with and without workers) or 'sharp'
   * (libvips, measured ~5x the JS decode per worker; JPEG pixels within 3/255 of the JS decode, PNG
   * identical; needs decodeWorkers >= 1 and the optional sharp package). Batches not announced ahead,
   * held-out evaluation and type D's tokenizer pre-training decode with 'js'.
   */
  imageDecoder?: ImageDecoder | 'auto';
  /** Recompute each layer in the backward pass instead of keeping its activations (Model.setGradientCheckpointing). */
  gradientCheckpointing?: boolean;
  trainSize?: number;
  /** Held-out items (with dataDir: records); 0 = no held-out evaluation (accuracy null). */
  heldOutSize?: number;
  kinds?: QAKind[];
  /** Recipe overrides (vision tower, LM size, LoRA, freezing, M-RoPE). On resume: the run's. */
  recipe?: RecipeOptions;
  /** Held-out accuracy every N steps (logged, and in metrics.jsonl as eval_accuracy, eval_<kind>). */
  evalEvery?: number;
  /** Type D: tokenizer pre-training steps. */
  vqSteps?: number;
  /** A checkpoint every N steps (default max(50, steps / 4)). */
  checkpointEvery?: number;
  /** And one every N seconds of training (default 300; false: off). */
  checkpointEverySeconds?: number | false;
  /** Checkpoints kept (default 2). */
  keepCheckpoints?: number;
  /** Stop cleanly: finish the step, checkpoint, return interrupted: true. */
  signal?: AbortSignal;
  onPhase?: (phase: TrainVlmPhase) => void;
  /** Recorded in the run lock, so a second trainer's error names what holds the directory. */
  lockCommand?: string;
  log?: LogMode;
  logStream?: ProgressStream;
  onStep?: (r: StepRecord) => void;
  /** After each checkpoint written (and once for the checkpoint a resume starts from). */
  onCheckpoint?: (c: { step: number; dir: string }) => void;
  /** Checkpoint fallbacks, schedule notes, skipped items (default: stderr). */
  onWarning?: (message: string) => void;
  /**
   * Replay the recorded forward and backward pass of each batch shape instead of running the model code
   * (Trainer's captureSteps): the same results bit for bit, less time per step on small models. Default true;
   * a step that cannot be replayed runs eagerly with a warning.
   */
  captureSteps?: boolean;
  /**
   * Data-parallel training over processes (`new DataParallel()` of @vlmix/distributed, under mpirun): every
   * rank builds the same model and data, trains on its shard of each global batch of `batchSize` samples
   * (numpy array_split rows; ranks weighted by their target tokens, so the loss and gradient are those of
   * the whole global batch), and rank 0 alone writes the run directory. The run directory must be readable by every rank (one machine, or a shared file system).
   */
  distributed?: DataParallelGroup;
  /** How errors name the options (the CLI passes its flags: { batchSize: '--batch-size', ... }). */
  labels?: Partial<Record<keyof TrainVlmOptions, string>>;
}

export interface TrainVlmResult {
  preset: string;
  type: string;
  /** Optimizer steps done in total. */
  steps: number;
  /** Peak learning rate used. */
  lr: number;
  schedule: ScheduleSpec;
  loss: number;
  /** Held-out exact-match accuracy; null when nothing was evaluated (heldOutSize 0, or interrupted). */
  accuracy: number | null;
  accuracyByKind: Record<string, number>;
  /** Held-out items evaluated. */
  evaluated: number;
  stepMs: number;
  tokensPerSec: number;
  params: number;
  trainableParams: number;
  trainSeconds: number;
  /** Forward and backward passes replayed from a recording (captureSteps) rather than run eagerly. */
  replayedSteps: number;
  lossCurve: { step: number; loss: number }[];
  vqSeconds?: number;
  /** The signal stopped the run early; lastCheckpoint holds it. */
  interrupted: boolean;
  lastCheckpoint: { step: number; dir: string } | null;
  /** The checkpoint step the run continued from (resume). */
  resumedFrom: number | null;
}

type Label = (k: keyof TrainVlmOptions) => string;

function validate(o: TrainVlmOptions, L: Label): void {
  const posInt = (k: keyof TrainVlmOptions, min = 1) => {
    const v = o[k];
    if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < min)) {
      fail(`${L(k)}: expected ${min === 1 ? 'a positive integer' : `an integer >= ${min}`}, got ${JSON.stringify(v)}`);
    }
  };
  if (typeof o.steps !== 'number' || !Number.isInteger(o.steps) || o.steps < 1) fail(`${L('steps')}: expected a positive integer, got ${JSON.stringify(o.steps)}`);
  for (const k of ['batchSize', 'trainSize', 'evalEvery', 'checkpointEvery', 'keepCheckpoints'] as const) posInt(k);
  for (const k of ['heldOutSize', 'vqSteps'] as const) posInt(k, 0);
  if (o.seed !== undefined && !Number.isInteger(o.seed)) fail(`${L('seed')}: expected an integer, got ${JSON.stringify(o.seed)}`);
  if (o.lr !== undefined && !(typeof o.lr === 'number' && o.lr > 0 && o.lr < Infinity)) fail(`${L('lr')}: expected a positive finite number, got ${JSON.stringify(String(o.lr))}`);
  const secs = o.checkpointEverySeconds;
  if (secs !== undefined && secs !== false && !(secs > 0 && secs < Infinity)) fail(`${L('checkpointEverySeconds')}: expected a positive number of seconds, got ${JSON.stringify(secs)}`);
  if ((o.resume || o.overwrite) && !o.outDir) fail(`${L(o.resume ? 'resume' : 'overwrite')} needs ${L('outDir')} (the run directory)`);
  if (o.resume && o.overwrite) fail(`${L('resume')} and ${L('overwrite')} exclude each other: continue the run, or replace it`);
  if (o.evalEvery && o.heldOutSize === 0) fail(`${L('evalEvery')} needs held-out items, but ${L('heldOutSize')} is 0`);
}

/** What a resume continues from, after checking it matches the request. */
interface Prior {
  meta: RunMeta;
  ckpt: LoadedCheckpoint;
  schedule: ScheduleSpec;
}

/** The settings a run records in its checkpoint; a resume must match them (the data would differ). */
interface RunSettings {
  preset: string;
  seed: number;
  batchSize: number;
  trainSize?: number;
  heldOutSize?: number;
  dataDir?: string;
  kinds?: QAKind[];
}

async function checkResume(o: TrainVlmOptions, preset: VlmPreset, want: RunSettings, L: Label, warn: (m: string) => void): Promise<Prior> {
  const dir = o.outDir!;
  const ckDir = join(dir, 'checkpoint');
  if (!hasCheckpoint(ckDir)) fail(`${L('resume')}: no checkpoint in ${ckDir} to resume from`);
  const meta = await readRunMeta(dir);
  if (meta.preset !== preset.name) fail(`${L('resume')}: the run in ${dir} is preset '${meta.preset}', not '${preset.name}'; pass '${meta.preset}' to resume it`);
  if (o.recipe !== undefined && JSON.stringify(o.recipe) !== JSON.stringify(meta.recipe ?? {})) {
    fail(`${L('recipe')} ${JSON.stringify(o.recipe)} differs from the run's ${JSON.stringify(meta.recipe ?? {})} (in ${join(dir, 'vlmix-run.json')}); omit it when resuming`);
  }
  const ckpt = await loadCheckpoint(ckDir);
  for (const w of ckpt.warnings) warn(w);
  const { state } = ckpt;
  if (state.step > o.steps) fail(`${L('steps')} ${o.steps} is below the checkpoint's step ${state.step} in ${ckDir}; pass ${L('steps')} ${state.step} or more to continue the run`);
  const had = (state.config.user ?? {}) as Partial<RunSettings>;
  const flag: Record<keyof RunSettings, keyof TrainVlmOptions> = { preset: 'resume', seed: 'seed', batchSize: 'batchSize', trainSize: 'trainSize', heldOutSize: 'heldOutSize', dataDir: 'dataDir', kinds: 'kinds' };
  for (const k of Object.keys(flag) as (keyof RunSettings)[]) {
    if (!(k in had) || JSON.stringify(had[k]) === JSON.stringify(want[k])) continue;
    fail(`${L(flag[k])} ${JSON.stringify(want[k] ?? null)} differs from the run's ${JSON.stringify(had[k] ?? null)} (recorded in ${ckDir}); ` +
      'a resumed run must see the same data: pass the original value');
  }
  // The schedule: stored since checkpoint version 2; version 1 runs used the rule below with their steps.
  const cfg = state.config as { steps?: number; optimizer?: { lr?: number } };
  const peak = cfg.optimizer?.lr ?? state.optimizer.lr;
  const schedule = state.schedule ?? defaultSchedule(peak, cfg.steps ?? o.steps);
  if (o.lr !== undefined && o.lr !== peakLr(schedule)) {
    fail(`${L('lr')} ${o.lr} differs from the run's peak lr ${peakLr(schedule)} (stored in its checkpoint); omit ${L('lr')} when resuming`);
  }
  if (schedule.kind === 'warmupCosine' && o.steps !== schedule.totalSteps) {
    warn(o.steps > schedule.totalSteps
      ? `extending the run from ${schedule.totalSteps} to ${o.steps} steps: the learning-rate schedule stays the run's, ${describeSchedule(schedule)}; steps ${schedule.totalSteps + 1}-${o.steps} run at its final lr ${schedule.minLr}`
      : `stopping at step ${o.steps} of the run's ${schedule.totalSteps}-step schedule (${describeSchedule(schedule)}), before it reaches its final lr`);
  }
  return { meta, ckpt, schedule };
}

const peakLr = (s: ScheduleSpec) => s.lr;

/** nanoGPT-style warmup-cosine over the run: warmup min(50, steps/10), down to a tenth of the peak. */
export function defaultSchedule(lr: number, steps: number): ScheduleSpec {
  return { kind: 'warmupCosine', lr, warmupSteps: Math.min(50, Math.ceil(steps / 10)), totalSteps: steps, minLr: lr / 10 };
}

function describeDir(dir: string, entries: string[]): string {
  const ck = join(dir, 'checkpoint');
  return hasCheckpoint(ck) ? `it holds a run with a checkpoint` : `it holds ${entries.slice(0, 4).join(', ')}${entries.length > 4 ? ', ...' : ''}`;
}

/**
 * Trains a fusion preset (a registered name or a VlmPreset) on the synthetic visual-QA set or a folder.
 * See TrainVlmOptions; errors name the option (or its label).
 */
export async function trainVlm(preset: string | VlmPreset, o: TrainVlmOptions): Promise<TrainVlmResult> {
  const L: Label = (k) => o.labels?.[k] ?? k;
  validate(o, L);
  const p = typeof preset === 'string' ? getVlmPreset(preset) : preset;
  const warn = o.onWarning ?? ((m: string) => void process.stderr.write(`warning: ${m}\n`));
  const seed = o.seed ?? 0;
  const bs = o.batchSize ?? TRAIN_VLM_DEFAULTS.batchSize;
  const settings: RunSettings = {
    preset: p.name, seed, batchSize: bs,
    ...(o.dataDir ? { dataDir: o.dataDir } : { trainSize: o.trainSize ?? TRAIN_VLM_DEFAULTS.trainSize }),
    heldOutSize: o.heldOutSize ?? (o.dataDir ? undefined : TRAIN_VLM_DEFAULTS.heldOutSize),
    ...(o.kinds ? { kinds: o.kinds } : {}),
  };
  o.onPhase?.('prepare');
  const dist = o.distributed && o.distributed.size > 1 ? o.distributed : null;
  const root = !dist || dist.rank === 0;
  // fn on rank 0 only, after every rank got here (a barrier; a failure there throws on every rank)
  const onRoot = async (what: string, fn: () => Promise<unknown>) => {
    if (dist) await dist.runOnRoot(what, fn);
    else await fn();
  };
  const lock = o.outDir && root ? acquireRunLock(o.outDir, { command: o.lockCommand, onStale: (h) => warn(`took over the stale lock of pid ${h.pid} (no longer running) in ${o.outDir}`) }) : null;
  let vlm: Vlm | null = null;
  let trainer: Trainer<VlmBatch> | null = null;
  let pool: DecodePool | null = null;
  try {
    let prior: Prior | null = null;
    if (o.outDir && o.resume) prior = await checkResume(o, p, settings, L, warn);
    else if (o.outDir && !o.overwrite) {
      const entries = runDirEntries(o.outDir);
      if (entries.length) fail(`${L('outDir')} ${o.outDir} is not empty (${describeDir(o.outDir, entries)}); pass ${L('resume')} to continue that run or ${L('overwrite')} to replace it`);
    }
    const recipe = prior ? prior.meta.recipe : o.recipe;
    vlm = buildVlm(p, { ...recipe, seed });
    if (o.gradientCheckpointing) vlm.model.setGradientCheckpointing(true);
    const data: QASplit = o.dataDir ? await folderSplit(o.dataDir, vlm, o.heldOutSize, warn, o.onBadRecord) : shapesSplit({ seed, trainSize: settings.trainSize, heldOutSize: settings.heldOutSize, kinds: o.kinds, imageSize: vlm.anyResolution ? undefined : vlm.imageSize });
    // With a group every rank draws the same global batch and encodes only its shard of the rows.
    const shard = dist ? dist.shard(bs) : null;
    const workers = o.dataDir ? (o.decodeWorkers ?? defaultDecodeWorkers()) : 0;
    if (!Number.isInteger(workers) || workers < 0) fail(`${L('decodeWorkers')} must be an integer >= 0, got ${workers}`);
    const asked = o.imageDecoder ?? 'auto';
    if (asked !== 'js' && asked !== 'sharp' && asked !== 'auto') fail(`${L('imageDecoder')}: expected auto, js or sharp, got ${JSON.stringify(asked)}`);
    const decoder: ImageDecoder = asked === 'auto' ? (workers > 0 && (await loadSharp()) ? 'sharp' : 'js') : asked;
    if (decoder === 'sharp' && workers === 0) fail(`${L('imageDecoder')} sharp decodes on the worker threads: ${L('decodeWorkers')} must be >= 1`);
    if (decoder === 'sharp' && !(await loadSharp())) fail(`${L('imageDecoder')} sharp: the sharp package is not installed (an optional dependency of @vlmix/data)`);
    if (workers > 0) pool = new DecodePool({ workers });
    const source = encodedBatches(vlm, data.train, bs, shard ?? undefined, pool ?? undefined, decoder);
    if (source.length < 1) fail(`${L('batchSize')} ${bs} exceeds the training set (${data.train.length} samples)`);
    if (o.evalEvery && data.heldOut.length === 0) fail(`${L('evalEvery')} needs held-out items, but there are none`);
    const spec = prior?.schedule ?? defaultSchedule(o.lr ?? p.lr ?? TRAIN_VLM_DEFAULTS.lr, o.steps);
    const lr = peakLr(spec);
    const lossCurve: { step: number; loss: number }[] = [];
    const heldOut = data.heldOut;
    const v = vlm;
    trainer = new Trainer<VlmBatch>({
      model: v.model,
      data: source,
      // The batch arrives encoded (outside the gradient tape): the loss only runs the model.
      lossFn: (batch) => v.loss(batch),
      tokens: (batch) => batch.tokens,
      steps: o.steps,
      seed,
      clipNorm: 1,
      optimizer: { lr, weightDecay: 0.01, beta2: 0.99 },
      schedule: scheduleFromSpec(spec),
      outDir: o.outDir,
      lock: lock ?? false,
      signal: o.signal,
      onWarning: warn,
      captureSteps: o.captureSteps ?? true,
      evalEvery: o.evalEvery,
      evalFn: o.evalEvery ? () => {
        const ev = evaluate(v, heldOut);
        return { accuracy: ev.accuracy ?? NaN, ...ev.byKind };
      } : undefined,
      checkpointEvery: o.outDir ? (o.checkpointEvery ?? Math.max(50, Math.floor(o.steps / 4))) : undefined,
      checkpointEverySeconds: o.checkpointEverySeconds,
      keepCheckpoints: o.keepCheckpoints,
      log: o.log ?? 'auto',
      logStream: o.logStream,
      config: { ...settings },
      onStep: (r) => {
        lossCurve.push({ step: r.step, loss: r.loss });
        o.onStep?.(r);
      },
      onCheckpoint: o.onCheckpoint,
      // The loss is a mean over target tokens: ranks are weighted by theirs.
      ...(dist ? { distributed: dist, lossWeight: (b: VlmBatch) => b.lossTokens } : {}),
    });
    let vqSeconds: number | undefined;
    if (prior) {
      await trainer.resume(prior.ckpt);
      o.onCheckpoint?.({ step: prior.ckpt.state.step, dir: prior.ckpt.dir });
    }
    else {
      // Every rank has checked the directory before rank 0 changes it.
      if (o.outDir && o.overwrite) await onRoot('clear the run directory', () => removeRunFiles(o.outDir!));
      if (v.vq) {
        o.onPhase?.('tokenizer');
        const t0 = performance.now();
        // a lazy view: folder images are decoded only when the tokenizer's batch draws them
        const train = data.train;
        const vqTotal = o.vqSteps ?? TRAIN_VLM_DEFAULTS.vqSteps;
        // A line every 250 tokenizer steps: this phase can take a while before the first training step.
        const out = o.log === 'silent' ? null : (o.logStream ?? process.stderr);
        const onStep = out ? (s: number, r: { loss: number }) => {
          if ((s + 1) % 250 === 0 || s + 1 === vqTotal) out.write(`image tokenizer ${s + 1}/${vqTotal} | loss ${r.loss.toFixed(4)} | ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
        } : undefined;
        await pretrainImageTokenizerAsync(v, { length: train.length, get: (i: number) => train[i]!.image }, { steps: vqTotal, seed, ...(onStep ? { onStep } : {}) });
        vqSeconds = (performance.now() - t0) / 1000;
      }
      if (o.outDir) {
        const t = trainer;
        await onRoot('write the run metadata', async () => {
          await writeRunMeta(o.outDir!, { preset: p.name, seed, recipe, tokenizer: v.tokenizer.toJSON() });
          // Type D: keep the tokenizer's pre-training even if the run stops before its first checkpoint.
          if (v.vq) await t.save();
        });
      }
    }
    o.onPhase?.('train');
    const t0 = performance.now();
    const res = await trainer.train();
    const trainSeconds = (performance.now() - t0) / 1000;
    const hist = res.history;
    const tail = hist.slice(-Math.max(1, Math.floor(hist.length / 5)));
    const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
    if (!res.interrupted) o.onPhase?.('evaluate');
    const ev = res.interrupted ? { accuracy: null, byKind: {}, count: 0 } : evaluate(v, heldOut);
    const counts = v.model.params.counts();
    return {
      preset: p.name, type: v.type, steps: res.step, lr, schedule: spec,
      loss: hist.length ? hist[hist.length - 1]!.loss : NaN,
      accuracy: ev.accuracy, accuracyByKind: ev.byKind, evaluated: ev.count,
      stepMs: mean(tail.map((r) => r.stepMs)),
      tokensPerSec: mean(tail.map((r) => r.tokensPerSec ?? 0)),
      params: counts.total, trainableParams: counts.trainable,
      trainSeconds, replayedSteps: trainer!.replayStatus().reduce((n, r) => n + r.replays, 0), lossCurve, vqSeconds,
      interrupted: res.interrupted, lastCheckpoint: res.lastCheckpoint, resumedFrom: prior ? prior.ckpt.state.step : null,
    };
  } finally {
    trainer?.dispose();
    vlm?.dispose();
    lock?.release();
    await pool?.close();
  }
}
