// Byte-level BPE (GPT-2 style). ids: 0..255 raw bytes, then the special tokens, then one id per
// learned merge. Working on bytes (not characters) means any UTF-8 string — emoji, scripts
// never seen in training — encodes losslessly; merges only make common byte runs shorter.
import {
  DEFAULT_SPECIAL_TOKENS as DEFAULT_SPECIAL_NAMES,
  checkIds,
  decodeUtf8,
  encodeUtf8,
  resolveSpecialTokens,
  splitOnSpecial,
  type Tokenizer,
} from './tokenizer.js';

/** GPT-2's pre-tokenizer: merges never cross these boundaries (words, numbers, punctuation, spaces). */
const PRETOKENIZE = /'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Pre-token pieces covering `text` exactly (gaps, if the regex ever skipped any, are kept). */
export function pretokenize(text: string): string[] {
  const out: string[] = [];
  let last = 0;
  for (const m of text.matchAll(PRETOKENIZE)) {
    if (m.index! > last) out.push(text.slice(last, m.index));
    out.push(m[0]);
    last = m.index! + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

const DEFAULT_COUNT = DEFAULT_SPECIAL_NAMES.length;

export interface BpeTrainOptions {
  /** Total vocabulary: 256 bytes + special tokens + merges. Training stops early if pairs run out. */
  vocabSize: number;
  /** Extra special tokens, appended after the defaults (<pad> <bos> <eos> <image> <boi> <eoi>). */
  specialTokens?: readonly string[];
  /**
   * Accepted for API symmetry with the other seeded builders. Training has no randomness
   * (ties between equally frequent pairs go to the smallest (left id, right id)), so the
   * result is identical for every seed.
   */
  seed?: string | number;
  /** Pairs seen fewer times than this are never merged (default 2). */
  minFrequency?: number;
}

const MAX_ID = 1 << 20; // pair keys pack two ids into one float-safe number
const pairKey = (a: number, b: number) => a * MAX_ID + b;

/** Binary max-heap on (count desc, left id asc, right id asc) with lazy deletion. */
class PairHeap {
  private items: { count: number; key: number }[] = [];
  private before(x: { count: number; key: number }, y: { count: number; key: number }): boolean {
    return x.count > y.count || (x.count === y.count && x.key < y.key);
  }
  push(count: number, key: number): void {
    const a = this.items;
    a.push({ count, key });
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): { count: number; key: number } | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.before(a[l]!, a[m]!)) m = l;
        if (r < a.length && this.before(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

export class BpeTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly special: Record<string, number>;
  readonly specialTokens: readonly string[];
  /** merges[i] = [left, right] produces id firstMergeId + i. */
  readonly merges: readonly (readonly [number, number])[];
  readonly firstMergeId: number;
  private readonly ranks = new Map<number, number>();
  private readonly bytesOf: Uint8Array[] = [];
  private readonly cache = new Map<string, number[]>();

  constructor(merges: readonly (readonly [number, number])[], specialTokens: readonly string[] = []) {
    this.specialTokens = resolveSpecialTokens(specialTokens, 'BpeTokenizer specialTokens');
    this.special = Object.fromEntries(this.specialTokens.map((t, i) => [t, 256 + i]));
    this.firstMergeId = 256 + this.specialTokens.length;
    this.vocabSize = this.firstMergeId + merges.length;
    if (this.vocabSize > MAX_ID) throw new RangeError(`BpeTokenizer: vocabSize ${this.vocabSize} exceeds ${MAX_ID}`);
    for (let i = 0; i < 256; i++) this.bytesOf.push(Uint8Array.of(i));
    for (const t of this.specialTokens) this.bytesOf.push(encodeUtf8(t));
    merges.forEach(([a, b], i) => {
      const id = this.firstMergeId + i;
      for (const [side, x] of [['left', a], ['right', b]] as const) {
        const ok = Number.isInteger(x) && x >= 0 && x < id && (x < 256 || x >= this.firstMergeId);
        if (!ok) {
          throw new RangeError(
            `BpeTokenizer: merges[${i}] ${side} id ${x} must be a byte (0-255) or an earlier merge (${this.firstMergeId}..${id - 1})`,
          );
        }
      }
      const joined = new Uint8Array(this.bytesOf[a]!.length + this.bytesOf[b]!.length);
      joined.set(this.bytesOf[a]!);
      joined.set(this.bytesOf[b]!, this.bytesOf[a]!.length);
      this.bytesOf.push(joined);
      this.ranks.set(pairKey(a, b), i);
    });
    this.merges = merges.map(([a, b]) => [a, b] as const);
  }

  /** Learns merges from `corpus` (special-token literals in the corpus are excluded from training). */
  static train(corpus: readonly string[], opts: BpeTrainOptions): BpeTokenizer {
    const specials = resolveSpecialTokens(opts.specialTokens, 'BpeTokenizer.train specialTokens');
    const minVocab = 256 + specials.length;
    if (!Number.isInteger(opts.vocabSize) || opts.vocabSize < minVocab) {
      throw new RangeError(
        `BpeTokenizer.train: vocabSize must be an integer ≥ ${minVocab} (256 bytes + ${specials.length} special tokens), got ${opts.vocabSize}`,
      );
    }
    const minFreq = opts.minFrequency ?? 2;
    const specialMap = Object.fromEntries(specials.map((t, i) => [t, 256 + i]));

    // 1. Unique pre-token "words" with frequencies.
    const freq = new Map<string, number>();
    for (const doc of corpus) {
      if (typeof doc !== 'string') throw new TypeError(`BpeTokenizer.train: corpus entries must be strings, got ${typeof doc}`);
      for (const seg of splitOnSpecial(doc, specialMap)) {
        if ('id' in seg) continue;
        for (const p of pretokenize(seg.text)) freq.set(p, (freq.get(p) ?? 0) + 1);
      }
    }
    const words: number[][] = [];
    const counts: number[] = [];
    for (const [w, c] of freq) {
      words.push(Array.from(encodeUtf8(w)));
      counts.push(c);
    }

    // 2. Pair statistics, kept up to date incrementally as merges rewrite words.
    const pairCount = new Map<number, number>();
    const where = new Map<number, Set<number>>();
    const touched = new Set<number>();
    const account = (wi: number, sign: 1 | -1) => {
      const w = words[wi]!;
      for (let i = 0; i + 1 < w.length; i++) {
        const k = pairKey(w[i]!, w[i + 1]!);
        pairCount.set(k, (pairCount.get(k) ?? 0) + sign * counts[wi]!);
        touched.add(k);
        if (sign > 0) {
          let s = where.get(k);
          if (!s) where.set(k, (s = new Set()));
          s.add(wi);
        }
      }
    };
    for (let wi = 0; wi < words.length; wi++) account(wi, 1);
    const heap = new PairHeap();
    for (const [k, c] of pairCount) heap.push(c, k);
    touched.clear();

    // 3. Greedy merges: most frequent pair first.
    const merges: [number, number][] = [];
    const firstMergeId = minVocab;
    while (firstMergeId + merges.length < opts.vocabSize) {
      let top = heap.pop();
      while (top && pairCount.get(top.key) !== top.count) top = heap.pop();
      if (!top || top.count < minFreq) break;
      const a = Math.floor(top.key / MAX_ID);
      const b = top.key % MAX_ID;
      const id = firstMergeId + merges.length;
      merges.push([a, b]);
      for (const wi of where.get(top.key) ?? []) {
        const w = words[wi]!;
        let has = false;
        for (let i = 0; i + 1 < w.length; i++) if (w[i] === a && w[i + 1] === b) { has = true; break; }
        if (!has) continue; // stale index entry
        account(wi, -1);
        const nw: number[] = [];
        for (let i = 0; i < w.length; i++) {
          if (i + 1 < w.length && w[i] === a && w[i + 1] === b) { nw.push(id); i++; } else nw.push(w[i]!);
        }
        words[wi] = nw;
        account(wi, 1);
      }
      where.delete(top.key);
      for (const k of touched) {
        const c = pairCount.get(k)!;
        if (c > 0) heap.push(c, k);
        else { pairCount.delete(k); where.delete(k); }
      }
      touched.clear();
    }
    return new BpeTokenizer(merges, specials.slice(DEFAULT_COUNT));
  }

  /** Applies merges in rank order to one pre-token piece. */
  private encodePiece(piece: string): number[] {
    const hit = this.cache.get(piece);
    if (hit) return hit;
    let ids = Array.from(encodeUtf8(piece));
    while (ids.length > 1) {
      let best = Infinity;
      let pair = [-1, -1];
      for (let i = 0; i + 1 < ids.length; i++) {
        const r = this.ranks.get(pairKey(ids[i]!, ids[i + 1]!));
        if (r !== undefined && r < best) { best = r; pair = [ids[i]!, ids[i + 1]!]; }
      }
      if (best === Infinity) break;
      const id = this.firstMergeId + best;
      const next: number[] = [];
      for (let i = 0; i < ids.length; i++) {
        if (i + 1 < ids.length && ids[i] === pair[0] && ids[i + 1] === pair[1]) { next.push(id); i++; } else next.push(ids[i]!);
      }
      ids = next;
    }
    if (this.cache.size > 50_000) this.cache.clear();
    this.cache.set(piece, ids);
    return ids;
  }

  encode(text: string): number[] {
    const out: number[] = [];
    for (const seg of splitOnSpecial(text, this.special)) {
      if ('id' in seg) out.push(seg.id);
      else for (const p of pretokenize(seg.text)) out.push(...this.encodePiece(p));
    }
    return out;
  }

  decode(ids: number[]): string {
    checkIds(ids, this.vocabSize, 'BpeTokenizer.decode');
    let n = 0;
    for (const id of ids) n += this.bytesOf[id]!.length;
    const buf = new Uint8Array(n);
    let o = 0;
    for (const id of ids) { buf.set(this.bytesOf[id]!, o); o += this.bytesOf[id]!.length; }
    return decodeUtf8(buf);
  }

  /** Raw bytes a token stands for (useful for inspecting the vocabulary). */
  tokenBytes(id: number): Uint8Array {
    checkIds([id], this.vocabSize, 'BpeTokenizer.tokenBytes');
    return this.bytesOf[id]!;
  }

  toJSON(): { type: 'bpe'; version: 1; specialTokens: string[]; merges: [number, number][] } {
    return { type: 'bpe', version: 1, specialTokens: [...this.specialTokens], merges: this.merges.map(([a, b]) => [a, b]) };
  }

  static fromJSON(obj: unknown): BpeTokenizer {
    const o = obj as { type?: unknown; version?: unknown; specialTokens?: unknown; merges?: unknown };
    if (typeof o !== 'object' || o === null || o.type !== 'bpe') {
      throw new Error(`BpeTokenizer.fromJSON: expected {type: "bpe"}, got type ${JSON.stringify(o?.type)}`);
    }
    if (o.version !== 1) throw new Error(`BpeTokenizer.fromJSON: unsupported version ${JSON.stringify(o.version)} (expected 1)`);
    if (!Array.isArray(o.specialTokens)) throw new Error('BpeTokenizer.fromJSON: specialTokens must be an array of strings');
    if (!Array.isArray(o.merges) || !o.merges.every((m) => Array.isArray(m) && m.length === 2)) {
      throw new Error('BpeTokenizer.fromJSON: merges must be an array of [left, right] id pairs');
    }
    const specials = o.specialTokens as string[];
    const defaultsOk = DEFAULT_SPECIAL_NAMES.every((t, i) => specials[i] === t);
    if (!defaultsOk) throw new Error(`BpeTokenizer.fromJSON: specialTokens must start with ${DEFAULT_SPECIAL_NAMES.join(' ')}`);
    const t = new BpeTokenizer(o.merges as [number, number][], specials.slice(DEFAULT_COUNT));
    if (t.specialTokens.length !== specials.length) throw new Error('BpeTokenizer.fromJSON: duplicate special tokens');
    return t;
  }
}
