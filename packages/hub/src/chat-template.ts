/**
 * Chat templates (tokenizer_config.json's `chat_template`, or chat_template.jinja) rendered with
 * `@huggingface/jinja`, the way transformers' apply_chat_template does: trim_blocks and lstrip_blocks
 * on, the tokenizer's special tokens (bos_token, eos_token, ...) and `add_generation_prompt` as
 * variables, `raise_exception` available to the template.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { readJsonFile, specialTokenText } from './files.js';
import type { HfTokenizer } from './tokenizer.js';

/** One part of a structured message (transformers' multimodal chat format). */
export type ChatContentPart = { type: 'image'; [key: string]: unknown } | { type: 'text'; text: string; [key: string]: unknown };

export interface ChatMessage {
  role: string;
  /** Text, or a list of parts ({type: 'image'} | {type: 'text', text}) for templates of multimodal models. */
  content: string | ChatContentPart[];
  [key: string]: unknown;
}

function validContent(c: unknown): boolean {
  if (typeof c === 'string') return true;
  return Array.isArray(c) && c.every((p) => p && typeof p === 'object' && (p.type === 'image' || (p.type === 'text' && typeof p.text === 'string')));
}

export interface RenderOptions {
  /** End with the assistant turn's opening (HF add_generation_prompt). Default false. */
  addGenerationPrompt?: boolean;
  /** Extra template variables (tools, documents, custom flags). */
  variables?: Record<string, unknown>;
}

const SPECIAL_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;

export class ChatTemplate {
  private readonly template: Template;
  /** Special-token variables passed to every render (bos_token, eos_token, ..., additional_special_tokens). */
  readonly specials: Record<string, string | (string | null)[]>;

  constructor(
    readonly source: string,
    specials: Record<string, unknown> = {},
  ) {
    if (typeof source !== 'string' || source.length === 0) throw new Error('ChatTemplate: source must be a non-empty template string');
    this.template = new Template(source);
    this.specials = {};
    for (const k of SPECIAL_KEYS) {
      const t = specialTokenText(specials[k]);
      if (t !== null) this.specials[k] = t;
    }
    const extra = specials.additional_special_tokens;
    if (Array.isArray(extra)) this.specials.additional_special_tokens = extra.map(specialTokenText);
  }

  /** The prompt text for `messages`. A template's raise_exception('...') becomes an Error with that message. */
  render(messages: ChatMessage[], opts: RenderOptions = {}): string {
    if (!Array.isArray(messages)) throw new TypeError('ChatTemplate.render: messages must be an array of {role, content}');
    messages.forEach((m, i) => {
      if (!m || typeof m.role !== 'string' || !validContent(m.content)) {
        throw new TypeError(`ChatTemplate.render: messages[${i}] must be {role: string, content: string | ({type: 'image'} | {type: 'text', text: string})[]}, got ${JSON.stringify(m)}`);
      }
    });
    return this.template.render({
      ...this.specials,
      ...opts.variables,
      messages,
      add_generation_prompt: opts.addGenerationPrompt ?? false,
    });
  }

  /** render() then tokenizer.encode() without adding special tokens (the template has them), as HF does. */
  encode(tokenizer: HfTokenizer, messages: ChatMessage[], opts: RenderOptions = {}): number[] {
    return tokenizer.encode(this.render(messages, opts), { addSpecialTokens: false });
  }
}

/**
 * The chat template of a folder: chat_template.jinja if present (newer transformers save it there),
 * else chat_template.json's (a processor's, as multimodal folders hold it), else tokenizer_config.json's `chat_template` — a string, or a list of {name, template} from which
 * `name` (default "default") is taken. Null when the folder has none.
 */
export function loadChatTemplate(dir: string, name = 'default'): ChatTemplate | null {
  const cfg = readJsonFile(dir, 'tokenizer_config.json', true) ?? {};
  const jinja = join(dir, 'chat_template.jinja');
  if (existsSync(jinja)) return new ChatTemplate(readFileSync(jinja, 'utf8'), cfg);
  // a processor's template (multimodal folders, e.g. llava-hf): {"chat_template": "..."}
  const processor = readJsonFile(dir, 'chat_template.json', true);
  if (processor) {
    if (typeof processor.chat_template !== 'string') throw new Error(`loadChatTemplate: ${join(dir, 'chat_template.json')}: "chat_template" must be a string, got ${JSON.stringify(processor.chat_template)}`);
    return new ChatTemplate(processor.chat_template, cfg);
  }
  const t = cfg.chat_template;
  if (t === undefined || t === null) return null;
  if (typeof t === 'string') return new ChatTemplate(t, cfg);
  const list = Array.isArray(t) ? t : Object.entries(t as Record<string, unknown>).map(([n, tpl]) => ({ name: n, template: tpl }));
  const found = (list as { name?: unknown; template?: unknown }[]).find((e) => e && e.name === name);
  if (!found || typeof found.template !== 'string') {
    const names = (list as { name?: unknown }[]).map((e) => JSON.stringify(e?.name)).join(', ');
    throw new Error(`loadChatTemplate: ${join(dir, 'tokenizer_config.json')} has no chat template named ${JSON.stringify(name)} (it has ${names})`);
  }
  return new ChatTemplate(found.template, cfg);
}
