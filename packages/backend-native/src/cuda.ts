// The 'vlmix-cuda' backend: loads build/Release/vlmix_cuda.node (built only where nvcc exists), asks
// it for a device, and only then registers a tfjs backend. The CUDA addon exposes the same functions
// as the CPU addon (src/native.ts) over device buffers, so the vlmix-cpu kernel wrappers (kernels.ts,
// fused.ts) run unchanged on it; kernels it lacks (convolutions, resize) and every other tfjs 'cpu'
// kernel go through the counting fallback (fallback.ts), which copies through host memory.
// Status: compiled here; not yet run on a GPU (see README "CUDA").
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NativeBackend } from './backend.js';
import { loadNative, type NativeAddon } from './native.js';
import { ops } from '@vlmix/core';
import { defineTableKernels, nativeKernelFuncs } from './kernels.js';
import { CPU_ONLY_FUSED_KERNELS, nativeFusedKernelFuncs } from './fused.js';
import { fallbackKernelFunc, syncFallbackKernels } from './fallback.js';

export const CUDA_BACKEND_NAME = 'vlmix-cuda';

/** What the addon's device() reports (never throws). */
export interface CudaDevice {
  available: boolean;
  reason: string;
  deviceCount: number;
  driverVersion: number;
  runtimeVersion: number;
  name?: string;
  index?: number;
  computeCapability?: string;
  totalMemory?: number;
}

type CpuOnly = 'info' | 'memory' | 'rotary' | 'linearCe' | 'linearCeGrad' | 'resizeNearest' | 'resizeNearestGrad' | 'setGemmBf16';

/** Functions exported by src/cuda/addon_cuda.cc (the same N-API glue as the CPU addon): the CPU addon's
 *  minus resize, rotary, the fused LM-head loss and the bf16 switch, plus device control. Checked against the addon by test/addon-interface.test.ts. */
export interface CudaAddon extends Omit<NativeAddon, CpuOnly> {
  device(): CudaDevice;
  info(): { gemm: string; threads: number; tf32: boolean };
  memory(): { bytes: number; peakBytes: number; buffers: number; cachedBytes: number; reservedBytes: number };
  setTf32(on: boolean): void;
  /** Waits for all queued GPU work; throws on asynchronous CUDA errors. */
  synchronize(): void;
  /** Returns cached device blocks to the driver. */
  trim(): void;
}

/** vlmix-cpu kernels that call addon functions the CUDA addon does not have: they use the fallback. */
const CPU_ONLY_KERNELS = new Set(['ResizeNearestNeighbor', 'ResizeNearestNeighborGrad']);

let cached: { addon: CudaAddon | null; reason: string } | null = null;

/** The CUDA addon (or why it is absent). Loading never touches the GPU. Never throws. */
export function loadCuda(): { addon: CudaAddon | null; reason: string } {
  if (cached) return cached;
  if (process.env.VLMIX_DISABLE_CUDA) return (cached = { addon: null, reason: 'VLMIX_DISABLE_CUDA is set' });
  const require = createRequire(import.meta.url);
  // src/ and dist/ sit one level below the package root; a bundle has the addon next to it.
  const candidates = [
    process.env.VLMIX_CUDA_ADDON,
    ...['../build/Release/vlmix_cuda.node', '../../build/Release/vlmix_cuda.node', './vlmix_cuda.node']
      .map((p) => fileURLToPath(new URL(p, import.meta.url))),
  ].filter((p): p is string => !!p);
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    return (cached = {
      addon: null,
      reason: 'CUDA addon not built (build/Release/vlmix_cuda.node missing; it is built at install only where nvcc is found)',
    });
  }
  try {
    cached = { addon: require(found) as CudaAddon, reason: `CUDA addon loaded from ${found}` };
  } catch (e) {
    cached = { addon: null, reason: `CUDA addon failed to load: ${(e as Error).message.split('\n')[0]}` };
  }
  return cached;
}

/** Whether vlmix-cuda can run here and why not: 'no CUDA driver ...', 'no CUDA device', 'CUDA addon not built ...'. */
export function cudaInfo(): { available: boolean; reason: string; device?: string; computeCapability?: string; gemm?: string } {
  const { addon, reason } = loadCuda();
  if (!addon) return { available: false, reason };
  const d = addon.device();
  if (!d.available) {
    return { available: false, reason: d.reason, ...(d.name ? { device: d.name, computeCapability: d.computeCapability } : {}) };
  }
  return { available: true, reason: d.reason, device: d.name, computeCapability: d.computeCapability, gemm: addon.info().gemm };
}

/** A NativeBackend over device buffers: reads synchronise, kernels are queued on one CUDA stream. */
export class CudaBackend extends NativeBackend {
  constructor(readonly cuda: CudaAddon) {
    super(cuda as unknown as NativeAddon);
  }

  override async time(f: () => void): Promise<tf.BackendTimingInfo> {
    this.cuda.synchronize();
    const start = performance.now();
    f();
    this.cuda.synchronize();
    return { kernelMs: performance.now() - start };
  }
}

let registered: { ok: boolean; reason: string } | null = null;

/** Registers 'vlmix-cuda' and its kernels when the addon loads and a usable device is present. Idempotent. */
export function registerCudaBackend(): { ok: boolean; reason: string } {
  if (registered) {
    if (registered.ok) syncFallbackKernels(CUDA_BACKEND_NAME);
    return registered;
  }
  const { addon, reason } = loadCuda();
  if (!addon) return (registered = { ok: false, reason });
  const dev = addon.device();
  if (!dev.available) return (registered = { ok: false, reason: dev.reason });
  try {
    if (!tf.findBackendFactory(CUDA_BACKEND_NAME)) {
      // Low priority: only used when selected (useBackend / tf.setBackend).
      tf.registerBackend(CUDA_BACKEND_NAME, () => new CudaBackend(addon), 0);
    }
    defineTableKernels(addon);
    // Table ops (binary/unary) the CPU addon has but this one lacks stay on the fallback.
    const mine = new Set([...Object.keys(addon.binaryOps), ...Object.keys(addon.unaryOps)]);
    const cpu = loadNative().addon;
    const cpuTables = new Set(cpu ? [...Object.keys(cpu.binaryOps), ...Object.keys(cpu.unaryOps)] : []);
    const native = nativeKernelFuncs((name) => !CPU_ONLY_KERNELS.has(name) && (mine.has(name) || !cpuTables.has(name)));
    ops.setupBackendKernels(CUDA_BACKEND_NAME, {
      native: [...native, ...nativeFusedKernelFuncs().filter(([n]) => !CPU_ONLY_FUSED_KERNELS.includes(n))],
      fallback: fallbackKernelFunc,
    });
    registered = { ok: true, reason: `CUDA device ${dev.reason}, gemm ${addon.info().gemm}` };
  } catch (e) {
    registered = { ok: false, reason: `vlmix-cuda registration failed: ${(e as Error).message}` };
  }
  return registered;
}

/** Device bytes held by live tensors, their high-water mark, the allocator's cache, and live data ids. */
export function cudaMemory(): { bytes: number; peakBytes: number; cachedBytes: number; reservedBytes: number; numDataIds: number } {
  const { addon } = loadCuda();
  if (!addon || !registered?.ok) return { bytes: 0, peakBytes: 0, cachedBytes: 0, reservedBytes: 0, numDataIds: 0 };
  const m = addon.memory();
  const be = tf.findBackendFactory(CUDA_BACKEND_NAME)
    ? (tf.engine().registry[CUDA_BACKEND_NAME] as CudaBackend | undefined) : undefined;
  return { bytes: m.bytes, peakBytes: m.peakBytes, cachedBytes: m.cachedBytes, reservedBytes: m.reservedBytes,
    numDataIds: be ? be.numDataIds() : 0 };
}

/** TF32 tensor-core matmuls (default off: strict FP32, as PyTorch; env VLMIX_TF32=1 turns them on at start-up). */
export function setCudaTf32(on: boolean): void {
  const { addon } = loadCuda();
  if (addon && registered?.ok) addon.setTf32(on);
}
