// Reading the JSON files of a Hugging Face folder with errors that name the file.
import type { WeightMap } from '@vlmix/core';
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

/** What savePretrained needs to write a folder back in the reference format. */
export interface PretrainedSource {
  dir: string;
  weightMap: WeightMap;
  /** First dimension of each checkpoint tensor (to split stacked parameters back). */
  rows: Map<string, number>;
  /** The weight map's source names -> the names the checkpoint stored them under (default: the same). */
  exportName?: (name: string) => string;
}

/** The row counts of a checkpoint's tensors. */
export function checkpointRows(file: { names(): string[]; get(n: string): { shape: readonly number[] } }): Map<string, number> {
  return new Map(file.names().map((n) => [n, file.get(n).shape[0] ?? 1]));
}
