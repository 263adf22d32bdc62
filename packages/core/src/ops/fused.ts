/**
 * Registers vlmix's fused kernels the tfjs-core way: a gradient per kernel name (backend independent)
 * and, for any backend without a native implementation, a kernel whose body is the composite reference.
 * Backends with a native implementation (e.g. vlmix-cpu) register theirs first and are left alone.
 */
import * as tf from '@tensorflow/tfjs';
import * as K from './kernel-names.js';
import * as C from './composite.js';

type Attrs = Record<string, unknown>;
type Body = (inputs: Record<string, tf.Tensor>, attrs: Attrs) => tf.Tensor | tf.Tensor[];

const bodies: Record<string, Body> = {
  [K.LayerNorm]: (i, a) => C.layerNormForward(i.x!, i.gamma!, i.beta!, a.eps as number),
  [K.LayerNormGrad]: (i, a) => C.layerNormBackward(i.dy!, i.x!, i.gamma!, a.eps as number),
  [K.RmsNorm]: (i, a) => C.rmsNormForward(i.x!, i.gamma!, a.eps as number),
  [K.RmsNormGrad]: (i, a) => C.rmsNormBackward(i.dy!, i.x!, i.gamma!, a.eps as number),
  [K.Attention]: (i, a) => C.attentionForward(i.q!, i.k!, i.v!, i.bias!, a as unknown as K.AttentionAttrs),
  [K.AttentionGrad]: (i, a) => C.attentionBackward(i.dy!, i.q!, i.k!, i.v!, i.bias!, a as unknown as K.AttentionAttrs),
  [K.SoftmaxCrossEntropy]: (i, a) => C.softmaxCrossEntropyForward(i.logits!, i.labels!, a.ignoreIndex as number),
  [K.SoftmaxCrossEntropyGrad]: (i, a) =>
    C.softmaxCrossEntropyBackward(i.dloss!, i.logits!, i.labels!, a.ignoreIndex as number),
  [K.Gelu]: (i, a) => C.geluForward(i.x!, a.approximate as 'none' | 'tanh'),
  [K.GeluGrad]: (i, a) => C.geluBackward(i.dy!, i.x!, a.approximate as 'none' | 'tanh'),
  [K.Swiglu]: (i) => C.swigluForward(i.gate!, i.up!),
  [K.SwigluGrad]: (i) => C.swigluBackward(i.dy!, i.gate!, i.up!),
  [K.AdamW]: (i, a) => C.adamwStep(i.param!, i.grad!, i.m!, i.v!, a as unknown as K.AdamWAttrs),
};

/** Per backend, the fused kernels already looked at; and the composite kernel bodies we registered. */
const compositeOn = new Map<string, Set<string>>();
const compositeFuncs = new WeakSet<tf.KernelFunc>();

/** Registers the composite body of every fused kernel the backend lacks. Cheap when already done. */
export function ensureFusedKernels(backendName: string = tf.getBackend()): void {
  let done = compositeOn.get(backendName);
  if (done && done.size === K.ALL_FUSED_KERNELS.length) return;
  if (!done) compositeOn.set(backendName, (done = new Set()));
  for (const name of K.ALL_FUSED_KERNELS) {
    if (done.has(name)) continue;
    done.add(name);
    if (tf.getKernel(name, backendName) != null) continue; // native implementation present
    const body = bodies[name]!;
    // Ops called inside a kernel are not recorded on the gradient tape (kernelDepth > 0), and a
    // returned Tensor is adopted by the engine as the kernel's output.
    const kernelFunc: tf.KernelFunc = ({ inputs, attrs }) =>
      tf.tidy(() => body(inputs as Record<string, tf.Tensor>, attrs as Attrs)) as unknown as tf.TensorInfo;
    compositeFuncs.add(kernelFunc);
    tf.registerKernel({ kernelName: name, backendName, kernelFunc });
  }
}

/** Which fused kernels run natively (not as composite bodies) on a backend. */
export function nativeFusedKernels(backendName: string = tf.getBackend()): string[] {
  return K.ALL_FUSED_KERNELS.filter((n) => {
    const k = tf.getKernel(n, backendName);
    return k != null && !compositeFuncs.has(k.kernelFunc);
  });
}

function run(name: string, inputs: Record<string, tf.Tensor>, attrs: Attrs): tf.Tensor | tf.Tensor[] {
  ensureFusedKernels();
  return tf.engine().runKernel(name, inputs as tf.NamedTensorMap, attrs as tf.NamedAttrMap) as tf.Tensor | tf.Tensor[];
}
export { run as runFusedKernel };

function registerGradients(): void {
  const grad = (kernelName: string, inputsToSave: string[], fn: (dy: tf.Tensor, saved: tf.Tensor[], attrs: Attrs) => Record<string, () => tf.Tensor>) =>
    tf.registerGradient({
      kernelName,
      inputsToSave,
      gradFunc: (dy, saved, attrs) => fn(dy as tf.Tensor, saved, attrs as Attrs),
    });

  grad(K.LayerNorm, ['x', 'gamma', 'beta'], (dy, [x, gamma], a) => {
    const [dx, dg, db] = run(K.LayerNormGrad, { dy, x: x!, gamma: gamma! }, a) as tf.Tensor[];
    return { x: () => dx!, gamma: () => dg!, beta: () => db! };
  });
  grad(K.RmsNorm, ['x', 'gamma'], (dy, [x, gamma], a) => {
    const [dx, dg] = run(K.RmsNormGrad, { dy, x: x!, gamma: gamma! }, a) as tf.Tensor[];
    return { x: () => dx!, gamma: () => dg! };
  });
  grad(K.Attention, ['q', 'k', 'v', 'bias'], (dy, [q, k, v, bias], a) => {
    const [dq, dk, dv] = run(K.AttentionGrad, { dy, q: q!, k: k!, v: v!, bias: bias! }, a) as tf.Tensor[];
    return { q: () => dq!, k: () => dk!, v: () => dv!, bias: () => tf.zerosLike(bias!) };
  });
  grad(K.SoftmaxCrossEntropy, ['logits', 'labels'], (dy, [logits, labels], a) => {
    const dl = run(K.SoftmaxCrossEntropyGrad, { dloss: dy, logits: logits!, labels: labels! }, a) as tf.Tensor;
    return { logits: () => dl, labels: () => tf.zerosLike(labels!) };
  });
  grad(K.Gelu, ['x'], (dy, [x], a) => {
    const dx = run(K.GeluGrad, { dy, x: x! }, a) as tf.Tensor;
    return { x: () => dx };
  });
  grad(K.Swiglu, ['gate', 'up'], (dy, [gate, up]) => {
    const [dg, du] = run(K.SwigluGrad, { dy, gate: gate!, up: up! }, {}) as tf.Tensor[];
    return { gate: () => dg!, up: () => du! };
  });
}

registerGradients();
ensureFusedKernels('cpu');
