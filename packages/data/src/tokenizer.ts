// Tokenizer contract shared by the byte-level and BPE tokenizers, plus the byte tokenizer.
// Both are byte-based, so encode→decode is lossless for every well-formed string, and special
// tokens are matched literally in text (e.g. "<image>") and never split.

export interface Tokenizer {
  vocabSize: number;
  encode(text: string): number[];
  decode(ids: number[]): string;
  /** Special token literal → id, e.g. special['<eos>']. */
  special: Record<string, number>;
  toJSON(): object;
}

/** Always present, in this order (ids 256..261 for both tokenizers). */
export const DEFAULT_SPECIAL_TOKENS = ['<pad>', '<bos>', '<eos>', '<image>', '<boi>', '<eoi>'] as const;

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8');
export const encodeUtf8 = (s: string): Uint8Array => utf8.encode(s);
export const decodeUtf8 = (b: Uint8Array): string => utf8Decoder.decode(b);

/** Defaults followed by `extra` (deduplicated, order kept); validates each literal. */
export function resolveSpecialTokens(extra: readonly string[] = [], where = 'specialTokens'): string[] {
  const out: string[] = [...DEFAULT_SPECIAL_TOKENS];
  for (const t of extra) {
    if (typeof t !== 'string' || t.length === 0) throw new TypeError(`${where}: special tokens must be non-empty strings, got ${JSON.stringify(t)}`);
    if (!out.includes(t)) out.push(t);
  }
  return out;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Splits text into literal special tokens and ordinary runs (longest special wins). */
export function splitOnSpecial(text: string, special: Record<string, number>): ({ id: number } | { text: string })[] {
  const names = Object.keys(special).sort((a, b) => b.length - a.length);
  if (names.length === 0) return text ? [{ text }] : [];
  const re = new RegExp(names.map(escapeRe).join('|'), 'g');
  const out: ({ id: number } | { text: string })[] = [];
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index! > last) out.push({ text: text.slice(last, m.index) });
    out.push({ id: special[m[0]]! });
    last = m.index! + m[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out;
}

/** Looks up a special token id, with an error naming the tokenizer's specials when absent. */
export function specialId(tok: Tokenizer, name: string): number {
  const id = tok.special[name];
  if (id === undefined) {
    throw new Error(`tokenizer has no special token "${name}" (has: ${Object.keys(tok.special).join(', ')})`);
  }
  return id;
}

export function checkIds(ids: readonly number[], vocabSize: number, where: string): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new RangeError(`${where}: ids[${i}] = ${id} is not a token id in [0, ${vocabSize})`);
    }
  }
}

/** ids 0..255 = raw UTF-8 bytes, then special tokens (defaults first, then user-added). */
export class ByteTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly special: Record<string, number>;
  readonly specialTokens: readonly string[];
  private readonly specialText: Map<number, Uint8Array>;

  constructor(opts: { specialTokens?: readonly string[] } = {}) {
    this.specialTokens = resolveSpecialTokens(opts.specialTokens, 'ByteTokenizer specialTokens');
    this.special = Object.fromEntries(this.specialTokens.map((t, i) => [t, 256 + i]));
    this.specialText = new Map(this.specialTokens.map((t, i) => [256 + i, encodeUtf8(t)]));
    this.vocabSize = 256 + this.specialTokens.length;
  }

  encode(text: string): number[] {
    const out: number[] = [];
    for (const seg of splitOnSpecial(text, this.special)) {
      if ('id' in seg) out.push(seg.id);
      else for (const b of encodeUtf8(seg.text)) out.push(b);
    }
    return out;
  }

  decode(ids: number[]): string {
    checkIds(ids, this.vocabSize, 'ByteTokenizer.decode');
    const bytes: number[] = [];
    for (const id of ids) {
      if (id < 256) bytes.push(id);
      else bytes.push(...this.specialText.get(id)!);
    }
    return decodeUtf8(Uint8Array.from(bytes));
  }

  toJSON(): { type: 'byte'; version: 1; specialTokens: string[] } {
    return { type: 'byte', version: 1, specialTokens: [...this.specialTokens] };
  }

  static fromJSON(obj: unknown): ByteTokenizer {
    const o = obj as { type?: unknown; specialTokens?: unknown };
    if (typeof o !== 'object' || o === null || o.type !== 'byte') {
      throw new Error(`ByteTokenizer.fromJSON: expected {type: "byte"}, got type ${JSON.stringify(o?.type)}`);
    }
    if (!Array.isArray(o.specialTokens)) throw new Error('ByteTokenizer.fromJSON: specialTokens must be an array');
    const t = new ByteTokenizer({ specialTokens: o.specialTokens as string[] });
    if (t.specialTokens.join('\0') !== (o.specialTokens as string[]).join('\0')) {
      throw new Error('ByteTokenizer.fromJSON: specialTokens must start with the defaults and contain no duplicates');
    }
    return t;
  }
}
