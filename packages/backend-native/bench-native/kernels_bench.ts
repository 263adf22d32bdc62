// Times vlmix-cpu kernels through tfjs ops (median of samples) plus one VQ-VAE training step.
//   cd packages/backend-native && npx tsx --conditions=@vlmix/source bench-native/kernels_bench.ts [filter]
// Env: VLMIX_NUM_THREADS, BENCH_BACKEND (default vlmix-cpu), BENCH_SAMPLES (default 9).
import * as tf from '@tensorflow/tfjs';
import { useBackend, nativeInfo, fallbackCounts, resetFallbackCounts } from '@vlmix/backend-native';
import { ops } from '@vlmix/core';
// The mixins package by path (it is not a dependency of this package).
import { VqVae, vqTrainStep } from '../../mixins/src/index.js';

const filter = process.argv[2] ?? '';
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 9);

function randn(shape: number[], seed: number) {
  return tf.randomNormal(shape, 0, 1, 'float32', seed);
}
function sync(ts: tf.Tensor | tf.Tensor[]) {
  for (const t of Array.isArray(ts) ? ts : [ts]) t.dataSync();
}

function median(xs: number[]) {
  const s = xs.slice().sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** Median ms per call; each sample runs enough calls for >= 20 ms. */
function time(name: string, f: () => void) {
  if (filter && !name.includes(filter)) return;
  for (let i = 0; i < 3; i++) f();
  let t0 = performance.now();
  f();
  const one = Math.max(performance.now() - t0, 1e-3);
  const inner = Math.max(1, Math.min(1000, Math.ceil(20 / one)));
  const samples: number[] = [];
  const n = one > 200 ? Math.max(3, Math.min(SAMPLES, 5)) : SAMPLES;
  for (let s = 0; s < n; s++) {
    t0 = performance.now();
    for (let i = 0; i < inner; i++) f();
    samples.push((performance.now() - t0) / inner);
  }
  const sorted = samples.slice().sort((a, b) => a - b);
  const p25 = sorted[Math.floor((n - 1) / 4)]!, p75 = sorted[Math.ceil((3 * (n - 1)) / 4)]!;
  console.log(`${name.padEnd(44)} ${median(samples).toFixed(3).padStart(10)} ms  (${p25.toFixed(3)}-${p75.toFixed(3)})`);
}

function op(f: () => tf.Tensor | tf.Tensor[]) {
  return () => {
    const out = tf.tidy(f);
    sync(out);
    tf.dispose(out);
  };
}

async function main() {
  const be = process.env.BENCH_BACKEND ?? 'vlmix-cpu';
  const { reason } = await useBackend(be as 'vlmix-cpu');
  console.log(`# backend ${tf.getBackend()}: ${reason}`);
  console.log(`# native ${JSON.stringify(nativeInfo())}`);
  console.log(`# load ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')}`);

  const N = 1 << 20;
  const x = randn([N], 1), y = randn([N], 2), dy = randn([N], 3);
  time('GELU erf 1M', op(() => ops.gelu(x, 'none')));
  time('GELU tanh 1M', op(() => ops.gelu(x, 'tanh')));
  const ge = tf.grad((a: tf.Tensor) => ops.gelu(a, 'none'));
  const gt = tf.grad((a: tf.Tensor) => ops.gelu(a, 'tanh'));
  time('GELU erf grad 1M', op(() => ge(x, dy)));
  time('GELU tanh grad 1M', op(() => gt(x, dy)));
  time('SwiGLU 1M', op(() => ops.swiglu(x, y)));
  const sg = tf.grads((a: tf.Tensor, b: tf.Tensor) => ops.swiglu(a, b));
  time('SwiGLU grad 1M', op(() => sg([x, y], dy)));
  time('Sigmoid 1M', op(() => tf.sigmoid(x)));
  time('Tanh 1M', op(() => tf.tanh(x)));
  time('Exp 1M', op(() => tf.exp(x)));
  time('Erf 1M', op(() => tf.erf(x)));
  time('Add 1M', op(() => tf.add(x, y)));

  const sm = randn([512, 2048], 4);
  time('softmax 512x2048', op(() => tf.softmax(sm)));
  time('logSoftmax 512x2048', op(() => tf.logSoftmax(sm)));
  const labels = tf.randomUniformInt([512], 0, 2048, 2);
  time('softmax cross-entropy 512x2048', op(() => ops.softmaxCrossEntropy(sm, labels)));
  const sceg = tf.grad((a: tf.Tensor) => ops.softmaxCrossEntropy(a, labels));
  time('softmax cross-entropy grad 512x2048', op(() => sceg(sm, randn([512], 20))));

  const table = randn([8192, 256], 21), ids = tf.randomUniformInt([2048], 0, 8192, 22);
  time('gather 2048 of 8192x256', op(() => tf.gather(table, ids)));
  const perm = Array.from({ length: 2048 }, (_, i) => (i * 7919) % 8192);
  const plan = ops.rowGather(perm, 8192);
  time('gatherRows 2048 of 8192x256', op(() => ops.gatherRows(table, plan)));
  const one = tf.tensor1d([1]);
  time('per-op overhead: 100 chained tf.add on [1] (ms per 100)', op(() => {
    let t = one;
    for (let i = 0; i < 100; i++) t = tf.add(t, one);
    return t;
  }));

  const ln = randn([2048, 256], 5), g = randn([256], 6), bta = randn([256], 7), lndy = randn([2048, 256], 8);
  time('layer norm 2048x256', op(() => ops.layerNorm(ln, g, bta, 1e-5)));
  time('RMS norm 2048x256', op(() => ops.rmsNorm(ln, g, 1e-6)));
  const lng = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => ops.layerNorm(a, b, c, 1e-5));
  time('layer norm grad 2048x256', op(() => lng([ln, g, bta], lndy)));
  const rng = tf.grads((a: tf.Tensor, b: tf.Tensor) => ops.rmsNorm(a, b, 1e-6));
  time('RMS norm grad 2048x256', op(() => rng([ln, g], lndy)));

  {
    const [p, m, v] = tf.tidy(() => [tf.variable(randn([N], 9)), tf.variable(tf.zeros([N])), tf.variable(tf.zeros([N]))]);
    let step = 0;
    time('AdamW 1M', () => {
      step++;
      tf.tidy(() => {
        const [np, nm, nv] = ops.adamwUpdate(p, y, m, v, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step });
        p.assign(np); m.assign(nm); v.assign(nv);
      });
      sync([p, m, v]);
    });
  }

  const tr = randn([4096, 1024], 10);
  time('transpose 4096x1024', op(() => tf.transpose(tr)));
  const tr4 = randn([8, 128, 16, 64], 11);
  time('transpose [8,128,16,64] 0213', op(() => tf.transpose(tr4, [0, 2, 1, 3])));

  for (const T of [128, 256]) {
    const q = randn([1, 4, T, 64], 12), k = randn([1, 4, T, 64], 13), v = randn([1, 4, T, 64], 14), ady = randn([1, 4, T, 64], 15);
    time(`attention fwd T=${T}`, op(() => ops.attention(q, k, v, { causal: true })));
    const ag = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => ops.attention(a, b, c, { causal: true }));
    time(`attention fwd+bwd T=${T}`, op(() => ag([q, k, v], ady)));
  }

  // VQ-VAE tokenizer convs (NHWC, batch 32): encoder 4x4 stride 2 (after pad 1), decoder 3x3 stride 1.
  const convs: Array<[string, number[], number[], number]> = [
    ['enc0 34x34x3 4x4x3x32 s2', [32, 34, 34, 3], [4, 4, 3, 32], 2],
    ['enc1 18x18x32 4x4x32x64 s2', [32, 18, 18, 32], [4, 4, 32, 64], 2],
    ['enc2 10x10x64 4x4x64x64 s2', [32, 10, 10, 64], [4, 4, 64, 64], 2],
    ['dec 18x18x64 3x3x64x32 s1', [32, 18, 18, 64], [3, 3, 64, 32], 1],
    ['out 34x34x32 3x3x32x3 s1', [32, 34, 34, 32], [3, 3, 32, 3], 1],
  ];
  for (const [nm, xs, ws, s] of convs) {
    const cx = randn(xs, 16) as tf.Tensor4D, cw = randn(ws, 17) as tf.Tensor4D;
    const out = tf.conv2d(cx, cw, s, 'valid');
    const cdy = randn(out.shape, 18) as tf.Tensor4D;
    out.dispose();
    time(`conv2d ${nm}`, op(() => tf.conv2d(cx, cw, s, 'valid')));
    time(`conv2dBackpropInput ${nm}`, op(() => tf.conv2dTranspose(cdy, cw, xs as [number, number, number, number], s, 'valid')));
    time(`conv2dBackpropFilter ${nm}`, op(() => tf.tidy(() => {
      const f = tf.grad((w: tf.Tensor) => tf.conv2d(cx, w as tf.Tensor4D, s, 'valid'));
      return f(cw, cdy);
    })));
  }

  if (!filter || 'VQ train step'.includes(filter)) {
    const vq = new VqVae({ hidden: [32, 64, 64], codebookSize: 128, codeDim: 32 });
    const opt = tf.train.adam(1e-3);
    const pixels = tf.randomUniform([32, 3, 32, 32], 0, 1, 'float32', 19);
    resetFallbackCounts();
    vqTrainStep(vq, opt, pixels);
    console.log(`# VQ fallbacks: ${JSON.stringify(fallbackCounts())}`);
    time('VQ train step (B=32, 32x32)', () => { vqTrainStep(vq, opt, pixels); });
    // Per-kernel breakdown of one step.
    const prof = await tf.profile(() => { vqTrainStep(vq, opt, pixels); });
    const agg = new Map<string, [number, number]>();
    for (const k of prof.kernels) {
      const ms = Number(k.kernelTimeMs) || 0;
      const e = agg.get(k.name) ?? [0, 0];
      agg.set(k.name, [e[0] + ms, e[1] + 1]);
    }
    const rows = [...agg.entries()].sort((a, b) => b[1][0] - a[1][0]).slice(0, 15);
    for (const [k, [ms, c]] of rows) console.log(`#   ${k.padEnd(30)} ${ms.toFixed(2).padStart(8)} ms  x${c}`);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
