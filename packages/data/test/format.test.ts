import { describe, expect, it } from 'vitest';
import { collate, formatQA } from '../src/format.js';
import { ByteTokenizer } from '../src/tokenizer.js';

const tok = new ByteTokenizer();
const enc = (s: string) => tok.encode(s);
const S = tok.special as Record<string, number>;

describe('formatQA', () => {
  it('lays out bos, image block, prompt, answer, eos with labels only on the answer', () => {
    const f = formatQA(tok, { question: 'q?', answer: 'red' }, { imageTokens: 3 });
    const prompt = [S['<bos>']!, S['<boi>']!, S['<image>']!, S['<image>']!, S['<image>']!, S['<eoi>']!, ...enc('Question: q? Answer:')];
    const answer = [...enc(' red'), S['<eos>']!];
    expect(f.ids).toEqual([...prompt, ...answer]);
    expect(f.labels).toEqual([...prompt.map(() => -1), ...answer]);
    expect(f.imagePositions).toEqual([2, 3, 4]);
  });
  it('a multi-turn conversation is one sequence: image once, the loss on every answer, promptLength before the last', () => {
    const f = formatQA(tok, { question: 'and now?', answer: 'blue', history: [{ question: 'q?', answer: 'red' }] }, { imageTokens: 2 });
    const turn1 = [S['<bos>']!, S['<boi>']!, S['<image>']!, S['<image>']!, S['<eoi>']!, ...enc('Question: q? Answer:')];
    const ans1 = [...enc(' red'), S['<eos>']!];
    const turn2 = enc('Question: and now? Answer:');
    const ans2 = [...enc(' blue'), S['<eos>']!];
    expect(f.ids).toEqual([...turn1, ...ans1, ...turn2, ...ans2]);
    expect(f.labels).toEqual([...turn1.map(() => -1), ...ans1, ...turn2.map(() => -1), ...ans2]);
    expect(f.imagePositions).toEqual([2, 3]);
    expect(f.promptLength).toBe(turn1.length + ans1.length + turn2.length);
    expect(() => formatQA(tok, { question: 'x', answer: 'y', history: [{ question: 'q', answer: 'a <eos>' }] }, { imageTokens: 0 }))
      .toThrow('formatQA: answer (history[0]) contains the special token literal "<eos>"');
    // without history: the single-turn layout, unchanged
    const one = formatQA(tok, { question: 'q?', answer: 'red' }, { imageTokens: 2 });
    expect(one.ids).toEqual([...turn1, ...ans1]);
    expect(one.promptLength).toBe(turn1.length);
  });
  it('custom template, no image, no bos', () => {
    const f = formatQA(tok, { question: 'hi', answer: 'yo' }, { imageTokens: 0, bos: false, template: { prompt: 'U: {question}\nA:', answer: '{answer}' } });
    expect(f.ids).toEqual([...enc('U: hi\nA:'), ...enc('yo'), S['<eos>']!]);
    expect(f.imagePositions).toEqual([]);
    expect(f.labels.filter((l) => l !== -1)).toEqual([...enc('yo'), S['<eos>']!]);
  });
  it('does not interpret $-patterns or specials in user text', () => {
    const f = formatQA(tok, { question: "$& $' x", answer: 'a' }, { imageTokens: 1 });
    expect(tok.decode(f.ids)).toContain("Question: $& $' x Answer:");
    expect(() => formatQA(tok, { question: 'look <image> here', answer: 'a' }, { imageTokens: 1 })).toThrow(
      'formatQA: question contains the special token literal "<image>"',
    );
  });
  it('argument errors', () => {
    expect(() => formatQA(tok, { question: 'q', answer: 'a' }, { imageTokens: -1 })).toThrow('formatQA: imageTokens must be a non-negative integer, got -1');
    expect(() => formatQA(tok, { question: 'q', answer: 'a' }, { imageTokens: 2, template: { prompt: '{question}', answer: '{answer}' } })).toThrow(
      'formatQA: imageTokens is 2 but template.prompt has no "{image}" slot: "{question}"',
    );
  });
});

describe('collate', () => {
  const a = formatQA(tok, { question: 'a', answer: 'x' }, { imageTokens: 2 });
  const b = formatQA(tok, { question: 'longer question', answer: 'yes' }, { imageTokens: 2 });
  it('right-pads ids with padId, labels with -1, and masks padding', () => {
    const pad = S['<pad>']!;
    const batch = collate([a, b], { padId: pad });
    const L = b.ids.length;
    expect([batch.batch, batch.seqLen]).toEqual([2, L]);
    expect(Array.from(batch.ids.subarray(0, L))).toEqual([...a.ids, ...Array(L - a.ids.length).fill(pad)]);
    expect(Array.from(batch.ids.subarray(L))).toEqual(b.ids);
    expect(Array.from(batch.labels.subarray(0, L))).toEqual([...a.labels, ...Array(L - a.ids.length).fill(-1)]);
    expect(Array.from(batch.attentionMask.subarray(0, L))).toEqual([...Array(a.ids.length).fill(1), ...Array(L - a.ids.length).fill(0)]);
    expect(Array.from(batch.attentionMask.subarray(L)).every((m) => m === 1)).toBe(true);
    expect(batch.imagePositions).toEqual([a.imagePositions, b.imagePositions]);
    expect(batch.ids).toBeInstanceOf(Int32Array);
  });
  it('padToMaxLen gives fixed shapes', () => {
    expect(collate([a], { padId: 0, maxLen: 64, padToMaxLen: true }).seqLen).toBe(64);
  });
  it('errors name the example, its length and the limit', () => {
    expect(() => collate([a, b], { padId: 0, maxLen: a.ids.length })).toThrow(`collate: example 1 has ${b.ids.length} tokens, exceeding maxLen ${a.ids.length}`);
    expect(() => collate([], { padId: 0 })).toThrow('collate: examples must not be empty');
    expect(() => collate([{ ids: [1, 2], labels: [1], imagePositions: [] }], { padId: 0 })).toThrow('collate: example 0 has 2 ids but 1 labels');
  });
});
