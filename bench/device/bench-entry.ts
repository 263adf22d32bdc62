// Device entry for `pnpm bench` (bundled into .device/bench.mjs by bench/device/bundle.mjs): the same
// bench, with @vlmix/fusion linked in statically so the arch suite has every preset without node_modules.
import * as fusion from '../../packages/fusion/src/index.js';
import { provideFusion } from '../src/suites/models.js';

provideFusion(fusion);
await import('../src/main.js');
