/**
 * @vlmix/backend-native: the 'vlmix-cpu' TensorFlow.js backend (native C++ kernels) and backend
 * selection for vlmix.
 */
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import { BACKEND_NAME, NativeBackend } from './backend.js';
import { ops, silenceCpuBanner } from '@vlmix/core';
import { loadNative } from './native.js';
import { defineTableKernels, nativeKernelFuncs } from './kernels.js';
import { nativeFusedKernelFuncs } from './fused.js';
import { fallbackCounts, fallbackKernelFunc, resetFallbackCounts, syncFallbackKernels } from './fallback.js';
import { CUDA_BACKEND_NAME, registerCudaBackend } from './cuda.js';

export { CUDA_BACKEND_NAME, cudaInfo, cudaMemory, registerCudaBackend, setCudaTf32 } from './cuda.js';

export { fallbackCounts, resetFallbackCounts, syncFallbackKernels, BACKEND_NAME };

// tfjs 'cpu' (our fallback) advertises tfjs-node on its first tensor in Node; this package is the
// answer to that advice, so keep it quiet.
silenceCpuBanner();
export { nativeKernelNames } from './kernels.js';

let registered: { ok: boolean; reason: string } | null = null;

/** Registers the 'vlmix-cpu' backend and its kernels if the addon loads. Idempotent. */
export function registerNativeBackend(): { ok: boolean; reason: string } {
  if (registered) {
    if (registered.ok) syncFallbackKernels();
    return registered;
  }
  const { addon, reason } = loadNative();
  if (!addon) {
    registered = { ok: false, reason };
    return registered;
  }
  try {
    if (!tf.findBackendFactory(BACKEND_NAME)) {
      // Low priority: vlmix-cpu is only used when selected (useBackend / tf.setBackend).
      tf.registerBackend(BACKEND_NAME, () => new NativeBackend(addon), 0);
    }
    defineTableKernels(addon);
    // Once, in the registry's order: native kernels, composite bodies for any fused kernel still
    // missing, then the counting fallback for every other tfjs 'cpu' kernel.
    ops.setupBackendKernels(BACKEND_NAME, {
      native: [...nativeKernelFuncs(), ...nativeFusedKernelFuncs()],
      fallback: fallbackKernelFunc,
    });
    registered = { ok: true, reason };
  } catch (e) {
    registered = { ok: false, reason: `registration failed: ${(e as Error).message}` };
  }
  return registered;
}

/** Whether the addon is available, which GEMM it uses, how many threads, and its matmul precision. */
export function nativeInfo(): { available: boolean; reason: string; gemm: string; threads: number; bf16Supported: boolean; precision: MatmulPrecision } {
  const { addon, reason } = loadNative();
  if (!addon) return { available: false, reason, gemm: 'none', threads: 0, bf16Supported: false, precision: 'fp32' };
  const info = addon.info();
  return { available: true, reason, gemm: info.gemm, threads: info.threads, bf16Supported: info.bf16Supported, precision: info.bf16 ? 'bf16' : 'fp32' };
}

export type MatmulPrecision = 'fp32' | 'bf16';

/**
 * Matmul precision of vlmix-cpu. 'bf16' (CPUs with AVX512-BF16, detected at run time): every blocked GEMM
 * (matmuls and linear layers, forward and backward) rounds its two operands to bf16 and sums the products in
 * fp32 with fp32 outputs, as PyTorch's CPU autocast does for matmuls; parameters, optimizer state and every
 * other op stay fp32 (master weights; bf16 needs no loss scaling). Matrix-vector shapes stay fp32.
 * Throws, naming the CPU's lack, where bf16 is not supported.
 */
export function setMatmulPrecision(p: MatmulPrecision): void {
  if (p !== 'fp32' && p !== 'bf16') throw new Error(`setMatmulPrecision: expected 'fp32' or 'bf16', got ${JSON.stringify(p)}`);
  const { addon, reason } = loadNative();
  if (!addon) {
    if (p === 'fp32') return;
    throw new Error(`setMatmulPrecision('bf16'): needs the vlmix-cpu addon, which is not available (${reason})`);
  }
  if (!addon.setGemmBf16(p === 'bf16')) {
    throw new Error(`setMatmulPrecision('bf16'): this CPU has no AVX512-BF16 (gemm ${addon.info().gemm}); bf16 matmuls need it`);
  }
}

/** The current matmul precision of vlmix-cpu ('fp32' without the addon). */
export function matmulPrecision(): MatmulPrecision {
  const { addon } = loadNative();
  return addon?.info().bf16 ? 'bf16' : 'fp32';
}

/** Native bytes currently held, the high-water mark, and live vlmix-cpu data ids. */
export function nativeMemory(): { bytes: number; peakBytes: number; numDataIds: number } {
  const { addon } = loadNative();
  if (!addon) return { bytes: 0, peakBytes: 0, numDataIds: 0 };
  const m = addon.memory();
  const be = tf.findBackendFactory(BACKEND_NAME) ? (tf.engine().registry[BACKEND_NAME] as NativeBackend | undefined) : undefined;
  return { bytes: m.bytes, peakBytes: m.peakBytes, numDataIds: be ? be.numDataIds() : 0 };
}

export type BackendChoice = 'auto' | 'vlmix-cuda' | 'vlmix-cpu' | 'cpu' | 'wasm' | 'tensorflow';

const require = createRequire(import.meta.url);

async function trySet(name: string): Promise<boolean> {
  try {
    return (await tf.setBackend(name)) && tf.getBackend() === name;
  } catch {
    return false;
  }
}

/** Tries tfjs-node-gpu then tfjs-node; returns a reason when neither works. */
async function tryTensorflow(): Promise<{ ok: boolean; reason: string }> {
  const notes: string[] = [];
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      require(pkg);
    } catch (e) {
      const msg = (e as Error).message.split('\n')[0];
      notes.push(/Cannot find (module|package)/.test(msg) ? `${pkg} not installed` : `${pkg} failed to load (${msg})`);
      continue;
    }
    if (await trySet('tensorflow')) return { ok: true, reason: `tensorflow: ${pkg} loaded` };
    notes.push(`${pkg} loaded but the 'tensorflow' backend could not be set`);
  }
  return { ok: false, reason: notes.join('; ') };
}

async function tryWasm(): Promise<{ ok: boolean; reason: string }> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
  } catch (e) {
    return { ok: false, reason: `@tensorflow/tfjs-backend-wasm failed to load (${(e as Error).message.split('\n')[0]})` };
  }
  return (await trySet('wasm')) ? { ok: true, reason: 'wasm backend initialised' } : { ok: false, reason: 'wasm backend failed to initialise' };
}

async function tryNative(): Promise<{ ok: boolean; reason: string }> {
  const r = registerNativeBackend();
  if (!r.ok) return r;
  syncFallbackKernels();
  if (!(await trySet(BACKEND_NAME))) return { ok: false, reason: `${r.reason}, but tf.setBackend('${BACKEND_NAME}') failed` };
  return r;
}

async function tryCuda(): Promise<{ ok: boolean; reason: string }> {
  const r = registerCudaBackend();
  if (!r.ok) return r;
  syncFallbackKernels(CUDA_BACKEND_NAME);
  if (!(await trySet(CUDA_BACKEND_NAME))) return { ok: false, reason: `${r.reason}, but tf.setBackend('${CUDA_BACKEND_NAME}') failed` };
  return r;
}

/**
 * Selects the tensor backend. 'auto' prefers tfjs-node (GPU, then CPU), then vlmix-cuda (where its addon
 * is built and a CUDA device is present; VLMIX_CUDA=0 skips it), then vlmix-cpu, then wasm, then the plain JS
 * 'cpu' backend. An explicit name that cannot be set throws.
 */
export async function useBackend(name: BackendChoice = 'auto'): Promise<{ backend: string; reason: string }> {
  if (name === 'auto') {
    const tfn = await tryTensorflow();
    if (tfn.ok) return { backend: 'tensorflow', reason: tfn.reason };
    const cuda = process.env.VLMIX_CUDA === '0' ? { ok: false, reason: 'skipped by VLMIX_CUDA=0' } : await tryCuda();
    if (cuda.ok) return { backend: CUDA_BACKEND_NAME, reason: `${CUDA_BACKEND_NAME}: ${cuda.reason}; ${tfn.reason}` };
    const nat = await tryNative();
    if (nat.ok) {
      return { backend: BACKEND_NAME, reason: `${BACKEND_NAME}: ${nat.reason}; vlmix-cuda unavailable (${cuda.reason}); ${tfn.reason}` };
    }
    const wasm = await tryWasm();
    if (wasm.ok) return { backend: 'wasm', reason: `wasm: ${wasm.reason}; vlmix-cpu unavailable (${nat.reason}); ${tfn.reason}` };
    await tf.setBackend('cpu');
    return { backend: 'cpu', reason: `cpu: no faster backend (${tfn.reason}; vlmix-cuda: ${cuda.reason}; vlmix-cpu: ${nat.reason}; ${wasm.reason})` };
  }
  let r: { ok: boolean; reason: string };
  if (name === BACKEND_NAME) r = await tryNative();
  else if (name === CUDA_BACKEND_NAME) r = await tryCuda();
  else if (name === 'tensorflow') r = await tryTensorflow();
  else if (name === 'wasm') r = await tryWasm();
  else if (name === 'cpu') r = (await trySet('cpu')) ? { ok: true, reason: 'tfjs cpu backend' } : { ok: false, reason: 'cpu backend failed' };
  else throw new Error(`useBackend: unknown backend '${String(name)}' (expected auto, vlmix-cuda, vlmix-cpu, cpu, wasm or tensorflow)`);
  if (!r.ok) throw new Error(`useBackend('${name}'): backend '${name}' is unavailable: ${r.reason}`);
  return { backend: name, reason: `${name}: ${r.reason}` };
}
