// Counting device-to-host reads: a device-pure pass (forward, loss, backward) reads nothing back.
import * as tf from '@tensorflow/tfjs';

export interface ReadCount<T> {
  /** Reads requested outside any kernel (model code: dataSync / data / arraySync / array / buffer). */
  reads: number;
  /** Reads a backend's kernels made internally (e.g. tfjs 'cpu' kernels reading their inputs, or a fallback copy). */
  kernelReads: number;
  result: T;
}

type Reader = (...args: unknown[]) => unknown;
interface EngineInternals {
  state: { kernelDepth: number };
  backend: { readSync: Reader; read: Reader };
}

/**
 * Runs `fn` with the current backend's read path instrumented (`readSync` and `read`) and counts the
 * reads. Reads from inside a kernel (the engine's kernelDepth > 0) are counted apart: on tfjs 'cpu' the
 * kernels read their inputs from host memory as a matter of course; what matters for a GPU is the reads
 * the model asks for.
 */
export function countHostReads<T>(fn: () => T): ReadCount<T> {
  const engine = tf.engine() as unknown as EngineInternals;
  const backend = engine.backend;
  const own = Object.prototype.hasOwnProperty;
  const saved = { readSync: own.call(backend, 'readSync'), read: own.call(backend, 'read') };
  const orig = { readSync: backend.readSync, read: backend.read };
  const out = { reads: 0, kernelReads: 0 };
  const count = () => {
    if (engine.state.kernelDepth > 0) out.kernelReads++;
    else out.reads++;
  };
  let inRead = false; // a backend's read() may call its own readSync(): count once
  backend.readSync = function (this: unknown, ...a: unknown[]) {
    if (!inRead) count();
    return orig.readSync.apply(this, a);
  };
  backend.read = function (this: unknown, ...a: unknown[]) {
    count();
    inRead = true;
    try {
      return orig.read.apply(this, a);
    } finally {
      inRead = false;
    }
  };
  try {
    const result = fn();
    return { reads: out.reads, kernelReads: out.kernelReads, result };
  } finally {
    for (const k of ['readSync', 'read'] as const) {
      if (saved[k]) backend[k] = orig[k];
      else delete (backend as Partial<typeof backend>)[k];
    }
  }
}
