/** tfjs helpers shared by the suites: honest synchronisation, a training step, native memory/fallbacks. */
import { readFileSync, writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import * as native from '@vlmix/backend-native';
import { StepReplayer, ops, replayedVariableGrads, variableGrads, type Model } from '@vlmix/core';

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
  /** loss + variableGrads (@vlmix/core) over all trainable params + AdamW on each; synchronised. Returns nothing. */
  step(): void;
  dispose(): void;
}

/**
 * A training step on fixed random ids/labels [batch, seq], or on the given loss function. With `replay`, the
 * loss and gradients go through a StepReplayer (as the Trainer's captureSteps) whose inputs are the batch's
 * tensors (`replay.inputs`; the random ids/labels without lossFn); the step must replay, else it throws.
 */
export function makeTrainer(model: Model, batch: number, seq: number, lossFn?: () => tf.Scalar, replay?: { inputs: tf.Tensor[] }): Trainer {
  const vocab = model.config.vocabSize;
  const ids = lossFn ? null : tf.randomUniformInt([batch, seq], 0, vocab, 1) as tf.Tensor2D;
  const labels = lossFn ? null : tf.randomUniformInt([batch, seq], 0, vocab, 2) as tf.Tensor2D;
  const loss = lossFn ?? (() => model.loss({ inputIds: ids! }, labels!));
  const params = model.params.list().filter((p) => p.trainable).map((p) => p.variable);
  const replayer = replay ? new StepReplayer({ onEager: (reason) => { throw new Error(`the step cannot be replayed: ${reason}`); } }) : null;
  const inputs = replay ? (lossFn ? replay.inputs : [ids!, labels!]) : [];
  const gradsOf = () => (replayer ? replayedVariableGrads(replayer, inputs, loss, params) : variableGrads(loss, params));
  const zeroVar = (p: tf.Variable) => tf.tidy(() => tf.variable(tf.zerosLike(p), false));
  const m = params.map(zeroVar);
  const v = params.map(zeroVar);
  let t = 0;
  return {
    step() {
      t++;
      const { value, grads } = gradsOf(); // as the Trainer: freeing as the backward pass goes
      try {
        tf.tidy(() => {
          // as the Trainer's AdamW: one multi-tensor call that may update the buffers in place, then assign;
          // a parameter not on the loss's path (e.g. an unused branch) is not updated, like PyTorch's grad=None
          const live = params.map((p, i) => ({ p, i, g: grads[p.name] })).filter((x) => x.g);
          const out = ops.adamwUpdateMulti(live.map(({ p, i, g }) => ({ param: p, grad: g!, m: m[i]!, v: v[i]!, weightDecay: ADAMW.weightDecay })),
            { lr: ADAMW.lr, beta1: ADAMW.beta1, beta2: ADAMW.beta2, eps: ADAMW.eps, step: t, inPlace: true });
          live.forEach(({ p, i }, k) => {
            const [np, nm, nv] = out[k]!;
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
      replayer?.dispose();
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
  /** Kernel dispatches through the tfjs engine during the step (tf.profile's kernel list, gradients included). */
  kernels: number;
  /** The same by kernel name. */
  kernelsByName: Record<string, number>;
  /** Rise of the process's peak resident set over one call (VmHWM reset through /proc/self/clear_refs);
   *  null where that is not available. Measured the same way for PyTorch (common.py memory()). */
  rssPeakDeltaBytes: number | null;
  nativePeakBytes?: number;
  nativePeakScope?: 'step' | 'process';
  /** vlmix-cpu: native high-water mark minus the native bytes live before the step (the allocator's peak rise). */
  nativePeakDeltaBytes?: number;
  /** Fallback kernels (run by tfjs 'cpu' for vlmix-cpu) during the step, by name. */
  fallbacks?: Record<string, number>;
  fallbackCount?: number;
}

function statusBytes(key: 'VmRSS' | 'VmHWM'): number | null {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Peak RSS rise over one call of fn: resets VmHWM (Linux clear_refs "5"), then VmHWM after - VmRSS before. */
export function rssPeakDelta(fn: () => void): number | null {
  let reset = false;
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    reset = true;
  } catch {
    /* not Linux, or not permitted */
  }
  const before = reset ? statusBytes('VmRSS') : null;
  fn();
  const hwm = reset ? statusBytes('VmHWM') : null;
  return before != null && hwm != null ? hwm - before : null;
}

/**
 * Runs `fn` twice outside any timed region: once for the peak RSS rise, once under tf.profile for the
 * engine's memory, the kernel count and, on vlmix-cpu, the native allocator's peak and the fallback kernels.
 */
export async function profileStep(fn: () => void): Promise<StepMemory> {
  const rssPeakDeltaBytes = rssPeakDelta(fn);
  const nat = isNative();
  let scope: 'step' | 'process' = 'process';
  let nativeBefore = 0;
  if (nat) {
    scope = resetNativePeak() ? 'step' : 'process';
    nativeBefore = native.nativeMemory().bytes;
    native.resetFallbackCounts();
  }
  const info = await tf.profile(() => {
    fn();
    return [] as tf.Tensor[];
  });
  const kernelsByName: Record<string, number> = {};
  for (const k of info.kernels) kernelsByName[k.name] = (kernelsByName[k.name] ?? 0) + 1;
  const out: StepMemory = {
    tfPeakBytes: info.peakBytes,
    tfNewBytes: info.newBytes,
    tfNewTensors: info.newTensors,
    tfBytesAfter: tf.memory().numBytes,
    kernels: info.kernels.length,
    kernelsByName,
    rssPeakDeltaBytes,
  };
  if (nat) {
    const fb = native.fallbackCounts();
    out.nativePeakBytes = native.nativeMemory().peakBytes;
    out.nativePeakScope = scope;
    if (scope === 'step') out.nativePeakDeltaBytes = out.nativePeakBytes - nativeBefore;
    out.fallbacks = fb;
    out.fallbackCount = Object.values(fb).reduce((a, b) => a + b, 0);
  }
  return out;
}
