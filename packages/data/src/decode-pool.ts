/**
 * Image decoding off the main thread: a pool of `node:worker_threads` workers that read, decode (PNG / JPEG
 * with the same pure-JS decoders, limits and EXIF handling as decodeImage) and resize images to the size a
 * model wants, returning the pixels as a transferred buffer. `loadImageFile` is the same work in-thread,
 * so results are identical with and without workers (tested). Errors name the file, as in-thread.
 *
 * Workers are ref'd only while requests are pending, so an idle pool never keeps a process alive; close()
 * terminates them.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { Worker } from 'node:worker_threads';
import { decodeImage } from './decode.js';
import { resize, type RgbImage } from './image.js';
import type { ImageLimits } from './limits.js';

export interface DecodeRequest {
  path: string;
  /** Resize to width x height (bilinear, as `resize`) unless the image already has that size. */
  width?: number;
  height?: number;
  limits?: ImageLimits;
}

/** Reads, decodes and resizes one image file in this thread (what a pool worker does). */
export function loadImageFile(req: DecodeRequest): RgbImage {
  let bytes: Buffer;
  try {
    bytes = readFileSync(req.path);
  } catch (e) {
    throw new Error(`${req.path}: cannot read image file (${(e as NodeJS.ErrnoException).code === 'EISDIR' ? 'is a directory' : (e as Error).message}); expected a PNG or JPEG file`);
  }
  const img = decodeImage(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length), req.path, req.limits ?? {});
  const { width: w, height: h } = req;
  return w == null || h == null || (img.width === w && img.height === h) ? img : resize(img, w, h);
}

/** Default workers: one per core but one (the main thread trains), at least 1. */
export function defaultDecodeWorkers(): number {
  return Math.max(1, cpus().length - 1);
}

interface Pending {
  resolve: (img: RgbImage) => void;
  reject: (e: Error) => void;
}

export class DecodePool {
  readonly size: number;
  private readonly workers: Worker[] = [];
  private readonly load: number[] = [];
  private readonly pending = new Map<number, { worker: number } & Pending>();
  private nextId = 0;
  private closed = false;

  constructor(opts: { workers?: number } = {}) {
    const n = opts.workers ?? defaultDecodeWorkers();
    if (!Number.isInteger(n) || n < 1) throw new Error(`DecodePool: workers must be a positive integer, got ${n}`);
    this.size = n;
    // From source (vitest, tsx) the worker is TypeScript, started through a bootstrap that registers tsx;
    // the build ships dist/decode-worker.js.
    const ts = import.meta.url.endsWith('.ts');
    for (let i = 0; i < n; i++) {
      const w = ts
        ? new Worker(new URL('./ts-worker-boot.mjs', import.meta.url), { workerData: { entry: new URL('./decode-worker.ts', import.meta.url).href } })
        : new Worker(new URL('./decode-worker.js', import.meta.url));
      w.on('message', (m: { id: number; error?: string; width: number; height: number; data: Uint8Array }) => this.settle(m));
      w.on('error', (e) => this.failWorker(i, e));
      w.on('exit', (code) => {
        if (!this.closed) this.failWorker(i, new Error(`decode worker ${i} exited with code ${code}`));
      });
      w.unref(); // after the listeners: adding a 'message' listener refs the worker again
      this.workers.push(w);
      this.load.push(0);
    }
  }

  /** Decodes (and resizes) one file on the least busy worker. */
  decode(req: DecodeRequest): Promise<RgbImage> {
    if (this.closed) return Promise.reject(new Error('DecodePool: closed'));
    const id = this.nextId++;
    let k = 0;
    for (let i = 1; i < this.size; i++) if (this.load[i]! < this.load[k]!) k = i;
    if (this.load[k]!++ === 0) this.workers[k]!.ref();
    return new Promise<RgbImage>((resolve, reject) => {
      this.pending.set(id, { worker: k, resolve, reject });
      this.workers[k]!.postMessage({ id, ...req });
    });
  }

  private release(worker: number): void {
    if (--this.load[worker]! === 0) this.workers[worker]!.unref();
  }

  private settle(m: { id: number; error?: string; width: number; height: number; data: Uint8Array }): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    this.release(p.worker);
    if (m.error !== undefined) p.reject(new Error(m.error));
    else p.resolve({ width: m.width, height: m.height, data: m.data });
  }

  private failWorker(worker: number, e: Error): void {
    for (const [id, p] of this.pending) {
      if (p.worker !== worker) continue;
      this.pending.delete(id);
      this.release(worker);
      p.reject(new Error(`image decoding failed in a worker: ${e.message}`));
    }
  }

  /** Terminates the workers; pending requests reject. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new Error('DecodePool: closed'));
    }
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
