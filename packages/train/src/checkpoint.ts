/**
 * Checkpoints: the last K (default 2) complete, verifiable training states in one directory.
 *
 *   <dir>/state.json                       the commit point: the newest checkpoint's state, and `kept`
 *   <dir>/state-<step>.json                each kept checkpoint's state (the newest's equals state.json)
 *   <dir>/model-<step>.safetensors         every parameter (trainable or not), F32
 *   <dir>/optimizer-<step>.safetensors     AdamW moments `m.<param>` / `v.<param>`, F32
 *
 * A state records the SHA-256 of its two tensor files. Saving writes the tensor files, then
 * state-<step>.json, then replaces state.json (each file atomically: temp file, fsync, rename), and
 * only then removes checkpoints beyond the newest K and temp files of crashed writes; so a crash at
 * any point leaves every committed checkpoint intact. Loading verifies the newest checkpoint (JSON
 * fields, checksums, the step in each file, F32 dtypes) and, when it fails, falls back to the next
 * kept one with a warning that says which and why. One writer per directory (see lock.ts).
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { fail, readSafetensors, writeFileAtomic, writeSafetensors, type RngState, type SafetensorsFile } from '@vlmix/core';
import type { ScheduleSpec } from './optim.js';

export const CHECKPOINT_FORMAT = 'vlmix-train-checkpoint';
/** 2: checksums, K checkpoints, the schedule. Version 1 (one unverified checkpoint) still loads. */
export const CHECKPOINT_VERSION = 2;
export const STATE_FILE = 'state.json';
export const DEFAULT_KEEP_CHECKPOINTS = 2;

/** Where the data stream stands: the next item is permutation(epoch)[index]. */
export interface DataPosition {
  epoch: number;
  index: number;
  /** Seed of the per-epoch permutations (see epochPermutation: `${seed}/data/epoch/${e}`). */
  seed: string;
  length: number;
}

export interface CheckpointState {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  /** Optimizer steps completed. */
  step: number;
  files: { model: string; optimizer: string };
  /** SHA-256 (hex) of the files named in `files` (version 2). */
  sha256: { model: string; optimizer: string };
  /** Steps of the checkpoints kept in the directory when this one was committed, newest first. */
  kept: number[];
  data: DataPosition;
  /** seedrandom ARC4 state of the trainer's Rng. */
  rng: RngState;
  optimizer: { step: number; beta1: number; beta2: number; eps: number; weightDecay: number; lr: number };
  /** The learning-rate schedule, when the trainer's schedule describes itself (null otherwise). */
  schedule: ScheduleSpec | null;
  /** Trainer settings and user config, for the record (and resume checks). */
  config: Record<string, unknown>;
  /** Every step record so far. */
  metrics: unknown[];
  savedAt: string;
}

export interface CheckpointPayload {
  step: number;
  weights: Map<string, tf.Tensor>;
  optimizer: { m: Map<string, tf.Tensor>; v: Map<string, tf.Tensor> };
  state: Omit<CheckpointState, 'format' | 'version' | 'step' | 'files' | 'sha256' | 'kept' | 'savedAt' | 'schedule'> & {
    /** The lr schedule's spec (default null: not recorded). */
    schedule?: ScheduleSpec | null;
  };
}

export type SaveStage = 'model' | 'optimizer' | 'step-state' | 'state';

export interface SaveCheckpointOptions {
  /** Checkpoints to keep, this one included (default 2). */
  keep?: number;
  /**
   * Older checkpoints of this run that may be kept, newest first. Default: every state-<step>.json in
   * the directory below this step. A trainer passes the ones on its own line of steps, so the
   * checkpoints of an abandoned continuation (e.g. a damaged one it fell back from) are removed.
   */
  previous?: number[];
  /** Test hook (simulate a crash): called after each stage; throwing aborts the save there. */
  onStage?: (stage: SaveStage) => void;
}

const pad = (n: number) => String(n).padStart(8, '0');
const stepStateFile = (step: number) => `state-${pad(step)}.json`;
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const CHECKPOINT_FILE = /^(?:(?:model|optimizer)-(\d+)\.safetensors|state-(\d+)\.json)$/;

/** Steps that have a state-<step>.json in `dir`, newest first. */
async function stepStates(dir: string): Promise<number[]> {
  const steps: number[] = [];
  for (const f of await readdir(dir)) {
    const m = /^state-(\d+)\.json$/.exec(f);
    if (m) steps.push(Number(m[1]));
  }
  return steps.sort((a, b) => b - a);
}

/** Writes a checkpoint into `dir` (created if needed) and keeps the newest `keep`. Returns the committed state. */
export async function saveCheckpoint(dir: string, payload: CheckpointPayload, opts: SaveCheckpointOptions = {}): Promise<CheckpointState> {
  const keep = opts.keep ?? DEFAULT_KEEP_CHECKPOINTS;
  if (!Number.isInteger(keep) || keep < 1) fail(`saveCheckpoint: keep must be an integer >= 1, got ${keep}`);
  await mkdir(dir, { recursive: true });
  const step = payload.step;
  const files = { model: `model-${pad(step)}.safetensors`, optimizer: `optimizer-${pad(step)}.safetensors` };
  const meta = { format: CHECKPOINT_FORMAT, step: String(step) };

  const weights: Record<string, tf.Tensor> = {};
  for (const [k, t] of payload.weights) weights[k] = t;
  const modelBytes = writeSafetensors(weights, { metadata: { ...meta, kind: 'model' }, dtypes: 'F32' });
  await writeFileAtomic(join(dir, files.model), modelBytes);
  opts.onStage?.('model');

  const moments: Record<string, tf.Tensor> = {};
  for (const [k, t] of payload.optimizer.m) moments[`m.${k}`] = t;
  for (const [k, t] of payload.optimizer.v) moments[`v.${k}`] = t;
  const optimizerBytes = writeSafetensors(moments, { metadata: { ...meta, kind: 'optimizer' }, dtypes: 'F32' });
  await writeFileAtomic(join(dir, files.optimizer), optimizerBytes);
  opts.onStage?.('optimizer');

  // Older checkpoints stay (newest first); newer ones belong to an abandoned continuation and go.
  const older = opts.previous ?? (await stepStates(dir));
  const kept = [step, ...older.filter((s) => s < step)].slice(0, keep);
  const state: CheckpointState = {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    step,
    files,
    sha256: { model: sha256(modelBytes), optimizer: sha256(optimizerBytes) },
    kept,
    ...payload.state,
    schedule: payload.state.schedule ?? null,
    savedAt: new Date().toISOString(),
  };
  const text = JSON.stringify(state, null, 1) + '\n';
  await writeFileAtomic(join(dir, stepStateFile(step)), text);
  opts.onStage?.('step-state');
  await writeFileAtomic(join(dir, STATE_FILE), text);
  opts.onStage?.('state');

  // Committed: drop checkpoints not kept (state file first, so a state file always has its tensors)
  // and temp files left by crashed writes.
  const names = await readdir(dir);
  const drop = (f: string) => {
    const m = CHECKPOINT_FILE.exec(f);
    return (m && !kept.includes(Number(m[1] ?? m[2]))) || (f.startsWith('.') && f.endsWith('.tmp'));
  };
  const order = (f: string) => (f.startsWith('state-') ? 0 : 1);
  for (const f of names.filter(drop).sort((a, b) => order(a) - order(b))) await unlink(join(dir, f)).catch(() => {});
  return state;
}

export interface LoadedCheckpoint {
  dir: string;
  state: CheckpointState;
  model: SafetensorsFile;
  optimizer: SafetensorsFile;
  /** Set when the newest checkpoint failed verification and an older one was loaded: what and why. */
  warnings: string[];
}

/** Accepts the checkpoint directory itself or a run directory holding `checkpoint/`. */
export function resolveCheckpointDir(path: string): string {
  if (existsSync(join(path, STATE_FILE))) return path;
  if (existsSync(join(path, 'checkpoint', STATE_FILE))) return join(path, 'checkpoint');
  return fail(`no checkpoint at '${path}': neither ${join(path, STATE_FILE)} nor ${join(path, 'checkpoint', STATE_FILE)} exists`);
}

export function hasCheckpoint(path: string): boolean {
  return existsSync(join(path, STATE_FILE)) || existsSync(join(path, 'checkpoint', STATE_FILE));
}

const isObj = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);
const isInt = (x: unknown) => Number.isInteger(x) && (x as number) >= 0;
const isNum = (x: unknown) => typeof x === 'number' && Number.isFinite(x);
const HEX64 = /^[0-9a-f]{64}$/;

/** Checks every field a resume reads; the error names the file and the field. */
export function validateCheckpointState(x: unknown, file: string): CheckpointState {
  const bad = (field: string, want: string, got: unknown): never =>
    fail(`checkpoint ${file}: field '${field}' should be ${want}, got ${got === undefined ? 'nothing (missing)' : JSON.stringify(got)?.slice(0, 80)}`);
  if (!isObj(x)) return bad('(top level)', 'an object', x);
  if (x.format !== CHECKPOINT_FORMAT) fail(`checkpoint ${file}: format is ${JSON.stringify(x.format)}, expected '${CHECKPOINT_FORMAT}'`);
  if (x.version !== 1 && x.version !== CHECKPOINT_VERSION) fail(`checkpoint ${file}: version ${x.version} is not supported (expected 1 or ${CHECKPOINT_VERSION})`);
  if (!isInt(x.step)) bad('step', 'an integer >= 0', x.step);
  const files = x.files;
  if (!isObj(files) || typeof files.model !== 'string' || typeof files.optimizer !== 'string') bad('files', '{model, optimizer} file names', files);
  for (const f of [(files as Record<string, string>).model, (files as Record<string, string>).optimizer]) {
    if (f.includes('/') || f.includes('\\') || f.startsWith('.')) bad('files', 'plain file names in the checkpoint directory', files);
  }
  if (x.version === CHECKPOINT_VERSION) {
    const h = x.sha256;
    if (!isObj(h) || !HEX64.test(String(h.model)) || !HEX64.test(String(h.optimizer))) bad('sha256', '{model, optimizer} SHA-256 hex digests', h);
    if (!Array.isArray(x.kept) || !x.kept.every(isInt)) bad('kept', 'an array of steps', x.kept);
  }
  const d = x.data;
  if (!isObj(d) || !isInt(d.epoch) || !isInt(d.index) || typeof d.seed !== 'string' || !isInt(d.length)) bad('data', '{epoch, index, seed, length}', d);
  if (!isObj(x.rng)) bad('rng', 'an RNG state object', x.rng);
  const o = x.optimizer;
  if (!isObj(o) || !isInt(o.step) || !['beta1', 'beta2', 'eps', 'weightDecay', 'lr'].every((k) => isNum(o[k]))) bad('optimizer', '{step, lr, beta1, beta2, eps, weightDecay}', o);
  if (!isObj(x.config)) bad('config', 'an object', x.config);
  if (!Array.isArray(x.metrics)) bad('metrics', 'an array of step records', x.metrics);
  if (x.schedule != null && (!isObj(x.schedule) || typeof x.schedule.kind !== 'string')) bad('schedule', 'a schedule spec or null', x.schedule);
  return { schedule: null, kept: [x.step as number], ...(x as object) } as CheckpointState;
}

async function readState(dir: string, file: string): Promise<CheckpointState> {
  const path = join(dir, file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    return fail(`checkpoint ${path}: cannot read (${(e as Error).message})`);
  }
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch (e) {
    return fail(`checkpoint ${path}: invalid JSON (${(e as Error).message})`);
  }
  return validateCheckpointState(x, path);
}

/** Reads, checksums and parses one tensor file of a checkpoint. */
async function readTensorFile(dir: string, state: CheckpointState, what: 'model' | 'optimizer'): Promise<SafetensorsFile> {
  const name = state.files[what];
  const path = join(dir, name);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    return fail(`${name}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (state.version >= 2) {
    const got = sha256(bytes);
    if (got !== state.sha256[what]) fail(`${name}: SHA-256 mismatch (state records ${state.sha256[what].slice(0, 12)}…, the file hashes to ${got.slice(0, 12)}…): the file is damaged`);
  }
  let f: SafetensorsFile;
  try {
    f = readSafetensors(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    return fail(`${name}: ${(e as Error).message}`);
  }
  if (f.metadata.step !== String(state.step)) fail(`${name} is for step ${f.metadata.step}, the state says step ${state.step}`);
  for (const n of f.names()) {
    const dt = f.get(n).dtype;
    if (dt !== 'F32') fail(`${name}: tensor '${n}' has dtype ${dt}; checkpoints store F32 only`);
  }
  return f;
}

async function loadOne(dir: string, state: CheckpointState): Promise<LoadedCheckpoint> {
  const model = await readTensorFile(dir, state, 'model');
  const optimizer = await readTensorFile(dir, state, 'optimizer');
  return { dir, state, model, optimizer, warnings: [] };
}

/**
 * Reads and verifies the newest checkpoint; if it fails, the newest older one that verifies (with a
 * warning per skipped checkpoint). Throws, naming every failure, when none verifies.
 */
export async function loadCheckpoint(path: string): Promise<LoadedCheckpoint> {
  const dir = resolveCheckpointDir(path);
  const failures: string[] = [];
  let candidates: { step: number | null; load: () => Promise<CheckpointState> }[];
  try {
    const head = await readState(dir, STATE_FILE);
    if (head.version < CHECKPOINT_VERSION) failures.push(`checkpoint ${join(dir, STATE_FILE)} is format version ${head.version}: it has no checksums, so it was loaded unverified`);
    candidates = [
      { step: head.step, load: async () => head },
      ...head.kept.filter((s) => s < head.step).map((s) => ({ step: s, load: () => readState(dir, stepStateFile(s)) })),
    ];
  } catch (e) {
    // The commit point is damaged: the per-step states still describe complete checkpoints.
    const steps = await stepStates(dir);
    if (steps.length === 0) throw e;
    failures.push(`${(e as Error).message}; reading the per-step state files instead`);
    candidates = steps.map((s) => ({ step: s, load: () => readState(dir, stepStateFile(s)) }));
  }
  const skipped: string[] = [];
  for (const c of candidates) {
    try {
      const loaded = await loadOne(dir, await c.load());
      const warnings = [...failures];
      if (skipped.length) warnings.push(`${skipped.join('; ')}; loaded the checkpoint of step ${loaded.state.step} instead`);
      return { ...loaded, warnings };
    } catch (e) {
      skipped.push(`checkpoint step ${c.step} in ${dir} failed verification: ${(e as Error).message}`);
    }
  }
  if (candidates.length === 1 && failures.length === 0) fail(skipped[0]!.replace(/ failed verification: /, ': '));
  return fail(`no checkpoint in ${dir} passed verification: ${[...failures, ...skipped].join('; ')}`);
}

/** The weights of a loaded checkpoint as new tensors (caller disposes). */
export function checkpointWeights(ckpt: LoadedCheckpoint): Map<string, tf.Tensor> {
  return new Map(ckpt.model.names().map((n) => [n, ckpt.model.toTensor(n)]));
}

/** The optimizer moments of a loaded checkpoint as new tensors (caller disposes). */
export function checkpointMoments(ckpt: LoadedCheckpoint): { m: Map<string, tf.Tensor>; v: Map<string, tf.Tensor> } {
  const m = new Map<string, tf.Tensor>();
  const v = new Map<string, tf.Tensor>();
  for (const n of ckpt.optimizer.names()) {
    if (n.startsWith('m.')) m.set(n.slice(2), ckpt.optimizer.toTensor(n));
    else if (n.startsWith('v.')) v.set(n.slice(2), ckpt.optimizer.toTensor(n));
  }
  return { m, v };
}
