// Reading the JSON files of a Hugging Face folder with errors that name the file.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Parses `<dir>/<name>`; `null` when the file is absent and `optional`. */
export function readJsonFile(dir: string, name: string, optional: true): Record<string, unknown> | null;
export function readJsonFile(dir: string, name: string, optional?: false): Record<string, unknown>;
export function readJsonFile(dir: string, name: string, optional = false): Record<string, unknown> | null {
  const path = join(dir, name);
  if (!existsSync(path)) {
    if (optional) return null;
    throw new Error(`${path} not found (a Hugging Face model folder needs ${name})`);
  }
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${path}: expected a JSON object, got ${Array.isArray(v) ? 'an array' : JSON.stringify(v)}`);
  return v as Record<string, unknown>;
}

/** A special token of tokenizer_config.json: a string, or an AddedToken-style `{content: ...}`; null otherwise. */
export function specialTokenText(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}
