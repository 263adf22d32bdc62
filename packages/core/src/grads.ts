/**
 * `variableGrads`: tf.variableGrads with the memory profile of PyTorch's autograd. tfjs walks the tape
 * backwards but frees nothing until the whole backward pass is over: every tensor saved for a gradient and
 * the gradient of every intermediate tensor stay alive to the end, so a training step peaks at about twice
 * what it needs. Here, when a node's gradients have been computed, its saved tensors and the gradients of
 * its outputs are freed at once. Same kernels in the same order as tfjs: the gradients are bit-identical.
 *
 * Uses the engine's tape (as tf.variableGrads does); for a nested gradient (gradientDepth > 0, e.g. inside
 * a custom gradient) it defers to tfjs, whose tape the outer pass still needs.
 */
import * as tf from '@tensorflow/tfjs';
import { engine, type TapeNode } from './engine-internals.js';
import type { StepReplayer } from './capture.js';
import { fail } from './errors.js';

/**
 * The nodes on a path from some x to y, each with only the inputs that come from an x (the ones that get
 * a gradient).
 */
function pathNodes(tape: TapeNode[], xs: readonly tf.Tensor[], y: tf.Tensor): TapeNode[] {
  const fromX = new Set(xs.map((x) => x.id));
  const nodeFromX = new Set<number>();
  for (const node of tape) {
    if (Object.values(node.inputs).some((t) => fromX.has(t.id))) {
      nodeFromX.add(node.id);
      for (const o of node.outputs) fromX.add(o.id);
    }
  }
  const toY = new Set([y.id]);
  const nodeToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i]!;
    if (node.outputs.some((o) => toY.has(o.id))) {
      nodeToY.add(node.id);
      for (const t of Object.values(node.inputs)) toY.add(t.id);
    }
  }
  return tape
    .filter((n) => nodeFromX.has(n.id) && nodeToY.has(n.id))
    .map((n) => ({ ...n, inputs: Object.fromEntries(Object.entries(n.inputs).filter(([, t]) => fromX.has(t.id))) }));
}

/** Gradients of y = f() with respect to xs, freeing each node's saved tensors and output gradients when done. */
function gradients(f: () => tf.Scalar, xs: tf.Variable[]): { value: tf.Scalar; grads: (tf.Tensor | undefined)[] } {
  const e = engine();
  const y = e.scopedRun(() => e.startTape(), () => e.endTape(), () => e.tidy('forward', f));
  const tape = e.state.activeTape!;
  const nodes = pathNodes(tape, xs, y);
  const result = e.tidy('backward', () => {
    // gradient per tensor id; a tensor object may be the gradient of several ids (a gradient that passes dy
    // through), so each object counts its holders and is freed when none is left
    const acc = new Map<number, tf.Tensor>();
    const holders = new Map<tf.Tensor, number>();
    const hold = (id: number, g: tf.Tensor) => {
      acc.set(id, g);
      holders.set(g, (holders.get(g) ?? 0) + 1);
    };
    const release = (id: number) => {
      const g = acc.get(id)!;
      acc.delete(id);
      const n = holders.get(g)! - 1;
      if (n > 0) holders.set(g, n);
      else {
        holders.delete(g);
        g.dispose();
      }
    };
    hold(y.id, tf.onesLike(y));
    const wanted = new Set(xs.map((x) => x.id));
    for (let i = nodes.length - 1; i >= 0; i--) {
      const node = nodes[i]!;
      if (!node.gradient) fail(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
      const dys = node.outputs.map((o) => acc.get(o.id) ?? null);
      const inputGradients = node.gradient(dys);
      for (const [name, x] of Object.entries(node.inputs)) {
        const thunk = inputGradients[name];
        if (!thunk) fail(`Cannot backprop through input ${name} of ${node.kernelName}. Available gradients found: ${Object.keys(inputGradients)}.`);
        const dx = tf.tidy(thunk);
        if (dx.dtype !== 'float32') fail(`Error in gradient for op ${node.kernelName}. The gradient of input ${name} must have 'float32' dtype, but has '${dx.dtype}'`);
        if (!tf.util.arraysEqual(dx.shape, x.shape)) fail(`Error in gradient for op ${node.kernelName}. The gradient of input '${name}' has shape '${dx.shape}', which does not match the shape of the input '${x.shape}'`);
        if (!acc.has(x.id)) {
          hold(x.id, dx);
          continue;
        }
        const sum = tf.add(acc.get(x.id)!, dx);
        release(x.id);
        if (!holders.has(dx)) dx.dispose();
        hold(x.id, sum);
      }
      // this node is done: nothing reads its outputs' gradients or its saved tensors again
      for (const o of node.outputs) if (acc.has(o.id) && !wanted.has(o.id)) release(o.id);
      for (const t of node.saved ?? []) if (!holders.has(t)) t.dispose();
    }
    const grads = xs.map((x) => acc.get(x.id));
    if (e.state.gradientDepth === 0) {
      for (const node of tape) for (const t of node.saved ?? []) t.dispose();
      e.state.activeTape = null;
    }
    return { value: y, grads } as unknown as tf.TensorContainer;
  }) as unknown as { value: tf.Scalar; grads: (tf.Tensor | undefined)[] };
  return result;
}

/**
 * Same contract as tf.variableGrads(f, varList): the value of f (a scalar) and the gradients of the
 * variables it depends on, by variable name (variables it does not reach are left out).
 */
export function variableGrads(f: () => tf.Scalar, varList: tf.Variable[]): { value: tf.Scalar; grads: tf.NamedTensorMap } {
  if (!Array.isArray(varList) || varList.length === 0) fail(`variableGrads: varList must be a non-empty array of variables`);
  const e = engine();
  if (e.state.gradientDepth > 0 || e.state.activeTape) return tf.variableGrads(f, varList);
  const { value, grads } = gradients(() => {
    const v = f();
    if (!(v instanceof tf.Tensor) || v.rank !== 0) fail(`variableGrads: f must return a scalar tensor, got ${v instanceof tf.Tensor ? `rank ${v.rank}` : typeof v}`);
    return v;
  }, varList);
  const named: tf.NamedTensorMap = {};
  varList.forEach((v, i) => {
    if (grads[i] != null) named[v.name] = grads[i]!;
  });
  return { value, grads: named };
}

/**
 * variableGrads through a StepReplayer (capture.ts): `inputs` are the tensors the loss depends on besides the
 * variables. The first calls per input shape run variableGrads and are recorded; later ones replay. The same
 * value and gradients (a parameter off the loss's path gets none), bit for bit.
 */
export function replayedVariableGrads(replayer: StepReplayer, inputs: readonly tf.Tensor[], f: () => tf.Scalar,
  varList: tf.Variable[]): { value: tf.Scalar; grads: tf.NamedTensorMap } {
  const outs = replayer.run(inputs, () => {
    const { value, grads } = variableGrads(f, varList);
    return [value, ...varList.map((v) => grads[v.name] ?? null)];
  });
  const grads: tf.NamedTensorMap = {};
  varList.forEach((v, i) => {
    const g = outs[i + 1];
    if (g) grads[v.name] = g;
  });
  return { value: outs[0] as tf.Scalar, grads };
}
