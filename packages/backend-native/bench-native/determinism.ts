// Prints a checksum of kernel outputs (bit patterns): run with different VLMIX_NUM_THREADS and compare,
// or before/after a change to the native code (the fused kernels and gatherRows, forward and backward,
// must stay bit-identical).
//   VLMIX_NUM_THREADS=1 npx tsx --conditions=@vlmix/source bench-native/determinism.ts
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '@vlmix/backend-native';
import { ops } from '@vlmix/core';

function hash(ts: tf.Tensor[]): string {
  let h = 2166136261 >>> 0;
  for (const t of ts) {
    const u = new Uint32Array((t.dataSync() as Float32Array).slice().buffer);
    for (let i = 0; i < u.length; i++) h = Math.imul(h ^ u[i]!, 16777619) >>> 0;
  }
  return h.toString(16);
}

async function main() {
  await useBackend('vlmix-cpu');
  const r = (s: number[], seed: number) => tf.randomNormal(s, 0, 1, 'float32', seed);
  const out: Record<string, string> = {};
  const x = r([32, 34, 34, 32], 1);
  for (const [name, ws] of [['conv c3', [3, 3, 32, 3]], ['conv c32', [3, 3, 32, 32]]] as const) {
    const w = r([...ws], 2);
    const dy = r([32, 32, 32, ws[3]], 3);
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'valid'));
    out[name] = hash([tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'valid'), ...g([x, w], dy)]);
  }
  const xs = r([32, 18, 18, 32], 4), w2 = r([4, 4, 32, 64], 5), dy2 = r([32, 8, 8, 64], 6);
  const g2 = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'valid'));
  out['conv s2'] = hash(g2([xs, w2], dy2));
  const big = r([1 << 20], 7);
  out.elementwise = hash([ops.gelu(big), ops.gelu(big, 'tanh'), tf.exp(big), tf.tanh(big), tf.sigmoid(big), tf.softmax(tf.reshape(big, [512, 2048]))]);
  out.transpose = hash([tf.transpose(tf.reshape(big, [1024, 1024]))]);
  const up = tf.grad((a: tf.Tensor) => tf.image.resizeNearestNeighbor(a as tf.Tensor4D, [16, 16]));
  out.resize = hash([up(r([8, 8, 8, 16], 8), r([8, 16, 16, 16], 9))]);
  // Fused kernels, forward and backward (the gradients run the *Grad kernels).
  const x2 = r([300, 96], 10), gam = r([96], 11), bet = r([96], 12), dy3 = r([300, 96], 13);
  out.layerNorm = hash([ops.layerNorm(x2, gam, bet), ...tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
    ops.layerNorm(a, b, c))([x2, gam, bet], dy3)]);
  out.rmsNorm = hash([ops.rmsNorm(x2, gam), ...tf.grads((a: tf.Tensor, b: tf.Tensor) => ops.rmsNorm(a, b))([x2, gam], dy3)]);
  const q = r([2, 4, 70, 16], 14), k = r([2, 2, 70, 16], 15), v = r([2, 2, 70, 16], 16), dya = r([2, 4, 70, 16], 17);
  const bias = tf.mul(tf.cast(tf.less(r([2, 1, 1, 70], 18), -1), 'float32'), -1e9);
  const att = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => ops.attention(a, b, c, { causal: true, bias });
  out.attention = hash([att(q, k, v), ...tf.grads(att)([q, k, v], dya)]);
  const logits = r([70, 333], 19);
  const labels = tf.where(tf.less(r([70], 20), -1), tf.fill([70], -100, 'int32'),
    tf.cast(tf.floor(tf.mul(tf.sigmoid(r([70], 21)), 333)), 'int32'));
  out.sce = hash([ops.softmaxCrossEntropy(logits, labels), tf.grad((a: tf.Tensor) => ops.softmaxCrossEntropy(a, labels))(logits, r([70], 22))]);
  out.gelu = hash(['none', 'tanh'].flatMap((ap) => [ops.gelu(x2, ap as 'none'),
    tf.grad((a: tf.Tensor) => ops.gelu(a, ap as 'none'))(x2, dy3)]));
  out.swiglu = hash([ops.swiglu(x2, dy3), ...tf.grads((a: tf.Tensor, b: tf.Tensor) => ops.swiglu(a, b))([x2, dy3], r([300, 96], 27))]);
  out.adamw = hash(ops.adamwUpdate(x2, dy3, tf.mul(x2, 0.1), tf.abs(tf.mul(dy3, 0.01)),
    { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step: 3 }));
  const perm = [5, 0, 299, 17, 42, 250, 1];
  out.gatherRows = hash([ops.gatherRows(x2, perm), tf.grad((a: tf.Tensor) => ops.gatherRows(a, perm))(x2, r([7, 96], 23))]);
  out.matmul = hash([tf.matMul(x2, tf.transpose(r([64, 96], 24))), tf.matMul(r([4, 128, 64], 25), r([4, 64, 128], 26))]);
  console.log(JSON.stringify(out));
}
main();
