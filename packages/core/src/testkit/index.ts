// @vlmix/core/testkit — helpers for testing vlmix components (and your own layers).
// Framework-agnostic: failures are thrown as plain Errors. See README.md in this folder.
export {
  checkGradients,
  assertGradients,
  formatGradCheckReport,
  type GradCheckOptions,
  type GradCheckPoint,
  type GradCheckReport,
} from './gradcheck.js';
export {
  countTensorLeak,
  assertNoLeak,
  countTensorLeakAsync,
  assertNoLeakAsync,
  disposeResult,
  type LeakOptions,
} from './leaks.js';
export { loadFixture, loadFixtureSync, type Fixture } from './fixtures.js';
export {
  compareTensors,
  assertClose,
  formatCompareResult,
  type CompareOptions,
  type CompareResult,
  type TensorLikeInput,
} from './compare.js';
export { mulberry32 } from './rng.js';
export { countHostReads, type ReadCount } from './reads.js';
export { atLayer } from './hooks.js';
