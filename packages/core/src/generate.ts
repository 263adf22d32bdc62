/**
 * Autoregressive generation: greedy, temperature, top-k, top-p, repetition penalty, end tokens, beam
 * search, streaming. Logits are processed in JS on the last position only (small, and exact): that is
 * the one host read per step, and it is also where non-finite logits are caught.
 *
 * The context limit: prompt + maxNewTokens (capped by maxLength) must fit in config.maxSeqLen, checked
 * before the first forward pass (ContextLengthError); there is no sliding window. `allowPastContext`
 * lets a model without learned positions (RoPE) run past it, as HF transformers does, explicitly.
 */
import * as tf from '@tensorflow/tfjs';
import { VlmixError, fail } from './errors.js';
import { StepReplayer, tensorsIn, type ReplayStatus } from './capture.js';
import { KVCache } from './kv-cache.js';
import * as ops from './ops/index.js';
import { hostValuesKey } from './state.js';
import type { ForwardInputs, Model } from './model.js';
import { RotaryMixin } from './positions/rope.js';
import { Rng } from './random.js';

export interface GenerateOptions {
  maxNewTokens: number;
  /** Cap on prompt + generated length. */
  maxLength?: number;
  /** 0 or greedy = argmax. Default 1. */
  temperature?: number;
  greedy?: boolean;
  topK?: number;
  /** Nucleus sampling: keep the smallest set of tokens whose probability mass reaches topP. */
  topP?: number;
  /** HF semantics: a seen token's logit is divided by p if positive, multiplied by p if negative. */
  repetitionPenalty?: number;
  eosTokenId?: number | number[];
  numBeams?: number;
  /** Beam scores are divided by length^lengthPenalty. */
  lengthPenalty?: number;
  seed?: number | string;
  /** Use the KV cache (default true). Cached and uncached generation give the same tokens. */
  useCache?: boolean;
  /**
   * The KV cache's layout (HF's `cache_implementation`): 'static' preallocates positions per row and writes
   * each step into them (KVCache `capacity`: the prompt + 64 rounded up to a multiple of 64, at most prompt +
   * new tokens, doubled when full); 'dynamic' grows by concatenation. Default: 'static' where the backend writes
   * the cache in place (vlmix-cpu), else 'dynamic'. Same tokens either way.
   */
  cacheImplementation?: 'static' | 'dynamic';
  /**
   * With a static cache, record a decoding step once and replay its kernels for the next ones (capture.ts:
   * checked bit for bit against the eager step when recorded; a step that cannot be replayed runs eagerly).
   * Default true; only where the backend writes the cache in place (vlmix-cpu), else the steps run eagerly.
   * The recordings are kept per model across calls.
   */
  replaySteps?: boolean;
  /** Streaming: called for each new token of each unfinished row; return false to stop. */
  onToken?: (token: number, row: number, step: number) => void | boolean;
  /**
   * Run past config.maxSeqLen where the model can (rotary or no position embeddings; never learned
   * ones). Default false: a request that does not fit fails before the first token.
   */
  allowPastContext?: boolean;
  /**
   * Prompts of different lengths are left-padded with this id (default 0); the padding is masked out of
   * attention and positions count from each row's first real token (as HF with an attention mask).
   */
  padTokenId?: number;
  /** Extra inputs (media, tokenTypes for the prompt, mask kind) passed to every forward pass. */
  inputs?: Omit<ForwardInputs, 'inputIds' | 'cache' | 'positionIds' | 'attentionMask'>;
}

export interface GenerateResult {
  /** Prompt + generated tokens per row (end token included when produced). */
  sequences: number[][];
  /** Generated tokens only. */
  newTokens: number[][];
  finished: boolean[];
  /** Beam search: the chosen hypothesis's length-normalised log-probability. */
  scores?: number[];
}

/** prompt + new tokens would run past the model's context; thrown before anything is generated. */
export class ContextLengthError extends VlmixError {
  override name = 'ContextLengthError';

  constructor(readonly promptLength: number, readonly maxNewTokens: number, readonly maxSeqLen: number) {
    super(
      `generate: the prompt (${promptLength} tokens) + maxNewTokens (${maxNewTokens}) = ${promptLength + maxNewTokens} exceeds the model's ` +
        `context (config.maxSeqLen ${maxSeqLen}); ` +
        (promptLength < maxSeqLen ? `lower maxNewTokens to at most ${maxSeqLen - promptLength} or shorten the prompt` : 'shorten the prompt'),
    );
  }
}

/** The model produced NaN or +Infinity logits (damaged weights or inputs); generation stops. */
export class NonFiniteLogitsError extends VlmixError {
  override name = 'NonFiniteLogitsError';

  constructor(readonly step: number, readonly row: number, readonly what: string) {
    super(
      `generate: the model produced non-finite logits (${what}, row ${row}) at generation step ${step}; ` +
        'its weights or inputs hold NaN/Infinity, so no token can be chosen',
    );
  }
}

/** NaN and +Infinity are errors; -Infinity is a masked token, unless every token is masked. */
function checkLogits(logits: Float32Array, step: number, row: number): void {
  let bad = 0;
  let masked = 0;
  for (let i = 0; i < logits.length; i++) {
    const x = logits[i]!;
    if (x === -Infinity) masked++;
    else if (!(x < Infinity)) bad++;
  }
  if (bad > 0) throw new NonFiniteLogitsError(step, row, `NaN or +Infinity at ${bad} of ${logits.length} vocabulary positions`);
  if (masked === logits.length) throw new NonFiniteLogitsError(step, row, `-Infinity at every one of ${logits.length} vocabulary positions`);
}

function checkOptions(o: GenerateOptions): void {
  if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 0) fail(`maxNewTokens: expected an integer >= 0, got ${o.maxNewTokens}`);
  if (o.temperature != null && !(o.temperature >= 0)) fail(`temperature: expected >= 0, got ${o.temperature}`);
  if (o.topK != null && (!Number.isInteger(o.topK) || o.topK < 1)) fail(`topK: expected an integer >= 1, got ${o.topK}`);
  if (o.topP != null && !(o.topP > 0 && o.topP <= 1)) fail(`topP: expected a number in (0, 1], got ${o.topP}`);
  if (o.repetitionPenalty != null && !(o.repetitionPenalty > 0)) fail(`repetitionPenalty: expected > 0, got ${o.repetitionPenalty}`);
  if (o.numBeams != null && (!Number.isInteger(o.numBeams) || o.numBeams < 1)) fail(`numBeams: expected an integer >= 1, got ${o.numBeams}`);
  if (o.cacheImplementation != null && o.cacheImplementation !== 'static' && o.cacheImplementation !== 'dynamic') {
    fail(`cacheImplementation: expected 'static' or 'dynamic', got ${JSON.stringify(o.cacheImplementation)}`);
  }
}

/**
 * A static cache reserves the prompt + this many positions (rounded up to a multiple of it) at first, never more
 * than the generation can use, and doubles when full: a long maxNewTokens that ends early at an end token
 * neither holds nor attends over slots it never fills. Each new size is one more recording of the step.
 */
const CACHE_CHUNK = 64;

/** The cache a generation of `positions` tokens per row (`prompt` of them given) runs with. */
function cachePlan(o: GenerateOptions, prompt: number, positions: number): CachePlan {
  if (!(o.useCache ?? true)) return { kind: 'none' };
  const kind = o.cacheImplementation ?? (ops.cacheWritesInPlace() ? 'static' : 'dynamic');
  if (kind === 'dynamic') return { kind };
  const first = Math.ceil((prompt + CACHE_CHUNK) / CACHE_CHUNK) * CACHE_CHUNK;
  // a replayed step's kernels must leave the cache's own buffers written: only where writes are in place
  return { kind, capacity: Math.max(1, Math.min(positions, first)), limit: Math.max(1, positions), replay: (o.replaySteps ?? true) && ops.cacheWritesInPlace() };
}

/** Applies the repetition penalty in place. */
export function applyRepetitionPenalty(logits: Float32Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const t of new Set(seen)) {
    const l = logits[t]!;
    logits[t] = l > 0 ? l / penalty : l * penalty;
  }
}

/** Temperature, top-k and top-p; returns probabilities (zeros for filtered tokens). */
export function samplingProbs(logits: Float32Array, o: { temperature?: number; topK?: number; topP?: number }): Float64Array {
  const v = logits.length;
  const temp = o.temperature ?? 1;
  const order = Array.from({ length: v }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
  let keep = o.topK ? Math.min(o.topK, v) : v;
  const max = logits[order[0]!]!;
  const p = new Float64Array(v);
  let z = 0;
  for (let r = 0; r < keep; r++) {
    const i = order[r]!;
    p[i] = Math.exp((logits[i]! - max) / temp);
    z += p[i]!;
  }
  for (let r = 0; r < keep; r++) p[order[r]!]! /= z;
  if (o.topP != null && o.topP < 1) {
    let cum = 0;
    let r = 0;
    for (; r < keep; r++) {
      cum += p[order[r]!]!;
      if (cum >= o.topP) break;
    }
    const newKeep = Math.min(r + 1, keep);
    for (let s = newKeep; s < keep; s++) p[order[s]!] = 0;
    keep = newKeep;
    let z2 = 0;
    for (let s = 0; s < keep; s++) z2 += p[order[s]!]!;
    for (let s = 0; s < keep; s++) p[order[s]!]! /= z2;
  }
  return p;
}

function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

function sample(p: Float64Array, rng: Rng): number {
  const u = rng.next();
  let cum = 0;
  let last = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i] === 0) continue;
    cum += p[i]!;
    last = i;
    if (u < cum) return i;
  }
  return last;
}

/** Recorded decoding steps per model (capture.ts), kept across generate calls while its hook table stays. */
const decodeReplayers = new WeakMap<Model, StepReplayer>();

/**
 * The model's recorded decoding steps (generate with a static cache): per signature, replaying or eager and
 * why (e.g. a mixin whose device code uploads values that change from step to step).
 */
export function decodeReplayStatus(model: Model): ReplayStatus[] {
  return decodeReplayers.get(model)?.status() ?? [];
}

/** How a Stepper keeps the past: no cache, a growing one, or a preallocated one whose decode steps may replay. */
interface CachePlan {
  kind: 'none' | 'dynamic' | 'static';
  /** Static: positions per row reserved at first. */
  capacity?: number;
  /** Static: positions per row the generation can reach (prompt + new tokens): the cache grows up to it. */
  limit?: number;
  /** Static: replay recorded decoding steps. */
  replay?: boolean;
}

/** Padding mask rows `width` keys wide: 0 for each row's first pads[r] keys (its left padding), 1 after. */
function paddingRows(pads: number[], width: number): number[][] {
  return pads.map((p) => Array.from({ length: width }, (_, j) => (j < p ? 0 : 1)));
}

/** Runs the model on `seqs` (all rows the same length) and returns the last position's logits per row. */
class Stepper {
  private cache: KVCache | null;
  private fed = 0;
  private readonly replayer: StepReplayer | null;
  private readonly limit: number;
  /** Static cache with left padding: the padding mask over every slot, one tensor while the capacity holds. */
  private padMask: tf.Tensor | null = null;

  /**
   * pads: left padding per row (prompts of different lengths); then every forward pass gets the padding
   * mask over all keys and positions counted from each row's first real token.
   */
  constructor(private readonly model: Model, private readonly extra: GenerateOptions['inputs'], plan: CachePlan, private readonly pads: number[] | null = null) {
    this.cache = plan.kind === 'none' ? null : new KVCache(model.config.numLayers, plan.kind === 'static' ? { capacity: plan.capacity } : {});
    let replayer: StepReplayer | null = null;
    if (plan.kind === 'static' && plan.replay) {
      replayer = decodeReplayers.get(model) ?? null;
      // a mixin added or removed later: the recordings ran other code (version)
      if (!replayer) decodeReplayers.set(model, (replayer = new StepReplayer({ version: () => model.revision })));
    }
    this.replayer = replayer;
    this.limit = plan.limit ?? 0;
  }

  /** Static cache with left padding: the padding mask over every slot of the current capacity. */
  private slotPadding(pads: number[], cap: number): tf.Tensor {
    if (this.padMask?.shape[1] !== cap) {
      this.padMask?.dispose();
      this.padMask = tf.tensor2d(paddingRows(pads, cap), [pads.length, cap], 'int32');
    }
    return this.padMask;
  }

  /** The padding inputs for feeding positions [start, start + t) of rows `full` tokens long. */
  private paddingInputs(b: number, start: number, t: number, full: number): Pick<ForwardInputs, 'attentionMask' | 'positionIds'> {
    const pads = this.pads!;
    const cap = this.cache?.capacity ?? null;
    const mask = cap !== null ? this.slotPadding(pads, cap) : paddingRows(pads, full);
    const pos = new Int32Array(b * t);
    for (let r = 0; r < b; r++) for (let i = 0; i < t; i++) pos[r * t + i] = Math.max(0, start + i - pads[r]!);
    return { attentionMask: mask, positionIds: tf.tensor2d(pos, [b, t], 'int32') };
  }

  /** The forward inputs of a pass over positions [start, start + ids' length); tensors made here go to `own`. */
  private passInputs(seqs: number[][], ids: number[][], start: number, own: tf.Tensor[]): ForwardInputs {
    const b = seqs.length;
    const t = ids[0]!.length;
    const extra = this.extra ?? {};
    let tokenTypes = extra.tokenTypes ?? null;
    // Prompt token types, then text (0) for generated tokens.
    const full = seqs[0]!.length;
    if (tokenTypes instanceof tf.Tensor) {
      const given = tokenTypes.shape[1]!;
      tokenTypes = tf.tidy(() => {
        const tt = tokenTypes as tf.Tensor;
        return tf.slice(full > given ? tf.concat([tt, tf.zeros([b, full - given], 'int32')], 1) : tt, [0, start], [b, t]);
      });
      own.push(tokenTypes);
    } else if (tokenTypes) {
      tokenTypes = tokenTypes.map((r) => Array.from({ length: t }, (_, i) => (start + i < r.length ? r[start + i]! : 0)));
    }
    // Host ids: the model's host stage (positions, routing, ...) needs no read-back of the device.
    const padding = this.pads ? this.paddingInputs(b, start, t, full) : {};
    if (padding.positionIds) own.push(padding.positionIds);
    return { ...extra, ...padding, tokenTypes, inputIds: ids, cache: this.cache };
  }

  /** Logits of the last position per row; throws NonFiniteLogitsError on NaN/+Inf (`step` names it). */
  lastLogits(seqs: number[][], step: number): Float32Array[] {
    const start = this.cache ? this.fed : 0;
    const ids = seqs.map((s) => s.slice(start));
    const b = seqs.length;
    const cap = this.cache?.capacity ?? null;
    if (cap !== null && seqs[0]!.length > cap) this.cache!.grow(Math.min(this.limit, Math.max(seqs[0]!.length, 2 * cap)));
    const own: tf.Tensor[] = [];
    let out: tf.Tensor;
    try {
      const inputs = this.passInputs(seqs, ids, start, own);
      // the head only at the last position (logitsToKeep), as HF's generate does
      const pass = (fwd: ForwardInputs) => tf.tidy(() => tf.squeeze(this.model.forward(fwd, { logitsToKeep: 1 }).logits, [1]));
      out = this.replayer && start > 0 ? this.decodeStep(inputs, pass, own) : pass(inputs);
    } finally {
      tf.dispose(own);
    }
    this.fed = seqs[0]!.length;
    const data = out.dataSync() as Float32Array;
    out.dispose();
    const v = data.length / b;
    const rows = Array.from({ length: b }, (_, i) => data.slice(i * v, (i + 1) * v));
    rows.forEach((r, i) => checkLogits(r, step, i));
    return rows;
  }

  /**
   * A decoding step over the static cache through the model's replayer: the host stage runs here, outside
   * the recorded step, so that its tensors are the step's inputs and its host values part of its signature;
   * the step's kernels write the cache in place, and a replayed step (the model code not run) advances the
   * cache's count here.
   */
  private decodeStep(inputs: ForwardInputs, pass: (fwd: ForwardInputs) => tf.Tensor, own: tf.Tensor[]): tf.Tensor {
    const cache = this.cache!;
    const ids = inputs.inputIds as number[][];
    const [b, t] = [ids.length, ids[0]!.length];
    const prepared = this.model.prepareInputs(inputs);
    own.push(...prepared.tensors());
    const idsT = tf.tensor2d(ids.flat(), [b, t], 'int32');
    own.push(idsT);
    const { positionIds: _p, ...rest } = inputs;
    const fwd: ForwardInputs = { ...rest, inputIds: idsT, prepared };
    const stepInputs = tensorsIn([{ ...fwd, cache: null, prepared: null }, cache.positionTensor(), prepared.positionIds, prepared.tokenTypes,
      prepared.state.tensors(), cache.tensors()]);
    const media = Object.entries(inputs.media ?? {}).filter(([, v]) => !(v instanceof tf.Tensor));
    const hostKey = hostValuesKey([prepared.state.hostKey(), media, inputs.mask ?? null]);
    const before = cache.length;
    const [logits] = this.replayer!.run(stepInputs, () => [pass(fwd)], hostKey);
    if (cache.length === before) cache.advance(t); // replayed: the kernels wrote the cache, the model code did not run
    return logits!;
  }

  reorder(indices: number[]): void {
    this.cache?.reorder(indices);
  }

  dispose(): void {
    this.cache?.dispose();
    this.padMask?.dispose();
  }
}

export function generate(model: Model, prompt: number[] | number[][], opts: GenerateOptions): GenerateResult {
  checkOptions(opts);
  const prompts = (Array.isArray(prompt[0]) ? prompt : [prompt]) as number[][];
  if (prompts.length === 0 || prompts.some((p) => p.length === 0)) fail(`prompt: expected at least one token, got an empty prompt`);
  // Beam search keeps one prompt's beams together: a batch is searched prompt by prompt.
  if ((opts.numBeams ?? 1) > 1 && prompts.length > 1) {
    const each = prompts.map((p, i) => {
      const own: tf.Tensor[] = [];
      try {
        return generate(model, p, { ...opts, inputs: opts.inputs && rowInputs(opts.inputs, i, own) });
      } finally {
        tf.dispose(own);
      }
    });
    return { sequences: each.map((r) => r.sequences[0]!), newTokens: each.map((r) => r.newTokens[0]!), finished: each.map((r) => r.finished[0]!), scores: each.map((r) => r.scores![0]!) };
  }
  const len = Math.max(...prompts.map((p) => p.length));
  const pads = prompts.some((p) => p.length !== len) ? prompts.map((p) => len - p.length) : null;
  if (pads) checkPaddable(model, opts);
  const eos = new Set(opts.eosTokenId == null ? [] : Array.isArray(opts.eosTokenId) ? opts.eosTokenId : [opts.eosTokenId]);
  const cap = opts.maxLength ?? Infinity;
  const steps = Math.max(0, Math.min(opts.maxNewTokens, cap - len));
  const canRunPast = opts.allowPastContext && model.config.positionEmbedding !== 'learned';
  if (len + steps > model.config.maxSeqLen && !canRunPast) throw new ContextLengthError(len, steps, model.config.maxSeqLen);
  if ((opts.numBeams ?? 1) > 1) return beamSearch(model, prompts, opts, eos, steps);

  const rng = new Rng(opts.seed ?? 0);
  const pad = opts.padTokenId ?? 0;
  const inputs = pads && opts.inputs?.tokenTypes && !(opts.inputs.tokenTypes instanceof tf.Tensor)
    ? { ...opts.inputs, tokenTypes: opts.inputs.tokenTypes.map((r, i) => [...new Array<number>(pads[i]!).fill(0), ...Array.from(r)]) }
    : opts.inputs;
  const stepper = new Stepper(model, inputs, cachePlan(opts, len, len + steps), pads);
  const seqs = prompts.map((p, i) => [...new Array<number>(pads ? pads[i]! : 0).fill(pad), ...p]);
  const finished = prompts.map(() => false);
  const greedy = opts.greedy || opts.temperature === 0;
  try {
    for (let step = 0; step < steps && !finished.every(Boolean); step++) {
      const rows = stepper.lastLogits(seqs, step);
      let stop = false;
      for (let r = 0; r < rows.length; r++) {
        if (finished[r]) {
          seqs[r]!.push(seqs[r]![seqs[r]!.length - 1]!); // keep rows aligned; trimmed below
          continue;
        }
        const logits = rows[r]!;
        applyRepetitionPenalty(logits, pads ? seqs[r]!.slice(pads[r]!) : seqs[r]!, opts.repetitionPenalty ?? 1);
        const tok = greedy ? argmax(logits) : sample(samplingProbs(logits, opts), rng);
        seqs[r]!.push(tok);
        if (eos.has(tok)) finished[r] = true;
        if (opts.onToken?.(tok, r, step) === false) stop = true;
      }
      if (stop) break;
    }
  } finally {
    stepper.dispose();
  }
  // Drop the filler appended to rows after they finished, and the left padding.
  const trimmed = seqs.map((s, r) => {
    if (!finished[r]) return s;
    const end = s.findIndex((t, i) => i >= len && eos.has(t));
    return s.slice(0, end + 1);
  });
  const sequences = trimmed.map((s, r) => (pads ? s.slice(pads[r]!) : s));
  return { sequences, newTokens: trimmed.map((s) => s.slice(len)), finished };
}

/** Row i of batched extra inputs (beam search runs prompt by prompt). */
function rowInputs(inputs: NonNullable<GenerateOptions['inputs']>, i: number, own: tf.Tensor[]): NonNullable<GenerateOptions['inputs']> {
  const row = (t: tf.Tensor) => {
    const r = tf.slice(t, [i], [1]);
    own.push(r);
    return r;
  };
  const media = inputs.media && Object.fromEntries(Object.entries(inputs.media).map(([k, v]) => [k, v instanceof tf.Tensor ? row(v) : v]));
  const tt = inputs.tokenTypes;
  return { ...inputs, ...(media ? { media } : {}), ...(tt ? { tokenTypes: tt instanceof tf.Tensor ? row(tt) : [tt[i]!] } : {}) };
}

/** Left padding needs the base position ids (a mixin's own, e.g. M-RoPE's, would not see the padding). */
function checkPaddable(model: Model, opts: GenerateOptions): void {
  // RoPE passes the given ids on; M-RoPE and CogVLM positions compute their own.
  const owners = (model.hookOrigins().global.positionIds ?? []).filter((o) => o !== 'base' && !(model.getMixin(o) instanceof RotaryMixin));
  if (owners.length) fail(`prompt: rows of different lengths need left padding, which the position ids of mixin '${owners[0]}' do not support; generate row by row`);
  if (opts.inputs?.tokenTypes instanceof tf.Tensor) fail('prompt: rows of different lengths take inputs.tokenTypes as per-row arrays (left-padded here), not a tensor');
}

function logSoftmax(x: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of x) max = Math.max(max, v);
  let z = 0;
  for (const v of x) z += Math.exp(v - max);
  const lz = Math.log(z) + max;
  return Float64Array.from(x, (v) => v - lz);
}

function beamSearch(model: Model, prompts: number[][], opts: GenerateOptions, eos: Set<number>, steps: number): GenerateResult {
  if (prompts.length !== 1) fail(`numBeams: beam search takes one prompt, got ${prompts.length}`);
  const k = opts.numBeams!;
  const vocab = model.config.vocabSize;
  if (k > vocab) fail(`numBeams: expected at most the vocabulary size (${vocab}), got ${k}; a step keeps numBeams distinct continuations`);
  const lp = opts.lengthPenalty ?? 1;
  const len = prompts[0]!.length;
  const stepper = new Stepper(model, opts.inputs ? { ...opts.inputs, tokenTypes: opts.inputs.tokenTypes ? tf.tile(opts.inputs.tokenTypes, [k, 1]) : null } : undefined, cachePlan(opts, len, len + steps));
  let beams = Array.from({ length: k }, () => [...prompts[0]!]);
  let scores = [0, ...new Array(k - 1).fill(-Infinity)]; // identical start beams: only the first expands
  const done: { seq: number[]; score: number }[] = [];
  const norm = (s: number, n: number) => s / Math.pow(Math.max(1, n), lp);
  try {
    for (let step = 0; step < steps; step++) {
      const rows = stepper.lastLogits(beams, step);
      const cands: { beam: number; tok: number; score: number }[] = [];
      for (let b = 0; b < k; b++) {
        if (scores[b] === -Infinity) continue;
        const logits = rows[b]!;
        applyRepetitionPenalty(logits, beams[b]!, opts.repetitionPenalty ?? 1);
        const lsm = logSoftmax(logits);
        for (let t = 0; t < lsm.length; t++) cands.push({ beam: b, tok: t, score: scores[b]! + lsm[t]! });
      }
      cands.sort((a, b) => b.score - a.score || a.beam - b.beam || a.tok - b.tok);
      const next: { beam: number; tok: number; score: number }[] = [];
      for (const c of cands) {
        if (next.length === k) break;
        if (eos.has(c.tok)) {
          done.push({ seq: [...beams[c.beam]!, c.tok], score: norm(c.score, step + 1) });
        } else next.push(c);
      }
      opts.onToken?.(next[0]?.tok ?? -1, 0, step);
      if (done.length >= k || next.length === 0) break;
      stepper.reorder(next.map((c) => c.beam));
      beams = next.map((c) => [...beams[c.beam]!, c.tok]);
      scores = next.map((c) => c.score);
      // Stop early when no live beam can beat the worst kept finished hypothesis.
      if (done.length >= k) break;
    }
  } finally {
    stepper.dispose();
  }
  for (let b = 0; b < beams.length; b++) {
    if (scores[b] !== -Infinity && beams[b]!.length > len) done.push({ seq: beams[b]!, score: norm(scores[b]!, beams[b]!.length - len) });
  }
  done.sort((a, b) => b.score - a.score);
  const best = done[0] ?? { seq: [...prompts[0]!], score: 0 };
  return {
    sequences: [best.seq],
    newTokens: [best.seq.slice(len)],
    finished: [eos.has(best.seq[best.seq.length - 1]!)],
    scores: [best.score],
  };
}
