/**
 * What a training run reads: the seeded synthetic visual-QA set or an images/ + labels/ folder, split
 * into train and held-out items, and the training items as a data source of encoded batches.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { fail } from '@vlmix/core';
import { indexFolderCompact, loadImageFile, makeShapesDataset, resize, type CompactFolderIndex, type DecodePool, type ImageDecoder, type QAKind, type RgbImage, type Turn } from '@vlmix/data';
import type { DataSource } from '@vlmix/train';
import type { Vlm, VlmBatch } from '../vlm.js';

/** A training / evaluation item: an image, a question and its answer, and a kind for per-kind accuracy. */
export interface QAItem {
  image: RgbImage;
  question: string;
  answer: string;
  kind: string;
  /** Earlier turns of a multi-turn conversation (see QASample.history). */
  history?: readonly { question: string; answer: string }[];
  /** Where a lazily decoded `image` comes from (folder data): a DecodePool can load it ahead, off-thread. */
  imageSource?: { path: string; width?: number; height?: number };
}

export interface QASplit {
  train: QAItem[];
  heldOut: QAItem[];
}

/** Chosen by measurement (bench/results/demo-*): shape questions are the slow ones to learn, so the
 *  train split draws them 3x as often; the held-out split stays balanced. Type D's shape answers depend
 *  on the VQ codes: 1500 tokenizer steps give 92% on shape questions where 600 gave 72% (seed 0). */
export const TRAIN_VLM_DEFAULTS = { batchSize: 32, lr: 1e-3, trainSize: 20000, heldOutSize: 400, vqSteps: 1500, shapeWeight: 3 };

/**
 * The synthetic visual-QA split (seeded), rendered at 32 px. heldOut 0 gives no held-out items. With
 * `imageSize` (a model whose input is larger, e.g. the 224-px small tier) each item's image is the
 * 32-px rendering resized when read (bilinear), so the split holds 32-px pixels only.
 */
export function shapesSplit(opts: { seed?: number; trainSize?: number; heldOutSize?: number; kinds?: QAKind[]; imageSize?: number }): QASplit {
  const split = renderShapes(opts);
  const s = opts.imageSize;
  if (s == null || s === 32) return split;
  const sized = (items: QAItem[]): QAItem[] => items.map((it) => ({
    question: it.question, answer: it.answer, kind: it.kind, ...(it.history ? { history: it.history } : {}),
    get image() {
      return resize(it.image, s, s);
    },
  }));
  return { train: sized(split.train), heldOut: sized(split.heldOut) };
}

function renderShapes(opts: { seed?: number; trainSize?: number; heldOutSize?: number; kinds?: QAKind[] }): QASplit {
  return makeShapesDataset({
    seed: opts.seed ?? 0, size: 32,
    train: opts.trainSize ?? TRAIN_VLM_DEFAULTS.trainSize, heldOut: opts.heldOutSize ?? TRAIN_VLM_DEFAULTS.heldOutSize,
    kinds: opts.kinds,
    trainKindWeights: !opts.kinds || opts.kinds.includes('shape') ? { shape: TRAIN_VLM_DEFAULTS.shapeWeight } : undefined,
  });
}

/** A record's items: captions one each (answer to "Describe the image."), a conversation one with history. */
function itemTexts(turns: readonly Turn[]): { kind: 'caption' | 'conversation'; question: string; answer: string; history?: { question: string; answer: string }[] }[] {
  const out: ReturnType<typeof itemTexts> = [];
  const pairs: { question: string; answer: string }[] = [];
  turns.forEach((t, i) => {
    if (t.role === 'caption') out.push({ kind: 'caption', question: 'Describe the image.', answer: t.content });
    if (t.role === 'user' && turns[i + 1]?.role === 'assistant') pairs.push({ question: t.content, answer: turns[i + 1]!.content });
  });
  // A conversation is one sequence: earlier turns as history, the loss on every answer.
  if (pairs.length) out.push({ kind: 'conversation', ...pairs[pairs.length - 1]!, ...(pairs.length > 1 ? { history: pairs.slice(0, -1) } : {}) });
  return out;
}

/**
 * An item of a folder that holds nothing but where it comes from (record, which of its items): its text is
 * re-read from the label and its image decoded (and resized) when accessed, never kept. About 40 bytes.
 */
class FolderItem implements QAItem {
  constructor(private readonly index: CompactFolderIndex, private readonly size: number | undefined, private readonly rec: number, private readonly k: number) {}

  private text() {
    return itemTexts(this.index.turns(this.rec))[this.k]!;
  }

  get kind(): string {
    return this.text().kind;
  }

  get question(): string {
    return this.text().question;
  }

  get answer(): string {
    return this.text().answer;
  }

  get history(): { question: string; answer: string }[] | undefined {
    return this.text().history;
  }

  get imageSource(): { path: string; width?: number; height?: number } {
    // an any-resolution model gets the image at its own size
    return this.size == null ? { path: this.index.imagePath(this.rec) } : { path: this.index.imagePath(this.rec), width: this.size, height: this.size };
  }

  get image(): RgbImage {
    return loadImageFile(this.imageSource);
  }
}

/**
 * Items from an images/ + labels/ folder: a conversation is one item (earlier turns as history), a
 * caption is the answer to "Describe the image.". Streaming: the folder is indexed once (labels parsed and
 * dropped, only ids kept: CompactFolderIndex); an item re-reads its label and decodes its image when used.
 * Items longer than the model's context are skipped (and reported through `warn`). The last `heldOut`
 * records (default a tenth, at least one; 0 = none) are held out.
 */
export async function folderSplit(dir: string, vlm: Vlm, heldOut?: number, warn: (m: string) => void = () => {}, onBadRecord: 'error' | 'skip' = 'error'): Promise<QASplit> {
  const max = vlm.model.config.maxSeqLen;
  // per record, the positions (in itemTexts order) of the items that fit the context
  const fits: number[][] = [];
  let skipped = 0;
  const index = await indexFolderCompact(dir, {
    onBadRecord, onWarning: warn,
    onRecord: (_rec, turns, id) => {
      const keep: number[] = [];
      itemTexts(turns).forEach((t, k) => {
        let count: number;
        try {
          count = vlm.tokenCount([{ ...t, image: { width: 0, height: 0, data: new Uint8Array(0) } }]);
        } catch (e) {
          // formatting errors (e.g. a caption holding a special-token literal such as "<eos>") name the label file
          return fail(`${join(dir, 'labels', `${id}.json`)}: ${(e as Error).message}`);
        }
        if (count <= max) keep.push(k);
        else skipped++;
      });
      fits.push(keep);
    },
  });
  const records = index.length;
  const n = heldOut === 0 ? 0 : Math.max(1, Math.min(heldOut ?? Math.ceil(records / 10), records - 1));
  if (records < n + 1) fail(`${dir}: need at least ${n + 1} records (training + held-out), found ${records}`);
  const items = (from: number, to: number) => {
    const out: QAItem[] = [];
    for (let r = from; r < to; r++) for (const k of fits[r]!) out.push(new FolderItem(index, vlm.anyResolution ? undefined : vlm.imageSize, r, k));
    return out;
  };
  const split = { train: items(0, records - n), heldOut: items(records - n, records) };
  if (skipped) warn(`${dir}: skipped ${skipped} question/answer pairs longer than the model's ${max} tokens`);
  if (split.train.length === 0) fail(`${dir}: no training item fits the model's ${max}-token context`);
  return split;
}

/**
 * The training items as `floor(items / batchSize)` batches, each encoded once when the trainer draws
 * it (outside the gradient tape) and freed after its step. With a DecodePool, the images of the batches
 * the trainer announces (`prefetch`) are decoded on worker threads while it computes; at most those
 * batches' pixels are held. Without one (or for a batch not announced) they are decoded in get().
 * Either way the batch is the same, bit for bit.
 */
export function encodedBatches(vlm: Vlm, items: QAItem[], batchSize: number, shard?: { start: number; end: number }, pool?: DecodePool, decoder: ImageDecoder = 'js'): DataSource<VlmBatch> {
  // shard: this rank's rows [start, end) of each global batch (data-parallel training).
  const [from, to] = shard ? [shard.start, shard.end] : [0, batchSize];
  const rows = (i: number) => items.slice(i * batchSize + from, i * batchSize + to);
  const loading = new Map<number, Promise<RgbImage[] | null>>();
  const done = new Map<number, RgbImage[]>();
  const failed = new Map<number, Error>();
  return {
    length: Math.floor(items.length / batchSize),
    get: (i) => {
      const err = failed.get(i);
      if (err) throw err;
      const images = done.get(i);
      loading.delete(i);
      done.delete(i);
      const batch = rows(i);
      // built field by field: spreading an item would call its lazy `image` getter (a decode)
      return vlm.encode(images ? batch.map((x, k) => ({ image: images[k]!, question: x.question, answer: x.answer, ...(x.history ? { history: x.history } : {}) })) : batch);
    },
    dispose: (b) => tf.dispose(b.tensors),
    prefetch: pool
      ? (indices) => {
        const keep = new Set(indices);
        for (const i of [...loading.keys()]) if (!keep.has(i)) { loading.delete(i); done.delete(i); failed.delete(i); }
        for (const i of indices) {
          if (loading.has(i)) continue;
          const batch = rows(i);
          if (!batch.every((x) => x.imageSource)) { loading.set(i, Promise.resolve(null)); continue; }
          const entry: Promise<RgbImage[] | null> = Promise.all(batch.map((x) => pool.decode({ ...x.imageSource!, decoder }))).then((imgs) => {
            if (loading.get(i) === entry) done.set(i, imgs); // still wanted (not dropped meanwhile)
            return imgs;
          }, (e: Error) => {
            if (loading.get(i) === entry) failed.set(i, e);
            return null;
          });
          loading.set(i, entry);
        }
      }
      : undefined,
    ready: pool
      ? async (i) => {
        await loading.get(i);
        const err = failed.get(i);
        if (err) throw err;
      }
      : undefined,
  };
}
