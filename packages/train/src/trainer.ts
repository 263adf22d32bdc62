/**
 * The training loop: gradient accumulation, clipping, AdamW, LR schedule, eval, JSONL metrics,
 * progress output and checkpoints that resume bit-exactly; a lock on the run directory, checkpoints
 * by step count and by time, and a clean stop (with a checkpoint) when an AbortSignal fires.
 */
import { readdir, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Rng, StepReplayer, fail, replayedVariableGrads, tensorsIn, variableGrads, type Model, type ReplayStatus, type RngState } from '@vlmix/core';
import {
  DEFAULT_KEEP_CHECKPOINTS, checkpointMoments, checkpointWeights, hasCheckpoint, loadCheckpoint, saveCheckpoint,
  type CheckpointState, type LoadedCheckpoint, type SaveCheckpointOptions,
} from './checkpoint.js';
import { DataStream, type DataSource } from './data.js';
import { anyRank, type DataParallelGroup } from './distributed.js';
import { CheckpointWriteError, TrainingDivergedError } from './errors.js';
import { acquireRunLock, type RunLock } from './lock.js';
import { MetricsWriter } from './metrics.js';
import { AdamW, clipGradNorm, constantLr, describeSchedule, globalGradNorm, sameSchedule, type AdamWOptions, type LrSchedule } from './optim.js';
import { Progress, type LogMode, type ProgressStream } from './progress.js';

/** Default time between checkpoints when outDir is set: a crash never costs more than this. */
export const DEFAULT_CHECKPOINT_SECONDS = 300;

/** FNV-1a of the run's seed string: where its dropout seeds start. */
function seedHash(seed: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 0x01000193) >>> 0;
  return h % 2 ** 30;
}

/** What the trainer needs of a model. */
export type TrainableModel = Pick<Model, 'params' | 'stateDict' | 'loadStateDict'>;

export interface LossContext<M extends TrainableModel = TrainableModel> {
  training: boolean;
  /** 0-based index of the optimizer step being computed. */
  step: number;
  /** Micro-batch index within the step (0 .. gradAccumSteps-1). */
  micro: number;
  /** The trainer's seeded generator (its state is checkpointed): use it for any training randomness. */
  rng: Rng;
  model: M;
  /**
   * The dropout seed of this micro-batch (a function of the run's seed, the step, the micro-batch and the
   * rank). The trainer also sets it as the model's next pass seed (Model.setDropoutSeed) when the model
   * has that method, so model.forward/loss with training: true need not pass it.
   */
  dropoutSeed: number;
}

export type LossResult = tf.Scalar | { loss: tf.Scalar; metrics?: Record<string, number | tf.Scalar> };
export type LossFn<B, M extends TrainableModel = TrainableModel> = (batch: B, ctx: LossContext<M>) => LossResult;

export interface EvalContext<M extends TrainableModel = TrainableModel> {
  step: number;
  model: M;
}

export interface StepRecord {
  /** 1-based: optimizer steps completed including this one. */
  step: number;
  epoch: number;
  /** Mean over the micro-batches. */
  loss: number;
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  stepMs: number;
  tokens: number | null;
  tokensPerSec: number | null;
  /** Means of the metrics lossFn returned. */
  metrics?: Record<string, number>;
  eval?: Record<string, number>;
}

export interface TrainerOptions<B, M extends TrainableModel = TrainableModel> {
  model: M;
  data: DataSource<B>;
  lossFn: LossFn<B, M>;
  /** Total optimizer steps (a resumed run continues up to this number). */
  steps: number;
  /** Seeds the data order and the trainer's Rng. Default 0. */
  seed?: number | string;
  /** Shuffle the data each epoch (default true). */
  shuffle?: boolean;
  gradAccumSteps?: number;
  /** Max global gradient norm (PyTorch clip_grad_norm_); off when undefined. */
  clipNorm?: number;
  /** AdamW settings; lr (default 1e-3) is the peak lr when no schedule is given. */
  optimizer?: Partial<AdamWOptions>;
  /** LR by 0-based step, or a constant. Default: constant optimizer.lr. */
  schedule?: LrSchedule | number;
  /** Tokens in a batch (for tokens/s). */
  tokens?: (batch: B) => number;
  evalEvery?: number;
  evalFn?: (ctx: EvalContext<M>) => Record<string, number> | Promise<Record<string, number>>;
  /** Without evalFn: evaluate the mean lossFn (training: false) over these batches. */
  evalData?: DataSource<B>;
  /** A checkpoint every N optimizer steps (needs outDir). */
  checkpointEvery?: number;
  /**
   * Also a checkpoint once this many seconds have passed since the last one (default 300 when outDir
   * is set; false disables). Taking a checkpoint never changes the training result.
   */
  checkpointEverySeconds?: number | false;
  /** Checkpoints kept in <outDir>/checkpoint, newest first (default 2): an older one is the fallback when the newest is damaged. */
  keepCheckpoints?: number;
  /** Run directory: checkpoints go to <outDir>/checkpoint, metrics default to <outDir>/metrics.jsonl. */
  outDir?: string;
  /**
   * Start over in an outDir that already holds a checkpoint, deleting it. Default false: train()
   * refuses, so a run is never overwritten by accident (resume() it instead).
   */
  overwrite?: boolean;
  /**
   * The run-directory lock: by default the trainer takes <outDir>/vlmix.lock in resume()/train() and
   * releases it when train() returns; pass a lock you already hold (acquireRunLock), or false for none.
   */
  lock?: RunLock | false;
  /**
   * Stop cleanly: when it fires, the step in progress finishes, a checkpoint is written (with outDir)
   * and train() resolves with interrupted: true. The loop yields to the event loop between steps so
   * signal handlers can run.
   */
  signal?: AbortSignal;
  /**
   * Steps of batches announced ahead to a source with `prefetch` (default 2): it loads them (e.g. decodes
   * images on worker threads) while this step computes, holding at most this many steps of data extra.
   */
  prefetchSteps?: number;
  /** Checkpoint fallbacks and other warnings (default: a line on logStream / stderr). */
  onWarning?: (message: string) => void;
  /** Clock in ms for the time-based checkpoints (tests). Default performance.now. */
  now?: () => number;
  /** JSONL metrics path; false disables. Default <outDir>/metrics.jsonl when outDir is set. */
  metricsFile?: string | false;
  log?: LogMode;
  logEvery?: number;
  logStream?: ProgressStream;
  /** Saved in state.json (e.g. the model config). */
  config?: Record<string, unknown>;
  onStep?: (record: StepRecord) => void;
  /** After each committed checkpoint. */
  onCheckpoint?: (checkpoint: { step: number; dir: string }) => void;
  /**
   * Data-parallel training across processes, e.g. `new DataParallel()` of @vlmix/distributed under mpirun.
   * Every rank runs this loop with the same options and a data source that yields ITS shard of each global
   * batch (same indices, same order on every rank). Parameters start from rank 0's; gradients are averaged
   * over ranks (weighted by shardRows when given) before clipping, so every rank applies the same update;
   * losses, tokens and metrics are global. Rank 0 alone takes the run lock and writes checkpoints and
   * metrics; a stop (signal) or a time-based checkpoint on any rank happens on all after the same step.
   */
  distributed?: DataParallelGroup;
  /**
   * With distributed: what this rank's loss on the batch averages over, a positive integer (its rows, or
   * its target tokens for a token-mean loss). Ranks are weighted by it, so the result is the gradient of
   * the mean over the whole global batch even when shards differ in size. Default: equal weights.
   */
  lossWeight?: (batch: B) => number;
  /**
   * Replay each micro-batch's forward and backward pass instead of running the model code (StepReplayer of
   * @vlmix/core): per shape of the batch's tensors, the first two steps run eagerly and are recorded, the
   * second one is also replayed and must match bit for bit; later steps replay the recording. The results
   * are the eager ones, bit for bit; a step that cannot be replayed (it reads values back, e.g. metrics, or
   * uses dropout) stays eager with a warning. The loss must depend on the batch only through its tensors.
   * Default false.
   */
  captureSteps?: boolean;
}

export interface TrainResult {
  step: number;
  history: StepRecord[];
  lastCheckpoint: { step: number; dir: string } | null;
  /** True when the abort signal stopped training before `steps` (the checkpoint is lastCheckpoint). */
  interrupted: boolean;
}

/** One JSONL line: flat, eval metrics prefixed with `eval_`. */
export function flattenRecord(r: StepRecord): Record<string, number | null> {
  const out: Record<string, number | null> = {
    step: r.step, epoch: r.epoch, loss: r.loss, lr: r.lr, gradNorm: r.gradNorm,
    stepMs: r.stepMs, tokens: r.tokens, tokensPerSec: r.tokensPerSec,
  };
  for (const [k, v] of Object.entries(r.metrics ?? {})) out[k in out ? `train_${k}` : k] = v;
  for (const [k, v] of Object.entries(r.eval ?? {})) out[`eval_${k}`] = v;
  return out;
}

function scalarValue(x: number | tf.Tensor, what: string): number {
  if (typeof x === 'number') return x;
  if (!(x instanceof tf.Tensor) || x.size !== 1) fail(`${what}: expected a number or a one-element tensor`);
  return x.dataSync()[0]!;
}

/** Temp files of writeFileAtomic (`.<name>.<pid>.<time>.<random>.tmp`) left by a killed process; called under the run lock. */
async function removeTempFiles(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const f of names) if (/^\..+\.\d+\.[0-9a-z]+\.[0-9a-f]{12}\.tmp$/.test(f)) await unlink(join(dir, f)).catch(() => {});
}

export class Trainer<B, M extends TrainableModel = TrainableModel> {
  readonly model: M;
  readonly optimizer: AdamW;
  readonly seed: string;
  readonly totalSteps: number;
  readonly gradAccumSteps: number;
  readonly clipNorm: number | undefined;
  readonly schedule: LrSchedule;
  history: StepRecord[] = [];
  lastCheckpoint: { step: number; dir: string } | null = null;
  private readonly opts: TrainerOptions<B, M>;
  private readonly data: DataStream<B>;
  private readonly varList: tf.Variable[];
  private readonly paramOf = new Map<string, string>(); // tf variable name -> parameter name
  private rngImpl: Rng;
  private rngState: RngState;
  private done = 0;
  private resumed = false;
  /** Checkpoints on this run's line of steps, newest first: the ones a save may keep. */
  private chain: number[] = [];
  private ownLock: RunLock | null = null;
  /** The data-parallel group when it has more than one rank. */
  private readonly dist: DataParallelGroup | null;
  private readonly replayer: StepReplayer | null;

  constructor(opts: TrainerOptions<B, M>) {
    this.opts = opts;
    this.model = opts.model;
    this.seed = String(opts.seed ?? 0);
    if (!Number.isInteger(opts.steps) || opts.steps < 0) fail(`Trainer: steps must be an integer >= 0, got ${opts.steps}`);
    this.totalSteps = opts.steps;
    this.gradAccumSteps = opts.gradAccumSteps ?? 1;
    if (!Number.isInteger(this.gradAccumSteps) || this.gradAccumSteps < 1) fail(`Trainer: gradAccumSteps must be an integer >= 1, got ${opts.gradAccumSteps}`);
    if (opts.clipNorm !== undefined && !(opts.clipNorm > 0)) fail(`Trainer: clipNorm must be > 0, got ${opts.clipNorm}`);
    this.clipNorm = opts.clipNorm;
    for (const k of ['evalEvery', 'checkpointEvery', 'keepCheckpoints'] as const) {
      const v = opts[k];
      if (v !== undefined && (!Number.isInteger(v) || v < 1)) fail(`Trainer: ${k} must be a positive integer, got ${v}`);
    }
    const secs = opts.checkpointEverySeconds;
    if (secs !== undefined && secs !== false && !(secs > 0 && secs < Infinity)) fail(`Trainer: checkpointEverySeconds must be a positive number or false, got ${secs}`);
    if (opts.checkpointEvery && !opts.outDir) fail('Trainer: checkpointEvery needs outDir');
    if (opts.lock && opts.outDir && opts.lock.dir !== opts.outDir) fail(`Trainer: lock is for ${opts.lock.dir}, outDir is ${opts.outDir}`);
    const trainable = opts.model.params.trainable();
    if (trainable.length === 0) fail('Trainer: the model has no trainable parameters');
    this.varList = trainable.map((p) => p.variable);
    for (const p of trainable) this.paramOf.set(p.variable.name, p.name);
    const lr = opts.optimizer?.lr ?? (typeof opts.schedule === 'number' ? opts.schedule : 1e-3);
    this.optimizer = new AdamW(trainable.map((p) => ({ name: p.name, variable: p.variable })), { ...opts.optimizer, lr });
    this.schedule = typeof opts.schedule === 'function' ? opts.schedule : constantLr(typeof opts.schedule === 'number' ? opts.schedule : lr);
    this.data = new DataStream(opts.data, this.seed, opts.shuffle ?? true);
    this.rngImpl = new Rng(`${this.seed}/trainer`);
    this.rngState = this.rngImpl.state();
    this.dist = opts.distributed && opts.distributed.size > 1 ? opts.distributed : null;
    this.replayer = opts.captureSteps
      ? new StepReplayer({
        onEager: (reason, sig) => this.warn(`captureSteps: steps with inputs ${sig} run eagerly: ${reason}`),
        // a mixin added or removed between steps: the recordings ran other code
        version: () => (this.model as Partial<Pick<Model, 'revision'>>).revision,
      })
      : null;
    // Every rank starts from rank 0's parameters (frozen ones included: they must agree too).
    this.dist?.broadcastParameters(opts.model.params.list().map((p) => ({ name: p.name, variable: p.variable })));
  }

  /** Rank 0 of a data-parallel group, or a one-process trainer: the one that writes files and prints. */
  get isRoot(): boolean {
    return !this.dist || this.dist.rank === 0;
  }

  /** Optimizer steps completed. */
  get step(): number {
    return this.done;
  }

  get rng(): Rng {
    return this.rngImpl;
  }

  get checkpointDir(): string | null {
    return this.opts.outDir ? join(this.opts.outDir, 'checkpoint') : null;
  }

  private lossContext(step: number, micro: number, training: boolean): LossContext<M> {
    // 16 seeds per micro-batch: a loss that runs several training passes counts up without overlap
    const rank = this.dist?.rank ?? 0;
    const size = this.dist?.size ?? 1;
    const dropoutSeed = (seedHash(this.seed) + ((step * this.gradAccumSteps + micro) * size + rank) * 16) % 2 ** 31;
    if (training) (this.model as Partial<Pick<Model, 'setDropoutSeed'>>).setDropoutSeed?.(dropoutSeed);
    return { training, step, micro, rng: this.rngImpl, model: this.model, dropoutSeed };
  }

  /**
   * Draws gradAccumSteps micro-batches from the data stream and returns the mean loss and the mean
   * gradients by parameter name (the caller disposes them). Applies nothing.
   */
  computeGradients(): { grads: Map<string, tf.Tensor>; loss: number; tokens: number | null; metrics: Record<string, number> } {
    const s = this.done;
    const A = this.gradAccumSteps;
    let sum: Map<string, tf.Tensor> | null = null;
    let lossSum = 0;
    let tokens: number | null = this.opts.tokens ? 0 : null;
    const metricSums: Record<string, number> = {};
    let weight = 0;
    try {
      for (let micro = 0; micro < A; micro++) {
        // The batch is built here, outside the gradient tape, and freed right after its backward pass.
        const batch = this.data.next();
        let out: { value: tf.Scalar; grads: tf.NamedTensorMap };
        try {
          if (tokens !== null) tokens += this.opts.tokens!(batch);
          if (this.dist && this.opts.lossWeight) weight += this.opts.lossWeight(batch);
          const ctx = this.lossContext(s, micro, true);
          const lossOf = () => {
            const r = this.opts.lossFn(batch, ctx);
            const loss = r instanceof tf.Tensor ? r : r.loss;
            if (!(loss instanceof tf.Tensor) || loss.rank !== 0) fail(`lossFn must return a scalar tensor (or {loss, metrics}), got ${loss instanceof tf.Tensor ? `rank ${loss.rank}` : typeof loss}`);
            // Read metric tensors here: the gradient tape's tidy disposes everything but the loss.
            if (!(r instanceof tf.Tensor)) for (const [k, v] of Object.entries(r.metrics ?? {})) metricSums[k] = (metricSums[k] ?? 0) + scalarValue(v, `metric '${k}'`);
            return loss;
          };
          // with captureSteps the batch's tensors are the recorded step's inputs
          out = this.replayer ? replayedVariableGrads(this.replayer, tensorsIn(batch), lossOf, this.varList) : variableGrads(lossOf, this.varList);
        } finally {
          this.opts.data.dispose?.(batch);
        }
        const { value, grads } = out;
        lossSum += value.dataSync()[0]!;
        value.dispose();
        if (!sum) {
          sum = new Map();
          for (const [vn, g] of Object.entries(grads)) sum.set(this.paramOf.get(vn)!, g);
        } else {
          for (const [vn, g] of Object.entries(grads)) {
            const name = this.paramOf.get(vn)!;
            const prev = sum.get(name);
            sum.set(name, prev ? tf.add(prev, g) : g);
            if (prev) {
              prev.dispose();
              g.dispose();
            }
          }
        }
      }
      // Mean over micro-batches: the same update as one batch A times as large (mean loss).
      if (A > 1) {
        for (const [k, g] of sum!) {
          sum!.set(k, tf.div(g, A));
          g.dispose();
        }
      }
    } catch (e) {
      if (sum) for (const g of sum.values()) g.dispose();
      throw e;
    }
    const metrics = Object.fromEntries(Object.entries(metricSums).map(([k, v]) => [k, v / A]));
    const loss = A > 1 ? lossSum / A : lossSum;
    if (!this.dist) return { grads: sum!, loss, tokens, metrics };
    // Data parallel: the global batch's mean gradient, loss and metrics; tokens summed over ranks.
    const d = this.dist;
    const weighted = !!this.opts.lossWeight;
    if (weighted && !(Number.isInteger(weight) && weight >= 1)) fail(`Trainer: lossWeight must give a positive integer per batch, got ${weight} for step ${s + 1}`);
    const total = weighted ? Math.round(d.meanOf(weight) * d.size) : 0;
    let reduced: Map<string, tf.Tensor>;
    try {
      reduced = d.reduceGradients(sum!, weighted ? { rows: weight, totalRows: total } : {});
    } finally {
      for (const g of sum!.values()) g.dispose();
    }
    const w = weighted ? weight : 1;
    return {
      grads: reduced,
      loss: d.meanOf(loss, w),
      tokens: tokens === null ? null : Math.round(d.meanOf(tokens) * d.size),
      metrics: Object.fromEntries(Object.entries(metrics).map(([k, v]) => [k, d.meanOf(v, w)])),
    };
  }

  /** captureSteps: each input signature seen and whether its steps replay (StepReplayer.status). */
  replayStatus(): ReplayStatus[] {
    return this.replayer?.status() ?? [];
  }

  /** Announces the coming batches to an asynchronous source and waits until this step's are loaded. */
  private async loadAhead(): Promise<void> {
    const src = this.data.source;
    if (!src.prefetch && !src.ready) return;
    const ahead = this.opts.prefetchSteps ?? 2;
    if (!Number.isInteger(ahead) || ahead < 0) fail(`Trainer: prefetchSteps must be an integer >= 0, got ${ahead}`);
    const next = this.data.upcoming(this.gradAccumSteps * (1 + ahead));
    src.prefetch?.(next);
    if (src.ready) for (const i of next.slice(0, this.gradAccumSteps)) await src.ready(i);
  }

  /** One optimizer step over gradAccumSteps micro-batches. Synchronous; leaves no tensors behind. */
  trainStep(): StepRecord {
    const t0 = performance.now();
    const s = this.done;
    const lr = this.schedule(s);
    const pos = this.data.position();
    let sum: Map<string, tf.Tensor> | null = null;
    let final: Map<string, tf.Tensor> | null = null;
    try {
      const g = this.computeGradients();
      sum = g.grads;
      if (!Number.isFinite(g.loss)) this.diverged(s + 1, 'loss', g.loss);
      let norm: number;
      if (this.clipNorm !== undefined) {
        const c = clipGradNorm(sum, this.clipNorm);
        norm = c.norm;
        final = c.grads;
      } else {
        norm = globalGradNorm(sum);
        final = sum;
      }
      if (!Number.isFinite(norm)) this.diverged(s + 1, 'gradNorm', norm);
      this.optimizer.step(final, lr);
      this.done = s + 1;
      // Snapshot the RNG after every step (this also drops Rng's cached normal), so the stream does
      // not depend on whether a checkpoint was taken.
      this.rngState = this.rngImpl.state();
      const stepMs = performance.now() - t0;
      const rec: StepRecord = {
        step: s + 1, epoch: pos.epoch, loss: g.loss, lr, gradNorm: norm, stepMs,
        tokens: g.tokens, tokensPerSec: g.tokens !== null && stepMs > 0 ? (g.tokens * 1000) / stepMs : null,
      };
      if (Object.keys(g.metrics).length) rec.metrics = g.metrics;
      this.history.push(rec);
      return rec;
    } catch (e) {
      // Nothing was applied: rewind the data stream and RNG to where the step began.
      this.data.seek(pos.epoch, pos.index);
      this.rngImpl = new Rng(this.seed, this.rngState);
      throw e;
    } finally {
      for (const m of [sum, final]) if (m) for (const t of m.values()) t.dispose();
    }
  }

  private diverged(step: number, quantity: 'loss' | 'gradNorm', value: number): never {
    throw new TrainingDivergedError(step, quantity, value, this.lastCheckpoint);
  }

  /** evalFn's metrics, or the mean lossFn (training: false) over evalData. */
  async evaluate(): Promise<Record<string, number>> {
    if (this.opts.evalFn) return await this.opts.evalFn({ step: this.done, model: this.model });
    const data = this.opts.evalData;
    if (!data) fail('Trainer.evaluate: give evalFn or evalData');
    let total = 0;
    for (let i = 0; i < data.length; i++) {
      const batch = data.get(i);
      try {
        total += tf.tidy(() => {
          // A private RNG, so evaluating never shifts the training stream.
          const ctx = { training: false, step: this.done, micro: 0, rng: new Rng(`${this.seed}/eval/${this.done}/${i}`), model: this.model, dropoutSeed: 0 };
          const r = this.opts.lossFn(batch, ctx);
          return (r instanceof tf.Tensor ? r : r.loss).dataSync()[0]!;
        });
      } finally {
        data.dispose?.(batch);
      }
    }
    return { loss: total / data.length };
  }

  private warn(message: string): void {
    if (this.opts.onWarning) this.opts.onWarning(message);
    else (this.opts.logStream ?? process.stderr).write(`warning: ${message}\n`);
  }

  /** Takes <outDir>/vlmix.lock unless a lock was given or locking is off. */
  private ensureLock(): void {
    const o = this.opts;
    if (!o.outDir || o.lock === false || this.ownLock?.isHeld || !this.isRoot) return;
    if (o.lock) {
      if (!o.lock.isHeld) fail(`Trainer: the lock given for ${o.lock.dir} has been released`);
      return;
    }
    this.ownLock = acquireRunLock(o.outDir, { command: `vlmix Trainer (pid ${process.pid})`, onStale: (h) => this.warn(`took over the stale lock of pid ${h.pid} (no longer running) in ${o.outDir}`) });
  }

  private releaseOwnLock(): void {
    this.ownLock?.release();
    this.ownLock = null;
  }

  /** A fresh run in an outDir that holds a checkpoint: refuse, or with overwrite delete that checkpoint. */
  private async guardFreshRun(): Promise<void> {
    const dir = this.checkpointDir;
    if (!dir || this.resumed || this.done > 0 || this.lastCheckpoint || !hasCheckpoint(dir)) return;
    if (!this.opts.overwrite) {
      fail(`Trainer: ${dir} already holds a checkpoint; resume it (trainer.resume('${this.opts.outDir}')) or pass overwrite: true to start over and delete it`);
    }
    await rm(dir, { recursive: true, force: true });
  }

  /**
   * Trains until `steps` optimizer steps are done (continuing after resume), or until the abort
   * signal fires: then the current step finishes, a checkpoint is written and the result says
   * interrupted: true.
   */
  async train(): Promise<TrainResult> {
    this.ensureLock();
    try {
      await this.onRoot('prepare the run directory', async () => {
        await this.guardFreshRun();
        if (this.opts.outDir) await removeTempFiles(this.opts.outDir);
      });
      return await this.loop();
    } finally {
      this.releaseOwnLock();
    }
  }

  /** fn on rank 0 only (after a barrier; its failure throws on every rank), or here without a group. */
  private async onRoot(what: string, fn: () => Promise<void>): Promise<void> {
    if (this.dist) await this.dist.runOnRoot(what, fn);
    else await fn();
  }

  private async loop(): Promise<TrainResult> {
    const o = this.opts;
    const now = o.now ?? (() => performance.now());
    const everyMs = o.outDir && o.checkpointEverySeconds !== false ? 1000 * (o.checkpointEverySeconds ?? DEFAULT_CHECKPOINT_SECONDS) : Infinity;
    const progress = new Progress({ mode: this.isRoot ? (o.log ?? 'auto') : 'silent', stream: o.logStream, logEvery: o.logEvery });
    const metricsPath = o.metricsFile === false || !this.isRoot ? null : (o.metricsFile ?? (o.outDir ? join(o.outDir, 'metrics.jsonl') : null));
    const metrics = metricsPath ? new MetricsWriter(metricsPath, this.done === 0 ? { truncate: true } : { keepUpToStep: this.done }) : null;
    let lastSave = now();
    let interrupted = false;
    const checkpoint = async (why: string) => {
      await this.onRoot('save checkpoint', () => this.saveOrStop());
      // The other ranks hold the same state: they record the checkpoint rank 0 wrote.
      if (!this.isRoot) this.lastCheckpoint = { step: this.done, dir: this.checkpointDir! };
      lastSave = now();
      progress.log(`checkpoint @ step ${this.done}${why} -> ${this.checkpointDir}`);
    };
    progress.start(this.totalSteps, this.done);
    try {
      // With a group, a stop or a timed checkpoint on any rank is taken by all, after the same step.
      const agree = (stop: boolean, timed: boolean): [boolean, boolean] => {
        if (!this.dist) return [stop, timed];
        const [a, b] = anyRank(this.dist, [stop, timed]);
        return [a!, b!];
      };
      while (this.done < this.totalSteps) {
        if (agree(!!o.signal?.aborted, false)[0]) {
          interrupted = true;
          break;
        }
        await this.loadAhead();
        let rec: StepRecord;
        try {
          rec = this.trainStep();
        } catch (e) {
          if (e instanceof TrainingDivergedError) progress.log(`error: ${e.message}`);
          throw e;
        }
        if ((o.evalFn || o.evalData) && o.evalEvery && rec.step % o.evalEvery === 0) {
          rec.eval = await this.evaluate();
          progress.log(`eval @ step ${rec.step}: ${Object.entries(rec.eval).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')}`);
        }
        metrics?.write(flattenRecord(rec));
        progress.update(rec);
        o.onStep?.(rec);
        // Let signal handlers (and other callbacks) run: a step is synchronous.
        await new Promise((r) => setImmediate(r)); // signal handlers, timers and RPC run between steps
        const [stop, timed] = agree(!!o.signal?.aborted, now() - lastSave >= everyMs);
        if (stop) {
          interrupted = this.done < this.totalSteps;
          break;
        }
        if (o.checkpointEvery && rec.step % o.checkpointEvery === 0) await checkpoint('');
        else if (timed && rec.step < this.totalSteps) await checkpoint(` (${Math.round(everyMs / 1000)} s since the last)`);
      }
      if (o.outDir && this.lastCheckpoint?.step !== this.done) await checkpoint(interrupted ? ' (interrupted)' : '');
    } finally {
      progress.finish();
      metrics?.close();
    }
    return { step: this.done, history: this.history, lastCheckpoint: this.lastCheckpoint, interrupted };
  }

  /** save(), turning a write failure into a CheckpointWriteError that names the last good checkpoint. */
  private async saveOrStop(): Promise<void> {
    const before = this.lastCheckpoint;
    try {
      await this.save();
    } catch (e) {
      throw new CheckpointWriteError(this.done, this.checkpointDir!, e as Error, before);
    }
  }

  private configRecord(): Record<string, unknown> {
    const opt = this.optimizer;
    return {
      seed: this.seed, steps: this.totalSteps, gradAccumSteps: this.gradAccumSteps, clipNorm: this.clipNorm ?? null,
      shuffle: this.data.shuffle, optimizer: { lr: opt.lr, beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps, weightDecay: opt.weightDecay },
      user: this.opts.config ?? {},
      ...(this.dist ? { distributed: this.dist.record() } : {}),
    };
  }

  /** Writes a checkpoint (default <outDir>/checkpoint). */
  async save(dir: string | null = this.checkpointDir, opts: SaveCheckpointOptions = {}): Promise<CheckpointState> {
    if (!dir) fail('Trainer.save: no directory (give one or set outDir)');
    const st = this.optimizer.state();
    const pos = this.data.position();
    const opt = this.optimizer;
    const state = await saveCheckpoint(dir, {
      step: this.done,
      weights: this.model.stateDict() as Map<string, tf.Tensor>,
      optimizer: { m: st.m, v: st.v },
      state: {
        data: { epoch: pos.epoch, index: pos.index, seed: this.seed, length: this.data.source.length },
        rng: this.rngState,
        optimizer: { step: st.step, lr: opt.lr, beta1: opt.beta1, beta2: opt.beta2, eps: opt.eps, weightDecay: opt.weightDecay },
        schedule: this.schedule.spec ?? null,
        config: this.configRecord(),
        metrics: this.history,
      },
    }, { keep: this.opts.keepCheckpoints ?? DEFAULT_KEEP_CHECKPOINTS, ...(dir === this.checkpointDir ? { previous: this.chain } : {}), ...opts });
    if (dir === this.checkpointDir) this.chain = state.kept;
    this.lastCheckpoint = { step: this.done, dir };
    this.opts.onCheckpoint?.(this.lastCheckpoint);
    return state;
  }

  /**
   * Restores weights, optimizer moments and step, data position, RNG and history from a checkpoint
   * (a checkpoint directory, a run directory holding checkpoint/, or an already loaded checkpoint).
   * The newest checkpoint that passes verification is used (warnings say which were skipped and why).
   * Refuses a checkpoint past `steps`, or one made with another seed, data length, shuffle setting or
   * learning-rate schedule (build the trainer with scheduleFromSpec(state.schedule) to continue one).
   */
  async resume(path: string | LoadedCheckpoint): Promise<CheckpointState> {
    this.ensureLock();
    if (this.dist) return this.resumeDistributed(path);
    const ckpt = typeof path === 'string' ? await loadCheckpoint(path) : path;
    if (typeof path === 'string') for (const w of ckpt.warnings) this.warn(w);
    this.checkResumable(ckpt.state, ckpt.dir);
    const n = (ckpt.state.config as { distributed?: { worldSize?: number } }).distributed?.worldSize ?? 1;
    if (n !== 1) {
      fail(`resume: the checkpoint in ${ckpt.dir} was written by a data-parallel run of ${n} processes, this trainer is one process; ` +
        `exact resume needs the same number (relaunch with \`mpirun -np ${n}\` and the distributed option)`);
    }
    const weights = checkpointWeights(ckpt);
    const moments = checkpointMoments(ckpt);
    return this.restore(ckpt.state, ckpt.dir, weights, moments);
  }

  /**
   * resume() in a group: rank 0 reads the checkpoint (the others need no copy of the files) and sends its
   * state, weights and optimizer moments to every rank; a checkpoint of another world size is refused.
   */
  private async resumeDistributed(path: string | LoadedCheckpoint): Promise<CheckpointState> {
    const d = this.dist!;
    let ckpt: LoadedCheckpoint | undefined;
    await d.runOnRoot('load checkpoint', async () => {
      ckpt = typeof path === 'string' ? await loadCheckpoint(path) : path;
      if (typeof path === 'string') for (const w of ckpt.warnings) this.warn(w);
      this.checkResumable(ckpt.state, ckpt.dir);
      d.checkResume((ckpt.state.config as { distributed?: { worldSize?: number } }).distributed);
    });
    const { state, dir } = d.comm.broadcastJson(ckpt ? { state: ckpt.state, dir: ckpt.dir } : null)!;
    const weights = d.broadcastTensors(ckpt ? checkpointWeights(ckpt) : null);
    const mom = ckpt ? checkpointMoments(ckpt) : null;
    try {
      const moments = { m: d.broadcastTensors(mom?.m ?? null), v: d.broadcastTensors(mom?.v ?? null) };
      return this.restore(state, dir, weights, moments);
    } finally {
      if (mom) for (const t of [...mom.m.values(), ...mom.v.values()]) t.dispose();
    }
  }

  private checkResumable(state: CheckpointState, dir: string): void {
    if (state.step > this.totalSteps) {
      fail(`resume: the checkpoint in ${dir} is at step ${state.step}, past this trainer's steps (${this.totalSteps}); set steps >= ${state.step}`);
    }
    if (state.schedule && this.schedule.spec && !sameSchedule(state.schedule, this.schedule.spec)) {
      fail(`resume: the checkpoint's learning-rate schedule is ${describeSchedule(state.schedule)}, this trainer's is ${describeSchedule(this.schedule.spec)}; ` +
        'a resumed run must continue the same schedule (scheduleFromSpec(state.schedule))');
    }
    if (state.data.seed !== this.seed) fail(`resume: checkpoint was trained with seed '${state.data.seed}', this trainer has '${this.seed}' (the data order would differ)`);
    if (state.data.length !== this.data.source.length) fail(`resume: checkpoint's data source had ${state.data.length} items, this one has ${this.data.source.length}`);
    const cfg = state.config as { gradAccumSteps?: number; shuffle?: boolean };
    if (cfg.shuffle !== undefined && cfg.shuffle !== this.data.shuffle) fail(`resume: checkpoint used shuffle=${cfg.shuffle}, this trainer shuffle=${this.data.shuffle}`);
  }

  /** Loads weights, moments, step, data position, RNG and history (and disposes the given tensors). */
  private restore(state: CheckpointState, dir: string, weights: Map<string, tf.Tensor>, moments: { m: Map<string, tf.Tensor>; v: Map<string, tf.Tensor> }): CheckpointState {
    try {
      this.model.loadStateDict(weights, { strict: true });
      this.optimizer.loadState({ step: state.optimizer.step, m: moments.m, v: moments.v });
    } finally {
      for (const t of weights.values()) t.dispose();
      for (const t of [...moments.m.values(), ...moments.v.values()]) t.dispose();
    }
    this.done = state.step;
    this.data.seek(state.data.epoch, state.data.index);
    this.rngImpl = new Rng(this.seed, state.rng);
    this.rngState = this.rngImpl.state();
    this.history = (state.metrics as StepRecord[]).slice(0, state.step);
    this.lastCheckpoint = { step: state.step, dir };
    this.chain = [state.step, ...state.kept.filter((s) => s < state.step)];
    this.resumed = true;
    return state;
  }

  /** Frees the optimizer state and releases the run lock if the trainer took it (the model is the caller's). */
  dispose(): void {
    this.optimizer.dispose();
    this.replayer?.dispose();
    this.releaseOwnLock();
  }
}
