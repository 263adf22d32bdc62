import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ChatTemplate, HfTokenizer, loadChatTemplate, loadTokenizer } from '../src/index.js';
import { readJsonFile } from '../src/files.js';

const dir = (n: string) => fileURLToPath(new URL(`./fixtures/tokenizers/${n}`, import.meta.url));

// Expected ids by hand from scripts/fixtures/hf_tokenizers.py: bytes in GPT-2's bytes_to_unicode order
// ('!' = 0, 'a' = 64, 'h' = 71, 'Ġ' (space) = 220, 'Ċ' (newline) = 198, byte 0xC3 = 127, 0xA9 = 102),
// merges 256 he, 257 ll, 258 hell, 259 hello, 260 Ġw, 261 or, 262 Ġwor, 263 Ġworl, 264 Ġworld,
// 265 Ġt, 266 Ġthe, 267 in, 268 Ġin, 269 "20"; added 270 <|endoftext|>, 271 <|im_start|>, 272 <|im_end|>, 273 <image>.
describe('HfTokenizer (tokenizer.json through @huggingface/tokenizers)', () => {
  const byteLevel = loadTokenizer(dir('bytelevel'));
  const split = loadTokenizer(dir('split'));

  it('byte-level BPE: merges by rank, GPT-2 pre-tokenizer regex, UTF-8 bytes', () => {
    expect(byteLevel.encode('hello world!')).toEqual([259, 264, 0]); // hello | Ġworld | !
    expect(byteLevel.encode('the thin')).toEqual([83, 256, 265, 71, 267]); // t he | Ġt h in ("Ġthe" needs "he")
    expect(byteLevel.encode(' é')).toEqual([220, 127, 102]); // Ġ + the two UTF-8 bytes of é
    expect(byteLevel.encode(' 2024')).toEqual([220, 269, 17, 19]); // " 2024" is one piece: Ġ 20 2 4
    expect(byteLevel.tokenize('hello world')).toEqual(['hello', 'Ġworld']);
    expect(byteLevel.vocabSize).toBe(274);
  });

  it('added and special tokens are matched whole, and round-trip', () => {
    const text = '<|im_start|>user\nhello<|im_end|>\n';
    const ids = byteLevel.encode(text);
    expect(ids).toEqual([271, 84, 82, 68, 81, 198, 259, 272, 198]); // u s e r | Ċ | hello
    expect(byteLevel.decode(ids)).toBe(text);
    expect(byteLevel.decode(ids, { skipSpecialTokens: true })).toBe('user\nhello\n');
    expect(byteLevel.encode('<image>')).toEqual([273]);
  });

  it("exposes vlmix's Tokenizer view: special literals plus the bos/eos/pad roles of tokenizer_config.json", () => {
    expect(byteLevel.special).toEqual({
      '<|endoftext|>': 270, '<|im_start|>': 271, '<|im_end|>': 272, '<image>': 273, '<eos>': 272, '<pad>': 270,
    });
    expect(byteLevel.tokens).toEqual({ bos: null, eos: '<|im_end|>', pad: '<|endoftext|>', unk: null });
    expect(() => byteLevel.roleId('bos')).toThrow(/names no bos_token/);
    expect(split.roleId('bos')).toBe(270); // an AddedToken-style {content} entry
    expect(() => byteLevel.decode([274])).toThrow(/ids\[0\] = 274 is not a token id in \[0, 274\)/);
  });

  it('Split pre-tokenizer (Qwen2 regex: digits one by one), NFC normalizer, TemplateProcessing BOS', () => {
    expect(split.encode(' 2024')).toEqual([220, 17, 15, 17, 19]);
    expect(split.encode('hello world 2024!\n')).toEqual([259, 264, 220, 17, 15, 17, 19, 0, 198]);
    expect(split.encode('cafe\u0301')).toEqual([66, 64, 69, 127, 102]); // NFC: e + U+0301 -> é = C3 A9
    expect(byteLevel.encode('cafe\u0301')).toEqual([66, 64, 69, 68, 136, 223]); // no normalizer: e, then U+0301 = CC 81
    expect(split.encode('hello', { addSpecialTokens: true })).toEqual([270, 259]);
    expect(split.decode([270, 259, 264], { skipSpecialTokens: true })).toBe('hello world');
  });

  it('SentencePiece-style BPE (Llama-2 / TinyLlama): "▁" normalizer, byte fallback, <s> from the post-processor', () => {
    // vocab: 0 <unk>, 1 <s>, 2 </s>, 3 + b = <0xbb>, 259 ▁, 260.. h e l o w r d, 267.. ▁h ll ell ▁hell ▁hello(271) ▁w(272) or ▁wor ▁worl ▁world(276)
    const sp = loadTokenizer(dir('sentencepiece'));
    expect(sp.encode('hello world')).toEqual([271, 276]); // "▁hello▁world" is one word: merges by rank across it
    expect(sp.encode('hello world', { addSpecialTokens: true })).toEqual([1, 271, 276]);
    expect(sp.encode('hello  wé')).toEqual([271, 259, 272, 3 + 0xc3, 3 + 0xa9]); // é is not in the vocab: its UTF-8 bytes
    expect(sp.decode([1, 271, 259, 272, 198, 172], { skipSpecialTokens: true })).toBe('hello  wé');
    expect(sp.special).toMatchObject({ '<unk>': 0, '<s>': 1, '</s>': 2, '<bos>': 1, '<eos>': 2 });
  });

  it('rejects a tokenizer_config.json token that is not in the vocabulary', () => {
    const json = readJsonFile(dir('bytelevel'), 'tokenizer.json');
    expect(() => new HfTokenizer(json, { eos_token: '</s>' })).toThrow(/eos_token "<\/s>" is not in the vocabulary/);
    expect(() => new HfTokenizer({} as never)).toThrow(/parsed tokenizer.json/);
  });

  it('a folder with only a slow tokenizer says that tokenizer.json is needed', () => {
    const d = mkdtempSync(join(tmpdir(), 'vlmix-tok-'));
    writeFileSync(join(d, 'tokenizer.model'), '');
    expect(() => loadTokenizer(d)).toThrow(/tokenizer\.json not found \(it has tokenizer\.model: only the "fast" tokenizer\.json format is read\)/);
    rmSync(d, { recursive: true });
  });
});

describe('ChatTemplate (tokenizer_config.json chat_template through @huggingface/jinja)', () => {
  const chat = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: ' Hi! ' },
    { role: 'assistant', content: 'Hello.' },
    { role: 'user', content: 'Colour?' },
  ];

  it("Qwen2's ChatML template (default system prompt, generation prompt), rendered and encoded", () => {
    const t = loadChatTemplate(dir('bytelevel'))!;
    expect(t.render([{ role: 'user', content: 'hello' }], { addGenerationPrompt: true })).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(t.render(chat.slice(0, 2))).toBe('<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n Hi! <|im_end|>\n');
    // Encoded without adding anything: the special tokens stay whole, the rest is byte-level BPE.
    const ids = t.encode(loadTokenizer(dir('bytelevel')), [{ role: 'system', content: 'hi' }, { role: 'user', content: 'hello' }]);
    expect(ids).toEqual([
      271, 82, 88, 82, 83, 68, 76, 198, 71, 72, 272, 198, // <|im_start|> s y s t e m Ċ h i <|im_end|> Ċ
      271, 84, 82, 68, 81, 198, 259, 272, 198, //            <|im_start|> u s e r Ċ hello <|im_end|> Ċ
    ]);
  });

  it("Llama-2's template: system folded into the first turn, strip(), bos/eos, escaped newlines", () => {
    const t = loadChatTemplate(dir('split'))!;
    expect(t.specials).toMatchObject({ bos_token: '<|begin_of_text|>', eos_token: '<|end_of_text|>' });
    expect(t.render(chat)).toBe(
      // strip() applies to the folded content: the user text's leading space stays after "<</SYS>>\n\n".
      '<|begin_of_text|>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n Hi! [/INST] Hello. <|end_of_text|><|begin_of_text|>[INST] Colour? [/INST]',
    );
    expect(t.render(chat.slice(1, 2))).toBe('<|begin_of_text|>[INST] Hi! [/INST]'); // no system: strip() trims both ends
    expect(() => t.render([{ role: 'assistant', content: 'x' }])).toThrow(/Conversation roles must alternate/);
  });

  it("TinyLlama's Zephyr template: trim_blocks / lstrip_blocks as HF renders it", () => {
    const t = loadChatTemplate(dir('split'), 'zephyr')!;
    expect(t.render(chat.slice(0, 2), { addGenerationPrompt: true })).toBe(
      '<|system|>\nBe brief.<|end_of_text|>\n<|user|>\n Hi! <|end_of_text|>\n<|assistant|>\n',
    );
    expect(() => loadChatTemplate(dir('split'), 'tool_use')).toThrow(/no chat template named "tool_use" \(it has "default", "zephyr"\)/);
  });

  it('checks messages and names the bad one', () => {
    const t = new ChatTemplate('{{ messages[0].content }}');
    expect(t.render([{ role: 'user', content: 'x' }])).toBe('x');
    expect(() => t.render([{ role: 'user' } as never])).toThrow(/messages\[0\] must be \{role: string, content: string \| \(\{type: 'image'\} \| \{type: 'text', text: string\}\)\[\]\}/);
  });
});
