// Runs a TypeScript worker entry from source (vitest, tsx): registers tsx's loader in the worker, which
// `execArgv: ['--import', 'tsx']` does not do for worker threads on Node 20. The built package uses .js.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
