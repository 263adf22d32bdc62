// Plain RGB images as typed arrays. The training package turns these into tensors;
// keeping this package tfjs-free makes decoding/augmentation testable without a backend.

/** 8-bit RGB image, row-major, interleaved (HWC): data[(y*width + x)*3 + c]. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** CLIP's ImageNet-style normalisation (used by OpenAI CLIP / SigLIP-style towers). */
export const CLIP_MEAN: readonly [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD: readonly [number, number, number] = [0.26862954, 0.26130258, 0.27577711];
/** torchvision's ImageNet statistics (InternVL's IMAGENET_MEAN / IMAGENET_STD). */
export const IMAGENET_MEAN: readonly [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly [number, number, number] = [0.229, 0.224, 0.225];

/** Allocates an image filled with one colour. */
export function makeImage(width: number, height: number, fill: readonly [number, number, number] = [0, 0, 0]): RgbImage {
  checkDims('makeImage', width, height);
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i += 3) {
    data[i] = fill[0];
    data[i + 1] = fill[1];
    data[i + 2] = fill[2];
  }
  return { width, height, data };
}

/** Throws unless `img` is a consistent RgbImage (data length = w*h*3). */
export function assertRgbImage(img: RgbImage, what = 'image'): void {
  checkDims(what, img.width, img.height);
  if (!(img.data instanceof Uint8Array)) throw new TypeError(`${what}: data must be a Uint8Array`);
  const expected = img.width * img.height * 3;
  if (img.data.length !== expected) {
    throw new RangeError(
      `${what}: data length must be width*height*3 = ${img.width}*${img.height}*3 = ${expected}, got ${img.data.length}`,
    );
  }
}

function checkDims(what: string, w: number, h: number): void {
  if (!Number.isInteger(w) || !Number.isInteger(h) || w <= 0 || h <= 0) {
    throw new RangeError(`${what}: width and height must be positive integers, got ${w}x${h}`);
  }
}

/**
 * Bilinear resize with half-pixel centres (align_corners=false), matching PIL/tf.image.resize
 * for upsampling. Downsampling does not antialias: fine for the small factors used here.
 */
export function resize(img: RgbImage, width: number, height: number): RgbImage {
  assertRgbImage(img, 'resize: input');
  checkDims('resize: target', width, height);
  const { width: sw, height: sh, data: src } = img;
  const out = new Uint8Array(width * height * 3);
  const sx = sw / width;
  const sy = sh / height;
  // Precompute horizontal taps once per column.
  const x0s = new Int32Array(width);
  const x1s = new Int32Array(width);
  const fxs = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), sw - 1);
    const x0 = Math.floor(fx);
    x0s[x] = x0;
    x1s[x] = Math.min(x0 + 1, sw - 1);
    fxs[x] = fx - x0;
  }
  for (let y = 0; y < height; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), sh - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, sh - 1);
    const wy = fy - y0;
    const r0 = y0 * sw * 3;
    const r1 = y1 * sw * 3;
    for (let x = 0; x < width; x++) {
      const a = x0s[x]! * 3;
      const b = x1s[x]! * 3;
      const wx = fxs[x]!;
      const o = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) {
        const top = src[r0 + a + c]! + (src[r0 + b + c]! - src[r0 + a + c]!) * wx;
        const bot = src[r1 + a + c]! + (src[r1 + b + c]! - src[r1 + a + c]!) * wx;
        out[o + c] = Math.round(top + (bot - top) * wy);
      }
    }
  }
  return { width, height, data: out };
}

function normParams(mean?: readonly number[], std?: readonly number[]): [number[], number[]] {
  const m = mean ? [...mean] : [0, 0, 0];
  const s = std ? [...std] : [1, 1, 1];
  if (m.length !== 3 || s.length !== 3) {
    throw new RangeError(`toFloat: mean and std must have 3 entries (RGB), got mean=${m.length} std=${s.length}`);
  }
  if (s.some((v) => v === 0)) throw new RangeError(`toFloat: std entries must be non-zero, got [${s.join(', ')}]`);
  return [m, s];
}

/**
 * Pixels → float32 in channel-first order [3, H, W]: (v/255 - mean[c]) / std[c].
 * Without mean/std the result is simply v/255 in [0, 1].
 */
export function toFloatCHW(img: RgbImage, mean?: readonly number[], std?: readonly number[]): Float32Array {
  assertRgbImage(img, 'toFloatCHW');
  const [m, s] = normParams(mean, std);
  const n = img.width * img.height;
  const out = new Float32Array(n * 3);
  for (let c = 0; c < 3; c++) {
    const mc = m[c]!;
    const inv = 1 / s[c]!;
    const base = c * n;
    for (let i = 0; i < n; i++) out[base + i] = (img.data[i * 3 + c]! / 255 - mc) * inv;
  }
  return out;
}

/** Inverse of toFloatCHW: float [3, H, W] -> pixels, v = round(255 * clamp(x * std[c] + mean[c], 0, 1)). */
export function fromFloatCHW(data: ArrayLike<number>, width: number, height: number, mean?: readonly number[], std?: readonly number[]): RgbImage {
  const n = width * height;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) throw new RangeError(`fromFloatCHW: width and height must be positive integers, got ${width}x${height}`);
  if (data.length !== 3 * n) throw new RangeError(`fromFloatCHW: data: expected 3*${height}*${width} = ${3 * n} values, got ${data.length}`);
  const [m, s] = normParams(mean, std);
  const out = new Uint8Array(n * 3);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < n; i++) {
      const v = data[c * n + i]! * s[c]! + m[c]!;
      out[i * 3 + c] = Math.round(255 * Math.min(1, Math.max(0, Number.isNaN(v) ? 0 : v)));
    }
  }
  return { width, height, data: out };
}

/** Like toFloatCHW but keeps the interleaved [H, W, 3] layout (what tf.browser.fromPixels gives). */
export function toFloatHWC(img: RgbImage, mean?: readonly number[], std?: readonly number[]): Float32Array {
  assertRgbImage(img, 'toFloatHWC');
  const [m, s] = normParams(mean, std);
  const out = new Float32Array(img.data.length);
  for (let i = 0; i < img.data.length; i++) {
    const c = i % 3;
    out[i] = (img.data[i]! / 255 - m[c]!) / s[c]!;
  }
  return out;
}

/** Reads pixel (x, y) as [r, g, b]. */
export function getPixel(img: RgbImage, x: number, y: number): [number, number, number] {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height) {
    throw new RangeError(`getPixel: (${x}, ${y}) outside ${img.width}x${img.height} image`);
  }
  const o = (y * img.width + x) * 3;
  return [img.data[o]!, img.data[o + 1]!, img.data[o + 2]!];
}
