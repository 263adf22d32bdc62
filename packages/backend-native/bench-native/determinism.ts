// Prints a checksum of kernel outputs (bit patterns); run with different VLMIX_NUM_THREADS and compare.
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
  console.log(JSON.stringify(out));
}
main();
