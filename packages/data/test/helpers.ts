import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { RgbImage } from '../src/image.js';

export const DATA = fileURLToPath(new URL('./data/', import.meta.url));
export const read = (rel: string): Uint8Array => new Uint8Array(readFileSync(DATA + rel));

/** Parses a binary P6 PPM (maxval 255) – the independent ground-truth format for PNG tests. */
export function readPpm(rel: string): RgbImage {
  const b = read(rel);
  const header: string[] = [];
  let i = 0;
  while (header.length < 4) {
    while (b[i] === 0x20 || b[i] === 0x0a) i++;
    let tok = '';
    while (b[i] !== 0x20 && b[i] !== 0x0a) tok += String.fromCharCode(b[i++]!);
    header.push(tok);
  }
  i++; // single whitespace after maxval
  if (header[0] !== 'P6' || header[3] !== '255') throw new Error(`${rel}: not a P6/255 PPM`);
  const width = Number(header[1]);
  const height = Number(header[2]);
  return { width, height, data: b.slice(i, i + width * height * 3) };
}

/** Mean absolute error per channel. */
export function maePerChannel(a: RgbImage, b: RgbImage): [number, number, number] {
  if (a.width !== b.width || a.height !== b.height) throw new Error(`size ${a.width}x${a.height} vs ${b.width}x${b.height}`);
  const s = [0, 0, 0];
  for (let i = 0; i < a.data.length; i++) s[i % 3]! += Math.abs(a.data[i]! - b.data[i]!);
  const n = a.width * a.height;
  return [s[0]! / n, s[1]! / n, s[2]! / n];
}
