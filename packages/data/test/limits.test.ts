// Decompression bombs (issue 11): the pixel count a header declares is checked before any pixel memory
// is allocated, a PNG stream may not inflate past what its header declares, and the limit is configurable.
import { deflateSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { crc32, decodeImage, decodeJpeg, decodePng, DEFAULT_MAX_PIXELS, maxPixels } from '../src/index.js';
import { read } from './helpers.js';

function chunk(type: string, body: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.write(type, 4, 'latin1');
  Buffer.from(body).copy(out, 8);
  out.writeUInt32BE(crc32(out, 4, 8 + body.length), 8 + body.length);
  return out;
}

/** A greyscale 8-bit PNG whose IHDR says width x height, with the given compressed IDAT payload. */
function greyPng(width: number, height: number, idat: Uint8Array): Uint8Array {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // grey
  return new Uint8Array(Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', new Uint8Array(0))]));
}

/** A copy of a JPEG with its SOF0 frame size patched. */
function patchJpegSize(jpeg: Uint8Array, width: number, height: number): Uint8Array {
  const b = Uint8Array.from(jpeg);
  for (let i = 2; i + 9 < b.length; i++) {
    if (b[i] === 0xff && (b[i + 1] === 0xc0 || b[i + 1] === 0xc2)) {
      b[i + 5] = height >> 8; b[i + 6] = height & 255; b[i + 7] = width >> 8; b[i + 8] = width & 255;
      return b;
    }
  }
  throw new Error('no SOF0/SOF2 marker in the test JPEG');
}

afterEach(() => {
  delete process.env.VLMIX_MAX_IMAGE_PIXELS;
});

describe('image pixel limit', () => {
  it('a 30000x30000 PNG is refused from its header, naming the file, its size and the limit', () => {
    const bomb = greyPng(30000, 30000, deflateSync(Buffer.alloc(1024)));
    expect(() => decodeImage(bomb, 'big.png')).toThrow(
      'PNG big.png: image declares 30000x30000 = 900.0 megapixels, above the limit of 100.0 megapixels (raise it with the maxPixels option or VLMIX_MAX_IMAGE_PIXELS)');
    // raised, the header passes and decoding goes on to find the truncated pixel data
    expect(() => decodePng(bomb, 'big.png', { maxPixels: 1e9 })).toThrow(/^PNG big\.png: truncated image data: expected 900030000 bytes/);
  });

  it('a JPEG frame larger than the limit is refused before its blocks are allocated', () => {
    const big = patchJpegSize(read('jpeg/s420.jpg'), 60000, 50000);
    expect(() => decodeJpeg(big, 'big.jpg')).toThrow('JPEG big.jpg: image declares 60000x50000 = 3000.0 megapixels, above the limit of 100.0 megapixels');
    expect(() => decodeImage(big, 'big.jpg', { maxPixels: 2e9 })).toThrow(/above the limit of 2000\.0 megapixels/);
  });

  it('the limit is an option or VLMIX_MAX_IMAGE_PIXELS; a bad value is named', () => {
    const img = read('jpeg/s420.jpg');
    const { width, height } = decodeImage(img, 's.jpg');
    expect(() => decodeImage(img, 's.jpg', { maxPixels: width * height - 1 })).toThrow(`image declares ${width}x${height}`);
    expect(decodeImage(img, 's.jpg', { maxPixels: width * height }).width).toBe(width);
    expect(maxPixels()).toBe(DEFAULT_MAX_PIXELS);
    process.env.VLMIX_MAX_IMAGE_PIXELS = String(width * height - 1);
    expect(() => decodeImage(img, 's.jpg')).toThrow(/above the limit/);
    process.env.VLMIX_MAX_IMAGE_PIXELS = 'lots';
    expect(() => decodeImage(img, 's.jpg')).toThrow('VLMIX_MAX_IMAGE_PIXELS: expected a positive number of pixels, got "lots"');
    expect(() => maxPixels({ maxPixels: 0 })).toThrow('maxPixels: expected a positive number of pixels, got 0');
  });
});

describe('bounded PNG inflate', () => {
  it('image data that inflates far past the declared size is refused (not decompressed into memory)', () => {
    // 16x16 grey declares 16 * (1 + 16) = 272 bytes; the stream holds 8 MiB of zeros
    const png = greyPng(16, 16, deflateSync(Buffer.alloc(8 << 20)));
    expect(() => decodePng(png, 'z.png')).toThrow('PNG z.png: image data inflates to more than the 272 bytes its header declares (16x16); refusing it');
  });

  it('a few stray bytes after the pixel data are tolerated, as by libpng', () => {
    const raw = Buffer.alloc(16 * 17 + 10); // 10 bytes of trailing junk
    for (let y = 0; y < 16; y++) raw.fill(y * 10, y * 17 + 1, y * 17 + 17);
    const img = decodePng(greyPng(16, 16, deflateSync(raw)), 'ok.png');
    expect(img.width).toBe(16);
    expect(img.data[(15 * 16 + 3) * 3]).toBe(150);
  });
});
