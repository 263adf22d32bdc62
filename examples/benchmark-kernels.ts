/**
 * Time a few kernels on every backend that loads here: median of `repeats` timed runs after one
 * warm-up run. Backends that cannot be set are listed with the reason instead.
 *
 * Run: pnpm exec tsx --conditions=@vlmix/source examples/benchmark-kernels.ts [repeats]
 * (bench/ has the full suites with PyTorch side by side; this is the minimal version.)
 */
import * as tf from '@tensorflow/tfjs';
import { pathToFileURL } from 'node:url';
import { ops } from '@vlmix/core';
import { useBackend, type BackendChoice } from '@vlmix/backend-native';

export interface KernelShapes {
  /** [M, K] x [K, N] */
  matmul: [number, number, number];
  /** q, k, v [B, H, T, D], causal */
  attention: [number, number, number, number];
  /** x [rows, C] */
  layerNorm: [number, number];
}

export const DEFAULT_SHAPES: KernelShapes = { matmul: [512, 512, 512], attention: [4, 8, 256, 64], layerNorm: [4096, 768] };

export interface BenchRow {
  backend: string;
  kernel: 'matmul' | 'attention' | 'layerNorm';
  shape: string;
  medianMs: number;
  /** Floating-point work per ms, in GFLOP/s (multiply-adds count as 2). */
  gflops: number;
}

export interface BenchReport {
  rows: BenchRow[];
  skipped: { backend: string; reason: string }[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Runs `f` once to warm up, then `repeats` times; each run is timed until its result is read back. */
async function time(f: () => tf.Tensor, repeats: number): Promise<number> {
  const once = async () => {
    const t0 = performance.now();
    const y = f();
    // Reading a value is the only sync point on asynchronous backends; one element keeps the
    // copy to JS out of the measurement.
    const one = tf.slice(tf.reshape(y, [-1]), 0, 1);
    await one.data();
    const ms = performance.now() - t0;
    tf.dispose([y, one]);
    return ms;
  };
  await once();
  const ms: number[] = [];
  for (let i = 0; i < repeats; i++) ms.push(await once());
  return median(ms);
}

export async function benchmarkKernels(opts: { backends?: BackendChoice[]; repeats?: number; shapes?: KernelShapes } = {}): Promise<BenchReport> {
  const backends = opts.backends ?? ['vlmix-cpu', 'tensorflow', 'wasm', 'cpu'];
  const repeats = opts.repeats ?? 10;
  const sh = opts.shapes ?? DEFAULT_SHAPES;
  const before = tf.getBackend() as string | undefined; // undefined before any backend was chosen
  const report: BenchReport = { rows: [], skipped: [] };
  try {
    for (const name of backends) {
      try {
        await useBackend(name);
      } catch (e) {
        report.skipped.push({ backend: name, reason: (e as Error).message });
        continue;
      }
      const [m, k, n] = sh.matmul;
      const [b, h, t, d] = sh.attention;
      const [r, c] = sh.layerNorm;
      const a = tf.randomNormal([m, k], 0, 1, 'float32', 1);
      const w = tf.randomNormal([k, n], 0, 1, 'float32', 2);
      const [q, kk, v] = [3, 4, 5].map((s) => tf.randomNormal([b, h, t, d], 0, 1, 'float32', s));
      const x = tf.randomNormal([r, c], 0, 1, 'float32', 6);
      const gamma = tf.ones([c]);
      const beta = tf.zeros([c]);
      const add = async (kernel: BenchRow['kernel'], shape: string, flops: number, f: () => tf.Tensor) => {
        const medianMs = await time(f, repeats);
        report.rows.push({ backend: name, kernel, shape, medianMs, gflops: flops / medianMs / 1e6 });
      };
      try {
        await add('matmul', `[${m}, ${k}] x [${k}, ${n}]`, 2 * m * k * n, () => tf.matMul(a, w));
        // QK^T and PV are 4·B·H·T²·D flops; the causal mask skips about half.
        await add('attention', `[${b}, ${h}, ${t}, ${d}] causal`, 2 * b * h * t * t * d, () => ops.attention(q!, kk!, v!, { causal: true }));
        await add('layerNorm', `[${r}, ${c}]`, 8 * r * c, () => ops.layerNorm(x, gamma, beta));
      } finally {
        tf.dispose([a, w, q!, kk!, v!, x, gamma, beta]);
      }
    }
  } finally {
    if (before) await tf.setBackend(before); // leave the caller on its backend
  }
  return report;
}

export function formatReport(r: BenchReport): string {
  const lines = ['| backend | kernel | shape | median ms | GFLOP/s |', '|---|---|---|---|---|'];
  for (const x of r.rows) lines.push(`| ${x.backend} | ${x.kernel} | ${x.shape} | ${x.medianMs.toFixed(3)} | ${x.gflops.toFixed(1)} |`);
  for (const s of r.skipped) lines.push(`\nskipped ${s.backend}: ${s.reason}`);
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(formatReport(await benchmarkKernels({ repeats: Number(process.argv[2] ?? 10) })));
}
