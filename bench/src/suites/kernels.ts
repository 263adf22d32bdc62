/** Kernel suite: the ops vlmix models spend their time in, one shape at a time, side by side with PyTorch. */
import * as tf from '@tensorflow/tfjs';
import { StepReplayer, ops } from '@vlmix/core';
import type { Sizes } from '../sizes.js';
import type { BenchCase, Prepared } from '../types.js';
import { ADAMW, randn, sync } from '../tfutil.js';

function prepared(tensors: tf.Tensor[], run: () => void): Prepared {
  return { run, dispose: () => tf.dispose(tensors) };
}

/** One call: the op in a tidy, its outputs synchronised, then disposed. */
function callOp(f: () => tf.Tensor | tf.Tensor[]): () => void {
  return () => {
    const out = tf.tidy(f);
    const list = Array.isArray(out) ? out : [out];
    sync(...list);
    tf.dispose(list);
  };
}

export function kernelCases(s: Sizes): BenchCase[] {
  const cases: BenchCase[] = [];
  const k = (c: Omit<BenchCase, 'suite' | 'unit'> & { unit?: BenchCase['unit'] }) => cases.push({ suite: 'kernels', unit: 'ms', ...c });

  for (const [m, kk, n] of s.matmul) {
    k({
      group: 'matmul', name: `matmul ${m}x${kk}x${n}`, params: { m, k: kk, n, gflop: (2 * m * kk * n) / 1e9 },
      torch: { script: 'kernels', kind: 'matmul', params: { m, k: kk, n } },
      setup: () => {
        const a = randn([m, kk], 1);
        const b = randn([kk, n], 2);
        return prepared([a, b], callOp(() => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D)));
      },
    });
  }

  const { batch: B, heads: H, headDim: D } = s.attn;
  for (const t of s.attn.bmmSeqs) {
    // Attention scores q @ k^T: [B*H, T, D] x [B*H, D, T].
    k({
      group: 'batched matmul', name: `batched matmul ${B * H}x${t}x${D}x${t}`, params: { batch: B * H, m: t, k: D, n: t },
      torch: { script: 'kernels', kind: 'bmm', params: { batch: B * H, m: t, k: D, n: t } },
      setup: () => {
        const a = randn([B * H, t, D], 1);
        const b = randn([B * H, D, t], 2);
        return prepared([a, b], callOp(() => tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D)));
      },
    });
  }

  for (const backward of [false, true]) {
    for (const t of s.attn.seqs) {
      const what = backward ? 'attention fwd+bwd' : 'attention fwd';
      k({
        group: what, name: `${what} T=${t}`, params: { b: B, h: H, t, d: D, causal: true },
        torch: { script: 'kernels', kind: 'attention', params: { b: B, h: H, t, d: D, causal: true, backward } },
        setup: () => {
          const q = randn([B, H, t, D], 1);
          const kk2 = randn([B, H, t, D], 2);
          const v = randn([B, H, t, D], 3);
          if (!backward) return prepared([q, kk2, v], callOp(() => ops.attention(q, kk2, v, { causal: true })));
          const dy = randn([B, H, t, D], 4);
          const g = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => ops.attention(a, b, c, { causal: true }));
          return prepared([q, kk2, v, dy], callOp(() => g([q, kk2, v], dy)));
        },
      });
    }
  }

  for (const [rows, cols] of s.norm) {
    k({
      group: 'norms', name: `layer norm ${rows}x${cols}`, params: { rows, cols },
      torch: { script: 'kernels', kind: 'layernorm', params: { rows, cols } },
      setup: () => {
        const x = randn([rows, cols], 1);
        const g = randn([cols], 2);
        const b = randn([cols], 3);
        return prepared([x, g, b], callOp(() => ops.layerNorm(x, g, b, 1e-5)));
      },
    });
    k({
      group: 'norms', name: `RMS norm ${rows}x${cols}`, params: { rows, cols },
      torch: { script: 'kernels', kind: 'rmsnorm', params: { rows, cols } },
      setup: () => {
        const x = randn([rows, cols], 1);
        const g = randn([cols], 2);
        return prepared([x, g], callOp(() => ops.rmsNorm(x, g, 1e-6)));
      },
    });
  }

  for (const [rows, cols] of s.softmax) {
    k({
      group: 'elementwise', name: `softmax ${rows}x${cols}`, params: { rows, cols },
      torch: { script: 'kernels', kind: 'softmax', params: { rows, cols } },
      setup: () => {
        const x = randn([rows, cols], 1);
        return prepared([x], callOp(() => tf.softmax(x)));
      },
    });
  }

  for (const n of s.gelu) {
    k({
      group: 'elementwise', name: `GELU ${n}`, params: { n, approximate: 'none' },
      torch: { script: 'kernels', kind: 'gelu', params: { n, approximate: 'none' } },
      setup: () => {
        const x = randn([n], 1);
        return prepared([x], callOp(() => ops.gelu(x, 'none')));
      },
    });
  }

  for (const [rows, vocab] of s.ce) {
    k({
      group: 'elementwise', name: `softmax cross-entropy ${rows}x${vocab}`, params: { rows, vocab },
      torch: { script: 'kernels', kind: 'softmax_ce', params: { rows, vocab } },
      setup: () => {
        const x = randn([rows, vocab], 1);
        const labels = tf.randomUniformInt([rows], 0, vocab, 2);
        return prepared([x, labels], callOp(() => ops.softmaxCrossEntropy(x, labels)));
      },
    });
  }

  for (const { vocab, dim, n } of s.gather) {
    k({
      group: 'gather/scatter', name: `gather ${n} of ${vocab}x${dim}`, params: { vocab, dim, n },
      torch: { script: 'kernels', kind: 'gather', params: { vocab, dim, n } },
      setup: () => {
        const table = randn([vocab, dim], 1);
        const ids = tf.randomUniformInt([n], 0, vocab, 2);
        return prepared([table, ids], callOp(() => tf.gather(table, ids)));
      },
    });
  }
  for (const { vocab, dim, n } of s.scatter) {
    k({
      group: 'gather/scatter', name: `scatter-add (UnsortedSegmentSum) ${n} into ${vocab}x${dim}`, params: { vocab, dim, n },
      torch: { script: 'kernels', kind: 'scatter', params: { vocab, dim, n } },
      setup: () => {
        const dy = randn([n, dim], 1);
        const ids = tf.randomUniformInt([n], 0, vocab, 2);
        return prepared([dy, ids], callOp(() => tf.unsortedSegmentSum(dy, ids as tf.Tensor1D, vocab)));
      },
    });
  }

  for (const size of s.adamw) {
    k({
      group: 'optimizer', name: `AdamW step ${size}`, params: { size, ...ADAMW },
      torch: { script: 'kernels', kind: 'adamw', params: { size, lr: ADAMW.lr, beta1: ADAMW.beta1, beta2: ADAMW.beta2, eps: ADAMW.eps, weight_decay: ADAMW.weightDecay } },
      setup: () => {
        // A parameter variable and its moments updated as the Trainer's AdamW does: one multi-tensor call
        // that may write into the buffers it is given (inPlace), then assign.
        const [p, m, v] = tf.tidy(() => [tf.variable(randn([size], 1)), tf.variable(tf.zeros([size])), tf.variable(tf.zeros([size]))]);
        const g = randn([size], 2);
        let step = 0;
        return {
          run: () => {
            step++;
            tf.tidy(() => {
              const [[np, nm, nv]] = ops.adamwUpdateMulti([{ param: p, grad: g, m, v, weightDecay: ADAMW.weightDecay }], { ...ADAMW, step, inPlace: true }) as [[tf.Tensor, tf.Tensor, tf.Tensor]];
              p.assign(np);
              m.assign(nm);
              v.assign(nv);
            });
            sync(p, m, v);
          },
          dispose: () => tf.dispose([p, m, v, g]),
        };
      },
    });
  }

  const calls = s.overheadCalls;
  k({
    group: 'overhead', name: `per-op overhead (tf.add on [1], ${calls} chained calls)`, params: { calls, shape: [1] },
    unit: 'us/op', perCall: calls,
    torch: { script: 'kernels', kind: 'overhead_add', params: { calls } },
    setup: () => {
      const one = tf.ones([1]);
      return prepared([one], () => {
        let x = tf.zeros([1]);
        for (let i = 0; i < calls; i++) {
          const y = tf.add(x, one);
          x.dispose();
          x = y;
        }
        x.dataSync();
        x.dispose();
      });
    },
  });
  // The same chain as a replayed recording (StepReplayer, what the Trainer's captureSteps does for a training
  // step): the kernel functions called directly, without tfjs's engine. Recorded in the warm-up calls.
  k({
    group: 'overhead', name: `per-op overhead, replayed (tf.add on [1], ${calls} chained calls)`, params: { calls, shape: [1], replay: 'StepReplayer' },
    unit: 'us/op', perCall: calls,
    torch: { script: 'kernels', kind: 'overhead_add', params: { calls } },
    setup: () => {
      const one = tf.ones([1]);
      const start = tf.zeros([1]);
      const replayer = new StepReplayer({ onEager: (reason) => { throw new Error(`the chain cannot be replayed: ${reason}`); } });
      const chain = () => {
        let x = tf.add(start, one);
        for (let i = 1; i < calls; i++) {
          const y = tf.add(x, one);
          x.dispose();
          x = y;
        }
        return [x];
      };
      const p = prepared([one, start], () => {
        const [x] = replayer.run([start, one], chain);
        x!.dataSync();
        x!.dispose();
      });
      return { run: p.run, dispose: () => { p.dispose(); replayer.dispose(); } };
    },
  });

  return cases;
}
