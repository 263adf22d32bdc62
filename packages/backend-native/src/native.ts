// Loads the compiled addon (build/Release/vlmix_cpu.node) without ever throwing.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

type Id = number;
type Shape = number[];

/**
 * Functions exported by the CPU addon (src/native/addon.cc over the N-API glue, src/glue/napi_glue.h).
 * Ids are native buffer handles (4-byte elements). `signatures` is the addon's own account of every
 * export; test/addon-interface.test.ts checks this interface against it, so the two cannot drift.
 */
export interface NativeAddon {
  signatures: Record<string, string>;
  create(values: Float32Array | Int32Array): Id;
  createBool(values: Uint8Array): Id;
  read(id: Id, out: Float32Array | Int32Array): void;
  readBool(id: Id, out: Uint8Array): void;
  alloc(n: number): Id;
  free(id: Id): void;
  size(id: Id): number;
  memory(): { bytes: number; peakBytes: number; buffers: number };
  resetPeak(): void;
  info(): { gemm: string; threads: number; bf16Supported: boolean; bf16: boolean };
  /** bf16 matmul precision (AVX512-BF16); false when the CPU lacks it. */
  setGemmBf16(on: boolean): boolean;
  binaryOps: Record<string, number>;
  unaryOps: Record<string, number>;
  reduceOps: Record<string, number>;
  binary(op: number, dtype: number, a: Id, aShape: Shape, b: Id, bShape: Shape, outShape: Shape): Id;
  /** binary without broadcasting: both operands and the output have n elements. */
  binaryFlat(op: number, dtype: number, a: Id, b: Id, n: number): Id;
  addN(dtype: number, ids: Id[], n: number): Id;
  select(c: Id, t: Id, e: Id, cShape: Shape, tShape: Shape, eShape: Shape, outShape: Shape): Id;
  unary(op: number, dtype: number, x: Id, n: number, alpha?: number, beta?: number): Id;
  cast(x: Id, n: number, from: number, to: number, toBool: boolean): Id;
  reduce(op: number, dtype: number, x: Id, outer: number, r: number, inner: number): Id;
  softmax(x: Id, rows: number, cols: number, log: boolean): Id;
  strided(src: Id, offset: number, strides: number[], shape: Shape): Id;
  copyInto(src: Id, srcOffset: number, srcStrides: number[], dst: Id, dstOffset: number,
    dstStrides: number[], shape: Shape): void;
  /** Writes update [B, H, T, D] into cache [B, H, S, D] at positions [p, p + T), p read from `position` (int32
   *  scalar) in native code; false (nothing written) when they do not fit (VlmixCacheWrite). */
  cacheWrite(cache: Id, update: Id, position: Id, B: number, H: number, S: number, T: number, D: number): boolean;
  fill(dtype: number, n: number, value: number): Id;
  oneHot(indices: Id, n: number, depth: number, on: number, off: number, dtype: number): Id;
  resizeNearest(x: Id, shape: Shape, newH: number, newW: number, alignCorners: boolean, halfPixelCenters: boolean): Id;
  resizeNearestGrad(dy: Id, imagesShape: Shape, dyH: number, dyW: number, alignCorners: boolean): Id;
  gather(x: Id, indices: Id, outer: number, n: number, inner: number, m: number): Id;
  /** x [rows, C] -> [n, C] = x[idx]; idx[i] === rows gives a zero row (VlmixGatherRowsGrad). */
  gatherRows(x: Id, rows: number, idx: Id, n: number, c: number): Id;
  segmentSum(x: Id, ids: Id, n: number, inner: number, numSegments: number, dtype: number): Id;
  batchMatMul(a: Id, b: Id, batchA: number, batchB: number, m: number, n: number, k: number,
    transA: boolean, transB: boolean): Id;
  /** x [M, K] @ w[N, K]^T (+ bias [N]; -1 for none) -> [M, N] (VlmixLinear). */
  linear(x: Id, w: Id, bias: Id, m: number, n: number, k: number): Id;
  /** [dx = dy @ w, dw = dy^T @ x, db = column sums of dy (empty without bias)] (VlmixLinearGrad). */
  linearGrad(dy: Id, x: Id, w: Id, withBias: boolean, m: number, n: number, k: number): [Id, Id, Id];
  /** RoPE (VlmixRotary): geom [B, H, T, D, R, Bc]; CPU addon only. */
  rotary(x: Id, cos: Id, sin: Id, geom: number[], interleaved: boolean, inverse: boolean): Id;
  conv2d(x: Id, w: Id, geom: number[]): Id;
  conv2dBackpropInput(dy: Id, w: Id, geom: number[]): Id;
  conv2dBackpropFilter(x: Id, dy: Id, geom: number[]): Id;
  layerNorm(x: Id, gamma: Id, beta: Id, rows: number, c: number, eps: number): Id;
  layerNormGrad(dy: Id, x: Id, gamma: Id, rows: number, c: number, eps: number): [Id, Id, Id];
  rmsNorm(x: Id, gamma: Id, rows: number, c: number, eps: number): Id;
  rmsNormGrad(dy: Id, x: Id, gamma: Id, rows: number, c: number, eps: number): [Id, Id];
  attention(q: Id, k: Id, v: Id, bias: Id, geom: number[], scale: number, causal: boolean): Id;
  attentionGrad(dy: Id, q: Id, k: Id, v: Id, bias: Id, geom: number[], scale: number,
    causal: boolean): [Id, Id, Id];
  /** An LM head and its mean cross-entropy over the rows whose label is kept, as one buffer [loss]
   *  (VlmixLinearCrossEntropy); CPU addon only. */
  linearCe(x: Id, w: Id, labels: Id, n: number, c: number, v: number, ignoreIndex: number): Id;
  /** [dx [n, c], dw [v, c]] of linearCe for the loss's gradient dloss [1]; CPU addon only. */
  linearCeGrad(dloss: Id, x: Id, w: Id, labels: Id, n: number, c: number, v: number, ignoreIndex: number): [Id, Id];
  sce(logits: Id, labels: Id, n: number, v: number, ignoreIndex: number): Id;
  sceGrad(dloss: Id, logits: Id, labels: Id, n: number, v: number, ignoreIndex: number): Id;
  gelu(x: Id, n: number, tanh: boolean): Id;
  geluGrad(dy: Id, x: Id, n: number, tanh: boolean): Id;
  swiglu(gate: Id, up: Id, n: number): Id;
  swigluGrad(dy: Id, gate: Id, up: Id, n: number): [Id, Id];
  adamw(p: Id, g: Id, m: Id, v: Id, n: number, lr: number, beta1: number, beta2: number, eps: number,
    weightDecay: number, step: number): [Id, Id, Id];
  /** One AdamW step over many tensors in one call: groups [param, grad, m, v], sizes n. */
  adamwMulti(groups: Array<[Id, Id, Id, Id]>, sizes: number[], lr: number, beta1: number, beta2: number,
    eps: number, weightDecay: number, step: number): Array<[Id, Id, Id]>;
  /** The same step written into each group's param, m and v buffers. */
  adamwInPlace(groups: Array<[Id, Id, Id, Id]>, sizes: number[], lr: number, beta1: number, beta2: number,
    eps: number, weightDecay: number, step: number): void;
}

let cached: { addon: NativeAddon | null; reason: string } | null = null;

/** The addon and a one-line reason (why it loaded or why not). Never throws. */
export function loadNative(): { addon: NativeAddon | null; reason: string } {
  if (cached) return cached;
  if (process.env.VLMIX_DISABLE_NATIVE) {
    cached = { addon: null, reason: 'VLMIX_DISABLE_NATIVE is set' };
    return cached;
  }
  const require = createRequire(import.meta.url);
  // src/ and dist/ both sit one level below the package root.
  // './vlmix_cpu.node': a bundle with the addon copied next to it (bench/device/bundle.mjs).
  // VLMIX_CPU_ADDON: another build of the addon (A/B timing of native changes, bench-native/ab.sh).
  const candidates = [
    process.env.VLMIX_CPU_ADDON,
    ...['../build/Release/vlmix_cpu.node', '../../build/Release/vlmix_cpu.node', './vlmix_cpu.node']
      .map((p) => fileURLToPath(new URL(p, import.meta.url))),
  ].filter((p): p is string => !!p);
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    cached = {
      addon: null,
      reason: 'native addon not built (build/Release/vlmix_cpu.node missing; run `pnpm --filter @vlmix/backend-native run build:native`)',
    };
    return cached;
  }
  try {
    const addon = require(found) as NativeAddon;
    const info = addon.info();
    cached = { addon, reason: `native addon loaded (gemm ${info.gemm}, ${info.threads} threads)` };
  } catch (e) {
    cached = { addon: null, reason: `native addon failed to load: ${(e as Error).message.split('\n')[0]}` };
  }
  return cached;
}
