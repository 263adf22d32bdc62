// LLaVA-1.6's token layout: base tokens, then the tile grid row by row with image_newline after each row.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { assertGradients, assertNoLeak } from '@vlmix/core/testkit';
import { anyResLayout, anyResTokenCount } from '../src/index.js';

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
