import { describe, expect, it } from 'vitest';
import { decodeImage, detectImageFormat } from '../src/decode.js';
import { read } from './helpers.js';

describe('decodeImage', () => {
  it('sniffs PNG and JPEG by signature, not by name', () => {
    const png = decodeImage(read('png/rgb8.png'), 'misnamed.jpg');
    expect([png.width, png.height]).toEqual([13, 11]);
    const jpg = decodeImage(read('jpeg/s420.jpg'), 'misnamed.png');
    expect([jpg.width, jpg.height]).toEqual([37, 29]);
    expect(Object.keys(png).sort()).toEqual(['data', 'height', 'width']);
  });
  it('names the file and the detected format for unsupported input', () => {
    const gif = new TextEncoder().encode('GIF89a\x01\x00\x01\x00');
    expect(() => decodeImage(gif, 'images/7.jpg')).toThrow('images/7.jpg: unsupported image format GIF; expected PNG or JPEG');
    const webp = new TextEncoder().encode('RIFF\x00\x00\x00\x00WEBPVP8 ');
    expect(() => decodeImage(webp, 'w.png')).toThrow('w.png: unsupported image format WebP; expected PNG or JPEG');
    expect(() => decodeImage(Uint8Array.from([1, 2, 3]), 'x.bin')).toThrow(
      'x.bin: unsupported image format (unrecognised signature: 01 02 03); expected PNG or JPEG',
    );
    expect(() => decodeImage(new Uint8Array(0), 'empty.jpg')).toThrow('empty.jpg: unsupported image format (unrecognised signature: empty file)');
  });
  it('decoder errors carry the name too', () => {
    const b = read('jpeg/arithmetic.jpg');
    expect(() => decodeImage(b, 'data/a.jpg')).toThrow('JPEG data/a.jpg: unsupported: arithmetic-coded JPEG (SOF9)');
  });
  it('detectImageFormat', () => {
    expect(detectImageFormat(read('png/gray8.png'))).toBe('PNG');
    expect(detectImageFormat(read('jpeg/gray.jpg'))).toBe('JPEG');
    expect(detectImageFormat(new TextEncoder().encode('BM6\x00'))).toBe('BMP');
  });
});
