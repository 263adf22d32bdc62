// float32 <-> float16 / bfloat16 bit conversions (round-to-nearest-even, IEEE specials preserved).

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Bits of the float32 nearest to `x` (x is first rounded to float32). */
export function float32Bits(x: number): number {
  f32[0] = x;
  return u32[0]!;
}

export function float32FromBits(bits: number): number {
  u32[0] = bits >>> 0;
  return f32[0]!;
}

/**
 * float32 -> IEEE binary16 bits, round-to-nearest-even. Overflow gives ±Inf, tiny values give
 * (signed) subnormals or ±0, NaN gives a quiet NaN with the input's sign (0x7E00 / 0xFE00, as torch).
 */
export function float32ToFloat16Bits(x: number): number {
  const u = float32Bits(x);
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const mant = u & 0x7fffff;
  if (exp === 0xff) return sign | (mant !== 0 ? 0x7e00 : 0x7c00);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e; // 14..24
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h += 1;
    return sign | h; // a carry into bit 10 correctly yields the smallest normal
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h += 1; // carry may reach Inf: correct
  return sign | h;
}

/** IEEE binary16 bits -> number (exact). */
export function float16BitsToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant !== 0 ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/**
 * float32 -> bfloat16 bits, round-to-nearest-even. Overflow rounds to ±Inf as RNE dictates;
 * NaN keeps its sign and top payload bits and is forced quiet (0x7FC0 for the canonical NaN).
 */
export function float32ToBFloat16Bits(x: number): number {
  const u = float32Bits(x);
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x7fffff) !== 0) return ((u >>> 16) | 0x0040) & 0xffff;
  const lsb = (u >>> 16) & 1;
  return ((u + 0x7fff + lsb) >>> 16) & 0xffff;
}

export function bfloat16BitsToFloat32(b: number): number {
  return float32FromBits((b & 0xffff) << 16);
}
