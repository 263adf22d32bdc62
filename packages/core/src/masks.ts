/**
 * Attention masks as an additive bias [B|1, 1, Tq, Tk] plus a `causal` flag the fused kernel applies
 * itself (so the common causal case never materialises a mask).
 */
import * as tf from '@tensorflow/tfjs';
import { fail, shapeStr } from './errors.js';

export const MASK_VALUE = -1e9;

export interface MaskSpec {
  /** 'causal' (default for LMs), 'bidirectional', or 'prefix' (bidirectional over the first prefixLength keys). */
  kind: 'causal' | 'bidirectional' | 'prefix';
  /** Prefix-LM: per-row (or shared) prefix length, counted from the first cached position. */
  prefixLength?: number | number[];
  /** Padding: [B, Tk] with 1 = real token, 0 = padding (keys only). */
  padding?: tf.Tensor | null;
  /** Arbitrary 0/1 mask [B|1, Tq, Tk] or [B|1, 1|H, Tq, Tk]: 1 = may attend. */
  custom?: tf.Tensor | null;
}

export interface AttentionMask {
  causal: boolean;
  bias: tf.Tensor | null;
}

/**
 * Builds the additive bias for a forward pass of tq queries over tk keys (tk - tq cached). With a static KV
 * cache (`staticPosition`: the int32 scalar p of the first query's position) the keys are the cache's tk
 * slots: a query at p + i sees slots j <= p + i (causal, in absolute positions; bidirectional: j < p + tq),
 * so the slots not yet written are masked too. That part is computed on the device from p: every decoding
 * step then uploads the same constants and differs from the last in its input tensors only (capture.ts).
 */
export function buildMask(spec: MaskSpec, batch: number, tq: number, tk: number, staticPosition: tf.Tensor | null = null): AttentionMask {
  const parts: tf.Tensor[] = [];
  let causal = spec.kind === 'causal';
  let lens: number[] | null = null;
  if (spec.kind === 'prefix') {
    causal = false;
    const pl = spec.prefixLength;
    if (pl == null) fail(`mask.prefixLength: required for a prefix-LM mask`);
    lens = Array.isArray(pl) ? pl : new Array(batch).fill(pl);
    if (lens.length !== batch) fail(`mask.prefixLength: expected ${batch} lengths (one per row), got ${lens.length}`);
  }
  if (staticPosition) {
    parts.push(staticBias(spec.kind, lens, staticPosition, batch, tq, tk));
    causal = false;
  } else if (lens) {
    const data = new Float32Array(batch * tq * tk);
    const offset = tk - tq;
    for (let b = 0; b < batch; b++) {
      for (let i = 0; i < tq; i++) {
        for (let j = 0; j < tk; j++) {
          const ok = j <= i + offset || j < lens[b]!;
          data[(b * tq + i) * tk + j] = ok ? 0 : MASK_VALUE;
        }
      }
    }
    parts.push(tf.tensor4d(data, [batch, 1, tq, tk]));
  }
  if (spec.padding) {
    const p = spec.padding;
    if (p.rank !== 2 || p.shape[0] !== batch || p.shape[1] !== tk) {
      fail(`attentionMask: expected shape [${batch}, ${tk}] (batch, keys incl. cache), got ${shapeStr(p.shape)}`);
    }
    parts.push(tf.tidy(() => tf.reshape(tf.mul(tf.sub(1, tf.cast(p, 'float32')), MASK_VALUE), [batch, 1, 1, tk])));
  }
  if (spec.custom) {
    const c = spec.custom;
    const c4 = c.rank === 3 ? tf.expandDims(c, 1) : c;
    const okShape = c4.rank === 4 && (c4.shape[0] === batch || c4.shape[0] === 1) && c4.shape[2] === tq && c4.shape[3] === tk;
    if (!okShape) fail(`mask: expected a 0/1 mask of shape [${batch}|1, ${tq}, ${tk}], got ${shapeStr(c.shape)}`);
    parts.push(tf.tidy(() => tf.mul(tf.sub(1, tf.cast(c4, 'float32')), MASK_VALUE)));
    if (c4 !== c) c4.dispose();
  }
  if (parts.length === 0) return { causal, bias: null };
  const bias = parts.reduce((a, b) => {
    const s = tf.add(a, b);
    a.dispose();
    b.dispose();
    return s;
  });
  return { causal, bias };
}

/** The static cache's part of the bias ([1|B, 1, tq, tk]): slot j is visible to query i iff j - p <= i (causal, prefix) or j - p < tq (bidirectional), or j < the row's prefix length. */
function staticBias(kind: MaskSpec['kind'], lens: number[] | null, p: tf.Tensor, batch: number, tq: number, tk: number): tf.Tensor {
  return tf.tidy(() => {
    const slots = tf.range(0, tk, 1, 'int32');
    const rel = tf.reshape(tf.sub(slots, p), [1, tk]); // j - p
    const queries = tf.reshape(tf.range(0, tq, 1, 'int32'), [tq, 1]);
    let allowed = kind === 'bidirectional' ? tf.less(rel, tf.scalar(tq, 'int32')) : tf.lessEqual(rel, queries);
    if (lens) {
      const inPrefix = tf.less(tf.reshape(slots, [1, 1, tk]), tf.tensor3d(lens, [batch, 1, 1], 'int32'));
      allowed = tf.logicalOr(allowed, inPrefix);
    }
    const bias = tf.mul(tf.sub(1, tf.cast(allowed, 'float32')), MASK_VALUE);
    return tf.reshape(bias, [lens ? batch : 1, 1, kind === 'bidirectional' && !lens ? 1 : tq, tk]);
  });
}
