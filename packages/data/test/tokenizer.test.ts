import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import { BpeTokenizer, pretokenize } from '../src/bpe.js';
import { ByteTokenizer, DEFAULT_SPECIAL_TOKENS, specialId } from '../src/tokenizer.js';
import { tokenizerFromJSON } from '../src/tokenizer-json.js';
import { makeShapesDataset } from '../src/synthetic.js';

/** Random well-formed strings mixing ASCII, accents, CJK, emoji (astral), whitespace and special-token look-alikes. */
function randomStrings(seed: string, n: number): string[] {
  const rng = seedrandom(seed);
  const pools = [
    () => String.fromCodePoint(32 + Math.floor(rng() * 95)),
    () => String.fromCodePoint(0xa0 + Math.floor(rng() * 0x300)),
    () => String.fromCodePoint(0x4e00 + Math.floor(rng() * 0x5000)),
    () => String.fromCodePoint(0x1f300 + Math.floor(rng() * 0x300)),
    () => [' ', '  ', '\n', '\t', '\r\n'][Math.floor(rng() * 5)]!,
    () => ['<image>', '<ima', 'ge>', '<eos>', "'s", '123', '<<bos>>'][Math.floor(rng() * 7)]!,
    () => {
      // Any scalar value except surrogates.
      let cp = Math.floor(rng() * 0x110000);
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x20;
      return String.fromCodePoint(cp);
    },
  ];
  return Array.from({ length: n }, () => {
    let s = '';
    const len = Math.floor(rng() * 40);
    for (let i = 0; i < len; i++) s += pools[Math.floor(rng() * pools.length)]!();
    return s;
  });
}

const corpus = (() => {
  const d = makeShapesDataset({ seed: 5, train: 300, heldOut: 0 });
  return [
    ...d.train.map((s) => `<image> ${s.question} ${s.answer}`),
    'The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs!',
    "It's a red circle, isn't it? There're 3 shapes: 1 square and 2 triangles.",
  ];
})();
const bpe = BpeTokenizer.train(corpus, { vocabSize: 340, specialTokens: ['<sep>'] });

describe('ByteTokenizer', () => {
  const tok = new ByteTokenizer({ specialTokens: ['<sep>'] });
  it('layout: bytes 0-255 then specials', () => {
    expect(tok.vocabSize).toBe(256 + 7);
    expect(tok.special).toEqual({ '<pad>': 256, '<bos>': 257, '<eos>': 258, '<image>': 259, '<boi>': 260, '<eoi>': 261, '<sep>': 262 });
    expect(tok.encode('Aé')).toEqual([65, 0xc3, 0xa9]);
  });
  it('special tokens are atomic and matched literally', () => {
    expect(tok.encode('a<image><sep>b')).toEqual([97, 259, 262, 98]);
    expect(tok.encode('<imag')).toEqual([...new TextEncoder().encode('<imag')]);
  });
  it('round-trips random unicode', () => {
    for (const s of randomStrings('byte', 300)) expect(tok.decode(tok.encode(s))).toBe(s);
  });
  it('JSON round trip and decode errors', () => {
    const back = tokenizerFromJSON(JSON.parse(JSON.stringify(tok)));
    expect(back).toBeInstanceOf(ByteTokenizer);
    expect(back.special).toEqual(tok.special);
    expect(() => tok.decode([65, 263])).toThrow('ByteTokenizer.decode: ids[1] = 263 is not a token id in [0, 263)');
    expect(() => ByteTokenizer.fromJSON({ type: 'byte', specialTokens: ['<bos>', '<pad>'] })).toThrow(
      'ByteTokenizer.fromJSON: specialTokens must start with the defaults',
    );
  });
});

describe('BpeTokenizer', () => {
  it('pretokenize covers the text exactly and splits GPT-2 style', () => {
    expect(pretokenize("Hello, world! It's  2 cats")).toEqual(['Hello', ',', ' world', '!', ' It', "'s", ' ', ' 2', ' cats']);
    for (const s of randomStrings('pre', 100)) expect(pretokenize(s).join('')).toBe(s);
  });
  it('learns merges up to vocabSize and they shorten the training corpus', () => {
    expect(bpe.vocabSize).toBe(340);
    expect(bpe.merges.length).toBe(340 - 256 - 7);
    const bytes = new ByteTokenizer();
    const text = corpus.join('\n');
    const nBpe = bpe.encode(text).length;
    const nByte = bytes.encode(text).length;
    expect(nBpe).toBeLessThan(nByte * 0.4);
    // Frequent words become single tokens.
    expect(bpe.encode(' shape')).toHaveLength(1);
    expect(bpe.decode(bpe.encode(' shape'))).toBe(' shape');
  });
  it('round-trips random unicode (including emoji and text never seen in training)', () => {
    for (const s of randomStrings('bpe', 500)) expect(bpe.decode(bpe.encode(s))).toBe(s);
    const unseen = 'Zürich 🦀🏳️‍🌈 日本語のテキスト\u0000\uFEFF';
    expect(bpe.decode(bpe.encode(unseen))).toBe(unseen);
  });
  it('special tokens are atomic, never produced by merges, and literal in text', () => {
    const ids = bpe.encode('<image>what color<eos><sep>');
    expect(ids[0]).toBe(bpe.special['<image>']);
    expect(ids.slice(-2)).toEqual([bpe.special['<eos>'], bpe.special['<sep>']]);
    expect(bpe.special).toMatchObject({ '<pad>': 256, '<image>': 259, '<sep>': 262 });
    for (const [a, b] of bpe.merges) for (const x of [a, b]) expect(x < 256 || x >= 263).toBe(true);
    // Text that merely resembles a special token is ordinary bytes.
    const near = bpe.encode('<imag e>');
    expect(near.some((i) => i >= 256 && i < 263)).toBe(false);
  });
  it('is deterministic (and seed does not change the result)', () => {
    const a = BpeTokenizer.train(corpus, { vocabSize: 350 });
    const b = BpeTokenizer.train([...corpus], { vocabSize: 350, seed: 99 });
    expect(JSON.stringify(a.toJSON())).toBe(JSON.stringify(b.toJSON()));
  });
  it('incremental training matches a naive recount-everything reference', () => {
    const docs = randomStrings('naive', 60).map((s, i) => s + ' the cat sat on the mat ' + (i % 7) + ' mat the');
    const fast = BpeTokenizer.train(docs, { vocabSize: 262 + 60 });
    // Reference: recount all pairs every step; ties → smallest (left, right).
    const words = new Map<string, number>();
    for (const d of docs) for (const seg of d.split(/<pad>|<bos>|<eos>|<image>|<boi>|<eoi>/)) for (const p of pretokenize(seg)) words.set(p, (words.get(p) ?? 0) + 1);
    let ws = [...words].map(([w, c]) => ({ ids: [...new TextEncoder().encode(w)], c }));
    const merges: [number, number][] = [];
    for (let id = 262; id < 262 + 60; id++) {
      const counts = new Map<string, number>();
      for (const w of ws) for (let i = 0; i + 1 < w.ids.length; i++) {
        const k = w.ids[i] + ',' + w.ids[i + 1];
        counts.set(k, (counts.get(k) ?? 0) + w.c);
      }
      let best: [number, number] | undefined;
      let bestC = 1;
      for (const [k, c] of counts) {
        const [a, b] = k.split(',').map(Number) as [number, number];
        if (c > bestC || (c === bestC && best && (a < best[0] || (a === best[0] && b < best[1])))) { best = [a, b]; bestC = c; }
      }
      if (!best) break;
      merges.push(best);
      ws = ws.map((w) => {
        const out: number[] = [];
        for (let i = 0; i < w.ids.length; i++) {
          if (i + 1 < w.ids.length && w.ids[i] === best![0] && w.ids[i + 1] === best![1]) { out.push(id); i++; } else out.push(w.ids[i]!);
        }
        return { ids: out, c: w.c };
      });
    }
    expect(fast.merges).toEqual(merges);
  });
  it('stops early when no pair is frequent enough', () => {
    const t = BpeTokenizer.train(['ab ab', 'cd'], { vocabSize: 1000 });
    expect(t.merges).toEqual([[97, 98]]);
    expect(t.vocabSize).toBe(256 + 6 + 1);
    expect(t.encode('ab')).toEqual([262]);
  });
  it('toJSON/fromJSON round trip gives identical encodings', () => {
    const back = tokenizerFromJSON(JSON.parse(JSON.stringify(bpe.toJSON())));
    expect(back).toBeInstanceOf(BpeTokenizer);
    for (const s of [...corpus.slice(0, 20), ...randomStrings('json', 50)]) expect(back.encode(s)).toEqual(bpe.encode(s));
  });
  it('errors name the argument, expected and actual', () => {
    expect(() => BpeTokenizer.train(corpus, { vocabSize: 100 })).toThrow(
      'BpeTokenizer.train: vocabSize must be an integer ≥ 262 (256 bytes + 6 special tokens), got 100',
    );
    expect(() => BpeTokenizer.fromJSON({ type: 'bpe', version: 1, specialTokens: [...DEFAULT_SPECIAL_TOKENS], merges: [[300, 1]] })).toThrow(
      'BpeTokenizer: merges[0] left id 300 must be a byte (0-255) or an earlier merge (262..261)',
    );
    expect(() => BpeTokenizer.fromJSON({ type: 'byte' })).toThrow('BpeTokenizer.fromJSON: expected {type: "bpe"}, got type "byte"');
    expect(() => tokenizerFromJSON({ type: 'wordpiece' })).toThrow('tokenizerFromJSON: unknown tokenizer type "wordpiece" (expected "byte" or "bpe")');
    expect(() => bpe.decode([-1])).toThrow('BpeTokenizer.decode: ids[0] = -1 is not a token id in [0, 340)');
    expect(() => specialId(bpe, '<mask>')).toThrow('tokenizer has no special token "<mask>" (has: <pad>, <bos>, <eos>, <image>, <boi>, <eoi>, <sep>)');
  });
});
