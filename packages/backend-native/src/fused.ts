// vlmix fused kernels (see @vlmix/core/kernel-names) on native code.
import * as tf from '@tensorflow/tfjs';
import * as K from '@vlmix/core/kernel-names';
import type { NativeBackend } from './backend.js';
import { broadcastTo, cast } from './kernels.js';

type TI = tf.TensorInfo;
/** A native fused kernel, typed by its contract (@vlmix/core/kernel-names). */
type NativeFused<N extends K.FusedKernelName> = (args: {
  inputs: K.FusedInputs<N>; attrs: K.FusedAttrs<N>; backend: NativeBackend;
}) => K.FusedOutputs<N, TI>;

const size = (s: number[]) => tf.util.sizeFromShape(s);
const last = (s: number[]) => s[s.length - 1] ?? 1;

function f32(b: NativeBackend, t: TI, temps: TI[]): number {
  if (t.dtype === 'float32') return b.nid(t);
  const c = cast(b, t, 'float32');
  temps.push(c);
  return b.nid(c);
}
function i32(b: NativeBackend, t: TI, temps: TI[]): number {
  if (t.dtype === 'int32') return b.nid(t);
  const c = cast(b, t, 'int32');
  temps.push(c);
  return b.nid(c);
}
function done<T>(b: NativeBackend, temps: TI[], v: T): T {
  for (const t of temps) b.disposeIntermediate(t);
  return v;
}

function rows(x: TI): [number, number] {
  const C = last(x.shape);
  return [C === 0 ? 0 : size(x.shape) / C, C];
}

/** Attention bias as [Bb, Hb, Tb, Tk] with Bb in {1,B}, Hb in {1,Hq}, Tb in {1,Tq}; an empty tensor means
 *  none. Other broadcastable shapes are materialised. Returns [id | -1, Bb, Hb, Tb]. */
function attnBias(b: NativeBackend, bias: TI | undefined, B: number, Hq: number, Tq: number, Tk: number,
  temps: TI[]): [number, number, number, number] {
  if (!bias || size(bias.shape) === 0) return [-1, 1, 1, 1];
  let t = bias;
  const pad = (s: number[]) => [...new Array(Math.max(0, 4 - s.length)).fill(1), ...s];
  const s = pad(t.shape);
  const ok = s.length === 4 && (s[0] === 1 || s[0] === B) && (s[1] === 1 || s[1] === Hq) &&
    (s[2] === 1 || s[2] === Tq) && s[3] === Tk;
  if (!ok) {
    t = broadcastTo(b, t, [s[0] === 1 ? 1 : B, s[1] === 1 ? 1 : Hq, Tq, Tk]);
    temps.push(t);
  }
  const ts = pad(t.shape);
  return [f32(b, t, temps), ts[0], ts[1], ts[2]];
}

/** max(number of labels != ignoreIndex, 1) as a float32 scalar buffer (the mean loss's divisor; the caller
 *  frees it). Computed by the addon, so the labels are never read back. */
function meanDivisor(b: NativeBackend, labels: number, n: number, ignoreIndex: number): number {
  const { nat } = b;
  const ign = nat.fill(1, 1, ignoreIndex);
  const ne = nat.binary(nat.binaryOps.NotEqual!, 1, labels, [n], ign, [], [n]);
  const count = nat.reduce(nat.reduceOps.Sum!, 1, ne, 1, n, 1);
  const countF = nat.cast(count, 1, 1, 0, false);
  const one = nat.fill(0, 1, 1);
  const div = nat.binary(nat.binaryOps.Maximum!, 0, countF, [], one, [], []);
  for (const id of [ign, ne, count, countF, one]) nat.free(id);
  return div;
}

function attnGeom(q: TI, k: TI, v: TI): number[] {
  const [B, Hq, Tq, D] = q.shape;
  const [, Hkv, Tk] = k.shape;
  return [B, Hq, Hkv, Tq, Tk, D, v.shape[3]];
}

/** Strided copies of x [B, T, (sum of heads) * D] into one new [B, h, T, D] buffer per entry of heads. */
function splitParts(b: NativeBackend, x: number, shape: number[], heads: number[], D: number): number[] {
  const [B, T, C] = shape as [number, number, number];
  let off = 0;
  return heads.map((h) => {
    const id = b.nat.alloc(B * h * T * D);
    b.nat.copyInto(x, off, [T * C, D, C, 1], id, 0, [h * T * D, T * D, D, 1], [B, h, T, D]);
    off += h * D;
    return id;
  });
}

/** The inverse: [B, h_i, T, D] buffers into one new [B, T, (sum of heads) * D] buffer, heads in list order. */
function mergeParts(b: NativeBackend, parts: number[], heads: number[], B: number, T: number, D: number): number {
  const C = heads.reduce((a, h) => a + h, 0) * D;
  const id = b.nat.alloc(B * T * C);
  let off = 0;
  parts.forEach((src, i) => {
    const h = heads[i]!;
    b.nat.copyInto(src, 0, [h * T * D, T * D, D, 1], id, off, [T * C, D, C, 1], [B, h, T, D]);
    off += h * D;
  });
  return id;
}

const kernels: { [N in K.FusedKernelName]: NativeFused<N> } = {
  [K.LayerNorm]: ({ inputs: { x, gamma, beta }, backend: b, attrs }) => {
    const t: TI[] = [];
    const [r, C] = rows(x);
    const id = b.nat.layerNorm(f32(b, x, t), f32(b, gamma, t), f32(b, beta, t), r, C, attrs.eps);
    return done(b, t, b.out(id, x.shape, 'float32'));
  },
  [K.LayerNormGrad]: ({ inputs: { dy, x, gamma }, backend: b, attrs }) => {
    const t: TI[] = [];
    const [r, C] = rows(x);
    const [dx, dg, db] = b.nat.layerNormGrad(f32(b, dy, t), f32(b, x, t), f32(b, gamma, t), r, C, attrs.eps);
    return done(b, t, [b.out(dx, x.shape, 'float32'), b.out(dg, [C], 'float32'), b.out(db, [C], 'float32')]);
  },
  [K.RmsNorm]: ({ inputs: { x, gamma }, backend: b, attrs }) => {
    const t: TI[] = [];
    const [r, C] = rows(x);
    const id = b.nat.rmsNorm(f32(b, x, t), f32(b, gamma, t), r, C, attrs.eps);
    return done(b, t, b.out(id, x.shape, 'float32'));
  },
  [K.RmsNormGrad]: ({ inputs: { dy, x, gamma }, backend: b, attrs }) => {
    const t: TI[] = [];
    const [r, C] = rows(x);
    const [dx, dg] = b.nat.rmsNormGrad(f32(b, dy, t), f32(b, x, t), f32(b, gamma, t), r, C, attrs.eps);
    return done(b, t, [b.out(dx, x.shape, 'float32'), b.out(dg, [C], 'float32')]);
  },
  [K.Attention]: ({ inputs: { q, k, v, bias }, backend: b, attrs }) => {
    const t: TI[] = [];
    const g = attnGeom(q, k, v);
    const [biasId, Bb, Hb, Tb] = attnBias(b, bias, g[0], g[1], g[3], g[4], t);
    const id = b.nat.attention(f32(b, q, t), f32(b, k, t), f32(b, v, t), biasId, [...g, Bb, Hb, Tb],
      attrs.scale, !!attrs.causal);
    return done(b, t, b.out(id, [g[0], g[1], g[3], g[6]], 'float32'));
  },
  [K.AttentionGrad]: ({ inputs: { dy, q, k, v, bias }, backend: b, attrs }) => {
    const t: TI[] = [];
    const g = attnGeom(q, k, v);
    const [biasId, Bb, Hb, Tb] = attnBias(b, bias, g[0], g[1], g[3], g[4], t);
    const [dq, dk, dv] = b.nat.attentionGrad(f32(b, dy, t), f32(b, q, t), f32(b, k, t), f32(b, v, t), biasId,
      [...g, Bb, Hb, Tb], attrs.scale, !!attrs.causal);
    return done(b, t, [b.out(dq, q.shape, 'float32'), b.out(dk, k.shape, 'float32'), b.out(dv, v.shape, 'float32')]);
  },
  [K.SoftmaxCrossEntropy]: ({ inputs: { logits, labels }, backend: b, attrs }) => {
    const t: TI[] = [];
    const [N, V] = rows(logits);
    const id = b.nat.sce(f32(b, logits, t), i32(b, labels, t), N, V, attrs.ignoreIndex);
    return done(b, t, b.out(id, [N], 'float32'));
  },
  [K.SoftmaxCrossEntropyGrad]: ({ inputs: { dloss, logits, labels }, backend: b, attrs }) => {
    const t: TI[] = [];
    const [N, V] = rows(logits);
    const id = b.nat.sceGrad(f32(b, dloss, t), f32(b, logits, t), i32(b, labels, t), N, V, attrs.ignoreIndex);
    return done(b, t, b.out(id, logits.shape, 'float32'));
  },
  // The rows' losses summed by the addon's reduction, then divided by the count of labels kept.
  [K.SoftmaxCrossEntropyMean]: ({ inputs: { logits, labels }, backend: b, attrs }) => {
    const t: TI[] = [];
    const [N, V] = rows(logits);
    const lb = i32(b, labels, t);
    const perRow = b.nat.sce(f32(b, logits, t), lb, N, V, attrs.ignoreIndex);
    const total = b.nat.reduce(b.nat.reduceOps.Sum!, 0, perRow, 1, N, 1);
    const div = meanDivisor(b, lb, N, attrs.ignoreIndex);
    const loss = b.nat.binary(b.nat.binaryOps.RealDiv!, 0, total, [], div, [], []);
    for (const id of [perRow, total, div]) b.nat.free(id);
    return done(b, t, b.out(loss, [], 'float32'));
  },
  [K.SoftmaxCrossEntropyMeanGrad]: ({ inputs: { dloss, logits, labels }, backend: b, attrs }) => {
    const t: TI[] = [];
    const [N, V] = rows(logits);
    const lb = i32(b, labels, t);
    const div = meanDivisor(b, lb, N, attrs.ignoreIndex);
    const scaled = b.nat.binary(b.nat.binaryOps.RealDiv!, 0, f32(b, dloss, t), [], div, [], []);
    const perRow = b.nat.strided(scaled, 0, [0], [N]); // the same value on every row
    const id = b.nat.sceGrad(perRow, f32(b, logits, t), lb, N, V, attrs.ignoreIndex);
    for (const x of [div, scaled, perRow]) b.nat.free(x);
    return done(b, t, b.out(id, logits.shape, 'float32'));
  },
  // Only the rows whose label is kept, in chunks, without the [N, V] logits (fused_linear_ce.cc).
  [K.LinearCrossEntropy]: ({ inputs: { x, weight, labels }, backend: b, attrs }) => {
    const t: TI[] = [];
    const [V, C] = weight.shape as [number, number];
    const id = b.nat.linearCe(f32(b, x, t), f32(b, weight, t), i32(b, labels, t), x.shape[0]!, C, V, attrs.ignoreIndex);
    return done(b, t, b.out(id, [], 'float32'));
  },
  [K.LinearCrossEntropyGrad]: ({ inputs: { dloss, x, weight, labels }, backend: b, attrs }) => {
    const t: TI[] = [];
    const [V, C] = weight.shape as [number, number];
    const [dx, dw] = b.nat.linearCeGrad(f32(b, dloss, t), f32(b, x, t), f32(b, weight, t), i32(b, labels, t), x.shape[0]!, C, V, attrs.ignoreIndex);
    return done(b, t, [b.out(dx, x.shape, 'float32'), b.out(dw, weight.shape, 'float32')]);
  },
  [K.Gelu]: ({ inputs: { x }, backend: b, attrs }) => {
    const t: TI[] = [];
    const id = b.nat.gelu(f32(b, x, t), size(x.shape), attrs.approximate === 'tanh');
    return done(b, t, b.out(id, x.shape, 'float32'));
  },
  [K.GeluGrad]: ({ inputs: { dy, x }, backend: b, attrs }) => {
    const t: TI[] = [];
    const id = b.nat.geluGrad(f32(b, dy, t), f32(b, x, t), size(x.shape), attrs.approximate === 'tanh');
    return done(b, t, b.out(id, x.shape, 'float32'));
  },
  [K.Swiglu]: ({ inputs: { gate, up }, backend: b }) => {
    const t: TI[] = [];
    const id = b.nat.swiglu(f32(b, gate, t), f32(b, up, t), size(gate.shape));
    return done(b, t, b.out(id, gate.shape, 'float32'));
  },
  [K.SwigluGrad]: ({ inputs: { dy, gate, up }, backend: b }) => {
    const t: TI[] = [];
    const [dg, du] = b.nat.swigluGrad(f32(b, dy, t), f32(b, gate, t), f32(b, up, t), size(gate.shape));
    return done(b, t, [b.out(dg, gate.shape, 'float32'), b.out(du, up.shape, 'float32')]);
  },
  [K.AdamW]: ({ inputs: { param, grad, m, v }, backend: b, attrs: a }) => {
    const t: TI[] = [];
    const [p, mm, vv] = b.nat.adamw(f32(b, param, t), f32(b, grad, t), f32(b, m, t), f32(b, v, t), size(param.shape),
      a.lr, a.beta1, a.beta2, a.eps, a.weightDecay, a.step);
    return done(b, t, [b.out(p, param.shape, 'float32'), b.out(mm, m.shape, 'float32'), b.out(vv, v.shape, 'float32')]);
  },
  // One addon call per distinct weight decay (usually two: weights, and biases / norms without decay).
  [K.AdamWMulti]: ({ inputs, backend: b, attrs: a }) => {
    const t: TI[] = [];
    const out: TI[] = new Array<TI>(3 * a.weightDecay.length);
    // in place (opt-in): float32 param, m, v whose buffers nothing else shares
    const mine = (x: TI) => x.dtype === 'float32' && b.refCount(x.dataId) === 1;
    const inPlace = (k: number) => !!a.inPlace && [0, 2, 3].every((j) => mine(inputs[4 * k + j]!));
    for (const wd of new Set(a.weightDecay)) {
      for (const place of [false, true]) {
        const which = a.weightDecay.flatMap((w, k) => (w === wd && inPlace(k) === place ? [k] : []));
        if (!which.length) continue;
        const groups = which.map((k) => [0, 1, 2, 3].map((j) => f32(b, inputs[4 * k + j]!, t)) as [number, number, number, number]);
        const sizes = which.map((k) => size(inputs[4 * k]!.shape));
        if (place) {
          b.nat.adamwInPlace(groups, sizes, a.lr, a.beta1, a.beta2, a.eps, wd, a.step);
          which.forEach((k) => [0, 2, 3].forEach((j, o) => { out[3 * k + o] = b.alias(inputs[4 * k + j]!, inputs[4 * k]!.shape); }));
          continue;
        }
        const res = b.nat.adamwMulti(groups, sizes, a.lr, a.beta1, a.beta2, a.eps, wd, a.step);
        which.forEach((k, r) => {
          res[r]!.forEach((id, j) => { out[3 * k + j] = b.out(id, inputs[4 * k]!.shape, 'float32'); });
        });
      }
    }
    return done(b, t, out);
  },
  // The native calls of tf.addN(xs.map((x) => tf.sum(tf.square(x)))), so the same bits, in one dispatch.
  [K.SumSquares]: ({ inputs, backend: b }) => {
    const t: TI[] = [];
    const nat = b.nat;
    if (inputs.length === 0) return b.out(nat.fill(0, 1, 0), [], 'float32');
    const sums = inputs.map((x) => {
      const n = size(x.shape);
      const sq = nat.unary(nat.unaryOps.Square!, 0, f32(b, x, t), n, 0, 0);
      const s = nat.reduce(nat.reduceOps.Sum!, 0, sq, 1, n, 1);
      nat.free(sq);
      return s;
    });
    if (sums.length === 1) return done(b, t, b.out(sums[0]!, [], 'float32'));
    const total = nat.addN(0, sums, 1);
    for (const s of sums) nat.free(s);
    return done(b, t, b.out(total, [], 'float32'));
  },
  // Forward: the plain gather kernel (every index is in range); backward: the gather with a zero row.
  [K.GatherRows]: ({ inputs: { x, idx }, backend: b }) => {
    const t: TI[] = [];
    const [R, C] = x.shape as [number, number];
    const n = size(idx.shape);
    const id = b.nat.gather(b.nid(x), i32(b, idx, t), 1, R, C, n);
    return done(b, t, b.out(id, [n, C], x.dtype));
  },
  [K.GatherRowsGrad]: ({ inputs: { dy, inv }, backend: b }) => {
    const t: TI[] = [];
    const [n, C] = dy.shape as [number, number];
    const R = size(inv.shape);
    const id = b.nat.gatherRows(b.nid(dy), n, i32(b, inv, t), R, C);
    return done(b, t, b.out(id, [R, C], dy.dtype));
  },
  [K.Linear]: ({ inputs: { x, weight, bias }, backend: b }) => {
    const t: TI[] = [];
    const [N, Kd] = weight.shape as [number, number];
    const M = size(x.shape.slice(0, -1));
    const id = b.nat.linear(f32(b, x, t), f32(b, weight, t), size(bias.shape) ? f32(b, bias, t) : -1, M, N, Kd);
    return done(b, t, b.out(id, [...x.shape.slice(0, -1), N], 'float32'));
  },
  [K.LinearGrad]: ({ inputs: { dy, x, weight, bias }, backend: b }) => {
    const t: TI[] = [];
    const [N, Kd] = weight.shape as [number, number];
    const M = size(x.shape.slice(0, -1));
    const [dx, dw, db] = b.nat.linearGrad(f32(b, dy, t), f32(b, x, t), f32(b, weight, t), size(bias.shape) > 0, M, N, Kd);
    return done(b, t, [b.out(dx, x.shape, 'float32'), b.out(dw, [N, Kd], 'float32'), b.out(db, bias.shape, 'float32')]);
  },
  // Strided copies: output i takes channels [off_i, off_i + h_i * D) of every (b, t) row, heads outermost.
  [K.SplitHeads]: ({ inputs: { x }, backend: b, attrs: { heads, headDim: D } }) => {
    const [B, T] = x.shape as [number, number, number];
    return splitParts(b, b.nid(x), x.shape, heads, D).map((id, i) => b.out(id, [B, heads[i]!, T, D], x.dtype));
  },
  [K.MergeHeads]: ({ inputs, backend: b, attrs: { heads } }) => {
    const [B, , T, D] = inputs[0]!.shape as [number, number, number, number];
    const id = mergeParts(b, inputs.map((x) => b.nid(x)), heads, B, T, D);
    return b.out(id, [B, T, heads.reduce((a, h) => a + h, 0) * D], inputs[0]!.dtype);
  },
  // The addon's gather of the ids' rows, both sources copied into one buffer, then the row gather: the bits of
  // tf.gather, tf.concat and ops.gatherRows in one dispatch.
  [K.EmbeddingScatter]: ({ inputs: { table, ids, tokens, idx }, backend: b }) => {
    const t: TI[] = [];
    const { nat } = b;
    const [V, C] = table.shape as [number, number];
    const N = size(ids.shape);
    const X = size(tokens.shape) / C;
    const emb = nat.gather(f32(b, table, t), i32(b, ids, t), 1, V, C, N);
    const both = nat.alloc((N + X) * C);
    nat.copyInto(emb, 0, [C, 1], both, 0, [C, 1], [N, C]);
    nat.copyInto(f32(b, tokens, t), 0, [C, 1], both, N * C, [C, 1], [X, C]);
    const y = nat.gather(both, i32(b, idx, t), 1, N + X, C, N);
    nat.free(emb);
    nat.free(both);
    return done(b, t, b.out(y, [...ids.shape, C], 'float32'));
  },
  // dy gathered back onto [table rows; tokens] (VlmixGatherRowsGrad's kernel), the table's rows summed into their ids
  // (UnsortedSegmentSum's), the tokens' rows copied out.
  [K.EmbeddingScatterGrad]: ({ inputs: { dy, ids, inv, table, tokens }, backend: b }) => {
    const t: TI[] = [];
    const { nat } = b;
    const [V, C] = table.shape as [number, number];
    const N = size(ids.shape);
    const X = size(tokens.shape) / C;
    const both = nat.gatherRows(f32(b, dy, t), N, i32(b, inv, t), N + X, C);
    const dtable = nat.segmentSum(both, i32(b, ids, t), N, C, V, 0);
    const dtokens = nat.strided(both, N * C, [C, 1], [X, C]);
    nat.free(both);
    return done(b, t, [b.out(dtable, [V, C], 'float32'), b.out(dtokens, tokens.shape, 'float32')]);
  },
  // SplitHeads's strided copies, then the addon's rotary on each rotated part (CPU addon only, as VlmixRotary).
  [K.SplitHeadsRotary]: ({ inputs: { x, cos, sin }, backend: b, attrs: a }) => {
    const t: TI[] = [];
    const [B, T] = x.shape as [number, number, number];
    const D = a.headDim;
    const [Bc, , R] = cos.shape as [number, number, number];
    const [c, s] = [f32(b, cos, t), f32(b, sin, t)];
    const ids = splitParts(b, b.nid(x), x.shape, a.heads, D).map((id, i) => {
      if (i >= a.rotated) return id;
      const r = b.nat.rotary(id, c, s, [B, a.heads[i]!, T, D, R, Bc], a.interleaved, false);
      b.nat.free(id);
      return r;
    });
    return done(b, t, ids.map((id, i) => b.out(id, [B, a.heads[i]!, T, D], 'float32')));
  },
  [K.MergeHeadsRotary]: ({ inputs, backend: b, attrs: a }) => {
    const t: TI[] = [];
    const parts = inputs.slice(0, -2);
    const [cos, sin] = inputs.slice(-2) as [TI, TI];
    const [B, , T, D] = parts[0]!.shape as [number, number, number, number];
    const [Bc, , R] = cos.shape as [number, number, number];
    const [c, s] = [f32(b, cos, t), f32(b, sin, t)];
    const srcs = parts.map((p, i) => (i < a.rotated ? b.nat.rotary(f32(b, p, t), c, s, [B, a.heads[i]!, T, D, R, Bc], a.interleaved, true) : f32(b, p, t)));
    const id = mergeParts(b, srcs, a.heads, B, T, D);
    srcs.slice(0, a.rotated).forEach((src) => b.nat.free(src));
    return done(b, t, b.out(id, [B, T, a.heads.reduce((x, h) => x + h, 0) * D], 'float32'));
  },
  // In place when the cache owns its buffer alone (a KV cache's buffer), so a decoding step copies T positions,
  // not the whole cache; a shared buffer is copied first, which keeps every other holder's values.
  [K.CacheWrite]: ({ inputs: { cache, update, position }, backend: b }) => {
    const [B, H, S, D] = cache.shape as [number, number, number, number];
    const T = update.shape[2]!;
    let out: TI;
    if (b.refCount(cache.dataId) > 1) out = b.out(b.nat.strided(b.nid(cache), 0, [H * S * D, S * D, D, 1], [B, H, S, D]), cache.shape, 'float32');
    else out = b.alias(cache, cache.shape);
    // the position is read in native code: the pass reads nothing back to JS
    if (!b.nat.cacheWrite(b.nid(out), b.nid(update), b.nid(position), B, H, S, T, D)) {
      b.disposeData(out.dataId);
      throw new Error(`VlmixCacheWrite: the ${T} new positions at the given position do not fit the cache's ${S} (cache [${cache.shape.join(', ')}]; ${b.values(position)[0]} + ${T} > ${S})`);
    }
    return out;
  },
  // The addon's Add, then its norm: the bits of the two kernels, in one dispatch.
  [K.AddNorm]: ({ inputs: { a, b: r, gamma, beta }, backend: b, attrs }) => {
    const t: TI[] = [];
    const [R, C] = rows(a);
    const sum = b.nat.binaryFlat(b.nat.binaryOps.Add!, 0, f32(b, a, t), f32(b, r, t), R * C);
    const y = attrs.rms ? b.nat.rmsNorm(sum, f32(b, gamma, t), R, C, attrs.eps)
      : b.nat.layerNorm(sum, f32(b, gamma, t), f32(b, beta, t), R, C, attrs.eps);
    return done(b, t, [b.out(sum, a.shape, 'float32'), b.out(y, a.shape, 'float32')]);
  },
  // The norm's gradient plus the sum's (the two terms tfjs's walk would add); da and db share one buffer.
  [K.AddNormGrad]: ({ inputs: { dnormed, dsum, sum, gamma, beta }, backend: b, attrs }) => {
    const t: TI[] = [];
    const [R, C] = rows(sum);
    const [dx, dg, db] = attrs.rms
      ? [...b.nat.rmsNormGrad(f32(b, dnormed, t), f32(b, sum, t), f32(b, gamma, t), R, C, attrs.eps), b.nat.alloc(0)]
      : b.nat.layerNormGrad(f32(b, dnormed, t), f32(b, sum, t), f32(b, gamma, t), R, C, attrs.eps);
    let d = dx;
    if (size(dsum.shape)) {
      d = b.nat.binaryFlat(b.nat.binaryOps.Add!, 0, dx, f32(b, dsum, t), R * C);
      b.nat.free(dx);
    }
    const da = b.out(d, sum.shape, 'float32');
    return done(b, t, [da, b.alias(da, sum.shape), b.out(dg, gamma.shape, 'float32'), b.out(db, beta.shape, 'float32')]);
  },
  // The addon's tanh, Multiply (broadcasting the gate) and Add: tf.add(tf.mul(y, tf.tanh(gate)), x) in one dispatch.
  [K.GatedResidual]: ({ inputs: { x, y, gate }, backend: b }) => {
    const t: TI[] = [];
    const { nat } = b;
    const n = size(x.shape);
    const th = nat.unary(nat.unaryOps.Tanh!, 0, f32(b, gate, t), 1, 0, 0);
    const gated = nat.binary(nat.binaryOps.Multiply!, 0, f32(b, y, t), [n], th, [1], [n]);
    const out = nat.binaryFlat(nat.binaryOps.Add!, 0, gated, f32(b, x, t), n);
    nat.free(th);
    nat.free(gated);
    return done(b, t, b.out(out, x.shape, 'float32'));
  },
  // tfjs's Add, Multiply and Tanh gradients: dx = dy (shared), dy * tanh(g), (1 - tanh(g)^2) * sum(dy * y).
  [K.GatedResidualGrad]: ({ inputs: { dy, y, gate }, backend: b }) => {
    const t: TI[] = [];
    const { nat } = b;
    const n = size(dy.shape);
    const d = f32(b, dy, t);
    const th = nat.unary(nat.unaryOps.Tanh!, 0, f32(b, gate, t), 1, 0, 0);
    const dgated = nat.binary(nat.binaryOps.Multiply!, 0, d, [n], th, [1], [n]);
    const prod = nat.binaryFlat(nat.binaryOps.Multiply!, 0, d, f32(b, y, t), n);
    const s = nat.reduce(nat.reduceOps.Sum!, 0, prod, 1, n, 1);
    const sq = nat.unary(nat.unaryOps.Square!, 0, th, 1, 0, 0);
    const one = nat.fill(0, 1, 1);
    const oneMinus = nat.binaryFlat(nat.binaryOps.Sub!, 0, one, sq, 1);
    const dgate = nat.binaryFlat(nat.binaryOps.Multiply!, 0, oneMinus, s, 1);
    for (const id of [th, prod, s, sq, one, oneMinus]) nat.free(id);
    const dx = b.alias(dy, dy.shape);
    return done(b, t, [dx, b.out(dgated, dy.shape, 'float32'), b.out(dgate, gate.shape, 'float32')]);
  },
  // The addon's linear, then its activation (VlmixGelu's, or Relu's): the bits of the two kernels.
  [K.LinearActivation]: ({ inputs: { x, weight, bias }, backend: b, attrs }) => {
    const t: TI[] = [];
    const [N, Kd] = weight.shape as [number, number];
    const M = size(x.shape.slice(0, -1));
    const z = b.nat.linear(f32(b, x, t), f32(b, weight, t), size(bias.shape) ? f32(b, bias, t) : -1, M, N, Kd);
    const y = attrs.activation === 'relu' ? b.nat.unary(b.nat.unaryOps.Relu!, 0, z, M * N, 0, 0)
      : b.nat.gelu(z, M * N, attrs.activation === 'gelu_tanh');
    const shape = [...x.shape.slice(0, -1), N];
    return done(b, t, [b.out(y, shape, 'float32'), b.out(z, shape, 'float32')]);
  },
  // dz = dy * act'(z) as tfjs's Relu gradient (dy * step(z)) or VlmixGeluGrad computes it, then LinearGrad's GEMMs.
  [K.LinearActivationGrad]: ({ inputs: { dy, x, weight, bias, preactivation: z }, backend: b, attrs }) => {
    const t: TI[] = [];
    const [N, Kd] = weight.shape as [number, number];
    const M = size(x.shape.slice(0, -1));
    const n = M * N;
    let dz: number;
    if (attrs.activation === 'relu') {
      const step = b.nat.unary(b.nat.unaryOps.Step!, 0, f32(b, z, t), n, 0, 0);
      dz = b.nat.binaryFlat(b.nat.binaryOps.Multiply!, 0, f32(b, dy, t), step, n);
      b.nat.free(step);
    } else dz = b.nat.geluGrad(f32(b, dy, t), f32(b, z, t), n, attrs.activation === 'gelu_tanh');
    const [dx, dw, db] = b.nat.linearGrad(dz, f32(b, x, t), f32(b, weight, t), size(bias.shape) > 0, M, N, Kd);
    b.nat.free(dz);
    return done(b, t, [b.out(dx, x.shape, 'float32'), b.out(dw, [N, Kd], 'float32'), b.out(db, bias.shape, 'float32')]);
  },
  [K.Rotary]: ({ inputs: { x, cos, sin }, backend: b, attrs }) => {
    const t: TI[] = [];
    const [B, H, T, D] = x.shape as [number, number, number, number];
    const [Bc, , R] = cos.shape as [number, number, number];
    const id = b.nat.rotary(f32(b, x, t), f32(b, cos, t), f32(b, sin, t), [B, H, T, D, R, Bc], attrs.interleaved, attrs.inverse);
    return done(b, t, b.out(id, x.shape, 'float32'));
  },
};

/** The native fused kernels as [kernelName, kernelFunc] pairs, for the registry (@vlmix/core ops). */
export function nativeFusedKernelFuncs(): Array<[string, tf.KernelFunc]> {
  return Object.entries(kernels).map(([n, fn]) => [n, fn as unknown as tf.KernelFunc]);
}

/** Fused kernels vlmix-cuda runs as composite bodies: Rotary's addon function is CPU-only (so the split-and-rotate pair too); CacheWrite reads its
 *  position on the host, which on a GPU would sync the stream mid-pass (and it has never run there). */
export const CPU_ONLY_FUSED_KERNELS: readonly string[] = [K.Rotary, K.SplitHeadsRotary, K.MergeHeadsRotary, K.CacheWrite, K.LinearCrossEntropy, K.LinearCrossEntropyGrad];

export const FUSED_KERNEL_NAMES = Object.keys(kernels);
