/**
 * The ops model code calls. Each fused op validates its arguments, then runs the named kernel: natively
 * where the backend has it, as its composite body otherwise (see fused.ts).
 */
import * as tf from '@tensorflow/tfjs';
import * as K from './kernel-names.js';
import { ensureFusedKernels, runFusedKernel } from './fused.js';
import { kernelLayer } from './registry.js';
import { checkDtype, checkRank, checkShape, fail, shapeStr } from '../errors.js';

export { ensureFusedKernels, nativeFusedKernels, runFusedKernel } from './fused.js';
export { setupBackendKernels, kernelLayer, type BackendKernels, type KernelLayer } from './registry.js';
export * as kernels from './kernel-names.js';
export * as composite from './composite.js';

function checkNorm(x: tf.Tensor, gamma: tf.Tensor, beta?: tf.Tensor): void {
  checkDtype('x', x, 'float32');
  if (x.rank < 1) fail(`x: expected rank >= 1, got a scalar`);
  const c = x.shape[x.rank - 1]!;
  checkShape('gamma', gamma, [c]);
  if (beta) checkShape('beta', beta, [c]);
}

export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps = 1e-5): tf.Tensor {
  checkNorm(x, gamma, beta);
  return runFusedKernel(K.LayerNorm, { x, gamma, beta }, { eps });
}

export function rmsNorm(x: tf.Tensor, gamma: tf.Tensor, eps = 1e-6): tf.Tensor {
  checkNorm(x, gamma);
  return runFusedKernel(K.RmsNorm, { x, gamma }, { eps });
}

function checkAddNorm(a: tf.Tensor, b: tf.Tensor, gamma: tf.Tensor, beta?: tf.Tensor): void {
  checkNorm(a, gamma, beta);
  checkDtype('b', b, 'float32');
  checkShape('b', b, a.shape);
}

/**
 * A residual add and a LayerNorm of the sum in one kernel (VlmixAddNorm): [sum = a + b, layerNorm(sum)], the
 * bits of tf.add then ops.layerNorm. For the pre-norm layer's `h = x + block(x)` followed by the next norm.
 */
export function addLayerNorm(a: tf.Tensor, b: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps = 1e-5): [tf.Tensor, tf.Tensor] {
  checkAddNorm(a, b, gamma, beta);
  return runFusedKernel(K.AddNorm, { a, b, gamma, beta }, { eps, rms: false });
}

/** addLayerNorm's RMSNorm form: [sum = a + b, rmsNorm(sum)]. */
export function addRmsNorm(a: tf.Tensor, b: tf.Tensor, gamma: tf.Tensor, eps = 1e-6): [tf.Tensor, tf.Tensor] {
  checkAddNorm(a, b, gamma);
  return tf.tidy(() => runFusedKernel(K.AddNorm, { a, b, gamma, beta: tf.zeros([0]) }, { eps, rms: true }));
}

export interface AttentionOptions {
  /** Additive bias broadcastable as [B|1, Hq|1, Tq|1, Tk]. */
  bias?: tf.Tensor | null;
  /** Defaults to 1/sqrt(D). */
  scale?: number;
  causal?: boolean;
}

/** Scaled-dot-product attention. q [B, Hq, Tq, D], k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv] -> [B, Hq, Tq, Dv]. */
export function attention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, opts: AttentionOptions = {}): tf.Tensor4D {
  checkRank('q', q, 4);
  checkRank('k', k, 4);
  checkRank('v', v, 4);
  const [b, hq, tq, d] = q.shape as number[];
  const [, hkv, tk] = k.shape as number[];
  checkShape('k', k, [b!, hkv!, tk!, d!]);
  checkShape('v', v, [b!, hkv!, tk!, null]);
  if (hq! % hkv! !== 0) fail(`k: query heads (${hq}) must be a multiple of key/value heads (${hkv})`);
  let bias = opts.bias ?? null;
  if (bias) {
    checkRank('bias', bias, 4);
    const want = [b!, hq!, tq!, tk!];
    const okB = bias.shape.every((s, i) => s === want[i] || (i < 3 && s === 1));
    if (!okB) fail(`bias: expected shape [${b}|1, ${hq}|1, ${tq}|1, ${tk}], got ${shapeStr(bias.shape)}`);
  }
  const scale = opts.scale ?? 1 / Math.sqrt(d!);
  return tf.tidy(() => {
    bias ??= tf.zeros([0]);
    return runFusedKernel(K.Attention, { q, k, v, bias }, { scale, causal: !!opts.causal }) as tf.Tensor4D;
  });
}

/** Per-row softmax cross-entropy: logits [N, V], labels [N] int32 -> loss [N] (0 where ignored). */
export function softmaxCrossEntropy(logits: tf.Tensor, labels: tf.Tensor, ignoreIndex = -100): tf.Tensor1D {
  checkRank('logits', logits, 2);
  checkDtype('logits', logits, 'float32');
  checkShape('labels', labels, [logits.shape[0]!]);
  checkDtype('labels', labels, 'int32');
  return runFusedKernel(K.SoftmaxCrossEntropy, { logits, labels }, { ignoreIndex }) as tf.Tensor1D;
}

/** int32 labels with the shape of `of` less its last axis (one label per row of logits or of hidden states). */
function checkLabels(labels: tf.Tensor, of: tf.Tensor, name: string): void {
  if (of.rank !== labels.rank + 1 || labels.shape.some((s, i) => s !== of.shape[i])) {
    fail(`labels: expected shape ${shapeStr(of.shape.slice(0, -1))} to match ${name} ${shapeStr(of.shape)}, got ${shapeStr(labels.shape)}`);
  }
  checkDtype('labels', labels, 'int32');
}

/**
 * Mean cross-entropy over non-ignored positions: logits [..., V], labels [...] (int32).
 * Returns a scalar; 0 when every label is ignored.
 */
export function crossEntropyLoss(logits: tf.Tensor, labels: tf.Tensor, ignoreIndex = -100): tf.Scalar {
  const v = logits.shape[logits.rank - 1]!;
  checkLabels(labels, logits, 'logits');
  checkDtype('logits', logits, 'float32');
  const n = labels.size;
  return tf.tidy(() => runFusedKernel(K.SoftmaxCrossEntropyMean, { logits: tf.reshape(logits, [n, v]), labels: tf.reshape(labels, [n]) },
    { ignoreIndex }) as tf.Scalar);
}

/**
 * An LM head and its loss in one kernel: crossEntropyLoss(linear(x, weight), labels, ignoreIndex) for x [..., C],
 * weight [V, C] (the head, [out, in]), labels [...] (int32). The [..., V] logits are not kept: on vlmix-cpu only
 * the rows whose label is kept are computed, in forward and backward, so a batch that supervises its answers
 * only pays for their rows.
 */
export function linearCrossEntropy(x: tf.Tensor, weight: tf.Tensor, labels: tf.Tensor, ignoreIndex = -100): tf.Scalar {
  checkRank('weight', weight, 2);
  const c = weight.shape[1]!;
  if (x.rank < 2 || x.shape[x.rank - 1] !== c) {
    fail(`x: expected shape [..., ${c}] to match weight ${shapeStr(weight.shape)} ([V, C]), got ${shapeStr(x.shape)}`);
  }
  checkLabels(labels, x, 'x');
  checkDtype('x', x, 'float32');
  checkDtype('weight', weight, 'float32');
  const n = labels.size;
  return tf.tidy(() => runFusedKernel(K.LinearCrossEntropy, { x: tf.reshape(x, [n, c]), weight, labels: tf.reshape(labels, [n]) },
    { ignoreIndex }) as tf.Scalar);
}

export function gelu(x: tf.Tensor, approximate: 'none' | 'tanh' = 'none'): tf.Tensor {
  checkDtype('x', x, 'float32');
  if (approximate !== 'none' && approximate !== 'tanh') fail(`approximate: expected 'none' or 'tanh', got ${JSON.stringify(approximate)}`);
  return runFusedKernel(K.Gelu, { x }, { approximate });
}

/** silu(gate) * up. */
export function swiglu(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  checkDtype('gate', gate, 'float32');
  checkShape('up', up, gate.shape);
  return runFusedKernel(K.Swiglu, { gate, up }, {});
}

/** One AdamW step; returns new [param, m, v]. */
export function adamwUpdate(param: tf.Tensor, grad: tf.Tensor, m: tf.Tensor, v: tf.Tensor, attrs: K.AdamWAttrs): [tf.Tensor, tf.Tensor, tf.Tensor] {
  checkShape('grad', grad, param.shape);
  checkShape('m', m, param.shape);
  checkShape('v', v, param.shape);
  if (!(attrs.step >= 1)) fail(`step: expected an integer >= 1, got ${attrs.step}`);
  return runFusedKernel(K.AdamW, { param, grad, m, v }, attrs);
}

/** One parameter tensor of adamwUpdateMulti, with its own weight decay. */
export interface AdamWGroup {
  param: tf.Tensor;
  grad: tf.Tensor;
  m: tf.Tensor;
  v: tf.Tensor;
  weightDecay: number;
}

/**
 * One AdamW step for many tensors in one kernel call (VlmixAdamWMulti): per group the same values as
 * adamwUpdate, for one dispatch instead of one per tensor. Returns new [param, m, v] per group. With
 * `inPlace` the caller gives up the old param, m and v (disposes them at once, never reads them): vlmix-cpu
 * then updates unshared buffers in place and the results share them (see AdamWMultiAttrs.inPlace).
 */
export function adamwUpdateMulti(groups: AdamWGroup[], attrs: Omit<K.AdamWAttrs, 'weightDecay'> & { inPlace?: boolean }): Array<[tf.Tensor, tf.Tensor, tf.Tensor]> {
  groups.forEach((g, i) => {
    checkShape(`groups[${i}].grad`, g.grad, g.param.shape);
    checkShape(`groups[${i}].m`, g.m, g.param.shape);
    checkShape(`groups[${i}].v`, g.v, g.param.shape);
    if (!Number.isFinite(g.weightDecay)) fail(`groups[${i}].weightDecay: expected a finite number, got ${g.weightDecay}`);
  });
  if (!(attrs.step >= 1)) fail(`step: expected an integer >= 1, got ${attrs.step}`);
  if (groups.length === 0) return [];
  const out = runFusedKernel(K.AdamWMulti, groups.flatMap((g) => [g.param, g.grad, g.m, g.v]),
    { ...attrs, weightDecay: groups.map((g) => g.weightDecay) });
  return groups.map((_, i) => [out[3 * i]!, out[3 * i + 1]!, out[3 * i + 2]!]);
}

/**
 * The sum of squares of every element of `xs` (the square of their global L2 norm) in one kernel call
 * (VlmixSumSquares): the bits of tf.addN(xs.map((x) => tf.sum(tf.square(x)))). A scalar; 0 for no tensors.
 */
export function sumSquares(xs: tf.Tensor[]): tf.Scalar {
  xs.forEach((x, i) => checkDtype(`xs[${i}]`, x, 'float32'));
  if (xs.length === 0) return tf.scalar(0);
  return runFusedKernel(K.SumSquares, xs, {} as Record<string, never>) as tf.Scalar;
}

/**
 * A tanh-gated residual in one kernel (VlmixGatedResidual): x + y * tanh(gate), gate a one-element tensor (Flamingo's
 * attn_gate / ff_gate); the bits of tf.add(tf.mul(y, tf.tanh(gate)), x), values and gradients.
 */
export function gatedResidual(x: tf.Tensor, y: tf.Tensor, gate: tf.Tensor): tf.Tensor {
  checkDtype('x', x, 'float32');
  checkDtype('y', y, 'float32');
  checkShape('y', y, x.shape);
  checkDtype('gate', gate, 'float32');
  if (gate.size !== 1 || gate.rank > 1) fail(`gate: expected one element ([1] or a scalar), got ${shapeStr(gate.shape)}`);
  return runFusedKernel(K.GatedResidual, { x, y, gate }, {});
}

const FUSED_ACTIVATIONS: readonly K.FusedActivation[] = ['gelu', 'gelu_tanh', 'relu'];

/**
 * y = x @ W^T + b with W stored PyTorch-style [out, in]; x [..., in]. With `activation` ('gelu' (erf),
 * 'gelu_tanh' or 'relu') y = act(x @ W^T + b) in one kernel (VlmixLinearActivation), the bits of the linear
 * then ops.gelu / tf.relu.
 */
export function linear(x: tf.Tensor, weight: tf.Tensor, bias?: tf.Tensor | null, activation?: K.FusedActivation): tf.Tensor {
  checkRank('weight', weight, 2);
  const inF = weight.shape[1]!;
  const outF = weight.shape[0]!;
  if (x.rank < 1 || x.shape[x.rank - 1] !== inF) {
    fail(`linear: input last dim ${x.shape[x.rank - 1]} does not match weight ${shapeStr(weight.shape)} ([out, in] = [${outF}, ${inF}])`);
  }
  checkDtype('x', x, 'float32');
  if (bias) checkShape('bias', bias, [outF]);
  if (activation !== undefined && !FUSED_ACTIVATIONS.includes(activation)) {
    fail(`activation: expected one of ${FUSED_ACTIVATIONS.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(activation)}`);
  }
  return tf.tidy(() => {
    const b = bias ?? tf.zeros([0]);
    if (!activation) return runFusedKernel(K.Linear, { x, weight, bias: b }, {});
    return runFusedKernel(K.LinearActivation, { x, weight, bias: b }, { activation })[0]; // the preactivation goes with the tidy
  });
}

/**
 * A row gather prepared for ops.gatherRows: the rows picked and their inverse, uploaded once (e.g. one
 * routing per forward pass, used in every layer). The caller owns the tensors.
 */
export interface RowGather {
  /** Rows of the source. */
  rows: number;
  /** The rows picked, in output order [n]. */
  idx: tf.Tensor1D;
  /** For each source row, the output row that picked it, or n (a zero row) [rows]. */
  inv: tf.Tensor1D;
}

/** Validates `idx` against a source of `rows` rows and uploads it with its inverse. */
export function rowGather(idx: ArrayLike<number>, rows: number): RowGather {
  const inv = new Int32Array(rows).fill(idx.length); // idx.length = the zero row appended to dy
  for (let i = 0; i < idx.length; i++) {
    const j = idx[i]!;
    if (!Number.isInteger(j) || j < 0 || j >= rows) fail(`gatherRows: idx[${i}]: expected an integer in [0, ${rows}), got ${j}`);
    if (inv[j] !== idx.length) fail(`gatherRows: idx picks row ${j} twice (at ${inv[j]} and ${i}); use tf.gather for repeated rows`);
    inv[j] = i;
  }
  return { rows, idx: tf.tensor1d(Int32Array.from(idx), 'int32'), inv: tf.tensor1d(inv, 'int32') };
}

/**
 * x[idx] for a 2-D x [R, C] and indices that pick each row at most once (a permutation, or a subset),
 * given as host numbers or a prepared rowGather. Same value as tf.gather, but the gradient is a gather
 * too (dx[j] = dy[i] where idx[i] = j, 0 for rows never picked): tf.gather's gradient is
 * UnsortedSegmentSum, whose stock tfjs 'cpu' kernel costs O(R * idx.length) (it made a typeB-tiny
 * training step at batch 8 take 12.6 s instead of 2.6 s). Runs the fused kernel VlmixGatherRows.
 */
export function gatherRows(x: tf.Tensor, idx: ArrayLike<number> | RowGather): tf.Tensor2D {
  checkRank('x', x, 2);
  const r = x.shape[0]!;
  const prepared = 'rows' in idx && 'inv' in idx;
  if (prepared && idx.rows !== r) fail(`gatherRows: x: expected ${idx.rows} rows (the rowGather's source), got ${r}`);
  return tf.tidy(() => {
    const plan = prepared ? (idx as RowGather) : rowGather(idx as ArrayLike<number>, r);
    return runFusedKernel(K.GatherRows, { x, idx: plan.idx, inv: plan.inv }, {}) as tf.Tensor2D;
  });
}

/**
 * Token embeddings of `ids` with the rows of `tokens` written at the places a row gather says, in one kernel
 * (VlmixEmbeddingScatter): output row i is row plan.idx[i] of [table[ids] (ids.size rows); tokens (flattened to
 * rows)], shaped [...ids.shape, C]. A multimodal model's embedding with its image tokens at the placeholders (the
 * plan from ops.rowGather, each row at most once): the bits of tf.gather, a concat and gatherRows, values and
 * gradients (the table's as tf.gather's).
 */
export function embeddingScatter(table: tf.Tensor, ids: tf.Tensor, tokens: tf.Tensor, plan: RowGather): tf.Tensor {
  checkRank('table', table, 2);
  checkDtype('table', table, 'float32');
  checkDtype('ids', ids, 'int32');
  checkDtype('tokens', tokens, 'float32');
  const c = table.shape[1]!;
  if (tokens.rank < 1 || tokens.shape[tokens.rank - 1] !== c) fail(`tokens: expected last dim ${c} (the table's width), got ${shapeStr(tokens.shape)}`);
  const n = ids.size;
  const rows = n + tokens.size / c;
  if (plan.rows !== rows) fail(`plan: expected a row gather over ${rows} rows (${n} ids + ${rows - n} tokens), got ${plan.rows}`);
  if (plan.idx.size !== n) fail(`plan: expected ${n} picked rows (one per id), got ${plan.idx.size}`);
  return runFusedKernel(K.EmbeddingScatter, { table, ids, tokens, idx: plan.idx, inv: plan.inv }, {});
}

/** x [B, T, (sum of heads) * headDim] for splitHeads and splitHeadsRotary. */
function checkSplit(x: tf.Tensor, heads: number[], headDim: number): void {
  checkRank('x', x, 3);
  checkDtype('x', x, 'float32');
  if (!heads.length || heads.some((h) => !Number.isInteger(h) || h < 1)) fail(`heads: expected positive integers, got [${heads.join(', ')}]`);
  if (!Number.isInteger(headDim) || headDim < 1) fail(`headDim: expected a positive integer, got ${headDim}`);
  const c = heads.reduce((a, h) => a + h, 0) * headDim;
  if (x.shape[2] !== c) fail(`x: expected last dim ${c} (heads [${heads.join(', ')}] x headDim ${headDim}), got ${shapeStr(x.shape)}`);
}

/** Rotary angles cos / sin [b|1, t, R] (2R <= head dim d) and the pair style, for rotary and splitHeadsRotary. */
function checkAngles(cos: tf.Tensor, sin: tf.Tensor, style: string, b: number, t: number, d: number, where: string): void {
  checkRank('cos', cos, 3);
  const r = cos.shape[2]!;
  if (cos.shape[0] !== 1 && cos.shape[0] !== b) fail(`cos: expected shape [${b}|1, ${t}, R], got ${shapeStr(cos.shape)}`);
  checkShape('cos', cos, [null, t, null]);
  checkShape('sin', sin, cos.shape);
  checkDtype('cos', cos, 'float32');
  checkDtype('sin', sin, 'float32');
  if (2 * r > d) fail(`cos: ${r} rotated pairs need 2 * ${r} <= head dim ${d}${where}`);
  if (style !== 'half' && style !== 'interleaved') fail(`style: expected 'half' or 'interleaved', got ${JSON.stringify(style)}`);
}

/**
 * Attention heads out of a projection: x [B, T, (h0 + h1 + ...) * headDim] -> [B, h_i, T, headDim] per entry
 * of `heads`, in channel order (e.g. q, k, v of a fused QKV projection: heads [Hq, Hkv, Hkv]).
 */
export function splitHeads(x: tf.Tensor, heads: number[], headDim: number): tf.Tensor4D[] {
  checkSplit(x, heads, headDim);
  return runFusedKernel(K.SplitHeads, { x }, { heads: heads.slice(), headDim }) as tf.Tensor4D[];
}

/**
 * splitHeads with the first `rotated` parts rotated by ops.rotary(part, cos, sin, style), in one kernel
 * (VlmixSplitHeadsRotary; its gradient rotates back and merges in one too): a fused QKV projection's q and k
 * heads, rotated, with heads [Hq, Hkv, Hkv] and rotated 2. The bits of splitHeads then rotary.
 */
export function splitHeadsRotary(x: tf.Tensor, heads: number[], headDim: number, cos: tf.Tensor, sin: tf.Tensor,
  style: 'half' | 'interleaved' = 'half', rotated = 2): tf.Tensor4D[] {
  checkSplit(x, heads, headDim);
  if (!Number.isInteger(rotated) || rotated < 0 || rotated > heads.length) fail(`rotated: expected an integer in [0, ${heads.length}], got ${rotated}`);
  checkAngles(cos, sin, style, x.shape[0]!, x.shape[1]!, headDim, '');
  return runFusedKernel(K.SplitHeadsRotary, { x, cos, sin }, { heads: heads.slice(), headDim, rotated, interleaved: style === 'interleaved' }) as tf.Tensor4D[];
}

/**
 * Writes update [B, H, T, D] into a preallocated KV cache [B, H, S, D] at positions [position, position + T) of
 * axis 2 (position: an int32 scalar tensor, so that decoding steps differ in data only). Returns the written
 * cache: on a backend that writes in place (vlmix-cpu) a tensor sharing `cache`'s buffer, else a new one (see
 * `cacheWritesInPlace`). Inference only (no gradient). The caller keeps position + T <= S; the kernel checks it.
 */
export function cacheWrite(cache: tf.Tensor, update: tf.Tensor, position: tf.Tensor): tf.Tensor4D {
  checkRank('cache', cache, 4);
  checkDtype('cache', cache, 'float32');
  const [b, h, s, d] = cache.shape as number[];
  checkRank('update', update, 4);
  checkShape('update', update, [b!, h!, null, d!]);
  checkDtype('update', update, 'float32');
  if (update.shape[2]! > s!) fail(`update: ${update.shape[2]} positions do not fit a cache of ${s} (cache ${shapeStr(cache.shape)})`);
  checkRank('position', position, 0);
  checkDtype('position', position, 'int32');
  return runFusedKernel(K.CacheWrite, { cache, update, position }, {}) as tf.Tensor4D;
}

/** Whether cacheWrite writes into the cache's own buffer on a backend (its native kernel does). */
export function cacheWritesInPlace(backendName: string = tf.getBackend()): boolean {
  ensureFusedKernels(backendName);
  return kernelLayer(K.CacheWrite, backendName) === 'native';
}

/** The inverse of splitHeads: [B, h_i, T, D] (same B, T, D) -> [B, T, (sum of h_i) * D]. */
export function mergeHeads(xs: tf.Tensor | tf.Tensor[]): tf.Tensor3D {
  const list = Array.isArray(xs) ? xs : [xs];
  if (!list.length) fail('xs: expected at least one [B, H, T, D] tensor');
  list.forEach((x, i) => { checkRank(`xs[${i}]`, x, 4); checkDtype(`xs[${i}]`, x, 'float32'); });
  const [b, , t, d] = list[0]!.shape;
  list.forEach((x, i) => checkShape(`xs[${i}]`, x, [b!, null, t!, d!]));
  return runFusedKernel(K.MergeHeads, list, { heads: list.map((x) => x.shape[1]!) }) as tf.Tensor3D;
}

/**
 * Rotary position embedding of q or k [B, H, T, D] by per-position angles: cos / sin [B|1, T, R] of the R
 * rotated channel pairs (2R <= D; the rest pass through). style 'half': pairs (j, j + R), HF Llama's
 * rotate_half; 'interleaved': pairs (2j, 2j + 1).
 */
export function rotary(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor, style: 'half' | 'interleaved' = 'half'): tf.Tensor4D {
  checkRank('x', x, 4);
  checkDtype('x', x, 'float32');
  const [b, , t, d] = x.shape;
  checkAngles(cos, sin, style, b!, t!, d!, ` (x ${shapeStr(x.shape)})`);
  return runFusedKernel(K.Rotary, { x, cos, sin }, { interleaved: style === 'interleaved', inverse: false }) as tf.Tensor4D;
}
