/**
 * Reference implementations of the fused kernels, written with stock tfjs ops. They serve three roles:
 * the kernel body on backends without a native version, the backward pass on such backends, and the
 * readable statement of the math that native kernels are tested against.
 */
import * as tf from '@tensorflow/tfjs';
import type { AdamWAttrs, AttentionAttrs, FusedActivation, SplitHeadsRotaryAttrs } from './kernel-names.js';

const MASKED = -1e8; // a row whose max score is below this had every key masked

function lastDim(x: tf.Tensor): number {
  return x.shape[x.shape.length - 1]!;
}

// ---------------------------------------------------------------- layer norm
export function layerNormForward(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    const xhat = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
    return tf.add(tf.mul(xhat, gamma), beta);
  });
}

export function layerNormBackward(dy: tf.Tensor, x: tf.Tensor, gamma: tf.Tensor, eps: number): [tf.Tensor, tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const c = lastDim(x);
    const { mean, variance } = tf.moments(x, -1, true);
    const rstd = tf.rsqrt(tf.add(variance, eps));
    const xhat = tf.mul(tf.sub(x, mean), rstd);
    const flat = (t: tf.Tensor) => tf.reshape(t, [-1, c]);
    const dgamma = tf.sum(flat(tf.mul(dy, xhat)), 0);
    const dbeta = tf.sum(flat(dy), 0);
    const g = tf.mul(dy, gamma);
    // dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
    const dx = tf.mul(rstd, tf.sub(tf.sub(g, tf.mean(g, -1, true)), tf.mul(xhat, tf.mean(tf.mul(g, xhat), -1, true))));
    return [dx, dgamma, dbeta];
  });
}

// ---------------------------------------------------------------- RMS norm
export function rmsNormForward(x: tf.Tensor, gamma: tf.Tensor, eps: number): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps))), gamma));
}

export function rmsNormBackward(dy: tf.Tensor, x: tf.Tensor, gamma: tf.Tensor, eps: number): [tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const c = lastDim(x);
    const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps));
    const xhat = tf.mul(x, rstd);
    const dgamma = tf.sum(tf.reshape(tf.mul(dy, xhat), [-1, c]), 0);
    const g = tf.mul(dy, gamma);
    // dx = rstd * (g - xhat * mean(g * xhat))
    const dx = tf.mul(rstd, tf.sub(g, tf.mul(xhat, tf.mean(tf.mul(g, xhat), -1, true))));
    return [dx, dgamma];
  });
}

// ---------------------------------------------------------------- attention
/** Additive causal bias [Tq, Tk]: query i sees key j iff j <= i + (Tk - Tq). */
export function causalBias(tq: number, tk: number): tf.Tensor2D {
  return tf.tidy(() => {
    const i = tf.reshape(tf.range(0, tq, 1, 'int32'), [tq, 1]);
    const j = tf.reshape(tf.range(0, tk, 1, 'int32'), [1, tk]);
    const allowed = tf.lessEqual(j, tf.add(i, tk - tq));
    return tf.where(allowed, tf.zeros([tq, tk]), tf.fill([tq, tk], -1e9)) as tf.Tensor2D;
  });
}

/** [B, Hkv, T, D] -> [B, Hkv * rep, T, D], each kv head repeated `rep` times in place (repeat_interleave). */
function repeatKv(x: tf.Tensor, rep: number): tf.Tensor {
  if (rep === 1) return x;
  const [b, h, t, d] = x.shape as number[];
  // rank-4 tile: tfjs has no Tile gradient above rank 4
  return tf.reshape(tf.tile(tf.reshape(x, [b!, h!, 1, t! * d!]), [1, 1, rep, 1]), [b!, h! * rep, t!, d!]);
}

/** [B, Hkv * rep, T, D] -> [B, Hkv, T, D], summing the gradient of each repeated copy. */
function reduceKv(x: tf.Tensor, rep: number): tf.Tensor {
  if (rep === 1) return x;
  const [b, h, t, d] = x.shape as number[];
  return tf.sum(tf.reshape(x, [b!, h! / rep, rep, t!, d!]), 2);
}

/** Softmax probabilities with rows whose every key is masked set to zero. */
function attentionProbs(q: tf.Tensor, k: tf.Tensor, bias: tf.Tensor, attrs: AttentionAttrs): tf.Tensor {
  const tq = q.shape[2]!;
  const tk = k.shape[2]!;
  let scores = tf.mul(tf.matMul(q as tf.Tensor4D, k as tf.Tensor4D, false, true), attrs.scale);
  if (attrs.causal) scores = tf.add(scores, causalBias(tq, tk));
  if (bias.size > 0) scores = tf.add(scores, bias);
  const m = tf.max(scores, -1, true);
  const e = tf.exp(tf.sub(scores, m));
  const p = tf.div(e, tf.sum(e, -1, true));
  // step() has a (zero) gradient, unlike greater(), so autodiff through this body works.
  return tf.mul(p, tf.step(tf.sub(m, MASKED)));
}

export function attentionForward(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, bias: tf.Tensor, attrs: AttentionAttrs): tf.Tensor {
  return tf.tidy(() => {
    const rep = q.shape[1]! / k.shape[1]!;
    const p = attentionProbs(q, repeatKv(k, rep), bias, attrs);
    return tf.matMul(p as tf.Tensor4D, repeatKv(v, rep) as tf.Tensor4D);
  });
}

export function attentionBackward(
  dy: tf.Tensor, q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, bias: tf.Tensor, attrs: AttentionAttrs,
): [tf.Tensor, tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const rep = q.shape[1]! / k.shape[1]!;
    const kr = repeatKv(k, rep) as tf.Tensor4D;
    const vr = repeatKv(v, rep) as tf.Tensor4D;
    const p = attentionProbs(q, kr, bias, attrs) as tf.Tensor4D;
    const dy4 = dy as tf.Tensor4D;
    const dv = tf.matMul(p, dy4, true, false);
    const dp = tf.matMul(dy4, vr, false, true);
    // softmax backward: ds = p * (dp - sum(dp * p))
    const ds = tf.mul(tf.mul(p, tf.sub(dp, tf.sum(tf.mul(dp, p), -1, true))), attrs.scale) as tf.Tensor4D;
    const dq = tf.matMul(ds, kr);
    const dk = tf.matMul(ds, q as tf.Tensor4D, true, false);
    return [dq, reduceKv(dk, rep), reduceKv(dv, rep)];
  });
}

// ---------------------------------------------------------------- softmax cross-entropy
export function softmaxCrossEntropyForward(logits: tf.Tensor, labels: tf.Tensor, ignoreIndex: number): tf.Tensor {
  return tf.tidy(() => {
    const v = lastDim(logits);
    const valid = tf.notEqual(labels, ignoreIndex);
    const safe = tf.where(valid, labels, tf.zerosLike(labels));
    const logp = tf.logSoftmax(logits as tf.Tensor2D);
    const picked = tf.sum(tf.mul(logp, tf.oneHot(tf.cast(safe, 'int32') as tf.Tensor1D, v)), -1);
    return tf.where(valid, tf.neg(picked), tf.zerosLike(picked));
  });
}

export function softmaxCrossEntropyBackward(dloss: tf.Tensor, logits: tf.Tensor, labels: tf.Tensor, ignoreIndex: number): tf.Tensor {
  return tf.tidy(() => {
    const v = lastDim(logits);
    const valid = tf.notEqual(labels, ignoreIndex);
    const safe = tf.where(valid, labels, tf.zerosLike(labels));
    const grad = tf.sub(tf.softmax(logits as tf.Tensor2D), tf.oneHot(tf.cast(safe, 'int32') as tf.Tensor1D, v));
    const scale = tf.where(valid, dloss, tf.zerosLike(dloss));
    return tf.mul(grad, tf.expandDims(scale, -1));
  });
}

/** max(number of labels != ignoreIndex, 1): the divisor of the mean loss. */
function meanDivisor(labels: tf.Tensor, ignoreIndex: number): tf.Tensor {
  return tf.maximum(tf.sum(tf.cast(tf.notEqual(labels, ignoreIndex), 'float32')), 1);
}

/** Mean of the per-row losses over non-ignored rows (0 when all are ignored). */
export function softmaxCrossEntropyMeanForward(logits: tf.Tensor, labels: tf.Tensor, ignoreIndex: number): tf.Tensor {
  return tf.tidy(() => tf.div(tf.sum(softmaxCrossEntropyForward(logits, labels, ignoreIndex)), meanDivisor(labels, ignoreIndex)));
}

export function softmaxCrossEntropyMeanBackward(dloss: tf.Tensor, logits: tf.Tensor, labels: tf.Tensor, ignoreIndex: number): tf.Tensor {
  return tf.tidy(() => {
    const perRow = tf.broadcastTo(tf.div(dloss, meanDivisor(labels, ignoreIndex)), [logits.shape[0]!]);
    return softmaxCrossEntropyBackward(perRow, logits, labels, ignoreIndex);
  });
}

/** The head's logits x W^T, then the mean loss: the unfused path, which the fused kernel must equal. */
export function linearCrossEntropyForward(x: tf.Tensor, weight: tf.Tensor, labels: tf.Tensor, ignoreIndex: number): tf.Tensor {
  return tf.tidy(() => softmaxCrossEntropyMeanForward(tf.matMul(x, weight, false, true), labels, ignoreIndex));
}

export function linearCrossEntropyBackward(dloss: tf.Tensor, x: tf.Tensor, weight: tf.Tensor, labels: tf.Tensor, ignoreIndex: number): [tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const dlogits = softmaxCrossEntropyMeanBackward(dloss, tf.matMul(x, weight, false, true), labels, ignoreIndex);
    return [tf.matMul(dlogits, weight), tf.matMul(dlogits, x, true, false)] as [tf.Tensor, tf.Tensor];
  });
}

// ---------------------------------------------------------------- activations
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

export function geluForward(x: tf.Tensor, approximate: 'none' | 'tanh'): tf.Tensor {
  return tf.tidy(() => {
    if (approximate === 'tanh') {
      const inner = tf.mul(SQRT_2_OVER_PI, tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
      return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
    }
    return tf.mul(tf.mul(0.5, x), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
  });
}

export function geluBackward(dy: tf.Tensor, x: tf.Tensor, approximate: 'none' | 'tanh'): tf.Tensor {
  return tf.tidy(() => {
    if (approximate === 'tanh') {
      const x2 = tf.square(x);
      const t = tf.tanh(tf.mul(SQRT_2_OVER_PI, tf.mul(x, tf.add(1, tf.mul(0.044715, x2)))));
      const dinner = tf.mul(SQRT_2_OVER_PI, tf.add(1, tf.mul(3 * 0.044715, x2)));
      const d = tf.add(tf.mul(0.5, tf.add(1, t)), tf.mul(tf.mul(tf.mul(0.5, x), tf.sub(1, tf.square(t))), dinner));
      return tf.mul(dy, d);
    }
    const cdf = tf.mul(0.5, tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
    const pdf = tf.mul(1 / Math.sqrt(2 * Math.PI), tf.exp(tf.mul(-0.5, tf.square(x))));
    return tf.mul(dy, tf.add(cdf, tf.mul(x, pdf)));
  });
}

export function swigluForward(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(gate, tf.sigmoid(gate)), up));
}

export function swigluBackward(dy: tf.Tensor, gate: tf.Tensor, up: tf.Tensor): [tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const s = tf.sigmoid(gate);
    const silu = tf.mul(gate, s);
    // d silu / d gate = s * (1 + gate * (1 - s))
    const dsilu = tf.mul(s, tf.add(1, tf.mul(gate, tf.sub(1, s))));
    return [tf.mul(tf.mul(dy, up), dsilu), tf.mul(dy, silu)];
  });
}

// ---------------------------------------------------------------- AdamW
export function adamwStep(param: tf.Tensor, grad: tf.Tensor, m: tf.Tensor, v: tf.Tensor, a: AdamWAttrs): [tf.Tensor, tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const bc1 = 1 - Math.pow(a.beta1, a.step);
    const bc2 = 1 - Math.pow(a.beta2, a.step);
    const m2 = tf.add(tf.mul(m, a.beta1), tf.mul(grad, 1 - a.beta1));
    const v2 = tf.add(tf.mul(v, a.beta2), tf.mul(tf.square(grad), 1 - a.beta2));
    const decayed = tf.mul(param, 1 - a.lr * a.weightDecay);
    const update = tf.div(tf.div(m2, bc1), tf.add(tf.sqrt(tf.div(v2, bc2)), a.eps));
    return [tf.sub(decayed, tf.mul(update, a.lr)), m2, v2];
  });
}

/** sum_i sum(x_i^2): each tensor's sum of squares, then added in list order (0 for an empty list). */
export function sumSquares(xs: tf.Tensor[]): tf.Tensor {
  return tf.tidy(() => {
    if (xs.length === 0) return tf.scalar(0);
    const parts = xs.map((x) => tf.sum(tf.square(x)));
    return parts.length === 1 ? parts[0]! : tf.addN(parts);
  });
}

// ---------------------------------------------------------------- row gather
/** y = x[idx] (each row at most once). */
export function gatherRowsForward(x: tf.Tensor, idx: tf.Tensor): tf.Tensor {
  return tf.gather(x, idx);
}

/** dx[j] = dy[inv[j]], or 0 where inv[j] = n (a zero row appended to dy): the adjoint is a gather too. */
export function gatherRowsBackward(dy: tf.Tensor, inv: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.gather(tf.concat([dy, tf.zeros([1, dy.shape[1]!], dy.dtype)], 0), inv));
}

// ---------------------------------------------------------------- linear
/** y = x @ weight^T + bias over the last axis of x; an empty bias means none. */
export function linearForward(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const [n, k] = weight.shape as [number, number];
    const rows = tf.util.sizeFromShape(x.shape.slice(0, -1));
    const y = tf.matMul(tf.reshape(x, [rows, k]), weight, false, true);
    return tf.reshape(bias.size ? tf.add(y, bias) : y, [...x.shape.slice(0, -1), n]);
  });
}

/** [dx = dy @ weight, dweight = dy^T @ x, dbias = sum of dy's rows (empty when bias is)]. */
export function linearBackward(dy: tf.Tensor, x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor): [tf.Tensor, tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const [n, k] = weight.shape as [number, number];
    const rows = tf.util.sizeFromShape(x.shape.slice(0, -1));
    const dy2 = tf.reshape(dy, [rows, n]);
    const dx = tf.reshape(tf.matMul(dy2, weight), x.shape);
    const dw = tf.matMul(dy2, tf.reshape(x, [rows, k]), true, false);
    const db = bias.size ? tf.sum(dy2, 0) : tf.zeros(bias.shape);
    return [dx, dw, db];
  });
}

// ---------------------------------------------------------------- attention heads
/** x [B, T, (sum of heads) * D] -> [B, h, T, D] per entry of heads. */
export function splitHeadsForward(x: tf.Tensor, heads: number[], headDim: number): tf.Tensor[] {
  return tf.tidy(() => {
    const [b, t] = x.shape as number[];
    const parts = heads.length === 1 ? [x] : tf.split(x, heads.map((h) => h * headDim), -1);
    return parts.map((p, i) => tf.transpose(tf.reshape(p, [b!, t!, heads[i]!, headDim]), [0, 2, 1, 3]));
  });
}

/** [B, h_i, T, D] list -> [B, T, (sum of h_i) * D]. */
export function mergeHeadsForward(xs: tf.Tensor[]): tf.Tensor {
  return tf.tidy(() => {
    const [b, , t, d] = xs[0]!.shape as number[];
    const parts = xs.map((x) => tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [b!, t!, x.shape[1]! * d!]));
    return parts.length === 1 ? parts[0]! : tf.concat(parts, -1);
  });
}

// ---------------------------------------------------------------- rotary
/** x [B, H, T, D] rotated by the angles whose cos / sin [B|1, T, R] are given (see kernel-names Rotary). */
export function rotaryForward(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor, interleaved: boolean, inverse: boolean): tf.Tensor {
  return tf.tidy(() => {
    const [b, h, t, d] = x.shape as number[];
    const r = cos.shape[2]!;
    const c = tf.expandDims(cos, 1);
    const s = inverse ? tf.neg(tf.expandDims(sin, 1)) : tf.expandDims(sin, 1);
    const [rot, pass] = 2 * r === d ? [x, null] : tf.split(x, [2 * r, d! - 2 * r], -1);
    let out: tf.Tensor;
    if (interleaved) {
      const [a, o] = tf.split(tf.reshape(rot!, [b!, h!, t!, r, 2]), 2, -1).map((p) => tf.squeeze(p, [-1]));
      out = tf.reshape(tf.stack([tf.sub(tf.mul(a!, c), tf.mul(o!, s)), tf.add(tf.mul(o!, c), tf.mul(a!, s))], -1), [b!, h!, t!, 2 * r]);
    } else {
      const [a, o] = tf.split(rot!, 2, -1);
      out = tf.concat([tf.sub(tf.mul(a!, c), tf.mul(o!, s)), tf.add(tf.mul(o!, c), tf.mul(a!, s))], -1);
    }
    return pass ? tf.concat([out, pass], -1) : out;
  });
}

// ---------------------------------------------------------------- KV cache
/** cache [B, H, S, D] with positions [p, p + T) of axis 2 replaced by update [B, H, T, D]; p an int32 scalar tensor. */
export function cacheWriteForward(cache: tf.Tensor, update: tf.Tensor, position: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const t = update.shape[2]!;
    const rows = tf.reshape(tf.add(tf.reshape(position, [1]), tf.range(0, t, 1, 'int32')), [t, 1]);
    // positions outermost, so that one index row addresses a whole [B, H, D] slab
    const written = tf.tensorScatterUpdate(tf.transpose(cache, [2, 0, 1, 3]), rows, tf.transpose(update, [2, 0, 1, 3]));
    return tf.transpose(written, [1, 2, 0, 3]);
  });
}

// ---------------------------------------------------------------- residual add + norm
/** [sum = a + b, normed = norm(sum)]: LayerNorm with beta, RMSNorm when rms (beta empty). */
export function addNormForward(a: tf.Tensor, b: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number, rms: boolean): [tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const sum = tf.add(a, b);
    return [sum, rms ? rmsNormForward(sum, gamma, eps) : layerNormForward(sum, gamma, beta, eps)];
  });
}

/** [da, db, dgamma, dbeta]: da = db = dsum + the norm's dx (dsum empty: none); dbeta empty for RMSNorm. */
export function addNormBackward(dnormed: tf.Tensor, dsum: tf.Tensor, sum: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor,
  eps: number, rms: boolean): [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const [dx, dgamma, dbeta] = rms
      ? [...rmsNormBackward(dnormed, sum, gamma, eps), tf.zeros(beta.shape)]
      : layerNormBackward(dnormed, sum, gamma, eps);
    const d = dsum.size ? tf.add(dx!, dsum) : dx!;
    return [d, tf.clone(d), dgamma!, dbeta!]; // two outputs: distinct tensors
  });
}

// ---------------------------------------------------------------- linear + activation
/** act(z) for a fused activation. */
export function activationForward(z: tf.Tensor, activation: FusedActivation): tf.Tensor {
  if (activation === 'relu') return tf.relu(z);
  return geluForward(z, activation === 'gelu_tanh' ? 'tanh' : 'none');
}

/** dy * act'(z), as tfjs's Relu gradient (dy * step(z)) and VlmixGeluGrad compute it. */
export function activationBackward(dy: tf.Tensor, z: tf.Tensor, activation: FusedActivation): tf.Tensor {
  if (activation === 'relu') return tf.tidy(() => tf.mul(dy, tf.step(z)));
  return geluBackward(dy, z, activation === 'gelu_tanh' ? 'tanh' : 'none');
}

/** [y = act(z), z = x @ weight^T + bias]. */
export function linearActivationForward(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, activation: FusedActivation): [tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const z = linearForward(x, weight, bias);
    return [activationForward(z, activation), z];
  });
}

/** LinearGrad of dz = dy * act'(preactivation). */
export function linearActivationBackward(dy: tf.Tensor, x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, preactivation: tf.Tensor,
  activation: FusedActivation): [tf.Tensor, tf.Tensor, tf.Tensor] {
  return tf.tidy(() => linearBackward(activationBackward(dy, preactivation, activation), x, weight, bias));
}

// ---------------------------------------------------------------- tanh-gated residual
/** x + y * tanh(gate), gate one element. */
export function gatedResidualForward(x: tf.Tensor, y: tf.Tensor, gate: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.add(tf.mul(y, tf.tanh(gate)), x));
}

/** [dx = dy, dy * tanh(gate), (1 - tanh(gate)^2) * sum(dy * y)] as tfjs's Add, Multiply and Tanh gradients compute them. */
export function gatedResidualBackward(dy: tf.Tensor, y: tf.Tensor, gate: tf.Tensor): [tf.Tensor, tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const t = tf.tanh(gate);
    const dt = tf.reshape(tf.sum(tf.mul(dy, y)), gate.shape);
    return [tf.clone(dy), tf.mul(dy, t), tf.mul(tf.sub(1, tf.square(t)), dt)];
  });
}

// ---------------------------------------------------------------- split heads + rotary
/** splitHeadsForward, then rotaryForward on the first `rotated` parts. */
export function splitHeadsRotaryForward(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor, a: SplitHeadsRotaryAttrs): tf.Tensor[] {
  return tf.tidy(() => splitHeadsForward(x, a.heads, a.headDim)
    .map((p, i) => (i < a.rotated ? rotaryForward(p, cos, sin, a.interleaved, false) : p)));
}

/** The first `rotated` parts rotated back, then mergeHeadsForward. */
export function mergeHeadsRotaryForward(dys: tf.Tensor[], cos: tf.Tensor, sin: tf.Tensor, a: SplitHeadsRotaryAttrs): tf.Tensor {
  return tf.tidy(() => mergeHeadsForward(dys.map((d, i) => (i < a.rotated ? rotaryForward(d, cos, sin, a.interleaved, true) : d))));
}

// ---------------------------------------------------------------- embedding + placeholder scatter
/** gatherRows([table[ids]; tokens], idx), shaped [...ids.shape, C]. */
export function embeddingScatterForward(table: tf.Tensor, ids: tf.Tensor, tokens: tf.Tensor, idx: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const c = table.shape[1]!;
    const both = tf.concat([tf.gather(table, tf.reshape(ids, [-1])), tf.reshape(tokens, [-1, c])], 0);
    return tf.reshape(gatherRowsForward(both, idx), [...ids.shape, c]);
  });
}

/** [dtable, dtokens]: dy gathered back onto [table rows; tokens] (gatherRowsBackward), the table's part summed into ids. */
export function embeddingScatterBackward(dy: tf.Tensor, ids: tf.Tensor, inv: tf.Tensor, table: tf.Tensor, tokens: tf.Tensor): [tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const [v, c] = table.shape as [number, number];
    const n = ids.size;
    const both = gatherRowsBackward(tf.reshape(dy, [n, c]), inv);
    const [emb, tok] = tf.split(both, [n, both.shape[0]! - n], 0);
    return [tf.unsortedSegmentSum(emb!, tf.reshape(ids, [n]), v), tf.reshape(tok!, tokens.shape)];
  });
}
