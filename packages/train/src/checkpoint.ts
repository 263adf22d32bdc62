/**
 * Checkpoints: one directory holding a consistent set of files.
 *
 *   <dir>/state.json                       the commit point; names the two files below
 *   <dir>/model-<step>.safetensors         every parameter (trainable or not), F32
 *   <dir>/optimizer-<step>.safetensors     AdamW moments `m.<param>` / `v.<param>`, F32
 *
 * Fixed file names would not do: replacing model.safetensors and then crashing before
 * state.json is replaced leaves a mixed set. So the tensor files are step-numbered and written
 * first (each atomically), then state.json is atomically replaced; only after that are files of
 * older checkpoints (and temp files left by crashed writes) removed. A reader that goes through
 * state.json always sees one complete checkpoint. One writer per directory.
 */
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { fail, readSafetensorsFile, writeFileAtomic, writeSafetensors, type RngState, type SafetensorsFile } from '@vlmix/core';

export const CHECKPOINT_FORMAT = 'vlmix-train-checkpoint';
export const CHECKPOINT_VERSION = 1;
export const STATE_FILE = 'state.json';

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
  data: DataPosition;
  /** seedrandom ARC4 state of the trainer's Rng. */
  rng: RngState;
  optimizer: { step: number; beta1: number; beta2: number; eps: number; weightDecay: number; lr: number };
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
  state: Omit<CheckpointState, 'format' | 'version' | 'step' | 'files' | 'savedAt'>;
}

export interface SaveCheckpointOptions {
  /** Test hook (simulate a crash): called after each stage; throwing aborts the save there. */
  onStage?: (stage: 'model' | 'optimizer' | 'state') => void;
}

const pad = (n: number) => String(n).padStart(8, '0');

/** Writes a checkpoint into `dir` (created if needed). Returns the committed state. */
export async function saveCheckpoint(dir: string, payload: CheckpointPayload, opts: SaveCheckpointOptions = {}): Promise<CheckpointState> {
  await mkdir(dir, { recursive: true });
  const files = { model: `model-${pad(payload.step)}.safetensors`, optimizer: `optimizer-${pad(payload.step)}.safetensors` };
  const meta = { format: CHECKPOINT_FORMAT, step: String(payload.step) };

  const weights: Record<string, tf.Tensor> = {};
  for (const [k, t] of payload.weights) weights[k] = t;
  await writeFileAtomic(join(dir, files.model), writeSafetensors(weights, { metadata: { ...meta, kind: 'model' }, dtypes: 'F32' }));
  opts.onStage?.('model');

  const moments: Record<string, tf.Tensor> = {};
  for (const [k, t] of payload.optimizer.m) moments[`m.${k}`] = t;
  for (const [k, t] of payload.optimizer.v) moments[`v.${k}`] = t;
  await writeFileAtomic(join(dir, files.optimizer), writeSafetensors(moments, { metadata: { ...meta, kind: 'optimizer' }, dtypes: 'F32' }));
  opts.onStage?.('optimizer');

  const state: CheckpointState = {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    step: payload.step,
    files,
    ...payload.state,
    savedAt: new Date().toISOString(),
  };
  await writeFileAtomic(join(dir, STATE_FILE), JSON.stringify(state, null, 1) + '\n');
  opts.onStage?.('state');

  // Committed: now drop what the new state.json does not name.
  const keep = new Set([STATE_FILE, files.model, files.optimizer]);
  for (const f of await readdir(dir)) {
    const stale = /^(model|optimizer)-\d+\.safetensors$/.test(f) || (f.startsWith('.') && f.endsWith('.tmp'));
    if (stale && !keep.has(f)) await unlink(join(dir, f)).catch(() => {});
  }
  return state;
}

export interface LoadedCheckpoint {
  dir: string;
  state: CheckpointState;
  model: SafetensorsFile;
  optimizer: SafetensorsFile;
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

/** Reads state.json and the two files it names (validating both). */
export async function loadCheckpoint(path: string): Promise<LoadedCheckpoint> {
  const dir = resolveCheckpointDir(path);
  const text = await readFile(join(dir, STATE_FILE), 'utf8');
  let state: CheckpointState;
  try {
    state = JSON.parse(text) as CheckpointState;
  } catch (e) {
    return fail(`checkpoint ${join(dir, STATE_FILE)}: invalid JSON (${(e as Error).message})`);
  }
  if (state.format !== CHECKPOINT_FORMAT) fail(`checkpoint ${join(dir, STATE_FILE)}: format is ${JSON.stringify(state.format)}, expected '${CHECKPOINT_FORMAT}'`);
  if (state.version !== CHECKPOINT_VERSION) fail(`checkpoint ${join(dir, STATE_FILE)}: version ${state.version} is not supported (expected ${CHECKPOINT_VERSION})`);
  const model = await readSafetensorsFile(join(dir, state.files.model));
  const optimizer = await readSafetensorsFile(join(dir, state.files.optimizer));
  for (const [what, f] of [['model', model], ['optimizer', optimizer]] as const) {
    if (f.metadata.step !== String(state.step)) {
      fail(`checkpoint ${dir}: ${what} file ${state.files[what]} is for step ${f.metadata.step}, state.json says step ${state.step}`);
    }
  }
  return { dir, state, model, optimizer };
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
