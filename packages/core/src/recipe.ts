/**
 * A composed model as data (SAT's "the hook table is the architecture"): the base config plus its mixins
 * in order, each as a registered type and the JSON options it was constructed with. `saveModel` writes
 * that recipe with the weights; `loadModel` rebuilds the same model in another process (same hooks, same
 * parameter names) and loads the weights, verified by checksum.
 *
 * A mixin takes part by calling `this.recordOptions(opts)` in its constructor (the outermost class's
 * call wins) and by being registered with `registerMixinType`. Options must be plain JSON (state keys
 * are `{name}` objects and qualify); functions, tensors or class instances are refused naming the path.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import type { TransformerConfig } from './config.js';
import { fail } from './errors.js';
import { writeFileAtomic } from './io/atomic.js';
import { readSafetensors, writeSafetensors } from './io/safetensors.js';
import type { Mixin } from './mixin.js';
import { Model } from './model.js';
import { RotaryMixin } from './positions/rope.js';

export const RECIPE_FORMAT = 'vlmix.model';
export const RECIPE_VERSION = 1;
/** The recipe file of a saved model folder (written last: a folder without it is not a model). */
export const RECIPE_FILE = 'vlmix-model.json';
export const WEIGHTS_FILE = 'model.safetensors';

export interface MixinRecipe {
  /** The name it was added under. */
  name: string;
  /** Its registered type. */
  type: string;
  /** Its constructor options (JSON). */
  options: unknown;
}

export interface ModelRecipe {
  format: typeof RECIPE_FORMAT;
  version: number;
  config: TransformerConfig;
  mixins: MixinRecipe[];
  /** Parameters with trainable = false (frozen towers, a merged adapter's base, ...). */
  frozen: string[];
}

type MixinCtor = abstract new (...args: never[]) => Mixin;
const byType = new Map<string, { ctor: MixinCtor; create: (options: never) => Mixin }>();
const byCtor = new Map<MixinCtor, string>();

/**
 * Makes a mixin class saveable: `type` is the stable name written in recipes (keep it when renaming the
 * class); `create` rebuilds an instance from the recorded options (default `new ctor(options)`).
 */
export function registerMixinType<C extends MixinCtor>(type: string, ctor: C, create?: (options: never) => Mixin): void {
  const prev = byType.get(type);
  if (prev && prev.ctor !== ctor) fail(`registerMixinType: type '${type}' is already registered for ${prev.ctor.name}`);
  byType.set(type, { ctor, create: create ?? ((o: never) => new (ctor as unknown as new (o: unknown) => Mixin)(o)) });
  byCtor.set(ctor, type);
}

export function registeredMixinTypes(): string[] {
  return [...byType.keys()].sort();
}

/** Deep copy of a JSON value; anything else is an error naming `path`. */
function jsonValue(v: unknown, path: string): unknown {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) fail(`${path}: ${v} is not representable in JSON`);
    return v;
  }
  if (Array.isArray(v)) return v.map((x, i) => jsonValue(x, `${path}[${i}]`));
  if (typeof v === 'object') {
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) fail(`${path}: a ${v!.constructor?.name ?? 'non-plain object'} is not plain JSON (only objects, arrays, strings, finite numbers, booleans, null)`);
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as object)) if (x !== undefined) out[k] = jsonValue(x, `${path}.${k}`);
    return out;
  }
  return fail(`${path}: a ${typeof v} is not plain JSON`);
}

/** The recipe of a model: what `modelFromRecipe` needs to rebuild it (without the weights). */
export function modelRecipe(model: Model): ModelRecipe {
  const mixins = model.mixinNames().map((name): MixinRecipe => {
    const m = model.getMixin(name);
    const type = byCtor.get(m.constructor as MixinCtor);
    if (!type) {
      fail(`mixin '${name}' (${m.constructor.name}) is not a registered mixin type, so a recipe cannot rebuild it; ` +
        `call registerMixinType('${m.constructor.name}', ${m.constructor.name}) once (types registered: ${registeredMixinTypes().join(', ') || 'none'})`);
    }
    const options = m.recipeOptions;
    if (options === undefined) fail(`mixin '${name}' (${type}) did not record its options; its constructor must call this.recordOptions(opts)`);
    return { name, type, options: jsonValue(options, `mixin '${name}' (${type}) options`) };
  });
  return {
    format: RECIPE_FORMAT, version: RECIPE_VERSION,
    config: jsonValue(model.config, 'model.config') as TransformerConfig,
    mixins,
    frozen: model.params.list().filter((p) => !p.trainable).map((p) => p.name),
  };
}

/** Rebuilds the model a recipe describes, freshly initialised (load weights next). */
export function modelFromRecipe(recipe: ModelRecipe, where = 'recipe'): Model {
  if (!recipe || recipe.format !== RECIPE_FORMAT) fail(`${where}: expected format '${RECIPE_FORMAT}', got ${JSON.stringify((recipe as { format?: unknown } | null)?.format)}`);
  if (recipe.version > RECIPE_VERSION) fail(`${where}: recipe version ${recipe.version} is newer than this vlmix reads (${RECIPE_VERSION})`);
  if (!Array.isArray(recipe.mixins)) fail(`${where}: mixins: expected an array, got ${typeof recipe.mixins}`);
  const model = new Model(recipe.config);
  try {
    for (const [i, r] of recipe.mixins.entries()) {
      const entry = byType.get(r?.type);
      if (!entry) {
        fail(`${where}: mixins[${i}] '${r?.name}' has type '${r?.type}', which is not registered here ` +
          `(registered: ${registeredMixinTypes().join(', ')}); import the package that defines it first`);
      }
      model.addMixin(r.name, entry.create(r.options as never));
    }
    for (const n of recipe.frozen ?? []) {
      if (!model.hasParam(n)) fail(`${where}: frozen parameter '${n}' does not exist in the rebuilt model`);
      const p = model.params.list().find((x) => x.name === n)!;
      p.trainable = false;
      p.variable.trainable = false;
    }
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

export interface SaveModelOptions {
  /** Extra JSON stored in the recipe file under `meta` (e.g. a Vlm's wrapper fields). */
  meta?: Record<string, unknown>;
  /** Extra files written beside the weights (e.g. the tokenizer), name -> contents. */
  files?: Record<string, string | Uint8Array>;
  /** Replace a folder that already holds a model. Default false: an error. */
  overwrite?: boolean;
}

interface RecipeFile extends ModelRecipe {
  weights: { file: string; sha256: string; bytes: number };
  meta?: Record<string, unknown>;
}

/**
 * Writes `dir/model.safetensors` (vlmix parameter names), the extra files, then `dir/vlmix-model.json`
 * (recipe + checksum of the weights), each atomically; the recipe last, so an interrupted save leaves
 * no loadable model.
 */
export async function saveModel(model: Model, dir: string, opts: SaveModelOptions = {}): Promise<void> {
  const recipe = modelRecipe(model);
  if (existsSync(join(dir, RECIPE_FILE)) && !opts.overwrite) fail(`saveModel(${dir}): the folder already holds a model (${RECIPE_FILE}); pass { overwrite: true } to replace it`);
  mkdirSync(dir, { recursive: true });
  if (existsSync(join(dir, RECIPE_FILE))) rmSync(join(dir, RECIPE_FILE));
  const bytes = writeSafetensors(Object.fromEntries(model.stateDict()), { metadata: { format: 'vlmix' } });
  await writeFileAtomic(join(dir, WEIGHTS_FILE), bytes);
  for (const [name, data] of Object.entries(opts.files ?? {})) {
    if (name === RECIPE_FILE || name === WEIGHTS_FILE || name.includes('/') || name.includes('\\')) fail(`saveModel: files: '${name}' is not an allowed extra file name`);
    await writeFileAtomic(join(dir, name), data);
  }
  const file: RecipeFile = {
    ...recipe,
    weights: { file: WEIGHTS_FILE, sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.length },
    ...(opts.meta ? { meta: jsonValue(opts.meta, 'saveModel meta') as Record<string, unknown> } : {}),
  };
  await writeFileAtomic(join(dir, RECIPE_FILE), `${JSON.stringify(file, null, 2)}\n`);
}

export function isModelFolder(dir: string): boolean {
  return existsSync(join(dir, RECIPE_FILE));
}

export interface LoadedModel {
  model: Model;
  recipe: ModelRecipe;
  meta: Record<string, unknown>;
  dir: string;
}

/** Rebuilds a folder written by `saveModel`: recipe, then the weights after checking size and sha256. */
export function loadModel(dir: string, opts: { allowNonFinite?: boolean } = {}): LoadedModel {
  const path = join(dir, RECIPE_FILE);
  if (!existsSync(path)) {
    const held = existsSync(dir) ? readdirSync(dir).slice(0, 6).join(', ') : 'the folder does not exist';
    fail(`loadModel(${dir}): no ${RECIPE_FILE} (${held || 'empty folder'}); save one with saveModel / vlm.save(dir)`);
  }
  let file: RecipeFile;
  try {
    file = JSON.parse(readFileSync(path, 'utf8')) as RecipeFile;
  } catch (e) {
    return fail(`${path}: not valid JSON (${(e as Error).message})`);
  }
  const wpath = join(dir, file.weights?.file ?? WEIGHTS_FILE);
  if (!existsSync(wpath)) fail(`${dir}: the weights file ${file.weights?.file} named by ${RECIPE_FILE} is missing`);
  const bytes = readFileSync(wpath);
  if (file.weights && bytes.length !== file.weights.bytes) fail(`${wpath}: ${bytes.length} bytes, ${RECIPE_FILE} says ${file.weights.bytes} (truncated or replaced)`);
  const sum = createHash('sha256').update(bytes).digest('hex');
  if (file.weights && sum !== file.weights.sha256) fail(`${wpath}: sha256 ${sum.slice(0, 12)}… differs from ${RECIPE_FILE}'s ${file.weights.sha256.slice(0, 12)}… (corrupted or replaced)`);
  const model = modelFromRecipe(file, path);
  const st = readSafetensors(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
  const tensors = new Map<string, tf.Tensor>(st.names().map((n) => [n, st.toTensor(n)]));
  try {
    model.loadStateDict(tensors, { strict: true, allowNonFinite: opts.allowNonFinite });
  } catch (e) {
    model.dispose();
    fail(`${wpath}: ${(e as Error).message}`);
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  const { meta, weights: _w, ...recipe } = file;
  return { model, recipe, meta: meta ?? {}, dir };
}

registerMixinType('RotaryMixin', RotaryMixin);
