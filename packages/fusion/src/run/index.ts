/** The training recipe as a library: trainVlm, evaluate, loadRun and the run-directory helpers. */
export * from './data.js';
export * from './evaluate.js';
export * from './run-dir.js';
export * from './train-vlm.js';
export * from './load-run.js';
