// Format sniffing by signature (never by file extension: datasets often mislabel .jpg/.png).
import type { RgbImage } from './image.js';
import type { ImageLimits } from './limits.js';
import { decodeJpeg, isJpeg } from './jpeg.js';
import { decodePng, isPng } from './png.js';

/** Names the container format from its magic bytes; 'unknown' when nothing matches. */
export function detectImageFormat(bytes: Uint8Array): string {
  const ascii = (a: number, b: number) => String.fromCharCode(...bytes.subarray(a, b));
  if (isPng(bytes)) return 'PNG';
  if (isJpeg(bytes)) return 'JPEG';
  if (ascii(0, 6) === 'GIF87a' || ascii(0, 6) === 'GIF89a') return 'GIF';
  if (ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP') return 'WebP';
  if (ascii(0, 2) === 'BM') return 'BMP';
  if (ascii(0, 4) === 'II*\0' || ascii(0, 4) === 'MM\0*') return 'TIFF';
  if (ascii(4, 8) === 'ftyp') return `ISO-BMFF (${ascii(8, 12).trim()}, e.g. HEIC/AVIF)`;
  if (bytes.length >= 2 && bytes[0] === 0x50 && bytes[1]! >= 0x31 && bytes[1]! <= 0x36) return 'PNM';
  if (ascii(0, 5) === '<?xml' || ascii(0, 4) === '<svg') return 'SVG/XML';
  return 'unknown';
}

/**
 * Decodes PNG or JPEG bytes to RGB, choosing by signature. `name` appears in every error. Images whose
 * header declares more than `limits.maxPixels` pixels (default 100 megapixels) are refused before any
 * pixel memory is allocated.
 */
export function decodeImage(bytes: Uint8Array, name: string, limits: ImageLimits = {}): RgbImage {
  if (isPng(bytes)) {
    const { width, height, data } = decodePng(bytes, name, limits);
    return { width, height, data };
  }
  if (isJpeg(bytes)) return decodeJpeg(bytes, name, limits);
  const fmt = detectImageFormat(bytes);
  const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new Error(
    `${name}: unsupported image format ${fmt === 'unknown' ? `(unrecognised signature: ${head || 'empty file'})` : fmt}; expected PNG or JPEG`,
  );
}
