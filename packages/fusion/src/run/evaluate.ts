/** Held-out exact-match accuracy of a Vlm. */
import type { Vlm } from '../vlm.js';
import type { QAItem } from './data.js';

export interface Evaluation {
  /** Fraction of items answered exactly; null when there was nothing to evaluate. */
  accuracy: number | null;
  /** Accuracy per item kind. */
  byKind: Record<string, number>;
  /** Items evaluated. */
  count: number;
}

/** Exact-match accuracy (teacher-forced greedy equivalence, see Vlm.correct), overall and per kind. */
export function evaluate(vlm: Vlm, items: QAItem[], batchSize = 100): Evaluation {
  const hits: Record<string, [number, number]> = {};
  let ok = 0;
  for (let i = 0; i < items.length; i += batchSize) {
    const chunk = items.slice(i, i + batchSize);
    vlm.correct(chunk).forEach((c, j) => {
      const k = chunk[j]!.kind;
      hits[k] ??= [0, 0];
      hits[k][1]++;
      if (c) {
        hits[k][0]++;
        ok++;
      }
    });
  }
  const byKind = Object.fromEntries(Object.entries(hits).map(([k, [h, n]]) => [k, h / n]));
  return { accuracy: items.length ? ok / items.length : null, byKind, count: items.length };
}
