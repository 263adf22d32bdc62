// Checkpoints split over several safetensors files, as Hugging Face writes them:
//   model.safetensors.index.json = { "metadata": {...}, "weight_map": { "<tensor name>": "<shard file>" } }
// next to the shard files (model-00001-of-00002.safetensors, ...). Shards are opened lazily, the
// first time one of their tensors is asked for, and only the requested tensor's bytes are read.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { openSafetensorsFile, type SafetensorsEntry, type SafetensorsFile } from './safetensors.js';

function fail(msg: string): never {
  throw new Error(`safetensors index: ${msg}`);
}

/** The parsed `weight_map` of an index file: tensor name -> shard file name (relative to the index). */
export function readSafetensorsIndex(indexPath: string): { weightMap: Map<string, string>; metadata: Record<string, unknown> } {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(indexPath, 'utf8'));
  } catch (err) {
    fail(`cannot read ${indexPath}: ${(err as Error).message}`);
  }
  const wm = (json as { weight_map?: unknown })?.weight_map;
  if (wm === null || typeof wm !== 'object' || Array.isArray(wm)) fail(`${indexPath} has no "weight_map" object`);
  const weightMap = new Map<string, string>();
  for (const [name, file] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof file !== 'string' || file.length === 0 || file.includes('/') || file.includes('\\') || file === '..') {
      fail(`${indexPath}: weight_map["${name}"] must be a shard file name next to the index, got ${JSON.stringify(file)}`);
    }
    weightMap.set(name, file);
  }
  const metadata = ((json as { metadata?: unknown }).metadata ?? {}) as Record<string, unknown>;
  return { weightMap, metadata };
}

class ShardedSafetensors implements SafetensorsFile {
  readonly metadata: Record<string, string> = {};
  private readonly open = new Map<string, SafetensorsFile>();

  constructor(
    private readonly dir: string,
    private readonly indexPath: string,
    private readonly weightMap: Map<string, string>,
  ) {}

  names(): string[] {
    return [...this.weightMap.keys()];
  }

  has(name: string): boolean {
    return this.weightMap.has(name);
  }

  /** The shard holding `name`, opened (header only) on first use. */
  private shard(name: string): SafetensorsFile {
    const file = this.weightMap.get(name);
    if (file === undefined) fail(`no tensor named "${name}" in ${this.indexPath}`);
    let f = this.open.get(file);
    if (!f) {
      const path = join(this.dir, file);
      if (!existsSync(path)) fail(`shard ${file} (listed for "${name}" in ${this.indexPath}) does not exist`);
      f = openSafetensorsFile(path);
      this.open.set(file, f);
    }
    if (!f.has(name)) fail(`${this.indexPath} maps "${name}" to ${file}, but that shard has no such tensor`);
    return f;
  }

  get(name: string): SafetensorsEntry {
    return this.shard(name).get(name);
  }

  toFloat32(name: string): Float32Array {
    return this.shard(name).toFloat32(name);
  }

  toInt32(name: string): Int32Array {
    return this.shard(name).toInt32(name);
  }

  toTensor(name: string): ReturnType<SafetensorsFile['toTensor']> {
    return this.shard(name).toTensor(name);
  }
}

/**
 * Opens a sharded checkpoint from its `*.safetensors.index.json`. Every shard the index names must
 * exist (checked now, by name; a missing one is an error naming it and a tensor it should hold);
 * shards are read lazily, tensor by tensor. The result behaves like one safetensors file.
 */
export function openSafetensorsIndex(indexPath: string): SafetensorsFile {
  const { weightMap } = readSafetensorsIndex(indexPath);
  const dir = dirname(indexPath);
  const firstTensor = new Map<string, string>();
  for (const [name, file] of weightMap) if (!firstTensor.has(file)) firstTensor.set(file, name);
  const missing = [...firstTensor].filter(([file]) => !existsSync(join(dir, file)));
  if (missing.length) {
    const list = missing.map(([file, name]) => `${file} (holds e.g. "${name}")`).join(', ');
    fail(`${basename(indexPath)} in ${dir} lists ${missing.length} shard(s) that do not exist: ${list}`);
  }
  return new ShardedSafetensors(dir, indexPath, weightMap);
}

/**
 * The weights of a Hugging Face model folder: `<stem>.safetensors`, else the sharded
 * `<stem>.safetensors.index.json` (stem `model` by default). A folder with only PyTorch pickles
 * (`pytorch_model.bin`) is an error saying so: vlmix reads safetensors only.
 */
export function openSafetensorsFolder(dir: string, stem = 'model'): SafetensorsFile {
  const single = join(dir, `${stem}.safetensors`);
  if (existsSync(single)) return openSafetensorsFile(single);
  const index = join(dir, `${stem}.safetensors.index.json`);
  if (existsSync(index)) return openSafetensorsIndex(index);
  let files: string[] = [];
  try {
    files = readdirSync(dir).sort();
  } catch (err) {
    throw new Error(`openSafetensorsFolder: cannot list ${dir}: ${(err as Error).message}`);
  }
  const pickles = files.filter((f) => f.endsWith('.bin') || f.endsWith('.pt') || f.endsWith('.pth'));
  const hint = pickles.length
    ? `; it has PyTorch pickles (${pickles.join(', ')}), which vlmix does not read: convert them to safetensors first`
    : '';
  throw new Error(`openSafetensorsFolder: ${dir} has neither ${stem}.safetensors nor ${stem}.safetensors.index.json (files: ${files.join(', ') || 'none'})${hint}`);
}
