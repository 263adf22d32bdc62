/**
 * A user's own fusion layer, written with vlmix ops: single-head gated cross-attention from text
 * hidden states to image features (a minimal Flamingo-style block, without norms or FFN).
 *
 *   out = h + tanh(gate) * softmax((h Wq^T)(m Wk^T)^T / sqrt(C)) (m Wv^T)
 *
 * h [B, T, C], media m [B, N, Dv], wq [C, C], wk [C, Dv], wv [C, Dv], gate [1].
 * It is unit-tested in my-fusion-layer.test.ts with @vlmix/core/testkit.
 */
import * as tf from '@tensorflow/tfjs';
import { ops } from '@vlmix/core';

export interface FusionWeights {
  wq: tf.Tensor2D;
  wk: tf.Tensor2D;
  wv: tf.Tensor2D;
  gate: tf.Tensor1D;
}

const shape = (t: tf.Tensor) => `[${t.shape.join(', ')}]`;

export function gatedFusion(h: tf.Tensor, media: tf.Tensor, w: FusionWeights): tf.Tensor3D {
  // Check shapes up front: a tfjs broadcast error deep inside would not say which argument is wrong.
  if (h.rank !== 3) throw new Error(`gatedFusion: h must be [B, T, C], got ${shape(h)}`);
  if (media.rank !== 3 || media.shape[0] !== h.shape[0]) {
    throw new Error(`gatedFusion: media must be [${h.shape[0]}, N, Dv], got ${shape(media)}`);
  }
  const c = h.shape[2]!;
  const dv = media.shape[2]!;
  for (const [n, t, want] of [['wq', w.wq, [c, c]], ['wk', w.wk, [c, dv]], ['wv', w.wv, [c, dv]]] as const) {
    if (t.shape[0] !== want[0] || t.shape[1] !== want[1]) throw new Error(`gatedFusion: ${n} must be [${want.join(', ')}], got ${shape(t)}`);
  }
  return tf.tidy(() => {
    // One head: [B, 1, T|N, C] is the layout the fused attention kernel expects.
    const q = tf.expandDims(ops.linear(h, w.wq), 1);
    const k = tf.expandDims(ops.linear(media, w.wk), 1);
    const v = tf.expandDims(ops.linear(media, w.wv), 1);
    const ctx = tf.squeeze(ops.attention(q, k, v), [1]); // scale 1/sqrt(C), no mask
    return tf.add(h, tf.mul(tf.tanh(w.gate), ctx)) as tf.Tensor3D;
  });
}
