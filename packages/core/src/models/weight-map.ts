/**
 * A weight map says, for every vlmix parameter, where its value comes from in a reference checkpoint
 * (copy, transpose, rows stacked, or zeros the reference does not store), and which reference tensors
 * are dropped on purpose (buffers such as `attn.bias`, a tied `lm_head.weight`). With it a checkpoint
 * loads tensor by tensor (one source tensor in memory at a time) and every reference tensor is
 * accounted for: a name that is neither mapped nor on the documented skip list is an error.
 */
import * as tf from '@tensorflow/tfjs';
import { fail, shapeStr } from '../errors.js';
import type { SafetensorsFile } from '../io/safetensors.js';
import type { Model } from '../model.js';

export type WeightSource =
  /** The reference tensor as is, or transposed (2-D: HF GPT-2's Conv1D stores [in, out]). */
  | { from: string; transpose?: boolean }
  /** Reference tensors stacked along rows (q, k, v -> query_key_value). */
  | { concat: string[] }
  /** A parameter the reference does not have and that is zero there (nanoGPT bias=False LayerNorm bias). */
  | { zeros: number[] };

export interface SkipRule {
  /** Matches reference names dropped on purpose. */
  test: (name: string) => boolean;
  /** Why, for docs and error messages. */
  why: string;
}

export interface WeightMap {
  /** What the map reads, e.g. "HF LlamaForCausalLM". */
  source: string;
  /** vlmix parameter name -> source. */
  targets: Map<string, WeightSource>;
  skip: SkipRule[];
}

export interface WeightMapResult {
  /** vlmix parameters assigned. */
  loaded: string[];
  /** Reference tensors dropped by a skip rule. */
  skipped: string[];
}

function referenced(src: WeightSource): string[] {
  if ('from' in src) return [src.from];
  if ('concat' in src) return src.concat;
  return [];
}

type ShapeOf = (name: string) => readonly number[];

function resultShape(target: string, src: WeightSource, shapeOf: ShapeOf): number[] {
  if ('zeros' in src) return [...src.zeros];
  if ('from' in src) {
    const s = shapeOf(src.from);
    if (!src.transpose) return [...s];
    if (s.length !== 2) fail(`${target}: cannot transpose "${src.from}" of shape ${shapeStr(s)} (2-D only)`);
    return [s[1]!, s[0]!];
  }
  const shapes = src.concat.map(shapeOf);
  const tail = shapes[0]!.slice(1);
  for (let i = 1; i < shapes.length; i++) {
    if (shapes[i]!.length !== shapes[0]!.length || shapes[i]!.slice(1).some((d, j) => d !== tail[j])) {
      fail(`${target}: cannot stack ${src.concat.map((n, j) => `"${n}" ${shapeStr(shapes[j]!)}`).join(', ')} along rows (trailing dimensions differ)`);
    }
  }
  return [shapes.reduce((a, s) => a + s[0]!, 0), ...tail];
}

/**
 * Checks a map against the names a checkpoint holds. Throws one error listing every reference tensor
 * the map needs but the checkpoint lacks, and every checkpoint tensor that maps to nothing and is on
 * no skip list. Returns the names skipped on purpose.
 */
export function checkWeightMap(map: WeightMap, names: readonly string[], where: string): string[] {
  const have = new Set(names);
  const used = new Set<string>();
  const missing: string[] = [];
  for (const [target, src] of map.targets) {
    for (const n of referenced(src)) {
      used.add(n);
      if (!have.has(n)) missing.push(`${n} (for ${target})`);
    }
  }
  const skipped: string[] = [];
  const unmapped: string[] = [];
  for (const n of names) {
    if (used.has(n)) continue;
    if (map.skip.some((r) => r.test(n))) skipped.push(n);
    else unmapped.push(n);
  }
  if (missing.length || unmapped.length) {
    const lines = [`${where}: the checkpoint does not match ${map.source}; nothing was loaded.`];
    if (missing.length) lines.push(`  missing (${missing.length}): ${missing.join(', ')}`);
    if (unmapped.length) {
      lines.push(`  unmapped (${unmapped.length}) — tensors with no vlmix counterpart: ${unmapped.join(', ')}`);
      if (map.skip.length) lines.push(`  (the only tensors dropped on purpose: ${map.skip.map((r) => r.why).join('; ')})`);
    }
    fail(lines.join('\n'));
  }
  return skipped;
}

function build(src: WeightSource, read: (name: string) => tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    if ('zeros' in src) return tf.zeros(src.zeros);
    if ('from' in src) {
      const t = read(src.from);
      return src.transpose ? tf.transpose(t) : t;
    }
    return tf.concat(src.concat.map(read), 0);
  });
}

/**
 * Loads a checkpoint into `model` through `map`: checks names (checkWeightMap), then every target's
 * existence and shape, all before assigning anything; then assigns parameter by parameter, reading
 * each reference tensor only when its parameter is built (so a lazily opened checkpoint is never
 * held whole). Float dtypes (F32/F16/BF16/F64) all become float32 exactly.
 * Every model parameter must be a target unless `partial` is set.
 */
export function loadWeightMap(
  model: Model,
  map: WeightMap,
  file: SafetensorsFile,
  opts: { where?: string; partial?: boolean } = {},
): WeightMapResult {
  const where = opts.where ?? `load ${map.source}`;
  const skipped = checkWeightMap(map, file.names(), where);
  const problems: string[] = [];
  const shapeOf = (n: string) => file.get(n).shape;
  for (const [target, src] of map.targets) {
    if (!model.hasParam(target)) {
      problems.push(`${target}: not a parameter of this model (from ${referenced(src).join(' + ') || 'zeros'})`);
      continue;
    }
    const want = model.param(target).shape;
    const got = resultShape(target, src, shapeOf);
    if (want.length !== got.length || want.some((d, i) => d !== got[i])) {
      problems.push(`${target}: expected ${shapeStr(want)}, the checkpoint gives ${shapeStr(got)} (from ${referenced(src).join(' + ') || 'zeros'})`);
    }
  }
  if (!opts.partial) {
    for (const n of model.params.names()) if (!map.targets.has(n)) problems.push(`${n}: no source in the map`);
  }
  if (problems.length) fail(`${where}: ${problems.length} problem(s); nothing was loaded:\n  ${problems.join('\n  ')}`);

  const read = (n: string) => {
    const e = file.get(n);
    return tf.tensor(file.toFloat32(n), e.shape, 'float32');
  };
  const loaded: string[] = [];
  for (const [target, src] of map.targets) {
    const t = build(src, read);
    model.param(target).assign(t);
    t.dispose();
    loaded.push(target);
  }
  return { loaded, skipped };
}

/**
 * Applies a map to tensors already in memory (reference name -> tensor) and returns new tensors by
 * vlmix name (dispose them after loading). Names the map does not use are ignored here; the strict
 * accounting is loadWeightMap's.
 */
export function applyWeightMap(map: WeightMap, src: Map<string, tf.Tensor>): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  const read = (n: string) => {
    const t = src.get(n);
    if (!t) fail(`${map.source} checkpoint: missing tensor '${n}'`);
    return t;
  };
  for (const [target, s] of map.targets) out.set(target, 'from' in s && !s.transpose ? read(s.from).clone() : build(s, read));
  return out;
}

/**
 * The inverse of loadWeightMap: the reference checkpoint's tensors (under its names) from the model's
 * current parameters — copied, transposed back, or split back into the stacked parts (`rowsOf` gives
 * each part's row count, e.g. from the checkpoint the model was loaded from); zeros the reference does not
 * store are dropped (and must still be zero). New tensors; the caller disposes them.
 */
export function exportWeightMap(model: Model, map: WeightMap, rowsOf: (source: string) => number | undefined): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const [target, src] of map.targets) {
    const p = model.param(target);
    if ('zeros' in src) {
      // the reference has no such tensor: only a value it would take (zero) can be left out
      const moved = tf.tidy(() => tf.max(tf.abs(p)).dataSync()[0]!);
      if (moved !== 0) fail(`exportWeightMap: ${target} is not zero (max |value| ${moved}) but ${map.source} has no such tensor; freeze it (it is zero there) or export to a format that stores it`);
      continue;
    }
    if ('from' in src) {
      out.set(src.from, tf.tidy(() => (src.transpose ? tf.transpose(p) : p.clone())));
      continue;
    }
    const rows = src.concat.map((n) => rowsOf(n));
    if (rows.some((r) => r === undefined)) fail(`exportWeightMap: ${target} splits into ${src.concat.join(', ')}, but the row count of ${src.concat[rows.findIndex((r) => r === undefined)]} is unknown`);
    if (rows.reduce<number>((a, r) => a + r!, 0) !== p.shape[0]) fail(`exportWeightMap: ${target} has ${p.shape[0]} rows, its parts ${src.concat.join(', ')} ${rows.join(' + ')}`);
    const parts = tf.split(p, rows as number[], 0);
    src.concat.forEach((n, i) => out.set(n, parts[i]!));
  }
  return out;
}
