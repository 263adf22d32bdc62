/** Reading fields of a Hugging Face `config.json` with errors that name the field, the expected and the actual value. */
import type { TransformerConfigInput } from '../config.js';
import { fail } from '../errors.js';

export type HfConfig = Record<string, unknown>;

/** A positive integer field; `fallback` when absent (undefined or null), error when absent without one. */
export function hfInt(cfg: HfConfig, key: string, fallback?: number, where = 'config.json'): number {
  const v = cfg[key];
  if (v === undefined || v === null) {
    if (fallback === undefined) fail(`${where}: "${key}" is required (a positive integer) but absent`);
    return fallback;
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) fail(`${where}: "${key}": expected a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

/** A positive finite number field. */
export function hfNumber(cfg: HfConfig, key: string, fallback: number, where = 'config.json'): number {
  const v = cfg[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(`${where}: "${key}": expected a positive number, got ${JSON.stringify(v)}`);
  return v;
}

export function hfBool(cfg: HfConfig, key: string, fallback: boolean, where = 'config.json'): boolean {
  const v = cfg[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') fail(`${where}: "${key}": expected true or false, got ${JSON.stringify(v)}`);
  return v;
}

export function hfString(cfg: HfConfig, key: string, fallback: string, where = 'config.json'): string {
  const v = cfg[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'string') fail(`${where}: "${key}": expected a string, got ${JSON.stringify(v)}`);
  return v;
}

/** Fails unless `cfg[key]` is absent or equals `supported` (a setting whose other values vlmix does not implement). */
export function hfRequire(cfg: HfConfig, key: string, supported: unknown, where = 'config.json'): void {
  const v = cfg[key];
  if (v === undefined || v === null || v === supported) return;
  fail(`${where}: "${key}" = ${JSON.stringify(v)} is not supported (only ${JSON.stringify(supported)})`);
}

/** A probability field (a dropout rate): a number in [0, 1). */
export function hfRate(cfg: HfConfig, key: string, fallback: number, where: string): number {
  const v = cfg[key] ?? fallback;
  if (typeof v !== 'number' || !(v >= 0 && v < 1)) fail(`${where}: "${key}": expected a probability in [0, 1), got ${JSON.stringify(v)}`);
  return v;
}

/** The non-zero dropout rates only (a config without dropout stays as it was). */
export function dropouts(r: Pick<TransformerConfigInput, 'attentionDropout' | 'hiddenDropout' | 'embeddingDropout'>): Partial<TransformerConfigInput> {
  return Object.fromEntries(Object.entries(r).filter(([, v]) => v));
}
