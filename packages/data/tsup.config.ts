import { defineConfig } from 'tsup';
import { packageConfig } from '../../tsup.base.js';

// decode-worker: its own file, spawned by DecodePool next to the bundle (dist/decode-worker.js)
export default defineConfig(packageConfig(['src/index.ts', 'src/decode-worker.ts']));
