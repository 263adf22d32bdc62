/**
 * The parts of tfjs's engine (4.x) that vlmix's gradient code drives directly: its tape, its scoped runs and
 * its gradient walk. Not public tfjs API; one description of it, used by grads.ts and checkpoint.ts.
 */
import * as tf from '@tensorflow/tfjs';

export interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  saved?: tf.Tensor[];
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
}

export interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  startTape(): void;
  endTape(): void;
  tidy<T extends tf.TensorContainer>(name: string, f: () => T): T;
  gradients(f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor, allowNoGradients?: boolean): { value: tf.Tensor; grads: (tf.Tensor | undefined)[] };
}

export const engine = () => tf.engine() as unknown as EngineInternals;

interface SaveInternals {
  state: { gradientDepth: number; tensorInfo: WeakMap<object, { backend: tf.KernelBackend }> };
  saveTensorsForBackwardMode(tensors: tf.Tensor[]): tf.Tensor[];
  makeTensorFromTensorInfo(info: tf.TensorInfo, backend: tf.KernelBackend): tf.Tensor;
  keep<T extends tf.Tensor>(t: T): T;
}

/** Backends whose Identity kernel is a reference to the same data (incRef), nothing more. */
const ALIASING_IDENTITY = new Set(['cpu', 'vlmix-cpu', 'vlmix-cuda']);
let tfjsSave: ((tensors: tf.Tensor[]) => tf.Tensor[]) | null = null;

/**
 * Cheaper saved tensors for gradients. tfjs saves each tensor a gradient needs with engine.clone: an Identity
 * kernel and a tape node per tensor, several hundred per training step of a small model (a third of its
 * dispatches). The clone's tape node only matters if the backward pass itself is recorded (a gradient of a
 * gradient). In the forward pass of the outermost gradient (gradientDepth 1) it never is, so there the saved
 * tensor is a new reference to the same data, exactly what those backends' Identity kernel returns, with no
 * kernel and no tape node. Nested gradients and other backends keep tfjs's clone. On by default; returns
 * whether it was on.
 */
export function fastSavedTensors(on: boolean): boolean {
  const e = tf.engine() as unknown as SaveInternals;
  const was = tfjsSave !== null;
  if (on && !was) {
    const original = e.saveTensorsForBackwardMode;
    tfjsSave = original;
    e.saveTensorsForBackwardMode = function (this: SaveInternals, tensors: tf.Tensor[]): tf.Tensor[] {
      const backend = tf.backend();
      if (this.state.gradientDepth !== 1 || !ALIASING_IDENTITY.has(tf.getBackend()) ||
        tensors.some((t) => this.state.tensorInfo.get(t.dataId)?.backend !== backend)) return original.call(this, tensors);
      return tensors.map((t) => {
        backend.incRef(t.dataId);
        return this.keep(this.makeTensorFromTensorInfo({ dataId: t.dataId, shape: t.shape, dtype: t.dtype }, backend));
      });
    };
  } else if (!on && was) {
    delete (e as Partial<SaveInternals>).saveTensorsForBackwardMode; // back to the prototype's
    tfjsSave = null;
  }
  return was;
}
fastSavedTensors(true);

type GradFunc = (dy: tf.Tensor | (tf.Tensor | null)[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => Record<string, () => tf.Tensor>;
interface TapeInternals {
  state: { activeTape: TapeNode[] | null };
  addTapeNode(kernelName: string, inputs: tf.NamedTensorMap, outputs: tf.Tensor[], gradientsFunc: unknown,
    saved: tf.Tensor[], attrs: tf.NamedAttrMap): void;
}
/** Kernels whose gradient takes null for an output that got no gradient (registerGradientTakingNulls). */
const nullDyGradients = new Map<string, GradFunc>();
let tapeNodesPatched = false;

/**
 * Registers a multi-output kernel's gradient, which is given null (not zeros) for an output that got no
 * gradient. tfjs hands a gradient function a zero tensor of each such output's size, allocated and uploaded
 * from JS in every backward pass: for a fused kernel's stashed output (LinearActivation's preactivation, kept
 * only for its own gradient) that costs as much as the fusion saves. The tape nodes of these kernels call
 * `gradFunc` directly; `gradFunc` must accept a zero tensor as well (tfjs's walk still passes one where this
 * engine hook is not in place).
 */
export function registerGradientTakingNulls(config: { kernelName: string; inputsToSave?: string[]; outputsToSave?: boolean[]; gradFunc: GradFunc }): void {
  tf.registerGradient(config as unknown as tf.GradConfig);
  nullDyGradients.set(config.kernelName, config.gradFunc);
  const e = tf.engine() as unknown as TapeInternals;
  if (tapeNodesPatched) return;
  tapeNodesPatched = true;
  const original = e.addTapeNode;
  e.addTapeNode = function (this: TapeInternals, kernelName, inputs, outputs, gradientsFunc, saved, attrs) {
    original.call(this, kernelName, inputs, outputs, gradientsFunc, saved, attrs);
    const fn = nullDyGradients.get(kernelName);
    const tape = this.state.activeTape;
    if (!fn || !tape?.length) return;
    tape[tape.length - 1]!.gradient = (dys) => fn(dys.length > 1 ? dys : dys[0]!, saved, attrs) as Record<string, () => tf.Tensor>;
  };
}
