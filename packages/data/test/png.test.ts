import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { crc32, decodePng, encodePng } from '../src/png.js';
import type { RgbImage } from '../src/image.js';
import { DATA, read, readPpm } from './helpers.js';
import seedrandom from 'seedrandom';
import { deflateSync } from 'node:zlib';

/** Independent minimal PNG builder (raw = filtered scanlines incl. filter bytes). */
function buildPng(w: number, h: number, depth: number, ctype: number, raw: Uint8Array, plte?: Uint8Array): Uint8Array {
  const chunk = (type: string, body: Uint8Array) => {
    const out = new Uint8Array(12 + body.length);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, body.length);
    out.set(new TextEncoder().encode(type), 4);
    out.set(body, 8);
    dv.setUint32(8 + body.length, crc32(out, 4, 8 + body.length));
    return out;
  };
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, w);
  new DataView(ihdr.buffer).setUint32(4, h);
  ihdr[8] = depth;
  ihdr[9] = ctype;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), ...(plte ? [chunk('PLTE', plte)] : []), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0))]);
}

const fixtures = readdirSync(DATA + 'png').filter((f) => f.endsWith('.png')).map((f) => f.slice(0, -4));

function randomImage(w: number, h: number, seed: string): RgbImage {
  const rng = seedrandom(seed);
  const data = new Uint8Array(w * h * 3);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(rng() * 256);
  return { width: w, height: h, data };
}

/** Rewrites one chunk's body byte and (optionally) fixes its CRC. */
function patchIhdr(png: Uint8Array, offsetInBody: number, value: number, fixCrc: boolean): Uint8Array {
  const out = png.slice();
  out[16 + offsetInBody] = value;
  if (fixCrc) new DataView(out.buffer).setUint32(8 + 8 + 13, crc32(out, 12, 8 + 8 + 13));
  return out;
}

describe('PNG decode', () => {
  it('has fixtures for every colour type and depth', () => {
    expect(fixtures).toEqual(
      expect.arrayContaining(['gray1', 'gray2', 'gray4', 'gray8', 'gray16', 'graya8', 'graya16', 'rgb8', 'rgb16',
        'rgba8', 'rgba16', 'pal1', 'pal2', 'pal4', 'pal8', 'pil-RGB', 'pil-RGBA', 'pil-L', 'pil-LA', 'pil-P',
        'adam7-rgb8', 'adam7-gray16', 'adam7-rgba8', 'adam7-rgb8-3x2', 'adam7-pal2']),
    );
  });
  it.each(fixtures)('%s.png matches the expected pixels exactly', (name) => {
    const got = decodePng(read(`png/${name}.png`), `${name}.png`);
    const want = readPpm(`png/${name}.ppm`);
    expect([got.width, got.height]).toEqual([want.width, want.height]);
    expect(Buffer.from(got.data).equals(Buffer.from(want.data))).toBe(true);
  });
  it('reports source format info', () => {
    expect(decodePng(read('png/rgba16.png')).info).toEqual({ bitDepth: 16, colorType: 6, hasAlpha: true });
    expect(decodePng(read('png/gray4.png')).info).toEqual({ bitDepth: 4, colorType: 0, hasAlpha: false });
  });
  it('composites alpha over a background when asked', () => {
    // Hand-built 2x1 RGBA PNG: transparent red, half-transparent blue.
    const raw = Uint8Array.from([0, 255, 0, 0, 0, 0, 0, 255, 128]);
    const png = buildPng(2, 1, 8, 6, raw);
    expect(Array.from(decodePng(png).data)).toEqual([255, 0, 0, 0, 0, 255]);
    const t = 128 / 255;
    const onWhite = decodePng(png, 'x', { background: [255, 255, 255] });
    const mix = Math.round(255 * (1 - t));
    expect(Array.from(onWhite.data)).toEqual([255, 255, 255, mix, mix, 255]);
  });
});

describe('PNG encode', () => {
  it.each([0, 1, 2, 3, 4, 'adaptive'] as const)('round-trips with filter %s', (filter) => {
    const img = randomImage(17, 9, `png-${filter}`);
    const back = decodePng(encodePng(img, { filter }));
    expect(back.width).toBe(17);
    expect(back.height).toBe(9);
    expect(Buffer.from(back.data).equals(Buffer.from(img.data))).toBe(true);
  });
  it('adaptive filtering compresses smooth images better than no filter', () => {
    const w = 64, h = 64;
    const data = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set([x * 4, y * 4, (x + y) * 2], (y * w + x) * 3);
    const img = { width: w, height: h, data };
    expect(encodePng(img).length).toBeLessThan(encodePng(img, { filter: 0 }).length);
  });
  it('rejects inconsistent images', () => {
    expect(() => encodePng({ width: 2, height: 2, data: new Uint8Array(11) })).toThrow(
      'encodePng: data length must be width*height*3 = 2*2*3 = 12, got 11',
    );
  });
});

describe('PNG errors', () => {
  const good = encodePng(randomImage(5, 4, 'err'));
  it('bad signature', () => {
    expect(() => decodePng(Uint8Array.from([1, 2, 3]), 'a.png')).toThrow(
      'PNG a.png: bad signature: expected 89 50 4e 47 0d 0a 1a 0a, got 01 02 03',
    );
  });
  it('truncated file', () => {
    expect(() => decodePng(good.subarray(0, good.length - 20), 'cut.png')).toThrow(/PNG cut\.png: truncated: chunk IDAT at offset 33 needs \d+ bytes, only \d+ remain/);
    expect(() => decodePng(good.subarray(0, good.length - 12), 'noend.png')).toThrow(/PNG noend\.png: truncated: expected a chunk header at offset \d+.*no IEND/);
  });
  it('CRC mismatch names the chunk and both CRCs', () => {
    const bad = good.slice();
    bad[20] ^= 1; // inside IHDR body
    expect(() => decodePng(bad, 'crc.png')).toThrow(/PNG crc\.png: CRC mismatch in chunk IHDR at offset 8: stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}/);
  });
  it('unknown interlace method', () => {
    expect(() => decodePng(patchIhdr(good, 12, 2, true), 'i.png')).toThrow('PNG i.png: invalid interlace method 2 (expected 0 or 1)');
  });
  it('invalid filter type names the row', () => {
    const raw = Uint8Array.from([0, 1, 2, 3, 7, 4, 5, 6]); // row 1 has filter type 7
    expect(() => decodePng(buildPng(1, 2, 8, 2, raw), 'f.png')).toThrow('PNG f.png: invalid filter type 7 on row 1 (expected 0-4)');
  });
  it('palette index out of range', () => {
    const raw = Uint8Array.from([0, 5]);
    const png = buildPng(1, 1, 8, 3, raw, Uint8Array.from([1, 2, 3, 4, 5, 6]));
    expect(() => decodePng(png, 'p.png')).toThrow('PNG p.png: palette index 5 out of range (palette has 2 entries) at (0, 0)');
  });
  it('invalid bit depth / colour type', () => {
    expect(() => decodePng(patchIhdr(good, 8, 4, true), 'd.png')).toThrow(
      'PNG d.png: invalid bit depth 4 for colour type 2 (expected one of 8, 16)',
    );
    expect(() => decodePng(patchIhdr(good, 9, 5, true), 'c.png')).toThrow('PNG c.png: invalid colour type 5');
  });
  it('corrupt zlib stream', () => {
    // Re-encode with a garbage IDAT body but valid CRC.
    const bad = good.slice();
    const len = new DataView(bad.buffer).getUint32(33);
    bad.fill(0xaa, 41, 41 + len);
    new DataView(bad.buffer).setUint32(41 + len, crc32(bad, 37, 41 + len));
    expect(() => decodePng(bad, 'z.png')).toThrow(/PNG z\.png: corrupt or truncated image data \(zlib: /);
  });
  it('crc32 matches the standard check value', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
  });
});
