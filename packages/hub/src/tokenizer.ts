/**
 * Hugging Face tokenizers (tokenizer.json: BPE incl. byte-level, WordPiece, Unigram, with added and
 * special tokens) through the `@huggingface/tokenizers` package, behind vlmix's `Tokenizer` interface.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';
import { checkIds, type Tokenizer } from '@vlmix/data';
import { readJsonFile, specialTokenText } from './files.js';

export interface HfEncodeOptions {
  /**
   * Apply the tokenizer's post-processor (e.g. prepend <|begin_of_text|> / <s>), as HF's
   * `add_special_tokens=True`. Default false: vlmix's encode() adds nothing, and chat templates
   * already contain their special tokens (HF's apply_chat_template encodes with it off too).
   */
  addSpecialTokens?: boolean;
}

export interface HfDecodeOptions {
  /** Drop special tokens from the text. Default false. */
  skipSpecialTokens?: boolean;
}

const ROLES = ['bos', 'eos', 'pad', 'unk'] as const;
type Role = (typeof ROLES)[number];

export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  /**
   * Every added special token (its literal -> id), plus vlmix's role names `<bos>`, `<eos>`, `<pad>`,
   * `<unk>` for the tokens tokenizer_config.json names as bos/eos/pad/unk_token (unless the vocabulary
   * has those literals itself), so vlmix code asking for special['<eos>'] works with any HF tokenizer.
   */
  readonly special: Record<string, number>;
  /** The bos/eos/pad/unk tokens of tokenizer_config.json (text), null when it names none. */
  readonly tokens: Record<Role, string | null>;
  private readonly impl: HfTokenizerImpl;

  constructor(
    readonly tokenizerJson: Record<string, unknown>,
    readonly tokenizerConfig: Record<string, unknown> = {},
  ) {
    if (!tokenizerJson || typeof tokenizerJson !== 'object' || !('model' in tokenizerJson)) {
      throw new Error('HfTokenizer: tokenizerJson must be the parsed tokenizer.json (an object with "model")');
    }
    this.impl = new HfTokenizerImpl(tokenizerJson, tokenizerConfig);
    const vocab = this.impl.get_vocab(true);
    let max = -1;
    for (const id of vocab.values()) if (id > max) max = id;
    this.vocabSize = max + 1;
    this.special = {};
    for (const [id, t] of this.impl.get_added_tokens_decoder()) if (t.special) this.special[t.content] = id;
    const tokens = {} as Record<Role, string | null>;
    for (const role of ROLES) {
      const text = specialTokenText(tokenizerConfig[`${role}_token`]);
      tokens[role] = text;
      if (text === null) continue;
      const id = this.impl.token_to_id(text);
      if (id === undefined) throw new Error(`HfTokenizer: tokenizer_config.json ${role}_token ${JSON.stringify(text)} is not in the vocabulary`);
      if (vocab.get(`<${role}>`) === undefined) this.special[`<${role}>`] = id;
    }
    this.tokens = tokens;
  }

  encode(text: string, opts: HfEncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new TypeError(`HfTokenizer.encode: text must be a string, got ${typeof text}`);
    return this.impl.encode(text, { add_special_tokens: opts.addSpecialTokens ?? false }).ids;
  }

  decode(ids: number[], opts: HfDecodeOptions = {}): string {
    checkIds(ids, this.vocabSize, 'HfTokenizer.decode');
    return this.impl.decode(ids, { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  /** The token strings (e.g. ["hello", "Ġworld"]). */
  tokenize(text: string): string[] {
    return this.impl.tokenize(text, { add_special_tokens: false });
  }

  tokenToId(token: string): number | undefined {
    return this.impl.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.impl.id_to_token(id);
  }

  /** The id of the bos/eos/pad/unk token, or an error saying tokenizer_config.json names none. */
  roleId(role: Role): number {
    const t = this.tokens[role];
    if (t === null) throw new Error(`HfTokenizer: tokenizer_config.json names no ${role}_token`);
    return this.impl.token_to_id(t)!;
  }

  /** Both source files, so the tokenizer can be rebuilt (new HfTokenizer(json.tokenizer, json.config)). */
  toJSON(): { type: 'hf'; tokenizer: Record<string, unknown>; config: Record<string, unknown> } {
    return { type: 'hf', tokenizer: this.tokenizerJson, config: this.tokenizerConfig };
  }
}

/** Reads `<dir>/tokenizer.json` and, when present, `<dir>/tokenizer_config.json`. */
export function loadTokenizer(dir: string): HfTokenizer {
  const path = join(dir, 'tokenizer.json');
  if (!existsSync(path)) {
    const slow = ['tokenizer.model', 'vocab.json'].filter((f) => existsSync(join(dir, f)));
    const hint = slow.length ? ` (it has ${slow.join(', ')}: only the "fast" tokenizer.json format is read)` : '';
    throw new Error(`loadTokenizer: ${path} not found${hint}`);
  }
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`loadTokenizer: ${path} is not valid JSON: ${(err as Error).message}`);
  }
  return new HfTokenizer(json, readJsonFile(dir, 'tokenizer_config.json', true) ?? {});
}
