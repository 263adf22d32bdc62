/**
 * Gradient checkpointing per layer: in a training pass under a gradient tape, a layer's forward keeps only
 * its input, and its backward recomputes the layer and takes the gradient of that recomputation. Memory
 * for activations then grows with one layer, not with the depth; the cost is one more forward per layer.
 *
 * tfjs has no nested tapes: `tf.grads` inside a custom gradient clears the outer tape. `innerGradients`
 * sets the outer tape aside for the recomputation and puts it back (engine state, tfjs 4.x).
 *
 * What a layer reads besides its input: parameters (found by recording ctx.param on the layer's first,
 * plain pass and given to the custom gradient as inputs, so they get gradients), float tensors of the pass
 * state (media features a cross-attention reads: inputs too, zero gradient where unused), and tensors the
 * pass created (masks, positions, state) which must outlive the forward: they are kept and released after
 * the backward of the lowest checkpointed layer, the last one to run.
 */
import * as tf from '@tensorflow/tfjs';
import { ForwardContext } from './context.js';
import { engine } from './engine-internals.js';

/** Whether a gradient tape records this pass (inside tf.grads / variableGrads). */
export function tapeActive(): boolean {
  return engine().state.gradientDepth > 0;
}

/** d(f())/d(xs) seeded with dy, computed inside an outer backward pass (null where f does not use x). */
function innerGradients(f: () => tf.Tensor, xs: tf.Tensor[], dy: tf.Tensor): (tf.Tensor | null)[] {
  const st = engine().state;
  const [tape, depth] = [st.activeTape, st.gradientDepth];
  st.activeTape = null;
  st.gradientDepth = 0;
  try {
    const { value, grads } = engine().gradients(f, xs, dy, true);
    value.dispose();
    return grads.map((g) => g ?? null);
  } finally {
    st.activeTape = tape;
    st.gradientDepth = depth;
  }
}

/** Per model: the parameters each layer read on its last plain pass. */
export type LayerParamCache = Map<number, string[]>;

/** One checkpointed training pass: the tensors it keeps alive and which layer's backward releases them. */
export class CheckpointPass {
  private kept: tf.Tensor[] = [];
  private lowest = Infinity;

  constructor(private readonly ctx: ForwardContext, private readonly cache: LayerParamCache, private readonly param: (name: string) => tf.Variable) {}

  /** Keeps the pass's tensors created after `firstId` (they would die with the forward's tidy). */
  keepPassTensors(firstId: number): void {
    for (const t of new Set(ForwardContext.tensors(this.ctx))) {
      if (t.id >= firstId && !t.isDisposed) this.kept.push(tf.keep(t));
    }
  }

  private release(): void {
    for (const t of this.kept) t.dispose();
    this.kept = [];
  }

  /** After the layer loop: with no checkpointed layer nothing waits for a backward. */
  finish(): void {
    if (this.lowest === Infinity) this.release();
  }

  /** Runs layer `l` on h: plain (recording its parameters) the first time, checkpointed afterwards. */
  layer(l: number, h: tf.Tensor, run: (h: tf.Tensor) => tf.Tensor): tf.Tensor {
    const names = this.cache.get(l);
    const plain = () => {
      const read = new Set<string>();
      const out = ForwardContext.recordParams(this.ctx, read, () => run(h));
      this.cache.set(l, [...read]);
      return out;
    };
    if (!names) return plain();
    const vars = names.map((n) => this.param(n));
    const feats = this.ctx.state.tensors().filter((t) => t.dtype === 'float32');
    let missed = false;
    const ctx = this.ctx;
    const ck = tf.customGrad(((...args: unknown[]) => {
      const save = args.pop() as (ts: tf.Tensor[]) => void;
      const hIn = args[0] as tf.Tensor;
      save([hIn]);
      const read = new Set<string>();
      const value = ForwardContext.recordParams(ctx, read, () => ctx.state.withFreshMemos(() => run(hIn)));
      for (const n of read) if (!names.includes(n)) missed = true;
      return {
        value,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const xs = [saved[0]!, ...vars, ...feats];
          try {
            ForwardContext.enterLayer(ctx, l);
            const grads = innerGradients(() => ctx.state.withFreshMemos(() => run(saved[0]!)), xs, dy);
            return grads.map((g, i) => g ?? tf.zerosLike(xs[i]!));
          } finally {
            if (l === this.lowest) this.release();
          }
        },
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (...xs: tf.Tensor[]) => tf.Tensor;
    const out = ck(h, ...vars, ...feats);
    if (missed) {
      // the layer read a parameter it did not read before (e.g. a mixin added since): its gradient would be
      // lost, so this pass runs the layer plainly and records the new set
      out.dispose();
      return plain();
    }
    this.lowest = Math.min(this.lowest, l);
    return out;
  }
}
