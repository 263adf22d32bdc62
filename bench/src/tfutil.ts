/** tfjs helpers shared by the suites: honest synchronisation, a training step, native memory/fallbacks. */
import * as tf from '@tensorflow/tfjs';
import * as native from '@vlmix/backend-native';
import { ops, type Model } from '@vlmix/core';

/**
 * Waits for every tensor's work and reads it back: the whole tensor when small (<= 4096 elements), else one
 * element of it (a flat slice). On asynchronous backends this forces the computation inside the timed
 * region without timing a large device-to-host copy that the synchronous PyTorch reference never does.
 */
export function sync(...ts: (tf.Tensor | null | undefined)[]): void {
  for (const t of ts) {
    if (!t || t.isDisposed) continue;
    if (t.size <= 4096) t.dataSync();
    else tf.tidy(() => tf.slice(tf.reshape(t, [-1]), [0], [1]).dataSync());
  }
}

export const ADAMW = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

export interface Trainer {
  /** loss + tf.variableGrads over all trainable params + AdamW on each; synchronised. Returns nothing. */
  step(): void;
  dispose(): void;
}

/** A training step on fixed random ids/labels [batch, seq], or on the given loss function. */
export function makeTrainer(model: Model, batch: number, seq: number, lossFn?: () => tf.Scalar): Trainer {
  const vocab = model.config.vocabSize;
  const ids = lossFn ? null : tf.randomUniformInt([batch, seq], 0, vocab, 1) as tf.Tensor2D;
  const labels = lossFn ? null : tf.randomUniformInt([batch, seq], 0, vocab, 2) as tf.Tensor2D;
  const loss = lossFn ?? (() => model.loss({ inputIds: ids! }, labels!));
  const params = model.params.list().filter((p) => p.trainable).map((p) => p.variable);
  const zeroVar = (p: tf.Variable) => tf.tidy(() => tf.variable(tf.zerosLike(p), false));
  const m = params.map(zeroVar);
  const v = params.map(zeroVar);
  let t = 0;
  return {
    step() {
      t++;
      const { value, grads } = tf.variableGrads(loss, params);
      try {
        tf.tidy(() => {
          params.forEach((p, i) => {
            const g = grads[p.name];
            if (!g) return; // not on the loss's path (e.g. an unused branch): no update, like PyTorch's grad=None
            const [np, nm, nv] = ops.adamwUpdate(p, g, m[i]!, v[i]!, { ...ADAMW, step: t });
            p.assign(np);
            m[i]!.assign(nm);
            v[i]!.assign(nv);
          });
        });
        sync(value, params[params.length - 1]);
      } finally {
        value.dispose();
        tf.dispose(grads);
      }
    },
    dispose() {
      tf.dispose([...(ids ? [ids] : []), ...(labels ? [labels] : []), ...m, ...v]);
    },
  };
}

/** Random float32 normal tensor. */
export function randn(shape: number[], seed = 0): tf.Tensor {
  return tf.randomNormal(shape, 0, 1, 'float32', seed);
}

// ---------------------------------------------------------------- native backend introspection

export function isNative(): boolean {
  return tf.getBackend() === native.BACKEND_NAME;
}

/**
 * Resets the native high-water mark so peakBytes covers only what follows. Uses an exported reset when
 * @vlmix/backend-native provides one, else the addon handle on the registered backend; returns whether it
 * could (when not, peakBytes is the process-wide high-water mark).
 */
export function resetNativePeak(): boolean {
  const exported = (native as unknown as { resetNativePeak?: () => void }).resetNativePeak;
  if (typeof exported === 'function') {
    exported();
    return true;
  }
  const be = tf.engine().registry[native.BACKEND_NAME] as unknown as { nat?: { resetPeak?: () => void } } | undefined;
  if (be?.nat && typeof be.nat.resetPeak === 'function') {
    be.nat.resetPeak();
    return true;
  }
  return false;
}

export interface StepMemory {
  /** tfjs engine: peak bytes of live tensors during the step (tf.profile). */
  tfPeakBytes: number;
  tfNewBytes: number;
  tfNewTensors: number;
  /** Live tensor bytes after the step (tf.memory().numBytes). */
  tfBytesAfter: number;
  nativePeakBytes?: number;
  nativePeakScope?: 'step' | 'process';
  /** Fallback kernels (run by tfjs 'cpu' for vlmix-cpu) during the step, by name. */
  fallbacks?: Record<string, number>;
  fallbackCount?: number;
}

/** Runs `fn` once (outside any timed region) and records memory and, on vlmix-cpu, fallback kernels. */
export async function profileStep(fn: () => void): Promise<StepMemory> {
  const nat = isNative();
  let scope: 'step' | 'process' = 'process';
  if (nat) {
    scope = resetNativePeak() ? 'step' : 'process';
    native.resetFallbackCounts();
  }
  const info = await tf.profile(() => {
    fn();
    return [] as tf.Tensor[];
  });
  const out: StepMemory = {
    tfPeakBytes: info.peakBytes,
    tfNewBytes: info.newBytes,
    tfNewTensors: info.newTensors,
    tfBytesAfter: tf.memory().numBytes,
  };
  if (nat) {
    const fb = native.fallbackCounts();
    out.nativePeakBytes = native.nativeMemory().peakBytes;
    out.nativePeakScope = scope;
    out.fallbacks = fb;
    out.fallbackCount = Object.values(fb).reduce((a, b) => a + b, 0);
  }
  return out;
}
