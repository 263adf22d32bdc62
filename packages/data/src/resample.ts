// Pillow's Image.resize for 8-bit RGB (libImaging/Resample.c), reproduced to the bit, because the
// Hugging Face image processors (CLIP, SigLIP, ...) resize through PIL and a vision tower sees those
// exact pixels. The algorithm, as Resample.c does it:
//   - separable convolution, horizontal pass first, then vertical;
//   - on downscale the filter is stretched by the scale factor (support * scale): this antialiases;
//   - per output pixel, taps [xmin, xmin + n) around center = (x + 0.5) * scale, with
//     xmin = trunc(center - support + 0.5) and the end trunc(center + support + 0.5), clamped to the image;
//     weights filter((i - center + 0.5) / filterscale), normalised to sum 1 (in double);
//   - weights become fixed point with PRECISION_BITS = 22 (rounded half away from zero, truncated);
//   - each pass accumulates in an int starting at 1 << 21 (so the shift rounds), and the sum >> 22 is
//     clipped to 0..255: the intermediate image between the passes is 8-bit too.
// Filters (Pillow's constants): bicubic a = -0.5 (support 2), bilinear (1), box (0.5), hamming (1),
// lanczos a = 3 (support 3).
import { assertRgbImage, type RgbImage } from './image.js';

export type ResampleFilter = 'box' | 'bilinear' | 'hamming' | 'bicubic' | 'lanczos';

/** PIL's resample numbers (Image.Resampling), as preprocessor_config.json's "resample" stores them. */
export const PIL_RESAMPLE: Readonly<Record<number, ResampleFilter | 'nearest'>> = {
  0: 'nearest', 1: 'lanczos', 2: 'bilinear', 3: 'bicubic', 4: 'box', 5: 'hamming',
};

const PRECISION_BITS = 32 - 8 - 2;

const sinc = (x: number): number => (x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x));

/** Each filter and its support (in source pixels at scale 1). */
const FILTERS: Record<ResampleFilter, { f: (x: number) => number; support: number }> = {
  box: { f: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0), support: 0.5 },
  bilinear: {
    f: (x) => {
      x = Math.abs(x);
      return x < 1 ? 1 - x : 0;
    },
    support: 1,
  },
  hamming: {
    f: (x) => {
      x = Math.abs(x);
      if (x === 0) return 1;
      if (x >= 1) return 0;
      x *= Math.PI;
      // Resample.c writes the constants as floats (0.54f, 0.46f).
      return (Math.sin(x) / x) * (Math.fround(0.54) + Math.fround(0.46) * Math.cos(x));
    },
    support: 1,
  },
  bicubic: {
    f: (x) => {
      const a = -0.5;
      x = Math.abs(x);
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
    support: 2,
  },
  lanczos: { f: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0), support: 3 },
};

/** Taps of one pass: output pixel i reads source pixels [start[i], start[i] + count[i]) with weights[i * ksize + j]. */
interface Taps {
  ksize: number;
  start: Int32Array;
  count: Int32Array;
  weights: Int32Array;
}

function precomputeTaps(inSize: number, outSize: number, filter: ResampleFilter): Taps {
  const { f, support: base } = FILTERS[filter];
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = base * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const n = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < n; x++) {
      k[x] = f((x + xmin - center + 0.5) * ss);
      ww += k[x]!;
    }
    for (let x = 0; x < n; x++) {
      const w = ww !== 0 ? k[x]! / ww : k[x]!;
      weights[xx * ksize + x] = Math.trunc(w < 0 ? -0.5 + w * (1 << PRECISION_BITS) : 0.5 + w * (1 << PRECISION_BITS));
    }
    start[xx] = xmin;
    count[xx] = n;
  }
  return { ksize, start, count, weights };
}

const clip8 = (acc: number): number => {
  const v = acc >> PRECISION_BITS; // arithmetic shift of the int32 accumulator, as Resample.c
  return v < 0 ? 0 : v > 255 ? 255 : v;
};

/** The horizontal pass over interleaved RGB rows. */
function horizontal(src: Uint8Array, w: number, h: number, outW: number, t: Taps): Uint8Array {
  const out = new Uint8Array(outW * h * 3);
  for (let y = 0; y < h; y++) {
    const row = y * w * 3;
    for (let xx = 0; xx < outW; xx++) {
      const k0 = xx * t.ksize;
      const s0 = row + t.start[xx]! * 3;
      let r = 1 << (PRECISION_BITS - 1);
      let g = r;
      let b = r;
      for (let x = 0; x < t.count[xx]!; x++) {
        const wt = t.weights[k0 + x]!;
        const p = s0 + x * 3;
        r += src[p]! * wt;
        g += src[p + 1]! * wt;
        b += src[p + 2]! * wt;
      }
      const o = (y * outW + xx) * 3;
      out[o] = clip8(r);
      out[o + 1] = clip8(g);
      out[o + 2] = clip8(b);
    }
  }
  return out;
}

/** The vertical pass: each output row mixes whole source rows. */
function vertical(src: Uint8Array, w: number, outH: number, t: Taps): Uint8Array {
  const out = new Uint8Array(w * outH * 3);
  const stride = w * 3;
  for (let yy = 0; yy < outH; yy++) {
    const k0 = yy * t.ksize;
    const s0 = t.start[yy]! * stride;
    for (let x = 0; x < stride; x++) {
      let acc = 1 << (PRECISION_BITS - 1);
      for (let y = 0; y < t.count[yy]!; y++) acc += src[s0 + y * stride + x]! * t.weights[k0 + y]!;
      out[yy * stride + x] = clip8(acc);
    }
  }
  return out;
}

/**
 * Resizes an RGB image exactly as Pillow's `Image.resize((width, height), resample=filter)` does
 * (default bicubic, as CLIP/SigLIP processors use). A pass whose size does not change is skipped,
 * as in Pillow; a same-size resize returns a copy.
 */
export function resizePil(img: RgbImage, width: number, height: number, filter: ResampleFilter = 'bicubic'): RgbImage {
  assertRgbImage(img, 'resizePil: input');
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new RangeError(`resizePil: width and height must be positive integers, got ${width}x${height}`);
  }
  if (!(filter in FILTERS)) {
    throw new RangeError(`resizePil: filter must be one of ${Object.keys(FILTERS).join(', ')}, got ${JSON.stringify(filter)}`);
  }
  let data = img.data;
  let w = img.width;
  if (width !== img.width) {
    data = horizontal(data, img.width, img.height, width, precomputeTaps(img.width, width, filter));
    w = width;
  }
  if (height !== img.height) data = vertical(data, w, height, precomputeTaps(img.height, height, filter));
  return { width, height, data: data === img.data ? img.data.slice() : data };
}
