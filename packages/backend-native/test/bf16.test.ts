// bf16 matmul precision (AVX512-BF16): every blocked GEMM rounds its operands to bf16 (nearest even) and sums
// in fp32. Checked against a float64 reference of the bf16-rounded operands, on shapes that cross the K
// blocking (an odd last block), with transposes, batched, and through a linear layer's gradient.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { matmulPrecision, nativeInfo, registerNativeBackend, setMatmulPrecision } from '../src/index.js';

const info = nativeInfo();
const skip = !info.available ? `addon not built (${info.reason})` : !info.bf16Supported ? `this CPU has no AVX512-BF16 (gemm ${info.gemm})` : '';

/** float32 -> bf16 -> float32, nearest even (as the kernel packs). */
function bf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  u[0] = ((u[0]! + 0x7fff + ((u[0]! >>> 16) & 1)) >>> 16) << 16;
  return f[0]!;
}

/** C = op(A) op(B) with bf16-rounded operands, summed in float64. */
function reference(a: Float32Array, b: Float32Array, m: number, n: number, k: number, ta: boolean, tb: boolean): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += bf16(ta ? a[p * m + i]! : a[i * k + p]!) * bf16(tb ? b[j * k + p]! : b[p * n + j]!);
      c[i * n + j] = s;
    }
  }
  return c;
}

describe.skipIf(!!skip)(`bf16 matmuls${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let before = '';
  beforeAll(async () => {
    registerNativeBackend();
    before = tf.getBackend();
    await tf.setBackend('vlmix-cpu');
  });
  afterAll(async () => {
    setMatmulPrecision('fp32');
    await tf.setBackend(before);
  });

  for (const [m, n, k, ta, tb] of [[67, 45, 131, false, false], [40, 70, 513, true, false], [33, 64, 96, false, true], [128, 96, 600, true, true]] as const) {
    it(`${m}x${k} @ ${k}x${n} (transA ${ta}, transB ${tb}): bf16 operands, fp32 sums`, () => {
      const a = tf.randomNormal(ta ? [k, m] : [m, k], 0, 1, 'float32', m);
      const b = tf.randomNormal(tb ? [n, k] : [k, n], 0, 1, 'float32', n);
      const want = reference(a.dataSync() as Float32Array, b.dataSync() as Float32Array, m, n, k, ta, tb);
      const fp32 = tf.matMul(a, b, ta, tb);
      setMatmulPrecision('bf16');
      expect(matmulPrecision()).toBe('bf16');
      const got = tf.matMul(a, b, ta, tb);
      setMatmulPrecision('fp32');
      const g = got.dataSync();
      const f = fp32.dataSync();
      let err = 0;
      let fromFp32 = 0;
      for (let i = 0; i < g.length; i++) {
        err = Math.max(err, Math.abs(g[i]! - want[i]!));
        fromFp32 = Math.max(fromFp32, Math.abs(g[i]! - f[i]!));
      }
      // fp32 summation of k exact bf16 products: a few ulps of sqrt(k)-sized sums
      expect(err).toBeLessThan(1e-5 * Math.sqrt(k) * 4);
      // and it is really bf16: operands lose 16 mantissa bits
      expect(fromFp32).toBeGreaterThan(1e-3);
      tf.dispose([a, b, fp32, got]);
    });
  }

  it('batched matmul and a linear layer\'s gradients run through it too', () => {
    const a = tf.randomNormal([3, 33, 70], 0, 1, 'float32', 1);
    const b = tf.randomNormal([3, 70, 50], 0, 1, 'float32', 2);
    setMatmulPrecision('bf16');
    const got = tf.matMul(a, b).dataSync();
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.matMul(x, b)))(a);
    setMatmulPrecision('fp32');
    const ad = a.dataSync() as Float32Array;
    const bd = b.dataSync() as Float32Array;
    for (let i = 0; i < 3; i++) {
      const want = reference(ad.subarray(i * 33 * 70, (i + 1) * 33 * 70), bd.subarray(i * 70 * 50, (i + 1) * 70 * 50), 33, 50, 70, false, false);
      for (let j = 0; j < want.length; j++) expect(Math.abs(got[i * 33 * 50 + j]! - want[j]!)).toBeLessThan(1e-4);
    }
    // d sum(x b) / dx = ones @ b^T: a GEMM with bf16 operands (ones are exact in bf16)
    const gd = g.dataSync();
    for (let i = 0; i < 3; i++) {
      for (let r = 0; r < 70; r++) {
        let s = 0;
        for (let c = 0; c < 50; c++) s += bf16(bd[i * 3500 + r * 50 + c]!);
        expect(Math.abs(gd[i * 33 * 70 + 5 * 70 + r]! - s)).toBeLessThan(1e-4);
      }
    }
    tf.dispose([a, b, g]);
  });

  it('errors: an unknown precision', () => {
    expect(() => setMatmulPrecision('fp16' as 'bf16')).toThrow(`setMatmulPrecision: expected 'fp32' or 'bf16', got "fp16"`);
  });
});
