// Runs a tfjs 'cpu' kernel for vlmix-cpu tensors: copy in, run, copy out, count.
import * as tf from '@tensorflow/tfjs';
import { ops } from '@vlmix/core';
import { BACKEND_NAME, type NativeBackend } from './backend.js';

const counts: Record<string, number> = {};

export function fallbackCounts(): Record<string, number> {
  return { ...counts };
}

export function resetFallbackCounts(): void {
  for (const k of Object.keys(counts)) delete counts[k];
}

type TI = tf.TensorInfo;

export function runFallback(kernelName: string, inputs: tf.NamedTensorInfoMap | TI[], attrs: tf.NamedAttrMap,
  backend: NativeBackend): TI | TI[] {
  const cpuKernel = tf.getKernel(kernelName, 'cpu');
  if (!cpuKernel) throw new Error(`vlmix-cpu: kernel '${kernelName}' has no native or tfjs 'cpu' implementation`);
  const cpu = tf.findBackend('cpu') as tf.KernelBackend & {
    makeTensorInfo(shape: number[], dtype: tf.DataType, values?: tf.BackendValues): TI;
  };
  if (!cpu) throw new Error(`vlmix-cpu: fallback for '${kernelName}' needs the tfjs 'cpu' backend`);
  counts[kernelName] = (counts[kernelName] ?? 0) + 1;
  const temps: TI[] = [];
  const toCpu = (t: TI | undefined | null) => {
    if (t == null) return t;
    const c = cpu.makeTensorInfo(t.shape, t.dtype, backend.readSync(t.dataId));
    temps.push(c);
    return c;
  };
  const cpuInputs = Array.isArray(inputs)
    ? inputs.map(toCpu)
    : Object.fromEntries(Object.entries(inputs).map(([k, t]) => [k, toCpu(t)]));
  let outs: TI[] = [];
  let single = false;
  try {
    const res = cpuKernel.kernelFunc({ inputs: cpuInputs as tf.NamedTensorInfoMap, attrs, backend: cpu });
    single = !Array.isArray(res);
    outs = single ? [res as TI] : (res as TI[]);
    return single
      ? backend.fromValues(cpu.readSync(outs[0].dataId), outs[0].shape, outs[0].dtype)
      : outs.map((o) => backend.fromValues(cpu.readSync(o.dataId), o.shape, o.dtype));
  } finally {
    for (const o of outs) cpu.disposeData(o.dataId);
    for (const t of temps) cpu.disposeData(t.dataId);
  }
}

/** The counting fallback of a tfjs 'cpu' kernel, as a kernel of a NativeBackend (vlmix-cpu, vlmix-cuda). */
export function fallbackKernelFunc(kernelName: string): tf.KernelFunc {
  return ({ inputs, attrs, backend }) =>
    runFallback(kernelName, inputs, attrs ?? {}, backend as NativeBackend) as tf.TensorInfo;
}

/** Registers a counting fallback for every 'cpu' kernel that vlmix-cpu (or `backendName`, e.g.
 *  vlmix-cuda, whose backend is also a NativeBackend) still lacks; the fallback is the last layer of the
 *  registry (native, composite, fallback). Returns how many were added. */
export function syncFallbackKernels(backendName: string = BACKEND_NAME): number {
  return ops.setupBackendKernels(backendName, { fallback: fallbackKernelFunc }).fallback;
}
