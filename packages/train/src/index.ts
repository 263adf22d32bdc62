/** @vlmix/train: AdamW, schedules, clipping, a seeded Trainer with exact-resume checkpoints, JSONL metrics, progress. */
export * from './optim.js';
export * from './data.js';
export * from './errors.js';
export * from './checkpoint.js';
export * from './lock.js';
export * from './metrics.js';
export * from './progress.js';
export * from './trainer.js';
export * from './distributed.js';
