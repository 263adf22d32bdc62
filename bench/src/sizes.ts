/** Problem sizes per --size. Tests pass a partial override to run tiny shapes. */
import type { SizeName } from './args.js';

export interface Sizes {
  /** [m, k, n]: a [m, k] @ [k, n]. */
  matmul: [number, number, number][];
  /** Attention problem: batch, heads, head dim; sequence lengths for attention and batched matmul. */
  attn: { batch: number; heads: number; headDim: number; seqs: number[]; bmmSeqs: number[] };
  /** [rows, cols] for layer norm, RMS norm and softmax. */
  norm: [number, number][];
  softmax: [number, number][];
  /** Elements. */
  gelu: number[];
  /** [rows, vocab]. */
  ce: [number, number][];
  /** Embedding forward: table [vocab, dim] gathered at n ids. */
  gather: { vocab: number; dim: number; n: number }[];
  /**
   * Embedding gradient: n rows of dy [n, dim] summed into [vocab, dim] (UnsortedSegmentSum). Kept small:
   * tfjs 'cpu' implements it with one masked reduction per segment, O(vocab * n * dim).
   */
  scatter: { vocab: number; dim: number; n: number }[];
  /** AdamW parameter sizes (elements). */
  adamw: number[];
  /** Chained tf.add calls per timed call for the per-op overhead. */
  overheadCalls: number;
  arch: { batch: number; seq: number; promptLen: number; newTokens: number };
  /** The small-model tier (*-small presets, 20-60 M parameters): batch and generated tokens. */
  small: { batch: number; newTokens: number };
  scaling: {
    base: { batch: number; seq: number; width: number };
    seq: number[];
    batch: number[];
    width: number[];
    attnSeq: number[];
  };
  timer: { warmup: number; minWarmupMs?: number; repeats: number; minSampleMs: number; maxInner: number; maxCaseMs: number };
}

export const SIZES: Record<SizeName, Sizes> = {
  quick: {
    matmul: [[256, 256, 256], [512, 512, 512], [1024, 1024, 1024], [512, 64, 256]],
    attn: { batch: 1, heads: 4, headDim: 64, seqs: [64, 128, 256], bmmSeqs: [128, 256] },
    norm: [[2048, 256]],
    softmax: [[512, 2048]],
    gelu: [1 << 20],
    ce: [[512, 2048]],
    gather: [{ vocab: 8192, dim: 256, n: 2048 }],
    scatter: [{ vocab: 512, dim: 64, n: 256 }],
    adamw: [1 << 20],
    overheadCalls: 1000,
    arch: { batch: 4, seq: 64, promptLen: 8, newTokens: 32 },
    small: { batch: 4, newTokens: 16 },
    scaling: {
      base: { batch: 2, seq: 32, width: 64 },
      seq: [16, 32, 64, 128],
      batch: [1, 2, 4, 8],
      width: [32, 64, 128, 256],
      attnSeq: [64, 128, 256, 512],
    },
    timer: { warmup: 2, minWarmupMs: 1000, repeats: 5, minSampleMs: 10, maxInner: 1000, maxCaseMs: 4000 },
  },
  full: {
    matmul: [[256, 256, 256], [512, 512, 512], [1024, 1024, 1024], [2048, 2048, 2048], [512, 64, 256], [2048, 256, 1024], [2048, 1024, 256], [2048, 768, 3072]],
    attn: { batch: 1, heads: 8, headDim: 64, seqs: [64, 128, 256, 512, 1024], bmmSeqs: [128, 256, 512, 1024] },
    norm: [[2048, 256], [8192, 768]],
    softmax: [[512, 2048], [2048, 8192]],
    gelu: [1 << 20, 1 << 23],
    ce: [[512, 2048], [2048, 8192]],
    gather: [{ vocab: 8192, dim: 256, n: 2048 }, { vocab: 32000, dim: 768, n: 8192 }],
    scatter: [{ vocab: 512, dim: 64, n: 256 }, { vocab: 2048, dim: 128, n: 512 }],
    adamw: [1 << 20, 1 << 23],
    overheadCalls: 2000,
    arch: { batch: 8, seq: 128, promptLen: 16, newTokens: 64 },
    small: { batch: 8, newTokens: 32 },
    scaling: {
      base: { batch: 4, seq: 128, width: 128 },
      seq: [32, 64, 128, 256, 512, 1024],
      batch: [1, 2, 4, 8, 16, 32],
      width: [32, 64, 128, 256, 512],
      attnSeq: [64, 128, 256, 512, 1024, 2048],
    },
    timer: { warmup: 3, minWarmupMs: 1000, repeats: 10, minSampleMs: 25, maxInner: 1000, maxCaseMs: 30000 },
  },
};

export type SizeOverride = { [K in keyof Sizes]?: Partial<Sizes[K]> };

export function resolveSizes(size: SizeName, override?: SizeOverride): Sizes {
  const base = SIZES[size];
  if (!override) return base;
  const out = { ...base } as Record<string, unknown>;
  for (const [k, v] of Object.entries(override)) {
    const b = (base as unknown as Record<string, unknown>)[k];
    out[k] = Array.isArray(v) || typeof v !== 'object' || v === null || Array.isArray(b) ? v : { ...(b as object), ...v };
  }
  return out as unknown as Sizes;
}
