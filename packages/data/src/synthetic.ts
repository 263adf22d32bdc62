// Synthetic visual QA: tiny rendered scenes whose answers can only come from the pixels.
// Questions are fixed strings per template and each template's answers are drawn from a
// shuffled "bag" (every answer once per round), so the text alone carries no signal about the
// answer: a blind model can do no better than chance.
import { createHash } from 'node:crypto';
import seedrandom from 'seedrandom';
import type { RgbImage } from './image.js';

export type ShapeName = 'circle' | 'square' | 'triangle';
export type QAKind = 'color' | 'shape' | 'position' | 'count';
export type Rgb = readonly [number, number, number];

export const SHAPE_NAMES: readonly ShapeName[] = ['circle', 'square', 'triangle'];
/** Named colours, chosen far apart in RGB so 32px renders stay unambiguous. */
export const SHAPE_COLORS: Readonly<Record<string, Rgb>> = {
  red: [220, 40, 40],
  green: [40, 170, 60],
  blue: [40, 90, 230],
  yellow: [235, 210, 40],
  purple: [150, 60, 200],
  orange: [245, 140, 30],
};
export const COUNT_WORDS = ['one', 'two', 'three'] as const;
export const QA_KINDS: readonly QAKind[] = ['color', 'shape', 'position', 'count'];

/** One drawn shape; (cx, cy) is a pixel index (that pixel's centre is the shape's centre). */
export interface ShapeSpec {
  shape: ShapeName;
  color: string;
  cx: number;
  cy: number;
  /** "Radius": circle radius, half the square side / 0.8, triangle half-height. */
  r: number;
}

export interface ShapesSample {
  image: RgbImage;
  question: string;
  answer: string;
  kind: QAKind;
  /** Ground truth scene, for tests and debugging. */
  scene: ShapeSpec[];
}

export interface ShapesDatasetOptions {
  seed: string | number;
  /** Image side in pixels (square images). Default 32, minimum 16. */
  size?: number;
  train: number;
  heldOut: number;
  /** Which question kinds to use (default all four). */
  kinds?: readonly QAKind[];
  /** Colour names from SHAPE_COLORS (default red, green, blue, yellow). */
  colors?: readonly string[];
  shapes?: readonly ShapeName[];
  /** Maximum shapes in a counting scene, 2..3 (default 3). */
  maxCount?: number;
  background?: Rgb;
  /**
   * Relative frequency of each question kind in the TRAIN split (integers, default 1 each); the
   * held-out split stays balanced. Lets training spend more samples on a harder kind.
   */
  trainKindWeights?: Partial<Record<QAKind, number>>;
  /** Radius range of single-shape scenes as a fraction of the image side (default [0.15, 0.21]). */
  singleScale?: readonly [number, number];
}

export interface QuestionTemplate {
  kind: QAKind;
  question: string;
  answers: readonly string[];
}

export interface ShapesDataset {
  train: ShapesSample[];
  heldOut: ShapesSample[];
  templates: QuestionTemplate[];
}

const DEFAULT_BG: Rgb = [24, 24, 24];

/** The question templates in use for the given options (answers per template are balanced). */
export function shapesTemplates(opts: Pick<ShapesDatasetOptions, 'kinds' | 'colors' | 'shapes' | 'maxCount'> = {}): QuestionTemplate[] {
  const kinds = opts.kinds ?? QA_KINDS;
  const colors = opts.colors ?? ['red', 'green', 'blue', 'yellow'];
  const shapes = opts.shapes ?? SHAPE_NAMES;
  const maxCount = opts.maxCount ?? 3;
  const all: QuestionTemplate[] = [
    { kind: 'color', question: 'what color is the shape?', answers: colors },
    { kind: 'shape', question: 'what shape is it?', answers: shapes },
    { kind: 'position', question: 'is the shape on the left or the right?', answers: ['left', 'right'] },
    { kind: 'position', question: 'is the shape at the top or the bottom?', answers: ['top', 'bottom'] },
    { kind: 'count', question: 'how many shapes are there?', answers: COUNT_WORDS.slice(0, maxCount) },
  ];
  return all.filter((t) => kinds.includes(t.kind));
}

/** True if pixel (x, y) is inside the shape (tests the pixel centre). */
export function insideShape(s: ShapeSpec, x: number, y: number): boolean {
  const dx = x - s.cx;
  const dy = y - s.cy;
  switch (s.shape) {
    case 'circle':
      return dx * dx + dy * dy <= s.r * s.r;
    case 'square':
      return Math.abs(dx) <= 0.8 * s.r && Math.abs(dy) <= 0.8 * s.r;
    case 'triangle': // apex up at (0, -r), base from (-r, r) to (r, r)
      return dy >= -s.r && dy <= s.r && Math.abs(dx) <= (dy + s.r) / 2;
  }
}

export function renderScene(size: number, scene: readonly ShapeSpec[], background: Rgb = DEFAULT_BG): RgbImage {
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      let c = background;
      for (const s of scene) if (insideShape(s, x, y)) c = SHAPE_COLORS[s.color]!;
      data.set(c, (y * size + x) * 3);
    }
  return { width: size, height: size, data };
}

/** Shuffle-bag: yields every item once per round, in a seeded random order. */
function bag<T>(items: readonly T[], rng: () => number): () => T {
  let cur: T[] = [];
  return () => {
    if (cur.length === 0) {
      cur = [...items];
      for (let i = cur.length - 1; i > 0; i--) {
        const j = Math.floor(rng() * (i + 1));
        [cur[i], cur[j]] = [cur[j]!, cur[i]!];
      }
    }
    return cur.pop()!;
  };
}

function validate(o: ShapesDatasetOptions): void {
  const size = o.size ?? 32;
  if (!Number.isInteger(size) || size < 16) throw new RangeError(`makeShapesDataset: size must be an integer ≥ 16, got ${size}`);
  for (const k of ['train', 'heldOut'] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 0) throw new RangeError(`makeShapesDataset: ${k} must be a non-negative integer, got ${o[k]}`);
  }
  for (const c of o.colors ?? []) {
    if (!(c in SHAPE_COLORS)) {
      throw new RangeError(`makeShapesDataset: unknown colour "${c}" (expected one of ${Object.keys(SHAPE_COLORS).join(', ')})`);
    }
  }
  if (o.colors && o.colors.length < 2) throw new RangeError(`makeShapesDataset: need at least 2 colours, got ${o.colors.length}`);
  for (const s of o.shapes ?? []) {
    if (!SHAPE_NAMES.includes(s)) throw new RangeError(`makeShapesDataset: unknown shape "${s}" (expected one of ${SHAPE_NAMES.join(', ')})`);
  }
  if (o.shapes && o.shapes.length < 2) throw new RangeError(`makeShapesDataset: need at least 2 shapes, got ${o.shapes.length}`);
  for (const k of o.kinds ?? []) {
    if (!QA_KINDS.includes(k)) throw new RangeError(`makeShapesDataset: unknown kind "${k}" (expected one of ${QA_KINDS.join(', ')})`);
  }
  if (o.kinds && o.kinds.length === 0) throw new RangeError('makeShapesDataset: kinds must not be empty');
  const mc = o.maxCount ?? 3;
  if (mc !== 2 && mc !== 3) throw new RangeError(`makeShapesDataset: maxCount must be 2 or 3, got ${mc}`);
}

/**
 * Builds a deterministic synthetic VQA set. Train and held-out use independent seeded streams
 * (`${seed}/train`, `${seed}/heldout`) and held-out rejects any (image, question) also in train.
 */
export function makeShapesDataset(opts: ShapesDatasetOptions): ShapesDataset {
  validate(opts);
  const size = opts.size ?? 32;
  const colors = opts.colors ?? ['red', 'green', 'blue', 'yellow'];
  const shapes = opts.shapes ?? SHAPE_NAMES;
  const bg = opts.background ?? DEFAULT_BG;
  const templates = shapesTemplates(opts);
  const kinds = [...new Set(templates.map((t) => t.kind))];

  // Identity of a sample = question + rendered pixels (different radii can rasterise alike).
  const key = (q: string, img: RgbImage) => q + '|' + createHash('sha1').update(img.data).digest('base64');

  const singleScale = opts.singleScale ?? [0.15, 0.21];
  if (!(singleScale[0] > 0 && singleScale[1] >= singleScale[0] && singleScale[1] <= 0.21)) {
    throw new RangeError(`makeShapesDataset: singleScale must satisfy 0 < lo <= hi <= 0.21 (larger shapes cannot sit wholly in one half), got [${singleScale}]`);
  }
  const weights = opts.trainKindWeights ?? {};
  for (const [k, w] of Object.entries(weights)) {
    if (!kinds.includes(k as QAKind)) throw new RangeError(`makeShapesDataset: trainKindWeights names kind '${k}', which is not among kinds (${kinds.join(', ')})`);
    if (!Number.isInteger(w) || w! < 0) throw new RangeError(`makeShapesDataset: trainKindWeights.${k} must be a non-negative integer, got ${w}`);
  }
  const weighted = kinds.flatMap((k) => new Array<QAKind>(weights[k] ?? 1).fill(k));
  if (weighted.length === 0) throw new RangeError('makeShapesDataset: trainKindWeights leaves no kind to sample');
  const generate = (n: number, stream: string, kindOrder: readonly QAKind[], exclude?: Set<string>): { samples: ShapesSample[]; keys: Set<string> } => {
    const rng = seedrandom(`${opts.seed}/${stream}`);
    const uni = (lo: number, hi: number) => lo + rng() * (hi - lo);
    const int = (lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1)); // inclusive
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(rng() * xs.length)]!;
    const nextKind = bag(kindOrder, rng);
    const templateBags = new Map(kinds.map((k) => [k, bag(templates.filter((t) => t.kind === k), rng)]));
    const answerBags = new Map(templates.map((t) => [t, bag(t.answers, rng)]));

    const single = (constraint?: string): ShapeSpec => {
      const r = uni(singleScale[0], singleScale[1]) * size;
      const m = Math.ceil(r);
      let xlo = m, xhi = size - 1 - m, ylo = m, yhi = size - 1 - m;
      // Position answers need the whole shape inside that half, so they are unambiguous.
      const half = size / 2;
      if (constraint === 'left') xhi = Math.floor(half - r - 1);
      if (constraint === 'right') xlo = Math.ceil(half + r);
      if (constraint === 'top') yhi = Math.floor(half - r - 1);
      if (constraint === 'bottom') ylo = Math.ceil(half + r);
      return { shape: pick(shapes), color: pick(colors), cx: int(xlo, xhi), cy: int(ylo, yhi), r };
    };
    const many = (n: number): ShapeSpec[] => {
      for (let attempt = 0; attempt < 1000; attempt++) {
        const out: ShapeSpec[] = [];
        for (let i = 0; i < n; i++) {
          const r = uni(0.09, 0.13) * size;
          const m = Math.ceil(r);
          const s: ShapeSpec = { shape: pick(shapes), color: pick(colors), cx: int(m, size - 1 - m), cy: int(m, size - 1 - m), r };
          // Keep shapes apart (circumscribed circles + 1px gap) so counts are visually clear.
          if (out.some((o) => Math.hypot(o.cx - s.cx, o.cy - s.cy) < o.r + s.r + 1.5)) break;
          out.push(s);
        }
        if (out.length === n) return out;
      }
      throw new Error(`makeShapesDataset: could not place ${n} non-overlapping shapes in ${size}px`);
    };

    const samples: ShapesSample[] = [];
    const keys = new Set<string>();
    while (samples.length < n) {
      const kind = nextKind();
      const t = templateBags.get(kind)!();
      const answer = answerBags.get(t)!();
      for (let attempt = 0; ; attempt++) {
        if (attempt >= 100) throw new Error(`makeShapesDataset: could not draw a held-out sample distinct from train for "${t.question}" → ${answer}`);
        let scene: ShapeSpec[];
        if (kind === 'count') scene = many(COUNT_WORDS.indexOf(answer as (typeof COUNT_WORDS)[number]) + 1);
        else if (kind === 'position') scene = [single(answer)];
        else {
          const s = single();
          if (kind === 'color') s.color = answer;
          else s.shape = answer as ShapeName;
          scene = [s];
        }
        const image = renderScene(size, scene, bg);
        const k = key(t.question, image);
        if (exclude?.has(k)) continue;
        keys.add(k);
        samples.push({ image, question: t.question, answer, kind, scene });
        break;
      }
    }
    return { samples, keys };
  };

  const train = generate(opts.train, 'train', weighted);
  const heldOut = generate(opts.heldOut, 'heldout', kinds, train.keys);
  return { train: train.samples, heldOut: heldOut.samples, templates };
}
