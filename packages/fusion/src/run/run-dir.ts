/**
 * A run directory: checkpoint/ (the trainer's), metrics.jsonl, vlmix-run.json (what loadRun needs to
 * rebuild the model) and vlmix.lock while a trainer works in it.
 */
import { existsSync, readdirSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fail, writeFileAtomic } from '@vlmix/core';
import { LOCK_FILE } from '@vlmix/train';
import type { RecipeOptions } from '../common.js';

export const RUN_META_FILE = 'vlmix-run.json';
/** What a run directory holds that belongs to the run (an overwrite removes exactly these). */
export const RUN_FILES = ['checkpoint', 'metrics.jsonl', RUN_META_FILE];

export interface RunMeta {
  preset: string;
  seed: number;
  /** Recipe overrides the run was built with (the architecture depends on them). */
  recipe?: RecipeOptions;
  /** The tokenizer's JSON (loadRun checks the preset still builds the same one). */
  tokenizer: object;
}

const isObj = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);

/** Reads and checks `<dir>/vlmix-run.json`; every error names the file. */
export async function readRunMeta(dir: string): Promise<RunMeta> {
  const p = join(dir, RUN_META_FILE);
  if (!existsSync(p)) fail(`${dir}: not a vlmix run directory (no ${RUN_META_FILE}); pass the --out directory of 'vlmix train'`);
  let x: unknown;
  try {
    x = JSON.parse(await readFile(p, 'utf8'));
  } catch (e) {
    return fail(`${p}: invalid JSON (${(e as Error).message}); the run's metadata is damaged`);
  }
  const bad = (field: string, want: string, got: unknown): never => fail(`${p}: field '${field}' should be ${want}, got ${got === undefined ? 'nothing (missing)' : JSON.stringify(got)?.slice(0, 80)}`);
  if (!isObj(x)) return bad('(top level)', 'an object', x);
  if (typeof x.preset !== 'string' || !x.preset) bad('preset', 'a preset name', x.preset);
  if (typeof x.seed !== 'number' || !Number.isInteger(x.seed)) bad('seed', 'an integer', x.seed);
  if (x.recipe !== undefined && !isObj(x.recipe)) bad('recipe', 'an object of recipe options', x.recipe);
  if (!isObj(x.tokenizer)) bad('tokenizer', "the tokenizer's JSON", x.tokenizer);
  return x as unknown as RunMeta;
}

export async function writeRunMeta(dir: string, meta: RunMeta): Promise<void> {
  await writeFileAtomic(join(dir, RUN_META_FILE), `${JSON.stringify(meta, null, 2)}\n`);
}

/** Entries of `dir` other than the lock (empty when it does not exist). */
export function runDirEntries(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f !== LOCK_FILE && !f.startsWith(`.${LOCK_FILE}.`));
}

/** Removes a previous run's files (RUN_FILES) and nothing else. */
export async function removeRunFiles(dir: string): Promise<void> {
  for (const f of RUN_FILES) await rm(join(dir, f), { recursive: true, force: true });
}
