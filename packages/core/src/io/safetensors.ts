// Reader and writer for the safetensors format (https://github.com/huggingface/safetensors):
//   [u64 little-endian header length N][N bytes of UTF-8 JSON header][raw little-endian data]
// The header maps tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets relative to
// the data section) plus an optional "__metadata__" string->string map.
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs';
import { writeFileAtomic } from './atomic.js';
import {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  float32ToBFloat16Bits,
  float32ToFloat16Bits,
} from './half.js';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'F64' | 'I32' | 'I64' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const SAFETENSORS_DTYPES: readonly SafetensorsDtype[] = [
  'F32', 'F16', 'BF16', 'F64', 'I32', 'I64', 'I16', 'I8', 'U8', 'BOOL',
];

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = {
  F32: 4, F16: 2, BF16: 2, F64: 8, I32: 4, I64: 8, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

const FLOAT_DTYPES = new Set<SafetensorsDtype>(['F32', 'F16', 'BF16', 'F64']);

export function isFloatDtype(d: SafetensorsDtype): boolean {
  return FLOAT_DTYPES.has(d);
}

export interface SafetensorsEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Raw little-endian bytes. For files read with readSafetensors this is a view into the input. */
  bytes: Uint8Array;
}

export interface SafetensorsFile {
  /** The `__metadata__` map ({} when absent). */
  metadata: Record<string, string>;
  /** Tensor names in data-offset order. */
  names(): string[];
  has(name: string): boolean;
  get(name: string): SafetensorsEntry;
  /** Values as float32 (any dtype; I64 values beyond 2^53 lose precision). */
  toFloat32(name: string): Float32Array;
  /** Values as int32 (integer and BOOL dtypes; I64 values outside int32 throw). */
  toInt32(name: string): Int32Array;
  /** A new tf.Tensor (F32/F16/BF16/F64 -> float32; I32/I64/I16/I8/U8 -> int32; BOOL -> bool). Caller disposes. */
  toTensor(name: string): tf.Tensor;
}

const MAX_HEADER_BYTES = 100_000_000;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function fail(msg: string): never {
  throw new Error(`safetensors: ${msg}`);
}

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function isNonNegInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

/** Names shown in "unknown tensor" errors. */
function someNames(names: string[], max = 8): string {
  const shown = names.slice(0, max).map((n) => JSON.stringify(n)).join(', ');
  return names.length > max ? `${shown}, ... (${names.length} in all)` : shown || '(none)';
}

function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Copies `bytes` into a fresh ArrayBuffer (so typed-array views are aligned and independent). */
function copyBuffer(bytes: Uint8Array): ArrayBuffer {
  const buf = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(buf).set(bytes);
  return buf;
}

/** Decodes the values of an entry into plain numbers (float dtypes), numbers (ints) or bigints (I64). */
function decodeFloat32(name: string, e: SafetensorsEntry): Float32Array {
  const n = numel(e.shape);
  const dv = dataView(e.bytes);
  const out = new Float32Array(n);
  switch (e.dtype) {
    case 'F32':
      if (LITTLE_ENDIAN) return new Float32Array(copyBuffer(e.bytes));
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
      return out;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = float16BitsToFloat32(dv.getUint16(i * 2, true));
      return out;
    case 'BF16':
      for (let i = 0; i < n; i++) out[i] = bfloat16BitsToFloat32(dv.getUint16(i * 2, true));
      return out;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
      return out;
    case 'I64':
      for (let i = 0; i < n; i++) out[i] = Number(dv.getBigInt64(i * 8, true));
      return out;
    default: {
      const ints = decodeInt32(name, e);
      out.set(ints);
      return out;
    }
  }
}

function decodeInt32(name: string, e: SafetensorsEntry): Int32Array {
  const n = numel(e.shape);
  const dv = dataView(e.bytes);
  const out = new Int32Array(n);
  switch (e.dtype) {
    case 'I32':
      if (LITTLE_ENDIAN) return new Int32Array(copyBuffer(e.bytes));
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(i * 4, true);
      return out;
    case 'I64':
      for (let i = 0; i < n; i++) {
        const v = dv.getBigInt64(i * 8, true);
        if (v > 2147483647n || v < -2147483648n) {
          fail(`tensor "${name}" (I64) holds ${v} at flat index ${i}, outside the int32 range; it cannot be converted to int32`);
        }
        out[i] = Number(v);
      }
      return out;
    case 'I16':
      for (let i = 0; i < n; i++) out[i] = dv.getInt16(i * 2, true);
      return out;
    case 'I8':
      for (let i = 0; i < n; i++) out[i] = dv.getInt8(i);
      return out;
    case 'U8':
      for (let i = 0; i < n; i++) out[i] = dv.getUint8(i);
      return out;
    case 'BOOL':
      for (let i = 0; i < n; i++) out[i] = dv.getUint8(i) !== 0 ? 1 : 0;
      return out;
    default:
      return fail(`tensor "${name}" has floating-point dtype ${e.dtype}; use toFloat32() or toTensor() instead of toInt32()`);
  }
}

class ParsedSafetensors implements SafetensorsFile {
  constructor(
    readonly metadata: Record<string, string>,
    private readonly entries: Map<string, SafetensorsEntry>,
  ) {}

  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  get(name: string): SafetensorsEntry {
    const e = this.entries.get(name);
    if (!e) fail(`no tensor named "${name}"; available: ${someNames(this.names())}`);
    return e;
  }

  toFloat32(name: string): Float32Array {
    return decodeFloat32(name, this.get(name));
  }

  toInt32(name: string): Int32Array {
    return decodeInt32(name, this.get(name));
  }

  toTensor(name: string): tf.Tensor {
    const e = this.get(name);
    if (isFloatDtype(e.dtype)) return tf.tensor(decodeFloat32(name, e), e.shape, 'float32');
    if (e.dtype === 'BOOL') {
      const v = new Uint8Array(e.bytes.length);
      for (let i = 0; i < v.length; i++) v[i] = e.bytes[i] !== 0 ? 1 : 0;
      return tf.tensor(v, e.shape, 'bool');
    }
    return tf.tensor(decodeInt32(name, e), e.shape, 'int32');
  }
}

interface RawEntry { name: string; dtype: SafetensorsDtype; shape: number[]; begin: number; end: number }

/** Reads the u64 header length from the first 8 bytes; `fileBytes` is the file's total size. */
function headerLength(prefix: Uint8Array, fileBytes: number): number {
  if (fileBytes < 8) {
    fail(`file is truncated: ${fileBytes} bytes, but at least 8 are needed for the header length`);
  }
  const n64 = dataView(prefix).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n64} is implausibly large (limit ${MAX_HEADER_BYTES} bytes); not a safetensors file?`);
  const n = Number(n64);
  if (8 + n > fileBytes) {
    fail(`file is truncated: the header claims ${n} bytes but only ${fileBytes - 8} follow the length prefix`);
  }
  return n;
}

/**
 * Parses and validates the JSON header (dtypes, shapes, offsets within a data section of
 * `dataBytes` bytes, byte sizes matching shapes, tensors tiling the data section without overlap
 * or gaps). Shared by the in-memory reader and the lazy file reader.
 */
function parseHeader(headerBytes: Uint8Array, dataBytes: number): { metadata: Record<string, string>; raw: RawEntry[] } {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    return fail('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    return fail(`header is not valid JSON (${(err as Error).message}); it starts with ${JSON.stringify(text.slice(0, 60))}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('header JSON must be an object');

  const metadata: Record<string, string> = {};
  const raw: RawEntry[] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) fail('"__metadata__" must be an object of strings');
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`"__metadata__" value for key "${k}" must be a string, got ${JSON.stringify(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(`entry "${name}" must be an object`);
    const { dtype, shape, data_offsets: offs } = value as Record<string, unknown>;
    if (typeof dtype !== 'string' || !(SAFETENSORS_DTYPES as readonly string[]).includes(dtype)) {
      fail(`tensor "${name}" has unsupported dtype ${JSON.stringify(dtype)} (supported: ${SAFETENSORS_DTYPES.join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) fail(`tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`);
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isNonNegInt)) {
      fail(`tensor "${name}" has invalid data_offsets ${JSON.stringify(offs)} (expected [begin, end])`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end) fail(`tensor "${name}" has data_offsets [${begin}, ${end}] with begin > end`);
    if (end > dataBytes) {
      fail(`tensor "${name}" has data_offsets [${begin}, ${end}] beyond the end of the data section (${dataBytes} bytes); file truncated?`);
    }
    const d = dtype as SafetensorsDtype;
    const want = numel(shape as number[]) * DTYPE_BYTES[d];
    if (end - begin !== want) {
      fail(`tensor "${name}": shape ${fmtShape(shape as number[])} with dtype ${d} needs ${want} bytes, but data_offsets [${begin}, ${end}] span ${end - begin}`);
    }
    raw.push({ name, dtype: d, shape: [...(shape as number[])], begin, end });
  }

  raw.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  let prev: string | null = null;
  for (const r of raw) {
    if (r.begin < pos) fail(`tensors "${prev}" and "${r.name}" overlap (data_offsets of "${r.name}" start at ${r.begin}, before ${pos})`);
    if (r.begin > pos) fail(`gap in the data section: bytes [${pos}, ${r.begin}) belong to no tensor (before "${r.name}")`);
    pos = r.end;
    prev = r.name;
  }
  if (pos !== dataBytes) {
    fail(`data section has ${dataBytes} bytes but the tensors cover only ${pos}; trailing bytes are not allowed`);
  }
  return { metadata, raw };
}

/**
 * Parses a safetensors file held in memory. Validates the header (JSON, dtypes, shapes, offsets within
 * the data section, byte sizes matching shapes, tensors tiling the data section without overlap or
 * gaps) and throws an Error starting with "safetensors:" that says what is wrong.
 * Entries are zero-copy views into `bytes`.
 */
export function readSafetensors(bytes: Uint8Array): SafetensorsFile {
  if (!(bytes instanceof Uint8Array)) fail('readSafetensors expects a Uint8Array');
  const n = headerLength(bytes, bytes.byteLength);
  const data = bytes.subarray(8 + n);
  const { metadata, raw } = parseHeader(bytes.subarray(8, 8 + n), data.byteLength);
  const entries = new Map<string, SafetensorsEntry>();
  for (const r of raw) entries.set(r.name, { dtype: r.dtype, shape: r.shape, bytes: data.subarray(r.begin, r.end) });
  return new ParsedSafetensors(metadata, entries);
}

/**
 * Opens a safetensors file lazily: only the header is read now; each entry's `bytes` are read from
 * disk when first accessed (and not cached), so names, dtypes and shapes cost nothing and a large
 * checkpoint is never held in memory whole. The file is opened per read, so nothing needs closing.
 * The header is validated as by readSafetensors (against the file's size).
 */
export function openSafetensorsFile(path: string): SafetensorsFile {
  try {
    const size = statSync(path).size;
    const fd = openSync(path, 'r');
    let n: number;
    let headerBytes: Uint8Array;
    try {
      const prefix = new Uint8Array(8);
      readSync(fd, prefix, 0, Math.min(8, size), 0);
      n = headerLength(prefix, size);
      headerBytes = new Uint8Array(n);
      readExactly(fd, headerBytes, 8, path);
    } finally {
      closeSync(fd);
    }
    const dataStart = 8 + n;
    const { metadata, raw } = parseHeader(headerBytes, size - dataStart);
    const entries = new Map<string, SafetensorsEntry>();
    for (const r of raw) {
      entries.set(r.name, {
        dtype: r.dtype,
        shape: r.shape,
        get bytes(): Uint8Array {
          const out = new Uint8Array(r.end - r.begin);
          const f = openSync(path, 'r');
          try {
            readExactly(f, out, dataStart + r.begin, path);
          } finally {
            closeSync(f);
          }
          return out;
        },
      });
    }
    return new ParsedSafetensors(metadata, entries);
  } catch (err) {
    const msg = (err as Error).message;
    throw new Error(msg.includes(path) ? msg : `${msg} (in ${path})`);
  }
}

function readExactly(fd: number, out: Uint8Array, position: number, path: string): void {
  let off = 0;
  while (off < out.byteLength) {
    const got = readSync(fd, out, off, out.byteLength - off, position + off);
    if (got <= 0) fail(`unexpected end of file reading ${out.byteLength} bytes at offset ${position} of ${path}`);
    off += got;
  }
}

/** Reads and parses a safetensors file from disk. */
export async function readSafetensorsFile(path: string): Promise<SafetensorsFile> {
  const buf = await readFile(path);
  try {
    return readSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
  } catch (err) {
    throw new Error(`${(err as Error).message} (in ${path})`);
  }
}

/** Synchronous variant of readSafetensorsFile. */
export function readSafetensorsFileSync(path: string): SafetensorsFile {
  const buf = readFileSync(path);
  try {
    return readSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
  } catch (err) {
    throw new Error(`${(err as Error).message} (in ${path})`);
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

export type TypedArray =
  | Float32Array | Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array | Uint16Array
  | Uint32Array | Uint8ClampedArray | BigInt64Array | BigUint64Array;

/** A tensor given as raw data; `data` holds element values (not bytes) in row-major order. */
export interface RawTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: TypedArray | ArrayLike<number>;
}

export type TensorSource = tf.Tensor | RawTensor;

export interface WriteSafetensorsOptions {
  metadata?: Record<string, string>;
  /**
   * Storage dtypes. A single dtype, or the key "*", is the default for floating-point tensors
   * (int and bool tensors keep I32/BOOL unless named). Other keys name individual tensors.
   * Without it: float32 -> F32, int32 -> I32, bool -> BOOL, raw tensors keep their own dtype.
   */
  dtypes?: SafetensorsDtype | Record<string, SafetensorsDtype>;
}

interface Prepared {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  bytes: Uint8Array;
}

const INT_RANGE: Partial<Record<SafetensorsDtype, [number, number]>> = {
  I32: [-2147483648, 2147483647],
  I16: [-32768, 32767],
  I8: [-128, 127],
  U8: [0, 255],
};

function encode(name: string, values: ArrayLike<number | bigint>, n: number, dtype: SafetensorsDtype): Uint8Array {
  const out = new Uint8Array(n * DTYPE_BYTES[dtype]);
  const dv = dataView(out);
  const num = (i: number): number => Number(values[i]!);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) dv.setFloat32(i * 4, num(i), true);
      break;
    case 'F64':
      for (let i = 0; i < n; i++) dv.setFloat64(i * 8, num(i), true);
      break;
    case 'F16':
      for (let i = 0; i < n; i++) dv.setUint16(i * 2, float32ToFloat16Bits(num(i)), true);
      break;
    case 'BF16':
      for (let i = 0; i < n; i++) dv.setUint16(i * 2, float32ToBFloat16Bits(num(i)), true);
      break;
    case 'BOOL':
      for (let i = 0; i < n; i++) out[i] = values[i] ? 1 : 0;
      break;
    case 'I64':
      for (let i = 0; i < n; i++) {
        const v = values[i]!;
        if (typeof v === 'bigint') {
          if (v > 9223372036854775807n || v < -9223372036854775808n) fail(`tensor "${name}": value ${v} does not fit I64`);
          dv.setBigInt64(i * 8, v, true);
        } else {
          if (!Number.isInteger(v)) fail(`tensor "${name}": value ${v} at flat index ${i} is not an integer; cannot store as I64`);
          dv.setBigInt64(i * 8, BigInt(v), true);
        }
      }
      break;
    default: {
      const [lo, hi] = INT_RANGE[dtype]!;
      for (let i = 0; i < n; i++) {
        const v = num(i);
        if (!Number.isInteger(v) || v < lo || v > hi) {
          fail(`tensor "${name}": value ${String(values[i])} at flat index ${i} cannot be stored as ${dtype} (integers in [${lo}, ${hi}])`);
        }
        if (dtype === 'I32') dv.setInt32(i * 4, v, true);
        else if (dtype === 'I16') dv.setInt16(i * 2, v, true);
        else if (dtype === 'I8') dv.setInt8(i, v);
        else dv.setUint8(i, v);
      }
    }
  }
  return out;
}

function prepare(name: string, src: TensorSource, opts: WriteSafetensorsOptions): Prepared {
  const dt = opts.dtypes;
  const named = typeof dt === 'object' ? dt[name] : undefined;
  const floatDefault = typeof dt === 'string' ? dt : typeof dt === 'object' ? dt['*'] : undefined;
  if (named !== undefined && !(SAFETENSORS_DTYPES as readonly string[]).includes(named)) fail(`unknown storage dtype ${named} for "${name}"`);
  if (floatDefault !== undefined && !(SAFETENSORS_DTYPES as readonly string[]).includes(floatDefault)) fail(`unknown default storage dtype ${floatDefault}`);

  let shape: number[];
  let values: ArrayLike<number | bigint>;
  let natural: SafetensorsDtype;
  let isFloat: boolean;
  if (src instanceof tf.Tensor) {
    if (src.isDisposed) fail(`tensor "${name}" is disposed`);
    shape = [...src.shape];
    if (src.dtype === 'float32') natural = 'F32';
    else if (src.dtype === 'int32') natural = 'I32';
    else if (src.dtype === 'bool') natural = 'BOOL';
    else return fail(`tensor "${name}" has tfjs dtype ${src.dtype}, which cannot be stored`);
    values = src.dataSync() as ArrayLike<number>;
    isFloat = natural === 'F32';
  } else if (src && typeof src === 'object' && 'data' in src && 'shape' in src) {
    if (!(SAFETENSORS_DTYPES as readonly string[]).includes(src.dtype)) fail(`tensor "${name}" has unknown dtype ${String(src.dtype)}`);
    if (!Array.isArray(src.shape) || !src.shape.every(isNonNegInt)) fail(`tensor "${name}" has an invalid shape ${JSON.stringify(src.shape)}`);
    shape = [...src.shape];
    natural = src.dtype;
    values = src.data as ArrayLike<number | bigint>;
    isFloat = isFloatDtype(natural);
  } else {
    return fail(`value for "${name}" is neither a tf.Tensor nor {dtype, shape, data}`);
  }
  const n = numel(shape);
  if (values.length !== n) fail(`tensor "${name}": shape ${fmtShape(shape)} needs ${n} values, got ${values.length}`);
  const dtype = named ?? (isFloat ? floatDefault : undefined) ?? natural;
  if (isFloat && !isFloatDtype(dtype) && named === undefined) {
    fail(`default storage dtype ${dtype} is not a float dtype (it applies to floating-point tensors)`);
  }
  return { name, dtype, shape, bytes: encode(name, values, n, dtype) };
}

/**
 * Serialises tensors to safetensors bytes. Output is deterministic: `__metadata__` first (when
 * given), then tensors sorted by name (UTF-16 code unit order), data in the same order, header
 * padded with spaces so the data section starts at a multiple of 8 bytes.
 */
export function writeSafetensors(tensors: Record<string, TensorSource>, opts: WriteSafetensorsOptions = {}): Uint8Array {
  const names = Object.keys(tensors).sort();
  if (names.includes('__metadata__')) fail('"__metadata__" is reserved and cannot be a tensor name');
  const prepared = names.map((name) => prepare(name, tensors[name]!, opts));
  const header: Record<string, unknown> = {};
  if (opts.metadata !== undefined) {
    const meta: Record<string, string> = {};
    for (const k of Object.keys(opts.metadata).sort()) {
      const v = opts.metadata[k];
      if (typeof v !== 'string') fail(`metadata value for "${k}" must be a string`);
      meta[k] = v;
    }
    header.__metadata__ = meta;
  }
  let offset = 0;
  for (const p of prepared) {
    header[p.name] = { dtype: p.dtype, shape: p.shape, data_offsets: [offset, offset + p.bytes.byteLength] };
    offset += p.bytes.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil((8 + json.byteLength) / 8) * 8 - 8;
  const out = new Uint8Array(8 + padded + offset);
  dataView(out).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + padded);
  let pos = 8 + padded;
  for (const p of prepared) {
    out.set(p.bytes, pos);
    pos += p.bytes.byteLength;
  }
  return out;
}

/** Serialises tensors (see writeSafetensors) and writes them atomically to `path`. */
export async function writeSafetensorsFile(
  path: string,
  tensors: Record<string, TensorSource>,
  opts: WriteSafetensorsOptions = {},
): Promise<void> {
  await writeFileAtomic(path, writeSafetensors(tensors, opts));
}
