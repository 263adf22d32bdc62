// Restores either tokenizer from its toJSON() form (dispatch on `type`); kept separate so
// tokenizer.ts and bpe.ts don't import each other.
import { BpeTokenizer } from './bpe.js';
import { ByteTokenizer, type Tokenizer } from './tokenizer.js';

export function tokenizerFromJSON(obj: unknown): Tokenizer {
  const type = (obj as { type?: unknown } | null)?.type;
  if (type === 'byte') return ByteTokenizer.fromJSON(obj);
  if (type === 'bpe') return BpeTokenizer.fromJSON(obj);
  throw new Error(`tokenizerFromJSON: unknown tokenizer type ${JSON.stringify(type)} (expected "byte" or "bpe")`);
}
