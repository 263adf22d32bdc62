import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  readSafetensors,
  readSafetensorsFile,
  writeSafetensors,
  writeSafetensorsFile,
  float32ToFloat16Bits,
  float16BitsToFloat32,
  float32ToBFloat16Bits,
  bfloat16BitsToFloat32,
  type SafetensorsDtype,
} from '../src/io/index.js';

const FIX = join(import.meta.dirname, 'fixtures');

/** Builds a safetensors file from a raw header object and data bytes (for malformed-file tests). */
function craft(header: unknown, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function bits32(x: number): number {
  return new Uint32Array(new Float32Array([x]).buffer)[0]!;
}

describe('half-precision conversion', () => {
  it('float16: exact values, ties to even, overflow, subnormals, specials', () => {
    expect(float32ToFloat16Bits(1)).toBe(0x3c00);
    expect(float32ToFloat16Bits(-2)).toBe(0xc000);
    expect(float32ToFloat16Bits(65504)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65519.99)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65520)).toBe(0x7c00); // tie rounds to even = Inf
    expect(float32ToFloat16Bits(-1e6)).toBe(0xfc00);
    expect(float32ToFloat16Bits(Infinity)).toBe(0x7c00);
    expect(float32ToFloat16Bits(-Infinity)).toBe(0xfc00);
    expect(float32ToFloat16Bits(NaN)).toBe(0x7e00);
    expect(float32ToFloat16Bits(-0)).toBe(0x8000);
    expect(float32ToFloat16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(float32ToFloat16Bits(2 ** -25)).toBe(0x0000); // tie -> even (0)
    expect(float32ToFloat16Bits(3 * 2 ** -26)).toBe(0x0001);
    expect(float32ToFloat16Bits(-(2 ** -26))).toBe(0x8000); // underflow keeps the sign
    expect(float32ToFloat16Bits(2 ** -14 - 2 ** -25)).toBe(0x0400); // rounds up into the smallest normal
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie -> even
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie -> even (up)
    // decode covers every bit pattern consistently
    for (let h = 0; h < 0x10000; h++) {
      const v = float16BitsToFloat32(h);
      if (Number.isNaN(v)) expect((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0).toBe(true);
      else expect(float32ToFloat16Bits(v)).toBe(h);
    }
  });

  it('bfloat16: ties to even, overflow by rounding, NaN stays NaN, subnormals', () => {
    expect(float32ToBFloat16Bits(1)).toBe(0x3f80);
    expect(float32ToBFloat16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie -> even
    expect(float32ToBFloat16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(float32ToBFloat16Bits(3.4028234663852886e38)).toBe(0x7f80); // rounds to Inf
    expect(float32ToBFloat16Bits(-Infinity)).toBe(0xff80);
    expect(float32ToBFloat16Bits(NaN)).toBe(0x7fc0);
    expect(Number.isNaN(bfloat16BitsToFloat32(float32ToBFloat16Bits(NaN)))).toBe(true);
    // a signalling-NaN payload that would truncate to Inf must stay NaN
    const snan = new Float32Array(new Uint32Array([0x7f800001]).buffer)[0]!;
    expect(Number.isNaN(bfloat16BitsToFloat32(float32ToBFloat16Bits(snan)))).toBe(true);
    expect(float32ToBFloat16Bits(-0)).toBe(0x8000);
    expect(float32ToBFloat16Bits(1e-40)).toBe(bits32(1e-40) >>> 16); // f32 subnormal, lower bits < half
    for (let b = 0; b < 0x10000; b++) {
      const v = bfloat16BitsToFloat32(b);
      if (!Number.isNaN(v)) expect(float32ToBFloat16Bits(v)).toBe(b);
    }
  });
});

describe('safetensors round trip', () => {
  const values = [0, -0, 1, -1, 0.1, 3.14159, 65504, 65520, 1e-8, 2 ** -24, 1e-40, -1e-40, 3.4e38, Infinity, -Infinity, NaN];

  it.each<SafetensorsDtype>(['F32', 'F16', 'BF16', 'F64'])('float storage %s', (dtype) => {
    const src = new Float32Array(values);
    const bytes = writeSafetensors({ x: { dtype: 'F32', shape: [4, 4], data: src } }, { dtypes: { x: dtype } });
    const f = readSafetensors(bytes);
    expect(f.get('x').dtype).toBe(dtype);
    expect(f.get('x').shape).toEqual([4, 4]);
    const back = f.toFloat32('x');
    const expected = src.map((v) =>
      dtype === 'F16' ? float16BitsToFloat32(float32ToFloat16Bits(v)) : dtype === 'BF16' ? bfloat16BitsToFloat32(float32ToBFloat16Bits(v)) : v,
    );
    expect(Array.from(back).map((v) => Object.is(v, -0) ? '-0' : v)).toEqual(
      Array.from(expected).map((v) => Object.is(v, -0) ? '-0' : v),
    );
    const t = f.toTensor('x');
    expect(t.dtype).toBe('float32');
    t.dispose();
  });

  it('tf tensors of every tfjs dtype, default storage, and dtype defaults', () => {
    const a = tf.tensor([[1.5, -2], [3, 4]]);
    const b = tf.tensor([1, -2, 2147483647], [3], 'int32');
    const c = tf.tensor([true, false, true], [3], 'bool');
    const s = tf.scalar(7.25);
    const bytes = writeSafetensors({ a, b, c, s }, { dtypes: 'BF16', metadata: { k: 'v' } });
    const f = readSafetensors(bytes);
    expect(f.metadata).toEqual({ k: 'v' });
    expect(f.names()).toEqual(['a', 'b', 'c', 's']);
    expect(f.get('a').dtype).toBe('BF16'); // default applies to float tensors only
    expect(f.get('b').dtype).toBe('I32');
    expect(f.get('c').dtype).toBe('BOOL');
    expect(f.get('s').shape).toEqual([]);
    const tb = f.toTensor('b');
    const tc = f.toTensor('c');
    expect(tb.dtype).toBe('int32');
    expect(Array.from(tb.dataSync())).toEqual([1, -2, 2147483647]);
    expect(tc.dtype).toBe('bool');
    expect(Array.from(tc.dataSync())).toEqual([1, 0, 1]);
    expect(Array.from(f.toFloat32('a'))).toEqual([1.5, -2, 3, 4]);
    tf.dispose([a, b, c, s, tb, tc]);
  });

  it('integer dtypes: I64 / I16 / I8 / U8 / BOOL round trip and range checks', () => {
    const bytes = writeSafetensors(
      {
        i64: { dtype: 'I64', shape: [3], data: new BigInt64Array([-(2n ** 31n), 2n ** 31n - 1n, 5n]) },
        big: { dtype: 'I64', shape: [2], data: new BigInt64Array([2n ** 40n, -3n]) },
        i16: { dtype: 'I16', shape: [2], data: new Int16Array([-32768, 32767]) },
        i8: { dtype: 'I8', shape: [2], data: new Int8Array([-128, 127]) },
        u8: { dtype: 'U8', shape: [2], data: new Uint8Array([0, 255]) },
        bool: { dtype: 'BOOL', shape: [2], data: [1, 0] },
        fromInt: { dtype: 'I32', shape: [2], data: [7, -7] },
      },
      { dtypes: { fromInt: 'I64' } },
    );
    const f = readSafetensors(bytes);
    expect(Array.from(f.toInt32('i64'))).toEqual([-(2 ** 31), 2 ** 31 - 1, 5]);
    expect(() => f.toInt32('big')).toThrow(/"big".*1099511627776.*outside the int32 range/);
    expect(() => f.toTensor('big')).toThrow(/"big"/);
    expect(Array.from(f.toFloat32('big'))).toEqual([2 ** 40, -3]);
    expect(Array.from(f.toInt32('i16'))).toEqual([-32768, 32767]);
    expect(Array.from(f.toInt32('i8'))).toEqual([-128, 127]);
    expect(Array.from(f.toInt32('u8'))).toEqual([0, 255]);
    expect(Array.from(f.toInt32('bool'))).toEqual([1, 0]);
    expect(f.get('fromInt').dtype).toBe('I64');
    expect(Array.from(f.toInt32('fromInt'))).toEqual([7, -7]);
    const t = f.toTensor('i8');
    expect(t.dtype).toBe('int32');
    t.dispose();
    expect(() => writeSafetensors({ x: { dtype: 'I8', shape: [1], data: [200] } })).toThrow(/"x".*200.*I8/);
    expect(() => writeSafetensors({ x: { dtype: 'F32', shape: [1], data: [1.5] } }, { dtypes: { x: 'I32' } })).toThrow(/not.*integer|cannot be stored/);
    expect(() => writeSafetensors({ x: { dtype: 'F32', shape: [2], data: [1] } })).toThrow(/needs 2 values, got 1/);
    expect(() => f.toInt32('nope')).toThrow(/no tensor named "nope"; available: "big", "bool"/);
  });

  it('deterministic output: sorted names, 8-byte aligned data, same bytes regardless of insertion order', () => {
    const a = writeSafetensors({ z: { dtype: 'F32', shape: [1], data: [1] }, a: { dtype: 'U8', shape: [3], data: [1, 2, 3] } }, { metadata: { b: '2', a: '1' } });
    const b = writeSafetensors({ a: { dtype: 'U8', shape: [3], data: [1, 2, 3] }, z: { dtype: 'F32', shape: [1], data: [1] } }, { metadata: { a: '1', b: '2' } });
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    const n = Number(new DataView(a.buffer).getBigUint64(0, true));
    expect((8 + n) % 8).toBe(0);
    const header = new TextDecoder().decode(a.subarray(8, 8 + n));
    expect(header.trimEnd()).toBe(
      '{"__metadata__":{"a":"1","b":"2"},"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"z":{"dtype":"F32","shape":[1],"data_offsets":[3,7]}}',
    );
    // unaligned F32 data (offset 3) still decodes
    expect(Array.from(readSafetensors(a).toFloat32('z'))).toEqual([1]);
  });

  it('writes files atomically and reads them back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vlmix-st-'));
    const x = tf.tensor([1, 2, 3]);
    await writeSafetensorsFile(join(dir, 'x.safetensors'), { x }, { metadata: { m: '1' } });
    x.dispose();
    expect(await readdir(dir)).toEqual(['x.safetensors']);
    const f = await readSafetensorsFile(join(dir, 'x.safetensors'));
    expect(Array.from(f.toFloat32('x'))).toEqual([1, 2, 3]);
    await expect(readSafetensorsFile(join(dir, 'missing.safetensors'))).rejects.toThrow(/ENOENT/);
  });
});

describe('byte-exactness vs the Python writer (scripts/fixtures/safetensors_reference.py, torch 1.13)', () => {
  const file = readFileSync(join(FIX, 'safetensors_reference', 'reference.safetensors'));
  const bytes = new Uint8Array(file.buffer, file.byteOffset, file.byteLength);
  const f = readSafetensors(bytes);

  it('decodes every dtype as torch wrote it', () => {
    expect(f.metadata.producer).toBe('scripts/fixtures/safetensors_reference.py');
    const src = f.toFloat32('src');
    expect(src.length).toBe(f.get('src').shape.reduce((a, b) => a * b, 1));
    // torch's own float16/bfloat16 rounding matches ours bit for bit
    const f16 = f.get('src_f16');
    const bf16 = f.get('src_bf16');
    const dv16 = new DataView(f16.bytes.buffer, f16.bytes.byteOffset, f16.bytes.byteLength);
    const dvb = new DataView(bf16.bytes.buffer, bf16.bytes.byteOffset, bf16.bytes.byteLength);
    for (let i = 0; i < src.length; i++) {
      expect(float32ToFloat16Bits(src[i]!)).toBe(dv16.getUint16(2 * i, true));
      expect(float32ToBFloat16Bits(src[i]!)).toBe(dvb.getUint16(2 * i, true));
    }
    expect(Array.from(f.toFloat32('src_f64'))).toEqual(Array.from(src));
    expect(Array.from(f.toInt32('i64'))).toEqual([-(2 ** 31), 2 ** 31 - 1, 0, -1, 123456789, 7]);
    expect(() => f.toInt32('i64_big')).toThrow(/i64_big/);
    expect(Array.from(f.toInt32('i32'))).toEqual([-(2 ** 31), 2 ** 31 - 1, 0, 42]);
    expect(Array.from(f.toInt32('i16'))).toEqual([-32768, 32767, -1, 5]);
    expect(Array.from(f.toInt32('i8'))).toEqual([-128, 127, 0, -3]);
    expect(Array.from(f.toInt32('u8'))).toEqual([0, 255, 128, 1]);
    expect(Array.from(f.toInt32('bool'))).toEqual([1, 0, 0, 1]);
    expect(f.get('empty').shape).toEqual([0, 3]);
    expect(f.get('scalar').shape).toEqual([]);
    expect(Array.from(f.toFloat32('scalar'))).toEqual([2.5]);
  });

  it('re-encoding the same values gives identical bytes', () => {
    const src = f.toFloat32('src');
    const shape = f.get('src').shape;
    const raw = (name: string, data: ArrayLike<number> | BigInt64Array) => ({ dtype: f.get(name).dtype, shape: f.get(name).shape, data });
    const i64big = f.get('i64_big').bytes;
    const out = writeSafetensors(
      {
        src: { dtype: 'F32', shape, data: src },
        src_f16: { dtype: 'F32', shape, data: src },
        src_bf16: { dtype: 'F32', shape, data: src },
        src_f64: { dtype: 'F32', shape, data: src },
        i64: raw('i64', f.toInt32('i64')),
        i64_big: raw('i64_big', new BigInt64Array(i64big.slice().buffer)),
        i32: raw('i32', f.toInt32('i32')),
        i16: raw('i16', f.toInt32('i16')),
        i8: raw('i8', f.toInt32('i8')),
        u8: raw('u8', f.toInt32('u8')),
        bool: raw('bool', f.toInt32('bool')),
        empty: raw('empty', new Float32Array(0)),
        scalar: raw('scalar', f.toFloat32('scalar')),
      },
      { metadata: f.metadata, dtypes: { src_f16: 'F16', src_bf16: 'BF16', src_f64: 'F64' } },
    );
    expect(Buffer.from(out).equals(Buffer.from(bytes))).toBe(true);
  });

  it('re-encoding the GPT-2 fixture weights reproduces the file', () => {
    const buf = readFileSync(join(FIX, 'gpt2_forward', 'weights.safetensors'));
    const w = readSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
    const tensors = Object.fromEntries(w.names().map((n) => [n, { dtype: 'F32' as const, shape: w.get(n).shape, data: w.toFloat32(n) }]));
    expect(Buffer.from(writeSafetensors(tensors, { metadata: w.metadata })).equals(buf)).toBe(true);
  });
});

describe('malformed files give clear errors', () => {
  const good = writeSafetensors({ a: { dtype: 'F32', shape: [2], data: [1, 2] }, b: { dtype: 'F32', shape: [1], data: [3] } });

  it('truncated', () => {
    expect(() => readSafetensors(new Uint8Array(3))).toThrow(/truncated: 3 bytes/);
    expect(() => readSafetensors(good.subarray(0, 20))).toThrow(/truncated: the header claims/);
    expect(() => readSafetensors(good.subarray(0, good.length - 2))).toThrow(/safetensors: tensor "b" has data_offsets \[8, 12\] beyond the end of the data section \(10 bytes\)/);
  });

  it('bad header JSON / structure', () => {
    expect(() => readSafetensors(craft('{"a": '))).toThrow(/header is not valid JSON/);
    expect(() => readSafetensors(craft('[1,2]'))).toThrow(/header JSON must be an object/);
    expect(() => readSafetensors(craft({ a: { dtype: 'Q8', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)))).toThrow(/"a" has unsupported dtype "Q8"/);
    expect(() => readSafetensors(craft({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)))).toThrow(/"a" has an invalid shape/);
    expect(() => readSafetensors(craft({ a: { dtype: 'F32', shape: [1], data_offsets: [0] } }, new Uint8Array(4)))).toThrow(/invalid data_offsets/);
    expect(() => readSafetensors(craft({ __metadata__: { k: 1 } }))).toThrow(/__metadata__.*"k" must be a string/);
    expect(() => readSafetensors(craft('{}', new Uint8Array(0), 2n ** 60n))).toThrow(/implausibly large/);
  });

  it('overlapping offsets, gaps, out-of-range offsets, size mismatch', () => {
    const d = new Uint8Array(12);
    expect(() =>
      readSafetensors(craft({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, d)),
    ).toThrow(/"a" and "b" overlap/);
    expect(() => readSafetensors(craft({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)))).toThrow(/gap in the data section: bytes \[0, 4\)/);
    expect(() => readSafetensors(craft({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(8)))).toThrow(/trailing bytes/);
    expect(() => readSafetensors(craft({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, d))).toThrow(/beyond the end of the data section \(12 bytes\)/);
    expect(() => readSafetensors(craft({ a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } }, d))).toThrow(
      /"a": shape \[2, 2\] with dtype F32 needs 16 bytes, but data_offsets \[0, 12\] span 12/,
    );
    expect(() => readSafetensors(craft({ a: { dtype: 'F32', shape: [1], data_offsets: [8, 4] } }, d))).toThrow(/begin > end/);
  });

  it('header padded with spaces and zero-size tensors are accepted', () => {
    const f = readSafetensors(craft('{"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}      ', new Uint8Array([9])));
    expect(f.toInt32('x')[0]).toBe(9);
    expect(f.toFloat32('e').length).toBe(0);
  });
});
