// LLaVA-1.6's token layout: base tokens, then the tile grid row by row with image_newline after each row.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { assertGradients, assertNoLeak } from '@vlmix/core/testkit';
import { anyResGridShape, anyResLayout, anyResTokenCount } from '../src/index.js';

describe('anyres layout', () => {
  it('matches the loop layout (2 x 3 tiles of 2 x 2 patches); gradients by finite differences; size errors', () => {
    const [rows, cols, side, d] = [2, 3, 2, 3];
    const n = (1 + rows * cols) * side * side;
    const tok = tf.randomNormal([1, n, d], 0, 1, 'float32', 1);
    const nl = tf.randomNormal([d], 0, 1, 'float32', 2);
    const got = anyResLayout(tok, nl, [rows, cols], side).arraySync()[0]!;
    const t = (tok.arraySync() as number[][][])[0]!;
    const want: number[][] = t.slice(0, side * side);
    for (let y = 0; y < rows * side; y++) {
      for (let x = 0; x < cols * side; x++) {
        const tile = Math.floor(y / side) * cols + Math.floor(x / side);
        want.push(t[side * side * (1 + tile) + (y % side) * side + (x % side)]!);
      }
      want.push(nl.arraySync() as number[]);
    }
    expect(got.length).toBe(anyResTokenCount([rows, cols], side));
    got.forEach((row, i) => row.forEach((v, j) => expect(v).toBeCloseTo(want[i]![j]!, 6)));
    assertGradients((a, b) => anyResLayout(a!, b!, [rows, cols], side), [tok, nl], { label: 'anyres layout' });
    assertNoLeak(() => anyResLayout(tok, nl, [rows, cols], side));
    expect(() => anyResLayout(tf.zeros([1, 5, d]), nl, [rows, cols], side)).toThrow('anyres: 5 image tokens, expected 28 (base + 2x3 tiles of 2x2 patches)');
    tf.dispose([tok, nl]);
  });
});

describe('LLaVA-NeXT unpadding (HF unpad_image) with media.image_sizes', () => {
  it('keeps the rows or columns the image covers (hand-computed from unpad_image)', async () => {
    const { llavaNextUnpad } = await import('../src/index.js');
    // 8x8 grid: a tall 100x50 image fills 4 of 8 columns (scale 0.08, new_width 4, padding 2)
    expect(llavaNextUnpad(8, 8, [100, 50])).toEqual({ top: 0, height: 8, left: 2, width: 4 });
    // a wide 30x100 image: new_height int(round(2.4, 7)) = 2, padding (8 - 2) // 2 = 3
    expect(llavaNextUnpad(8, 8, [30, 100])).toEqual({ top: 3, height: 2, left: 0, width: 8 });
    expect(llavaNextUnpad(8, 8, [64, 64])).toEqual({ top: 0, height: 8, left: 0, width: 8 }); // square: nothing
    // a 2x1 (rows x cols) grid of a 336x700 image: current aspect 4/8; original 700/336 wider -> rows trimmed
    expect(llavaNextUnpad(8, 4, [336, 700])).toEqual({ top: 3, height: 2, left: 0, width: 4 });
    expect(anyResTokenCount([2, 2], 4, [100, 50])).toBe(16 + 8 * (4 + 1));
  });

  it('the layout crops each image\'s grid window, then the newlines; mixed token counts in a batch are packed', () => {
    const side = 2;
    const tokens = tf.tensor3d(Float32Array.from({ length: 2 * 5 * 4 * 3 }, (_, i) => i), [2, 20, 3]); // base + 2x2 tiles of 2x2
    const nl = tf.tensor1d([-1, -1, -1]);
    const full = anyResLayout(tokens, nl, [2, 2], side);
    const cut = anyResLayout(tokens, nl, [2, 2], side, [[40, 20], [80, 40]]); // both tall: keep columns 1..2 of 4
    expect(cut.shape).toEqual([2, 4 + 4 * (2 + 1), 3]);
    const rowsOf = (t: tf.Tensor, w: number) => (t.arraySync() as number[][][]).map((img) => img.slice(4)).map((g) => Array.from({ length: 4 }, (_, r) => g.slice(r * (w + 1), (r + 1) * (w + 1))));
    const f = rowsOf(full, 4);
    const c = rowsOf(cut, 2);
    for (let b = 0; b < 2; b++) for (let r = 0; r < 4; r++) expect(c[b]![r]).toEqual([...f[b]![r]!.slice(1, 3), [-1, -1, -1]]);
    // a tall and a wide image: 4 + 4 x 3 and 4 + 2 x 5 tokens, packed in order
    const mixed = anyResLayout(tokens, nl, [2, 2], side, [[40, 20], [20, 40]]);
    expect(mixed.shape).toEqual([1, 16 + 14, 3]);
    const one = (i: number, size: [number, number]) => anyResLayout(tf.slice(tokens, [i, 0, 0], [1, 20, 3]), nl, [2, 2], side, [size]).arraySync()[0]!;
    expect(mixed.arraySync()[0]).toEqual([...one(0, [40, 20]), ...one(1, [20, 40])]);
  });

  it('per-image grids (pinpoints): each image laid out on its own grid; padding tiles ignored', () => {
    const side = 2;
    const d = 3;
    // image 0: 1x2 grid (base + 2 tiles), image 1: 2x1 grid; both padded to M = 4 crops
    const tokens = tf.tensor3d(Float32Array.from({ length: 2 * 4 * 4 * d }, (_, i) => i), [2, 16, d]);
    const nl = tf.tensor1d([-1, -1, -1]);
    const got = anyResLayout(tokens, nl, [[1, 2], [2, 1]], side);
    expect(got.shape).toEqual([1, (4 + 2 * 5) + (4 + 4 * 3), d]);
    const t = tokens.arraySync();
    const tile = (i: number, k: number, y: number, x: number) => t[i]![(1 + k) * 4 + y * side + x]!;
    const exp0 = [...t[0]!.slice(0, 4)];
    for (let y = 0; y < 2; y++) exp0.push(tile(0, 0, y, 0), tile(0, 0, y, 1), tile(0, 1, y, 0), tile(0, 1, y, 1), [-1, -1, -1]);
    const exp1 = [...t[1]!.slice(0, 4)];
    for (let k = 0; k < 2; k++) for (let y = 0; y < 2; y++) exp1.push(tile(1, k, y, 0), tile(1, k, y, 1), [-1, -1, -1]);
    expect(got.arraySync()[0]).toEqual([...exp0, ...exp1]);
    // the per-image layout (packed output, unpadding per image) is differentiable and leaks nothing
    const small = tf.randomNormal([2, 16, d], 0, 1, 'float32', 3);
    assertGradients((a, b) => anyResLayout(a!, b!, [[1, 2], [2, 1]], side, [[20, 40], [40, 20]]), [small, nl], { label: 'anyres per-image layout' });
    assertNoLeak(() => anyResLayout(small, nl, [[1, 2], [2, 1]], side, [[20, 40], [40, 20]]));
    expect(() => anyResLayout(tf.zeros([2, 8, d]), nl, [[1, 2], [2, 1]], side)).toThrow('anyres: 8 image tokens for image 0, expected at least 12 (base + 1x2 tiles of 2x2 patches)');
    expect(anyResGridShape([20, 40], [[32, 64], [64, 32], [64, 64]], 32)).toEqual([1, 2]);
    expect(anyResGridShape([300, 100], [[32, 64], [64, 32], [64, 64], [96, 32]], 32)).toEqual([3, 1]);
  });
});
