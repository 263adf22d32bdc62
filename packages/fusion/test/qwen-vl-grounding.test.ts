// Qwen-VL's grounding markup: <ref>/<box> are special tokens of the qwen-vl preset, allowed in questions and
// answers and encoded as their ids; boxes are normalised to [0, 1000) as Qwen-VL writes them; other special
// literals in text stay refused.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { encodeWithSpecials, formatQA, makeImage, specialId } from '@vlmix/data';
import { createVlm, qwenVlBox, qwenVlRef } from '../src/index.js';

describe('qwen-vl grounding tokens', () => {
  it('qwenVlBox normalises to [0, 1000) integers; qwenVlRef wraps', () => {
    expect(qwenVlBox([8, 4, 24, 32], 32, 32)).toBe('<box>(250,125),(750,999)</box>');
    expect(qwenVlBox([0, 0, 320, 240], 640, 480)).toBe('<box>(0,0),(500,500)</box>');
    expect(qwenVlRef('the red circle')).toBe('<ref>the red circle</ref>');
    expect(() => qwenVlBox([5, 0, 1, 1], 10, 10)).toThrow(/expected x1 <= x2 and y1 <= y2, got \[5, 0, 1, 1\]/);
  });

  it('the preset encodes the markup as special ids in answers (loss on them) and round-trips through decode', () => {
    const vlm = createVlm('qwen-vl');
    const tok = vlm.tokenizer;
    const answer = `${qwenVlRef('circle')}${qwenVlBox([8, 8, 16, 16], 32, 32)}`;
    const ids = encodeWithSpecials(tok, answer, ['<ref>', '</ref>', '<box>', '</box>']);
    for (const t of ['<ref>', '</ref>', '<box>', '</box>']) expect(ids).toContain(specialId(tok, t));
    expect(tok.decode(ids)).toBe(answer);
    const b = vlm.encode([{ image: makeImage(32, 32, [200, 30, 30]), question: `where is the ${qwenVlRef('circle')}?`, answer }]);
    const row = b.ids[0]!;
    expect(row.filter((t) => t === specialId(tok, '<box>'))).toHaveLength(1);
    expect(row.filter((t) => t === specialId(tok, '<ref>'))).toHaveLength(2); // question and answer
    tf.dispose(b.tensors);
    // without textSpecials the same literal is refused, naming it; <eos> in text is refused even with them
    expect(() => formatQA(tok, { question: 'q', answer }, { imageTokens: 0 })).toThrow(/answer contains the special token literal "<ref>"/);
    expect(() => formatQA(tok, { question: 'q', answer: 'a<eos>' }, { imageTokens: 0, textSpecials: ['<ref>'] })).toThrow(/"<eos>"/);
    expect(() => formatQA(tok, { question: 'q', answer: 'a' }, { imageTokens: 0, textSpecials: ['<nope>'] })).toThrow(/no special token "<nope>"/);
    vlm.dispose();
  });
});

