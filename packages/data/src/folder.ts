// Loader/writer for the CogVLM-SFT-311K on-disk layout:
//   <dir>/images/<id>.jpg|.jpeg|.png   <dir>/labels/<id>.json
// labels are {"captions":[{"role":"caption","content":"..."}]} (MiniGPT-4 style) or
// {"conversations":[{"role":"user"|"assistant","content":"..."}...]} (LLaVA style).
//
// Policy: a label whose image is missing is an ERROR (that record is unusable); an image with
// no label is a WARNING via `onWarning` (default console.warn) and is skipped, because real
// dumps often contain stray images. Every error names the offending file.
import { readFileSync } from 'node:fs';
import { mkdir, open, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeImage, detectImageFormat } from './decode.js';
import { loadImageFile } from './decode-pool.js';
import { isJpeg } from './jpeg.js';
import { assertRgbImage, type RgbImage } from './image.js';
import { encodePng, isPng } from './png.js';
import type { ImageLimits } from './limits.js';

export type TurnRole = 'caption' | 'user' | 'assistant';
export interface Turn {
  role: TurnRole;
  content: string;
}
export interface ImageTextRecord {
  id: string;
  imagePath: string;
  image: RgbImage;
  turns: Turn[];
}
export interface LoadFolderOptions extends ImageLimits {
  /** Stop after this many records (in id order). */
  limit?: number;
  /** Receives non-fatal problems (images without labels, skipped records). Default: console.warn. */
  onWarning?: (message: string) => void;
  /**
   * A record that cannot be read (malformed label, missing or undecodable image, over the pixel limit):
   * 'error' (default) stops with the error naming the file; 'skip' warns once per record, goes on, and
   * ends with a warning giving the count.
   */
  onBadRecord?: 'error' | 'skip';
}

const IMAGE_EXT = /\.(jpe?g|png)$/i;

/** Numeric-aware id order so 2 < 10 and 000123 sorts like 123. */
const byId = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });

/** Validates a parsed label file and returns its turns. Exported for reuse/tests. */
export function parseLabel(json: unknown, file: string): Turn[] {
  const fail = (msg: string): never => {
    throw new Error(`${file}: ${msg}`);
  };
  const describe = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'string' ? JSON.stringify(v) : typeof v);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(`expected a JSON object, got ${describe(json)}`);
  const obj = json as Record<string, unknown>;
  const hasCap = 'captions' in obj;
  const hasConv = 'conversations' in obj;
  if (hasCap === hasConv) {
    fail(`expected exactly one of "captions" or "conversations", got ${hasCap ? 'both' : `keys [${Object.keys(obj).join(', ')}]`}`);
  }
  const field = hasCap ? 'captions' : 'conversations';
  const allowed: TurnRole[] = hasCap ? ['caption'] : ['user', 'assistant'];
  const list = obj[field];
  if (!Array.isArray(list)) fail(`"${field}" must be an array, got ${describe(list)}`);
  if ((list as unknown[]).length === 0) fail(`"${field}" must not be empty`);
  return (list as unknown[]).map((t, i) => {
    const where = `${field}[${i}]`;
    if (typeof t !== 'object' || t === null || Array.isArray(t)) fail(`${where} must be an object, got ${describe(t)}`);
    const { role, content } = t as Record<string, unknown>;
    if (typeof role !== 'string' || !allowed.includes(role as TurnRole)) {
      fail(`${where}.role must be one of ${allowed.map((r) => `"${r}"`).join(', ')}, got ${describe(role)}`);
    }
    if (typeof content !== 'string') fail(`${where}.content must be a string, got ${describe(content)}`);
    return { role: role as TurnRole, content: content as string };
  });
}

async function listDir(dir: string, what: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    throw new Error(`${dir}: cannot read ${what} directory (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/**
 * Lazily yields records in id order; only one image is decoded at a time, so this scales to
 * the full 311K-sample set. Directory listing and label/image pairing are checked up front.
 */
export async function* iterImageTextFolder(dir: string, opts: LoadFolderOptions = {}): AsyncGenerator<ImageTextRecord> {
  for await (const r of records(dir, opts, true)) yield r as ImageTextRecord;
}

/** A record without its pixels: what a streaming data source keeps in memory for each record. */
export type IndexedRecord = Omit<ImageTextRecord, 'image'>;

/**
 * The folder's records with their labels parsed but their images NOT kept (each image's signature is
 * checked, PNG or JPEG; with onBadRecord 'skip' each image is decoded once and dropped, to know which
 * records are good), in id order: the index of a dataset too large to hold decoded. Decode one with readRecordImage when it is needed. Same errors and onBadRecord as loadImageTextFolder.
 */
export async function indexImageTextFolder(dir: string, opts: LoadFolderOptions = {}): Promise<IndexedRecord[]> {
  const out: IndexedRecord[] = [];
  for await (const r of records(dir, opts, false)) out.push(r);
  return out;
}

/**
 * A folder index that keeps no text: per record its id and image extension only (tens of bytes), with the
 * label re-read and parsed when asked. What a dataset of hundreds of thousands of records keeps in memory.
 */
export interface CompactFolderIndex {
  readonly dir: string;
  readonly length: number;
  id(i: number): string;
  imagePath(i: number): string;
  labelPath(i: number): string;
  /** The record's turns, re-read from its label (the last record read is cached). */
  turns(i: number): Turn[];
}

class CompactIndex implements CompactFolderIndex {
  private readonly ids: string[] = [];
  private exts = new Uint8Array(1024);
  private readonly extTable: string[] = [];
  private last: { i: number; turns: Turn[] } | null = null;

  constructor(readonly dir: string) {}

  get length(): number {
    return this.ids.length;
  }

  add(id: string, imagePath: string): void {
    const ext = imagePath.slice(imagePath.lastIndexOf('.'));
    let k = this.extTable.indexOf(ext);
    if (k < 0) k = this.extTable.push(ext) - 1;
    if (this.ids.length === this.exts.length) {
      const grown = new Uint8Array(this.exts.length * 2);
      grown.set(this.exts);
      this.exts = grown;
    }
    this.exts[this.ids.length] = k;
    this.ids.push(id);
  }

  private check(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.ids.length) throw new RangeError(`folder index: record ${i} out of range [0, ${this.ids.length})`);
  }

  id(i: number): string {
    this.check(i);
    return this.ids[i]!;
  }

  imagePath(i: number): string {
    return join(this.dir, 'images', this.id(i) + this.extTable[this.exts[i]!]!);
  }

  labelPath(i: number): string {
    return join(this.dir, 'labels', `${this.id(i)}.json`);
  }

  turns(i: number): Turn[] {
    if (this.last?.i === i) return this.last.turns;
    const file = this.labelPath(i);
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new Error(`${file}: cannot re-read the label indexed earlier (${(e as Error).message})`);
    }
    const turns = parseLabel(json, file);
    this.last = { i, turns };
    return turns;
  }
}

/**
 * Indexes a folder as indexImageTextFolder does (same checks, errors and onBadRecord) but keeps only a
 * compact index; `onRecord` sees each good record's turns once, in id order, as it is indexed.
 */
export async function indexFolderCompact(dir: string, opts: LoadFolderOptions & { onRecord?: (index: number, turns: readonly Turn[], id: string) => void } = {}): Promise<CompactFolderIndex> {
  const index = new CompactIndex(dir);
  for await (const r of records(dir, opts, false)) {
    opts.onRecord?.(index.length, r.turns, r.id);
    index.add(r.id, r.imagePath);
  }
  return index;
}

/** Decodes a record's image (errors name the file; the pixel limit of `limits` applies). */
export function readRecordImage(r: IndexedRecord, limits: ImageLimits = {}): RgbImage {
  return loadImageFile({ path: r.imagePath, limits });
}

/** Checks that a file starts like a PNG or JPEG without reading the rest. */
async function probeImage(path: string): Promise<void> {
  const head = new Uint8Array(8);
  let fh;
  try {
    fh = await open(path, 'r');
    await fh.read(head, 0, 8, 0);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`${path}: cannot read image file (${code === 'EISDIR' ? 'is a directory' : (e as Error).message}); expected a PNG or JPEG file`);
  } finally {
    await fh?.close();
  }
  if (!isPng(head) && !isJpeg(head)) throw new Error(`${path}: unsupported image format (${detectImageFormat(head)}); expected PNG or JPEG`);
}

async function* records(dir: string, opts: LoadFolderOptions, decode: boolean): AsyncGenerator<IndexedRecord & { image?: RgbImage }> {
  const warn = opts.onWarning ?? ((m: string) => console.warn(m));
  const imagesDir = join(dir, 'images');
  const labelsDir = join(dir, 'labels');
  const images = new Map<string, string>();
  for (const f of (await listDir(imagesDir, 'images')).sort(byId)) {
    if (!IMAGE_EXT.test(f)) {
      if (!f.startsWith('.')) warn(`${join(imagesDir, f)}: ignored (not .jpg/.jpeg/.png)`);
      continue;
    }
    const id = f.replace(IMAGE_EXT, '');
    const prev = images.get(id);
    if (prev) throw new Error(`${join(imagesDir, f)}: ambiguous image for id "${id}" (also ${prev})`);
    images.set(id, join(imagesDir, f));
  }
  const labels = (await listDir(labelsDir, 'labels')).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort(byId);
  const labelled = new Set(labels);
  for (const [id, path] of images) if (!labelled.has(id)) warn(`${path}: image has no label file ${join(labelsDir, id + '.json')}; skipped`);
  const limit = opts.limit ?? Infinity;
  if (!(limit >= 0)) throw new RangeError(`loadImageTextFolder: limit must be ≥ 0, got ${opts.limit}`);
  const policy = opts.onBadRecord ?? 'error';
  if (policy !== 'error' && policy !== 'skip') throw new RangeError(`loadImageTextFolder: onBadRecord must be 'error' or 'skip', got ${JSON.stringify(policy)}`);
  let n = 0;
  let skipped = 0;
  for (const id of labels) {
    if (n >= limit) break;
    const labelPath = join(labelsDir, id + '.json');
    const imagePath = images.get(id);
    let record: IndexedRecord & { image?: RgbImage };
    try {
      if (!imagePath) throw new Error(`${labelPath}: missing image: expected ${join(imagesDir, id)}.jpg, .jpeg or .png`);
      const text = await readNamed(labelPath, 'label', 'utf8');
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (e) {
        throw new Error(`${labelPath}: malformed JSON (${(e as Error).message})`);
      }
      const turns = parseLabel(json, labelPath);
      if (decode) record = { id, imagePath, image: decodeImage(new Uint8Array(await readNamed(imagePath, 'image')), imagePath, opts), turns };
      else {
        // skip must know now which records are good: decode once (and drop the pixels); error only checks the signature
        if (policy === 'skip') decodeImage(new Uint8Array(await readNamed(imagePath, 'image')), imagePath, opts);
        else await probeImage(imagePath);
        record = { id, imagePath, turns };
      }
    } catch (e) {
      if (policy === 'error') throw e;
      skipped++;
      warn(`skipped record ${id}: ${(e as Error).message}`);
      continue;
    }
    n++;
    yield record;
  }
  if (skipped) warn(`${dir}: skipped ${skipped} bad record${skipped === 1 ? '' : 's'} of ${skipped + n} (onBadRecord: 'skip')`);
}

/** readFile whose errors name the file and say what it should have been (e.g. a directory named like an image). */
async function readNamed(path: string, what: 'image' | 'label'): Promise<Buffer>;
async function readNamed(path: string, what: 'image' | 'label', enc: 'utf8'): Promise<string>;
async function readNamed(path: string, what: 'image' | 'label', enc?: 'utf8'): Promise<Buffer | string> {
  try {
    return enc ? await readFile(path, enc) : await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'EISDIR' ? 'is a directory' : code === 'EACCES' ? 'permission denied' : (e as Error).message;
    throw new Error(`${path}: cannot read ${what} file (${why}); expected a ${what === 'image' ? 'PNG or JPEG' : 'JSON'} file`);
  }
}

/** Eagerly loads every record (or the first `limit`) into memory. */
export async function loadImageTextFolder(dir: string, opts: LoadFolderOptions = {}): Promise<ImageTextRecord[]> {
  const out: ImageTextRecord[] = [];
  for await (const r of iterImageTextFolder(dir, opts)) out.push(r);
  return out;
}

export interface WritableRecord {
  id: string;
  image: RgbImage;
  turns: readonly Turn[];
}

const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * Writes records in the same layout (images as PNG, lossless). All-caption records become
 * {"captions": [...]}, user/assistant records {"conversations": [...]}; mixing is an error.
 */
export async function writeImageTextFolder(dir: string, records: Iterable<WritableRecord>): Promise<void> {
  await mkdir(join(dir, 'images'), { recursive: true });
  await mkdir(join(dir, 'labels'), { recursive: true });
  const seen = new Set<string>();
  for (const r of records) {
    if (!SAFE_ID.test(r.id)) throw new Error(`writeImageTextFolder: record id ${JSON.stringify(r.id)} is not a safe file name (expected ${SAFE_ID})`);
    if (seen.has(r.id)) throw new Error(`writeImageTextFolder: duplicate record id "${r.id}"`);
    seen.add(r.id);
    assertRgbImage(r.image, `writeImageTextFolder: record "${r.id}" image`);
    if (r.turns.length === 0) throw new Error(`writeImageTextFolder: record "${r.id}" has no turns`);
    const captions = r.turns.every((t) => t.role === 'caption');
    const conv = r.turns.every((t) => t.role === 'user' || t.role === 'assistant');
    if (!captions && !conv) {
      throw new Error(
        `writeImageTextFolder: record "${r.id}" mixes roles [${r.turns.map((t) => t.role).join(', ')}]; expected all "caption" or only "user"/"assistant"`,
      );
    }
    const label = { [captions ? 'captions' : 'conversations']: r.turns.map((t) => ({ role: t.role, content: t.content })) };
    // Validate what we write with the reader's own rules (e.g. content must be a string).
    parseLabel(label, `writeImageTextFolder: record "${r.id}"`);
    await writeFile(join(dir, 'images', r.id + '.png'), encodePng(r.image));
    await writeFile(join(dir, 'labels', r.id + '.json'), JSON.stringify(label, null, 1) + '\n');
  }
}

/** Synthetic QA samples → user/assistant records (ids zero-padded so they sort naturally). */
export function qaToRecords(samples: readonly { image: RgbImage; question: string; answer: string }[], idPrefix = ''): WritableRecord[] {
  const width = String(Math.max(samples.length - 1, 0)).length;
  return samples.map((s, i) => ({
    id: idPrefix + String(i).padStart(Math.max(width, 6), '0'),
    image: s.image,
    turns: [
      { role: 'user', content: s.question },
      { role: 'assistant', content: s.answer },
    ],
  }));
}
