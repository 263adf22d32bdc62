/** `vlmix inspect|generate <dir>` on a Hugging Face folder (config.json + safetensors), e.g. one savePretrained wrote. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ContextLengthError, generate } from '@vlmix/core';
import type { RgbImage } from '@vlmix/data';
import { loadPretrained, pixelValues, type Pretrained } from '@vlmix/hub';
import { UsageError } from '../args.js';

/** A folder with config.json and no vlmix-run.json: a Hugging Face model folder. */
export function isHfFolder(path: string): boolean {
  return existsSync(join(path, 'config.json')) && !existsSync(join(path, 'vlmix-run.json'));
}

export function loadHfFolder(dir: string): Exclude<Pretrained, { kind: 'vision-tower' }> {
  const p = loadPretrained(dir);
  if (p.kind === 'vision-tower') {
    p.dispose();
    throw new UsageError(`${dir}: a vision tower (${p.hfClass}) has no text to generate or hook table of its own; load it with loadVisionTower`);
  }
  return p;
}

export interface HfGenerateOptions {
  prompt: string;
  image: RgbImage | null;
  maxNewTokens: number;
  temperature?: number;
  seed: number;
  /** Encode the prompt as is, without the folder's chat template. */
  raw?: boolean;
  onText: (text: string) => void;
}

/**
 * Answers `prompt` (about `image` for a LLaVA folder) with the folder's tokenizer and, when it has one,
 * its chat template (a user turn, then the generation prompt); greedy unless a temperature is given.
 */
export function generateFromFolder(dir: string, o: HfGenerateOptions): string {
  const p = loadHfFolder(dir);
  try {
    const tok = p.tokenizer;
    if (!tok) throw new UsageError(`${dir}: no tokenizer.json in the folder; generate needs one`);
    if (p.kind === 'llava' && !o.image) throw new UsageError(`--image is required for a LLaVA folder`);
    const content = p.kind === 'llava' ? [{ type: 'image' as const }, { type: 'text' as const, text: o.prompt }] : o.prompt;
    let ids = p.chatTemplate && !o.raw
      ? p.chatTemplate.encode(tok, [{ role: 'user', content }], { addGenerationPrompt: true })
      : tok.encode(o.prompt);
    const media = p.kind === 'llava' ? { pixels: pixelValues(p.imageProcessor!, [o.image!]) } : undefined;
    if (p.kind === 'llava') ids = p.expandImageTokens(ids);
    let eos: number | undefined;
    try {
      eos = tok.roleId('eos');
    } catch {
      eos = undefined; // tokenizer_config.json names no eos_token: run to --max-tokens
    }
    try {
      const g = generate(p.model, [ids], {
        maxNewTokens: o.maxNewTokens, greedy: !o.temperature, temperature: o.temperature, seed: o.seed, ...(eos === undefined ? {} : { eosTokenId: eos }),
        ...(media ? { inputs: { media } } : {}),
      });
      const out = g.newTokens[0]!.filter((t) => t !== eos);
      const text = tok.decode(out);
      o.onText(text);
      return text;
    } catch (e) {
      if (e instanceof ContextLengthError) throw new UsageError(`--max-tokens ${o.maxNewTokens}: the prompt takes ${e.promptLength} of the model's ${e.maxSeqLen} tokens`);
      throw e;
    } finally {
      media?.pixels.dispose();
    }
  } finally {
    p.model.dispose();
  }
}
