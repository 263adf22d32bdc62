import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { exifOrientation, decodeJpeg } from '../src/jpeg.js';
import { decodePng } from '../src/png.js';
import { DATA, maePerChannel, read } from './helpers.js';

const refs = readdirSync(DATA + 'jpeg').filter((f) => f.endsWith('.ref.png')).map((f) => f.slice(0, -'.ref.png'.length));

describe('JPEG decoder vs libjpeg-turbo (djpeg)', () => {
  it('covers the intended modes', () => {
    expect(refs).toEqual(expect.arrayContaining(['s444', 's420', 's422', 's440', 's411', 'gray', 'restart-rows',
      'restart-blocks', 'optimized', 'q5-16bit-tables', 'noninterleaved', 'rgb', 'pil-q85', 'progressive', 'progressive-444', 'progressive-gray', 'progressive-restart', 'pil-progressive', ...[1, 2, 3, 4, 5, 6, 7, 8].map((k) => `exif-${k}`)]));
  });
  it.each(refs)('%s.jpg: MAE per channel ≤ 2', (name) => {
    const got = decodeJpeg(read(`jpeg/${name}.jpg`), `${name}.jpg`);
    const want = decodePng(read(`jpeg/${name}.ref.png`));
    expect([got.width, got.height]).toEqual([want.width, want.height]);
    expect([got.width, got.height].sort()).toEqual([29, 37]); // the 37x29 source, upright (Exif orientation 5-8 swap)
    const mae = maePerChannel(got, want);
    for (const m of mae) expect(m).toBeLessThanOrEqual(2);
    // Not just "close on average": no pixel may be wildly off (catches block/edge bugs).
    let maxErr = 0;
    for (let i = 0; i < got.data.length; i++) maxErr = Math.max(maxErr, Math.abs(got.data[i]! - want.data[i]!));
    expect(maxErr).toBeLessThanOrEqual(4);
  });
});

describe('Exif orientation', () => {
  it('is read from APP1 and applied like PIL exif_transpose (see the exif-<k> refs); exifOrientation: false keeps the stored pixels', () => {
    const stored = decodeJpeg(read('jpeg/exif-1.jpg'), 'exif-1.jpg');
    const raw6 = decodeJpeg(read('jpeg/exif-6.jpg'), 'exif-6.jpg', { exifOrientation: false });
    expect([raw6.width, raw6.height]).toEqual([37, 29]);
    expect(Math.max(...maePerChannel(raw6, stored))).toBeLessThanOrEqual(1);
    expect(exifOrientation(Uint8Array.from([1, 2, 3]))).toBe(1); // not Exif: upright
  });
});

describe('JPEG errors', () => {
  it('progressive file cut after the first scans → truncation error', () => {
    const b = read('jpeg/progressive.jpg');
    expect(() => decodeJpeg(b.subarray(0, Math.floor(b.length * 0.6)), 'p.jpg')).toThrow(/^JPEG p\.jpg: truncated/);
  });
  it('arithmetic coding → unsupported', () => {
    expect(() => decodeJpeg(read('jpeg/arithmetic.jpg'), 'a.jpg')).toThrow('JPEG a.jpg: unsupported: arithmetic-coded JPEG (SOF9)');
  });
  it('bad signature', () => {
    expect(() => decodeJpeg(Uint8Array.from([0xff, 0xd8, 0x00]), 's.jpg')).toThrow('JPEG s.jpg: bad signature: expected ff d8 ff, got ff d8 00');
  });
  it('truncated inside the scan', () => {
    const b = read('jpeg/s420.jpg');
    expect(() => decodeJpeg(b.subarray(0, b.length - 300), 't.jpg')).toThrow(/JPEG t\.jpg: truncated: entropy-coded data ends after \d+ of 6 MCUs/);
  });
  it('truncated inside a header segment', () => {
    const b = read('jpeg/s420.jpg');
    expect(() => decodeJpeg(b.subarray(0, 30), 'h.jpg')).toThrow(/JPEG h\.jpg: truncated: marker 0x[0-9a-f]+ at offset \d+ declares \d+ bytes, only \d+ remain/);
  });
  it('tolerates a missing EOI after a complete scan', () => {
    const b = read('jpeg/s444.jpg');
    const img = decodeJpeg(b.subarray(0, b.length - 2), 'noeoi.jpg');
    const full = decodeJpeg(b);
    expect(Buffer.from(img.data).equals(Buffer.from(full.data))).toBe(true);
  });
  it('restart markers are required where DRI says', () => {
    const b = read('jpeg/restart-rows.jpg').slice();
    // Corrupt the first RST marker (ff d0) into a different, non-RST marker.
    let i = b.findIndex((v, k) => v === 0xff && b[k + 1] === 0xd0);
    expect(i).toBeGreaterThan(0);
    b[i + 1] = 0xfe;
    expect(() => decodeJpeg(b, 'r.jpg')).toThrow(/JPEG r\.jpg: expected restart marker \(RST0-7\) at offset \d+ after 3 MCUs, found ff fe/);
    i = 0;
  });
});
