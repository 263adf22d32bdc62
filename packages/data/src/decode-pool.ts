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
import { maxPixels, type ImageLimits } from './limits.js';

/** 'js': vlmix's pure-JS decoders (default, the same pixels everywhere); 'sharp': libvips (optional dependency). */
export type ImageDecoder = 'js' | 'sharp';

export interface DecodeRequest {
  path: string;
  /** Which decoder reads the file (default 'js'); the resize is vlmix's either way. 'sharp' needs a DecodePool. */
  decoder?: ImageDecoder;
  /** Resize to width x height (bilinear, as `resize`) unless the image already has that size. */
  width?: number;
  height?: number;
  limits?: ImageLimits;
}

type SharpFn = (input: string, opts: { limitInputPixels: number | boolean }) => {
  rotate(): ReturnType<SharpFn>;
  toColourspace(c: string): ReturnType<SharpFn>;
  removeAlpha(): ReturnType<SharpFn>;
  raw(): ReturnType<SharpFn>;
  toBuffer(o: { resolveWithObject: true }): Promise<{ data: Buffer; info: { width: number; height: number; channels: number } }>;
};
let sharpModule: Promise<SharpFn | null> | null = null;

/** sharp when it is installed (an optional dependency of @vlmix/data), else null. */
export function loadSharp(): Promise<SharpFn | null> {
  sharpModule ??= import('sharp').then((m) => (m as unknown as { default: SharpFn }).default, () => null);
  return sharpModule;
}

/**
 * Reads and decodes one file with sharp (EXIF orientation applied, alpha dropped, sRGB: CMYK JPEGs decode
 * too), then resizes with vlmix's `resize`: only the decode differs from the JS path (JPEG: up to 3/255 on
 * ~1% of values; PNG identical, measured). The pixel limit applies before decoding, as in decodeImage.
 */
export async function loadImageFileSharp(req: DecodeRequest): Promise<RgbImage> {
  const sharp = await loadSharp();
  if (!sharp) throw new Error(`${req.path}: decoder 'sharp' requested but the sharp package is not installed (it is an optional dependency of @vlmix/data); use decoder 'js'`);
  let out: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    out = await sharp(req.path, { limitInputPixels: maxPixels(req.limits) }).rotate().toColourspace('srgb').removeAlpha().raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    const m = (e as Error).message;
    throw new Error(/ENOENT|no such file/i.test(m) ? `${req.path}: cannot read image file (${m}); expected a PNG or JPEG file` : `${req.path}: ${m} (sharp)`);
  }
  if (out.info.channels !== 3) throw new Error(`${req.path}: sharp gave ${out.info.channels} channels, expected 3`);
  const img: RgbImage = { width: out.info.width, height: out.info.height, data: new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.length) };
  const { width: w, height: h } = req;
  return w == null || h == null || (img.width === w && img.height === h) ? img : resize(img, w, h);
}

/** Reads, decodes and resizes one image file in this thread (what a pool worker does with decoder 'js'). */
export function loadImageFile(req: DecodeRequest): RgbImage {
  if (req.decoder === 'sharp') throw new Error(`${req.path}: decoder 'sharp' is asynchronous: decode through a DecodePool or loadImageFileSharp`);
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
