/**
 * Packing many tensors into a few flat float32 buffers ("buckets", PyTorch DDP's term) so one
 * collective moves many small gradients. A tensor is never split; one larger than the bucket size gets
 * a bucket of its own.
 */
import { DistributedError } from './errors.js';

export interface BucketEntry {
  name: string;
  shape: number[];
  /** Elements. */
  size: number;
  /** Element offset inside the bucket. */
  offset: number;
}

export interface Bucket {
  entries: BucketEntry[];
  /** Elements. */
  size: number;
}

/** Buckets of at most `bucketBytes` (float32) each, in the given order. */
export function planBuckets(tensors: Iterable<{ name: string; shape: readonly number[] }>, bucketBytes: number): Bucket[] {
  if (!Number.isInteger(bucketBytes) || bucketBytes < 4) throw new DistributedError(`planBuckets: bucketBytes must be an integer >= 4, got ${bucketBytes}`);
  const cap = Math.floor(bucketBytes / 4);
  const buckets: Bucket[] = [];
  let cur: Bucket = { entries: [], size: 0 };
  for (const t of tensors) {
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (cur.entries.length && cur.size + size > cap) {
      buckets.push(cur);
      cur = { entries: [], size: 0 };
    }
    cur.entries.push({ name: t.name, shape: [...t.shape], size, offset: cur.size });
    cur.size += size;
  }
  if (cur.entries.length) buckets.push(cur);
  return buckets;
}

/** One line per tensor (name and shape): equal on two ranks iff they packed the same way. */
export function planSignature(buckets: readonly Bucket[]): string {
  return buckets.map((b) => b.entries.map((e) => `${e.name}[${e.shape.join(',')}]`).join(';')).join('|');
}

/** 53-bit FNV-1a style hash of a string (two 32-bit halves), for comparing across ranks. */
export function hashString(s: string): number {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ c, 0x5bd1e995) >>> 0;
  }
  return (h1 & 0x1fffff) * 0x100000000 + h2;
}
