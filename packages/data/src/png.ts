// Minimal PNG codec on node:zlib. Decodes every PNG colour type / bit depth, plain or Adam7
// interlaced, to 8-bit RGB (alpha dropped or composited); encodes 8-bit RGB. Chunk CRCs are verified so a
// corrupt dataset file fails loudly instead of silently yielding garbage pixels.
import { deflateSync, inflateSync } from 'node:zlib';
import { checkPixelLimit, type ImageLimits } from './limits.js';
import { assertRgbImage, type RgbImage } from './image.js';

export const PNG_SIGNATURE = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO-HDLC, as used by PNG and zlib). */
export function crc32(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function isPng(bytes: Uint8Array): boolean {
  if (bytes.length < 8) return false;
  for (let i = 0; i < 8; i++) if (bytes[i] !== PNG_SIGNATURE[i]) return false;
  return true;
}

export interface PngDecodeOptions extends ImageLimits {
  /**
   * How to turn alpha (RGBA, gray+alpha, tRNS) into RGB. Default: drop alpha (like PIL's
   * convert('RGB')). Give a background colour to composite over it instead.
   */
  background?: readonly [number, number, number];
}

/** Raw facts about a decoded PNG, for callers that care about the source format. */
export interface PngInfo {
  bitDepth: number;
  colorType: number;
  hasAlpha: boolean;
}

// Adam7 passes: [x0, y0, dx, dy].
const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];

const hex = (n: number) => '0x' + (n >>> 0).toString(16).padStart(8, '0');
const u32 = (b: Uint8Array, o: number) => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

// colour type → samples per pixel; allowed bit depths per colour type (PNG spec table 11.1).
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };

/** Decodes a PNG to 8-bit RGB. `name` only appears in error messages. */
export function decodePng(bytes: Uint8Array, name = '<png>', opts: PngDecodeOptions = {}): RgbImage & { info: PngInfo } {
  const fail = (msg: string): never => {
    throw new Error(`PNG ${name}: ${msg}`);
  };
  if (!isPng(bytes)) {
    const got = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
    fail(`bad signature: expected 89 50 4e 47 0d 0a 1a 0a, got ${got || '(empty file)'}`);
  }
  let pos = 8;
  let ihdr: { width: number; height: number; depth: number; ctype: number; interlace: number } | undefined;
  let palette: Uint8Array | undefined;
  let trns: Uint8Array | undefined;
  const idat: Uint8Array[] = [];
  let sawEnd = false;
  while (!sawEnd) {
    if (pos + 8 > bytes.length) fail(`truncated: expected a chunk header at offset ${pos}, file has ${bytes.length} bytes (no IEND)`);
    const len = u32(bytes, pos);
    const type = String.fromCharCode(bytes[pos + 4]!, bytes[pos + 5]!, bytes[pos + 6]!, bytes[pos + 7]!);
    const dataStart = pos + 8;
    if (dataStart + len + 4 > bytes.length) {
      fail(`truncated: chunk ${type} at offset ${pos} needs ${len + 12} bytes, only ${bytes.length - pos} remain`);
    }
    const want = u32(bytes, dataStart + len);
    const got = crc32(bytes, pos + 4, dataStart + len);
    if (want !== got) fail(`CRC mismatch in chunk ${type} at offset ${pos}: stored ${hex(want)}, computed ${hex(got)}`);
    const body = bytes.subarray(dataStart, dataStart + len);
    if (!ihdr && type !== 'IHDR') fail(`first chunk must be IHDR, got ${type}`);
    switch (type) {
      case 'IHDR': {
        if (len !== 13) fail(`IHDR must be 13 bytes, got ${len}`);
        const width = u32(body, 0);
        const height = u32(body, 4);
        const depth = body[8]!;
        const ctype = body[9]!;
        const interlace = body[12]!;
        if (width === 0 || height === 0) fail(`invalid dimensions ${width}x${height}`);
        if (!(ctype in CHANNELS)) fail(`invalid colour type ${ctype} (expected 0, 2, 3, 4 or 6)`);
        if (!DEPTHS[ctype]!.includes(depth)) {
          fail(`invalid bit depth ${depth} for colour type ${ctype} (expected one of ${DEPTHS[ctype]!.join(', ')})`);
        }
        if (body[10] !== 0 || body[11] !== 0) fail(`unknown compression/filter method ${body[10]}/${body[11]}`);
        if (interlace > 1) fail(`invalid interlace method ${interlace} (expected 0 or 1)`);
        checkPixelLimit(width, height, opts, fail);
        ihdr = { width, height, depth, ctype, interlace };
        break;
      }
      case 'PLTE':
        if (len % 3 !== 0 || len === 0 || len > 768) fail(`PLTE length must be a multiple of 3 in 3..768, got ${len}`);
        palette = body;
        break;
      case 'tRNS':
        trns = body;
        break;
      case 'IDAT':
        idat.push(body);
        break;
      case 'IEND':
        sawEnd = true;
        break;
      default:
        // Ancillary chunks (lowercase first letter) are safe to skip; unknown critical ones are not.
        if ((bytes[pos + 4]! & 0x20) === 0) fail(`unknown critical chunk ${type}`);
    }
    pos = dataStart + len + 4;
  }
  const h = ihdr!;
  if (idat.length === 0) fail('no IDAT chunk');
  if (h.ctype === 3 && !palette) fail('palette image (colour type 3) without PLTE chunk');

  const channels = CHANNELS[h.ctype]!;
  const bitsPerPixel = channels * h.depth;
  const bpp = Math.max(1, bitsPerPixel >> 3); // filter byte distance
  // Sub-images: the whole image, or Adam7's 7 passes (x0, y0, dx, dy), each filtered separately.
  const passes = (h.interlace ? ADAM7 : [[0, 0, 1, 1]]).map(([x0, y0, dx, dy]) => {
    const pw = Math.ceil((h.width - x0!) / dx!);
    const ph = Math.ceil((h.height - y0!) / dy!);
    return { x0: x0!, y0: y0!, dx: dx!, dy: dy!, pw, ph, stride: Math.ceil((pw * bitsPerPixel) / 8) };
  }).filter((p) => p.pw > 0 && p.ph > 0);
  const expected = passes.reduce((n, p) => n + (p.stride + 1) * p.ph, 0);
  // Inflate into at most what the header declares (+ slack for trailing junk some encoders leave), so
  // a stream that decompresses to more cannot take more memory than the image itself.
  const slack = 1 << 16;
  let raw: Uint8Array;
  try {
    raw = inflateSync(Buffer.concat(idat), { maxOutputLength: expected + slack });
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      return fail(`image data inflates to more than the ${expected} bytes its header declares (${h.width}x${h.height}); refusing it`);
    }
    return fail(`corrupt or truncated image data (zlib: ${(e as Error).message})`);
  }
  if (raw.length < expected) fail(`truncated image data: expected ${expected} bytes after inflate, got ${raw.length}`);

  // Undo per-scanline filters (each row predicts from the already-unfiltered left/up bytes).
  const unfilter = (off: number, stride: number, rows: number, pass: number): Uint8Array => {
    const pixels = new Uint8Array(stride * rows);
    for (let y = 0; y < rows; y++) {
      const ft = raw[off + y * (stride + 1)]!;
      const src = off + y * (stride + 1) + 1;
      const o = y * stride;
      const p = o - stride; // previous row (only read when y > 0)
      for (let i = 0; i < stride; i++) {
        const x = raw[src + i]!;
        const a = i >= bpp ? pixels[o + i - bpp]! : 0;
        const b = y > 0 ? pixels[p + i]! : 0;
        let v: number;
        switch (ft) {
          case 0: v = x; break;
          case 1: v = x + a; break;
          case 2: v = x + b; break;
          case 3: v = x + ((a + b) >> 1); break;
          case 4: {
            const c = y > 0 && i >= bpp ? pixels[p + i - bpp]! : 0;
            const pa = Math.abs(b - c);
            const pb = Math.abs(a - c);
            const pc = Math.abs(a + b - 2 * c);
            v = x + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
            break;
          }
          default:
            return fail(`invalid filter type ${ft} on row ${y}${h.interlace ? ` of Adam7 pass ${pass + 1}` : ''} (expected 0-4)`);
        }
        pixels[o + i] = v & 0xff;
      }
    }
    return pixels;
  };

  // Scale a sample to 8 bits: 16-bit keeps the high byte (libpng strip_16), low depths stretch.
  const maxv = (1 << h.depth) - 1;
  const to8 = (v: number) => (h.depth === 8 ? v : h.depth === 16 ? v >> 8 : Math.round((v * 255) / maxv));

  const out = new Uint8Array(h.width * h.height * 3);
  const bg = opts.background;
  // tRNS for non-alpha types: a single transparent colour (types 0/2) or per-entry alpha (type 3).
  const trnsGray = trns && h.ctype === 0 && trns.length >= 2 ? (trns[0]! << 8) | trns[1]! : -1;
  const trnsRgb =
    trns && h.ctype === 2 && trns.length >= 6
      ? [(trns[0]! << 8) | trns[1]!, (trns[2]! << 8) | trns[3]!, (trns[4]! << 8) | trns[5]!]
      : undefined;
  const hasAlpha = h.ctype === 4 || h.ctype === 6 || trns !== undefined;
  let off = 0;
  passes.forEach((ps, passIdx) => {
    const pixels = unfilter(off, ps.stride, ps.ph, passIdx);
    off += (ps.stride + 1) * ps.ph;
    // Sample reader for any depth: returns the raw sample value (0..2^depth-1).
    const sample = (row: number, idx: number): number => {
      const base = row * ps.stride;
      switch (h.depth) {
        case 8: return pixels[base + idx]!;
        case 16: return (pixels[base + idx * 2]! << 8) | pixels[base + idx * 2 + 1]!;
        default: {
          const bit = idx * h.depth;
          const byte = pixels[base + (bit >> 3)]!;
          return (byte >> (8 - h.depth - (bit & 7))) & ((1 << h.depth) - 1);
        }
      }
    };
    for (let py = 0; py < ps.ph; py++) {
      for (let px = 0; px < ps.pw; px++) {
        const x = ps.x0 + px * ps.dx;
        const y = ps.y0 + py * ps.dy;
        let r: number, g: number, b: number;
        let alpha = 255;
        const s0 = px * channels;
        switch (h.ctype) {
          case 0: {
            const v = sample(py, s0);
            r = g = b = to8(v);
            if (v === trnsGray) alpha = 0;
            break;
          }
          case 2: {
            const rv = sample(py, s0), gv = sample(py, s0 + 1), bv = sample(py, s0 + 2);
            r = to8(rv); g = to8(gv); b = to8(bv);
            if (trnsRgb && rv === trnsRgb[0] && gv === trnsRgb[1] && bv === trnsRgb[2]) alpha = 0;
            break;
          }
          case 3: {
            const idx = sample(py, s0);
            if (idx * 3 + 2 >= palette!.length) fail(`palette index ${idx} out of range (palette has ${palette!.length / 3} entries) at (${x}, ${y})`);
            r = palette![idx * 3]!; g = palette![idx * 3 + 1]!; b = palette![idx * 3 + 2]!;
            if (trns && idx < trns.length) alpha = trns[idx]!;
            break;
          }
          case 4:
            r = g = b = to8(sample(py, s0));
            alpha = to8(sample(py, s0 + 1));
            break;
          default: // 6
            r = to8(sample(py, s0)); g = to8(sample(py, s0 + 1)); b = to8(sample(py, s0 + 2));
            alpha = to8(sample(py, s0 + 3));
        }
        if (bg && alpha !== 255) {
          const t = alpha / 255;
          r = Math.round(r * t + bg[0] * (1 - t));
          g = Math.round(g * t + bg[1] * (1 - t));
          b = Math.round(b * t + bg[2] * (1 - t));
        }
        const o = (y * h.width + x) * 3;
        out[o] = r; out[o + 1] = g; out[o + 2] = b;
      }
    }
  });
  return { width: h.width, height: h.height, data: out, info: { bitDepth: h.depth, colorType: h.ctype, hasAlpha } };
}

export interface PngEncodeOptions {
  /** Force one filter type (0-4) on every row; default 'adaptive' (min-sum-of-abs heuristic, as libpng). */
  filter?: 0 | 1 | 2 | 3 | 4 | 'adaptive';
  /** zlib level 0-9, default 6. */
  level?: number;
}

function chunk(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(body.length + 12);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, body.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(body, 8);
  dv.setUint32(8 + body.length, crc32(out, 4, 8 + body.length));
  return out;
}

/** Encodes 8-bit RGB (colour type 2) PNG. */
export function encodePng(img: RgbImage, opts: PngEncodeOptions = {}): Uint8Array {
  assertRgbImage(img, 'encodePng');
  const { width, height, data } = img;
  const mode = opts.filter ?? 'adaptive';
  if (mode !== 'adaptive' && ![0, 1, 2, 3, 4].includes(mode)) {
    throw new RangeError(`encodePng: filter must be 0-4 or 'adaptive', got ${String(mode)}`);
  }
  const stride = width * 3;
  const raw = new Uint8Array((stride + 1) * height);
  const cand = new Uint8Array(stride);
  const filterRow = (ft: number, y: number, dst: Uint8Array, off: number) => {
    const o = y * stride;
    for (let i = 0; i < stride; i++) {
      const x = data[o + i]!;
      const a = i >= 3 ? data[o + i - 3]! : 0;
      const b = y > 0 ? data[o - stride + i]! : 0;
      const c = y > 0 && i >= 3 ? data[o - stride + i - 3]! : 0;
      let pred = 0;
      if (ft === 1) pred = a;
      else if (ft === 2) pred = b;
      else if (ft === 3) pred = (a + b) >> 1;
      else if (ft === 4) {
        const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - 2 * c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      dst[off + i] = (x - pred) & 0xff;
    }
  };
  for (let y = 0; y < height; y++) {
    const off = y * (stride + 1);
    let ft: number;
    if (mode === 'adaptive') {
      let best = 0;
      let bestCost = Infinity;
      for (let t = 0; t < 5; t++) {
        filterRow(t, y, cand, 0);
        let cost = 0;
        for (let i = 0; i < stride; i++) cost += cand[i]! < 128 ? cand[i]! : 256 - cand[i]!;
        if (cost < bestCost) { bestCost = cost; best = t; }
      }
      ft = best;
    } else ft = mode;
    raw[off] = ft;
    filterRow(ft, y, raw, off + 1);
  }
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const idat = deflateSync(raw, { level: opts.level ?? 6 });
  const parts = [PNG_SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', new Uint8Array(0))];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}
