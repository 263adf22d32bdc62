// Op parity: every kernel on each backend in PARITY_BACKENDS against tfjs 'cpu', on seeded inputs.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { PARITY_BACKENDS, Rand, availability, expectClose, runOn } from './helpers.js';

type Build = (r: Rand) => tf.Tensor | tf.Tensor[];
interface Case { name: string; build: Build; rtol: number; atol: number }

const EW = { rtol: 1e-5, atol: 1e-6 };
const RED = { rtol: 1e-4, atol: 1e-4 };
const cases: Case[] = [];
const add = (name: string, build: Build, tol = EW) => cases.push({ name, build, ...tol });

/** Gradient of sum(f(xs) * w) wrt xs, with a random weighting w so every output element matters. */
function gradOf(f: (...xs: tf.Tensor[]) => tf.Tensor, make: (r: Rand) => tf.Tensor[]): Build {
  return (r) => {
    const xs = make(r);
    const wseed = Math.floor(r.next() * 1e9);
    return tf.grads((...a: tf.Tensor[]) => {
      const y = f(...a);
      return tf.sum(tf.mul(y, new Rand(wseed).floats(y.shape, -1, 1)));
    })(xs);
  };
}

// ------------------------------------------------------------------ binary, broadcasting
const SHAPE_PAIRS: Array<[number[], number[]]> = [
  [[7], [7]], [[33, 1], [1, 129]], [[2, 3, 4], [4]], [[1], [5, 6]], [[], [7]], [[7], []],
  [[2, 1, 3], [2, 4, 1]], [[0, 3], [3]], [[1, 1, 33], [129, 1, 1]],
];
const FLOAT_BIN: Record<string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor> = {
  add: tf.add, sub: tf.sub, mul: tf.mul, div: tf.div, maximum: tf.maximum, minimum: tf.minimum,
  squaredDifference: tf.squaredDifference, floorDiv: tf.floorDiv, mod: tf.mod, atan2: tf.atan2,
  equal: tf.equal, notEqual: tf.notEqual, less: tf.less, lessEqual: tf.lessEqual, greater: tf.greater,
  greaterEqual: tf.greaterEqual, prelu: tf.prelu,
};
for (const [op, fn] of Object.entries(FLOAT_BIN)) {
  for (const [sa, sb] of SHAPE_PAIRS) {
    if (op === 'prelu' && sa.length < sb.length) continue;
    add(`${op} f32 [${sa}]x[${sb}]`, (r) => fn(r.floats(sa), op === 'prelu' ? r.floats(sb) : r.floats(sb, -2, 2)));
  }
}
add('pow f32', (r) => tf.pow(r.floats([33, 7], 0.1, 3), r.floats([7], -2, 2)));
add('equal f32 with ties', (r) => tf.equal(tf.round(r.floats([129], -2, 2)), tf.round(r.floats([129], -2, 2))));
const INT_BIN: Record<string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor> = {
  add: tf.add, sub: tf.sub, mul: tf.mul, maximum: tf.maximum, minimum: tf.minimum, floorDiv: tf.floorDiv,
  mod: tf.mod, squaredDifference: tf.squaredDifference, equal: tf.equal, less: tf.less, greaterEqual: tf.greaterEqual,
};
for (const [op, fn] of Object.entries(INT_BIN)) {
  add(`${op} i32 [33,1]x[7]`, (r) => fn(r.ints([33, 1], -50, 50), op === 'floorDiv' || op === 'mod' ? r.ints([7], 1, 9) : r.ints([7], -50, 50)));
}
add('logicalAnd bool', (r) => tf.logicalAnd(r.bools([33, 7]), r.bools([7])));
add('logicalOr bool', (r) => tf.logicalOr(r.bools([1, 7]), r.bools([33, 1])));
add('logicalNot bool', (r) => tf.logicalNot(r.bools([129])));
add('addN', (r) => tf.addN([r.floats([33, 7]), r.floats([33, 7]), r.floats([33, 7])]));
add('addN i32', (r) => tf.addN([r.ints([7], -9, 9), r.ints([7], -9, 9)]));

// ------------------------------------------------------------------ unary
const U: Array<[string, (x: tf.Tensor) => tf.Tensor, number, number]> = [
  ['neg', tf.neg, -3, 3], ['exp', tf.exp, -5, 5], ['log', tf.log, 0.01, 5], ['log1p', tf.log1p, -0.9, 5],
  ['sqrt', tf.sqrt, 0, 5], ['rsqrt', tf.rsqrt, 0.01, 5], ['square', tf.square, -3, 3], ['abs', tf.abs, -3, 3],
  ['tanh', tf.tanh, -4, 4], ['sigmoid', tf.sigmoid, -8, 8], ['relu', tf.relu, -3, 3], ['erf', tf.erf, -3, 3],
  ['sin', tf.sin, -4, 4], ['cos', tf.cos, -4, 4], ['sign', tf.sign, -3, 3], ['floor', tf.floor, -3, 3],
  ['ceil', tf.ceil, -3, 3], ['round', tf.round, -3, 3], ['reciprocal', tf.reciprocal, 0.1, 3],
  ['step', (x) => tf.step(x, 0.3), -3, 3], ['isNaN', tf.isNaN, -3, 3], ['isInf', tf.isInf, -3, 3],
  ['isFinite', tf.isFinite, -3, 3], ['clipByValue', (x) => tf.clipByValue(x, -0.5, 0.7), -3, 3],
  ['elu', tf.elu, -3, 3], ['leakyRelu', (x) => tf.leakyRelu(x, 0.1), -3, 3], ['softplus', tf.softplus, -20, 20],
  ['relu6', tf.relu6, -3, 9], ['selu', tf.selu, -3, 3], ['expm1', tf.expm1, -2, 2], ['atan', tf.atan, -3, 3],
  ['asin', tf.asin, -0.99, 0.99], ['acos', tf.acos, -0.99, 0.99], ['sinh', tf.sinh, -3, 3], ['cosh', tf.cosh, -3, 3],
  ['asinh', tf.asinh, -3, 3], ['acosh', tf.acosh, 1.01, 4], ['atanh', tf.atanh, -0.99, 0.99], ['tan', tf.tan, -1.4, 1.4],
];
for (const [name, fn, lo, hi] of U) {
  add(`${name} [33,7]`, (r) => fn(r.floats([33, 7], lo, hi)), name === 'erf' ? { rtol: 1e-5, atol: 2e-7 } : EW);
  add(`${name} empty`, (r) => fn(r.floats([0, 3], lo, hi)));
}
add('round half-even', () => tf.round(tf.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5])));
add('nan/inf preds', () => [tf.isNaN(tf.tensor([NaN, 1, Infinity])), tf.isInf(tf.tensor([NaN, -Infinity, 2]))]);
for (const [name, fn] of [['neg', tf.neg], ['abs', tf.abs], ['square', tf.square], ['sign', tf.sign]] as const) {
  add(`${name} i32`, (r) => fn(r.ints([129], -100, 100)));
}
add('cast f32->i32', (r) => tf.cast(r.floats([129], -5, 5), 'int32'));
add('cast i32->f32', (r) => tf.cast(r.ints([129], -5, 5), 'float32'));
add('cast f32->bool', (r) => tf.cast(tf.round(r.floats([129], -1, 1)), 'bool'));
add('cast bool->i32/f32', (r) => { const b = r.bools([33]); return [tf.cast(b, 'int32'), tf.cast(b, 'float32')]; });
add('cast i32->bool', (r) => tf.cast(r.ints([33], -2, 2), 'bool'));

// ------------------------------------------------------------------ reductions
const RED_AXES: Array<number | number[] | undefined> = [0, 1, 2, -1, [0, 2], [0, 1], [1, 2], undefined];
for (const axis of RED_AXES) {
  for (const keep of [false, true]) {
    const tag = `axis ${JSON.stringify(axis)} keep ${keep}`;
    add(`sum ${tag}`, (r) => tf.sum(r.floats([4, 7, 33]), axis, keep), RED);
    add(`mean ${tag}`, (r) => tf.mean(r.floats([4, 7, 33]), axis, keep), RED);
    add(`max ${tag}`, (r) => tf.max(r.floats([4, 7, 33]), axis, keep), RED);
    add(`min ${tag}`, (r) => tf.min(r.floats([4, 7, 33]), axis, keep), RED);
    add(`prod ${tag}`, (r) => tf.prod(r.floats([4, 7, 5], 0.5, 1.5), axis, keep), RED);
    add(`all/any ${tag}`, (r) => { const b = r.bools([4, 7, 3]); return [tf.all(b, axis, keep), tf.any(b, axis, keep)]; });
    add(`sum i32 ${tag}`, (r) => tf.sum(r.ints([4, 7, 33], -9, 9), axis, keep));
    add(`max i32 ${tag}`, (r) => tf.max(r.ints([4, 7, 33], -99, 99), axis, keep));
    add(`sum bool ${tag}`, (r) => tf.sum(r.bools([4, 7, 3]), axis, keep));
  }
}
for (const axis of [0, 1, 2]) {
  add(`argMax axis ${axis}`, (r) => tf.argMax(r.floats([4, 7, 33]), axis));
  add(`argMin axis ${axis}`, (r) => tf.argMin(r.floats([4, 7, 33]), axis));
}
add('sum large 1d', (r) => tf.sum(r.floats([100003])), RED);
add('sum empty axis', (r) => tf.sum(r.floats([3, 0]), 1));
add('mean i32', (r) => tf.mean(r.ints([7, 33], -9, 9), 1), RED);
add('softmax', (r) => tf.softmax(r.floats([33, 129], -5, 5)), RED);
add('softmax 1 col', (r) => tf.softmax(r.floats([7, 1])), RED);
add('logSoftmax', (r) => tf.logSoftmax(r.floats([7, 33], -5, 5)), RED);
add('moments', (r) => { const m = tf.moments(r.floats([4, 33, 7]), [0, 1]); return [m.mean, m.variance]; }, RED);

// ------------------------------------------------------------------ matmul, conv
const MM: Array<[number, number, number, boolean, boolean]> = [
  [1, 1, 1, false, false], [7, 33, 129, false, false], [257, 129, 65, false, false], [257, 129, 65, true, false],
  [257, 129, 65, false, true], [33, 7, 129, true, true], [0, 5, 3, false, false], [4, 5, 0, false, false], [4, 0, 3, false, false],
];
for (const [m, n, k, ta, tb] of MM) {
  add(`matMul ${m}x${n}x${k} ta=${ta} tb=${tb}`, (r) =>
    tf.matMul(r.floats(ta ? [k, m] : [m, k]), r.floats(tb ? [n, k] : [k, n]), ta, tb), RED);
}
add('matMul 1024x1024 @ 1024x64', (r) => tf.matMul(r.floats([1024, 1024], -1, 1), r.floats([1024, 64], -1, 1)), { rtol: 1e-4, atol: 5e-4 });
add('batch matMul [3,33,7]x[3,7,5]', (r) => tf.matMul(r.floats([3, 33, 7]), r.floats([3, 7, 5])), RED);
add('batch matMul broadcast b', (r) => tf.matMul(r.floats([2, 3, 33, 7]), r.floats([7, 5])), RED);
add('batch matMul broadcast a', (r) => tf.matMul(r.floats([33, 7]), r.floats([2, 7, 5]), false, false), RED);
add('batch matMul transposed', (r) => tf.matMul(r.floats([3, 7, 33]), r.floats([3, 5, 7]), true, true), RED);
for (const act of ['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu'] as const) {
  add(`fused matMul bias ${act}`, (r) =>
    tf.fused.matMul({ a: r.floats([33, 7]), b: r.floats([7, 129]), bias: r.floats([129]), activation: act, leakyreluAlpha: 0.1 }), RED);
}
add('fused matMul prelu', (r) =>
  tf.fused.matMul({ a: r.floats([7, 5]), b: r.floats([5, 3]), activation: 'prelu', preluActivationWeights: r.floats([3]) }), RED);
const CONV: Array<[number[], number[], number, 'valid' | 'same' | number, number]> = [
  [[2, 16, 16, 3], [4, 4, 3, 8], 4, 'valid', 1], [[1, 7, 9, 2], [3, 3, 2, 5], 1, 'same', 1],
  [[2, 9, 9, 3], [3, 3, 3, 4], 2, 'valid', 1], [[1, 8, 8, 2], [2, 2, 2, 3], 1, 'valid', 2], [[1, 5, 5, 1], [2, 2, 1, 2], 2, 'same', 1],
  // > 8 output channels (sgemm path), many images, one image, 1x1, several row blocks.
  [[5, 10, 10, 16], [3, 3, 16, 24], 1, 'same', 1], [[1, 12, 12, 8], [4, 4, 8, 16], 2, 'valid', 1],
  [[2, 6, 6, 16], [1, 1, 16, 12], 1, 'valid', 1], [[6, 20, 20, 4], [3, 3, 4, 3], 1, 'same', 1],
  [[6, 20, 20, 4], [3, 3, 4, 16], 1, 'same', 1],
];
for (const [xs, ws, s, pad, dil] of CONV) {
  const tag = `[${xs}]*[${ws}] s${s} ${pad} d${dil}`;
  add(`conv2d ${tag}`, (r) => tf.conv2d(r.floats(xs) as tf.Tensor4D, r.floats(ws) as tf.Tensor4D, s, pad, 'NHWC', dil), RED);
  // tfjs has no conv2d gradient for dilation > 1.
  if (dil === 1) add(`conv2d grad ${tag}`, gradOf((x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, s, pad, 'NHWC', dil),
    (r) => [r.floats(xs), r.floats(ws)]), RED);
}
add('fused conv2d bias relu', (r) => tf.fused.conv2d({
  x: r.floats([1, 8, 8, 3]) as tf.Tensor4D, filter: r.floats([2, 2, 3, 4]) as tf.Tensor4D, strides: 2, pad: 'valid',
  bias: r.floats([4]), activation: 'relu',
}), RED);

// ------------------------------------------------------------------ data movement
add('transpose 2d', (r) => tf.transpose(r.floats([129, 65])));
add('transpose 2d large', (r) => tf.transpose(r.floats([300, 517])));
add('resizeNearestNeighbor up', (r) => tf.image.resizeNearestNeighbor(r.floats([2, 5, 7, 3]) as tf.Tensor4D, [10, 14]));
add('resizeNearestNeighbor odd', (r) => {
  const x = r.floats([2, 9, 6, 2]) as tf.Tensor4D;
  return [tf.image.resizeNearestNeighbor(x, [4, 13]), tf.image.resizeNearestNeighbor(x, [5, 11], true),
    tf.image.resizeNearestNeighbor(x, [7, 4], false, true)];
});
add('resizeNearestNeighbor i32', (r) => tf.image.resizeNearestNeighbor(r.ints([1, 3, 3, 2], -9, 9) as tf.Tensor4D, [6, 5]));
// Batch 1 only: tfjs 'cpu' 4.22 reads dy at the images' batch stride (wrong for batch > 1).
add('resizeNearestNeighbor grad up', gradOf((x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [10, 14]), (r) => [r.floats([1, 5, 7, 3])]));
add('resizeNearestNeighbor grad odd', gradOf((x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [4, 13], true), (r) => [r.floats([1, 9, 6, 2])]));
add('transpose 3d', (r) => tf.transpose(r.floats([4, 7, 33]), [2, 0, 1]));
add('transpose 4d i32', (r) => tf.transpose(r.ints([2, 3, 4, 5], -9, 9), [0, 2, 1, 3]));
add('transpose bool', (r) => tf.transpose(r.bools([3, 5])));
add('transpose empty', (r) => tf.transpose(r.floats([0, 4])));
add('reshape/expandDims/squeeze', (r) => { const x = r.floats([4, 7]); return [tf.reshape(x, [7, -1]), tf.expandDims(x, 1), tf.squeeze(tf.expandDims(x, 0))]; });
add('slice', (r) => tf.slice(r.floats([4, 7, 33]), [1, 2, 3], [2, -1, 20]));
add('slice i32', (r) => tf.slice(r.ints([33, 7], -9, 9), [5, 0], [7, 7]));
add('slice empty', (r) => tf.slice(r.floats([4, 7]), [1, 2], [0, 3]));
add('stridedSlice', (r) => tf.stridedSlice(r.floats([7, 33, 5]), [1, -1, 0], [6, 0, 5], [2, -3, 1]));
add('stridedSlice masks', (r) => tf.stridedSlice(r.floats([7, 33, 5]), [1, 2, 0], [0, 9, 1], [1, 1, 1], 1, 0, 0, 0, 4));
add('stridedSlice newAxis', (r) => tf.stridedSlice(r.floats([7, 5]), [0, 0, 1], [7, 1, 4], [1, 1, 1], 0, 0, 0, 2, 0));
add('reverse', (r) => [tf.reverse(r.floats([4, 7, 33]), [0, 2]), tf.reverse(r.ints([9], 0, 9))]);
add('pad', (r) => tf.pad(r.floats([4, 7]), [[1, 2], [0, 3]], 1.5));
add('pad i32', (r) => tf.pad(r.ints([3, 2, 2], 0, 9), [[0, 0], [1, 1], [2, 0]], 7));
add('tile', (r) => [tf.tile(r.floats([3, 5]), [2, 3]), tf.tile(r.ints([2, 1, 3], 0, 9), [1, 4, 2])]);
add('concat', (r) => [tf.concat([r.floats([2, 3]), r.floats([4, 3]), r.floats([0, 3])], 0),
  tf.concat([r.floats([2, 3]), r.floats([2, 7])], 1), tf.concat([r.ints([2, 1], 0, 9), r.ints([2, 3], 0, 9)], -1)]);
add('concat bool', (r) => tf.concat([r.bools([3]), r.bools([4])]));
add('split', (r) => tf.split(r.floats([6, 33]), [1, 30, 2], 1));
add('split even', (r) => tf.split(r.floats([6, 4]), 3, 0));
add('stack/unstack', (r) => [tf.stack([r.floats([3, 4]), r.floats([3, 4])], 1), ...tf.unstack(r.floats([3, 4, 2]), 1)]);
add('broadcastTo', (r) => [tf.broadcastTo(r.floats([3, 1]), [2, 3, 5]), tf.broadcastTo(r.ints([1], 0, 9), [4])]);
add('oneHot', (r) => [tf.oneHot(r.ints([33], -1, 10) as tf.Tensor1D, 9), tf.oneHot(r.ints([2, 3], 0, 4) as tf.Tensor2D, 4, 2, -1)]);
add('where same shape', (r) => tf.where(r.bools([33, 7]), r.floats([33, 7]), r.floats([33, 7])));
add('where broadcast', (r) => tf.where(r.bools([1, 7]), r.ints([33, 7], 0, 9), r.ints([33, 7], 0, 9)));
add('fill/zeros/ones', (r) => { const x = r.floats([3, 2]); return [tf.fill([2, 3], 4.5), tf.fill([3], 2, 'int32'), tf.zerosLike(x), tf.onesLike(x), tf.onesLike(r.bools([3]))]; });
add('range', () => [tf.range(0, 10, 3), tf.range(5, -3, -2, 'int32'), tf.range(0, 1, 0.1), tf.range(3, 3)]);
add('gather axis 0', (r) => tf.gather(r.floats([129, 33]), r.ints([65], 0, 129)));
add('gather axis 1 2d idx', (r) => tf.gather(r.floats([4, 33, 7]), r.ints([3, 5], 0, 33), 1));
add('gather i32', (r) => tf.gather(r.ints([33], -9, 9), r.ints([7], 0, 33)));
add('gather empty', (r) => tf.gather(r.floats([7, 3]), tf.tensor1d([], 'int32')));
add('gather batchDims (fallback)', (r) => tf.gather(r.floats([2, 7, 3]), r.ints([2, 4], 0, 7), 1, 1));
add('unsortedSegmentSum', (r) => tf.unsortedSegmentSum(r.floats([129, 7]), r.ints([129], 0, 11) as tf.Tensor1D, 11));
add('unsortedSegmentSum 1d', (r) => tf.unsortedSegmentSum(r.floats([33]), r.ints([33], 0, 5) as tf.Tensor1D, 5));
add('clone/identity', (r) => tf.clone(r.floats([7])));

// ------------------------------------------------------------------ gradients
add('grad binary broadcast', gradOf((a, b) => tf.add(tf.mul(a, b), tf.div(a, tf.add(tf.abs(b), 1))), (r) => [r.floats([33, 1]), r.floats([1, 7])]), RED);
add('grad sub broadcast', gradOf((a, b) => tf.sub(a, b), (r) => [r.floats([7, 5]), r.floats([5])]), RED);
add('grad max/min', gradOf((a, b) => tf.add(tf.maximum(a, b), tf.minimum(a, b)), (r) => [r.floats([7, 5]), r.floats([7, 5])]), RED);
// tfjs's SquaredDifference gradient does not reduce broadcast axes, so same shapes only.
add('grad sqdiff', gradOf((a, b) => tf.squaredDifference(a, b), (r) => [r.floats([7, 5]), r.floats([7, 5])]), RED);
add('grad pow', gradOf((a, b) => tf.pow(a, b), (r) => [r.floats([7, 5], 0.5, 2), r.floats([5], -1, 2)]), RED);
for (const [name, fn, lo, hi] of U) {
  if (['sign', 'floor', 'ceil', 'round', 'step', 'isNaN', 'isInf', 'isFinite'].includes(name)) continue;
  add(`grad ${name}`, gradOf((x) => fn(x), (r) => [r.floats([7, 5], lo, hi)]), RED);
}
add('grad reductions', gradOf((x) => tf.addN([tf.sum(x, 1, true), tf.mean(x, 1, true), tf.max(x, 1, true), tf.min(x, 1, true), tf.prod(x, 1, true)]), (r) => [r.floats([7, 5], 0.5, 1.5)]), RED);
add('grad softmax/logSoftmax', gradOf((x) => tf.add(tf.softmax(x), tf.logSoftmax(x)), (r) => [r.floats([7, 33])]), RED);
add('grad matMul', gradOf((a, b) => tf.matMul(a, b, false, true), (r) => [r.floats([33, 7]), r.floats([5, 7])]), RED);
add('grad batch matMul', gradOf((a, b) => tf.matMul(a, b, true, false), (r) => [r.floats([2, 3, 7, 5]), r.floats([2, 3, 7, 4])]), RED);
add('grad fused matMul', gradOf((a, b, c) => tf.fused.matMul({ a, b, bias: c, activation: 'relu' }), (r) => [r.floats([7, 5]), r.floats([5, 3]), r.floats([3])]), RED);
add('grad gather', gradOf((x) => tf.gather(x, tf.tensor1d([0, 3, 3, 1, 6], 'int32')), (r) => [r.floats([7, 5])]), RED);
add('grad transpose/reshape/slice/concat', gradOf((x, y) => tf.concat([tf.slice(tf.transpose(x), [1, 0], [3, 7]), tf.reshape(y, [3, 2])], 1), (r) => [r.floats([7, 5]), r.floats([6])]), RED);
add('grad pad/tile/reverse', gradOf((x) => tf.add(tf.reverse(tf.pad(x, [[1, 1], [2, 0]]), 0), tf.tile(tf.slice(x, [0, 0], [1, 1]), [9, 7])), (r) => [r.floats([7, 5])]), RED);
add('grad where/clip', (r) => { const c = r.bools([7, 5]); return gradOf((x, y) => tf.where(c, tf.clipByValue(x, -0.5, 0.5), y), (q) => [q.floats([7, 5]), q.floats([7, 5])])(r); }, RED);
add('grad stack/unstack/split', gradOf((x) => tf.stack([...tf.unstack(x, 1), ...tf.split(x, [2, 3], 1).map((t) => tf.sum(t, 1))], 0), (r) => [r.floats([7, 5])]), RED);
add('grad unsortedSegmentSum', gradOf((x) => tf.unsortedSegmentSum(x, tf.tensor1d([0, 2, 2, 1, 0, 3, 1], 'int32'), 4), (r) => [r.floats([7, 5])]), RED);

// ------------------------------------------------------------------ run
// Not in the table: tfjs 'cpu' gets these wrong, so they are checked against explicit broadcasting.
//  - BatchMatMul with both batch shapes broadcast (cpu indexes batches with a flat modulo).
//  - Select with a rank-1 condition and rank>1 t/e (cpu repeats t[i] instead of row i).
async function semanticsChecks(backend: string) {
  const r1 = await runOn(backend, 7, (r) => {
    const a = r.floats([2, 1, 5, 7]), b = r.floats([1, 3, 7, 4]);
    return [tf.matMul(a, b), tf.matMul(tf.broadcastTo(a, [2, 3, 5, 7]), tf.broadcastTo(b, [2, 3, 7, 4]))];
  });
  expectClose([r1[0]], [r1[1]], 1e-6, 1e-6, 'batch matMul broadcast both');
  const r2 = await runOn(backend, 8, (r) => {
    const c = r.bools([4]), t = r.floats([4, 3]), e = r.floats([4, 3]);
    return [tf.engine().runKernel('Select', { condition: c, t, e }) as tf.Tensor,
      tf.where(tf.broadcastTo(tf.reshape(c, [4, 1]), [4, 3]), t, e)];
  });
  expectClose([r2[0]], [r2[1]], 0, 0, 'select rank-1 condition');
}

const available = Object.fromEntries(PARITY_BACKENDS.map((b) => [b, availability(b)]));
const originalBackend = tf.getBackend();
afterAll(async () => {
  await tf.setBackend(originalBackend);
});

for (const backend of PARITY_BACKENDS) {
  const av = available[backend];
  if (!av.ok) {
    describe(`op parity: ${backend} vs cpu`, () => {
      it.skip(`skipped: ${av.reason}`, () => {});
    });
    continue;
  }
  describe(`op parity: ${backend} vs cpu`, () => {
    beforeAll(async () => {
      await tf.setBackend(backend);
    });
    it('broadcasting semantics where tfjs cpu is wrong', () => semanticsChecks(backend));
    cases.forEach((c, i) => {
      it(c.name, async () => {
        const seed = 1000 + i;
        const expected = await runOn('cpu', seed, c.build);
        const actual = await runOn(backend, seed, c.build);
        expectClose(actual, expected, c.rtol, c.atol, c.name);
      });
    });
  });
}
