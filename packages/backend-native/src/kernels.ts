// Standard tfjs kernels implemented natively for vlmix-cpu. Unusual attribute combinations
// (e.g. GatherV2 batchDims, NCHW convs) delegate to the tfjs 'cpu' kernel via runFallback.
import * as tf from '@tensorflow/tfjs';
import { NativeBackend, dcode } from './backend.js';
import { runFallback } from './fallback.js';

type TI = tf.TensorInfo;
type KFn = (args: { inputs: Record<string, TI>; backend: NativeBackend; attrs: tf.NamedAttrMap }) => TI | TI[];

const { util, backend_util } = tf;
const size = (s: number[]) => util.sizeFromShape(s);

export function stridesOf(shape: number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

const registry: Array<[string, KFn]> = [];
function reg(name: string, fn: KFn) {
  registry.push([name, fn]);
}

/** Kernel names this module implements natively. */
export function nativeKernelNames(): string[] {
  return registry.map(([n]) => n);
}

/** The kernels as [kernelName, kernelFunc] pairs for the registry (@vlmix/core ops.setupBackendKernels),
 *  optionally only those that `include` accepts (vlmix-cuda's addon lacks a few). */
export function nativeKernelFuncs(include?: (kernelName: string) => boolean): Array<[string, tf.KernelFunc]> {
  return registry.filter(([n]) => !include || include(n)).map(([n, fn]) => [n, fn as unknown as tf.KernelFunc]);
}

function fallback(name: string, args: Parameters<KFn>[0]): TI | TI[] {
  return runFallback(name, args.inputs, args.attrs, args.backend);
}

// ---------------------------------------------------------------- casts and dtype helpers

function cast(b: NativeBackend, x: TI, dtype: tf.DataType): TI {
  if (x.dtype === dtype) return b.alias(x, x.shape);
  if (x.dtype === 'bool' && dtype === 'int32') return b.alias(x, x.shape, 'int32');
  const n = size(x.shape);
  const id = b.nat.cast(b.nid(x), n, dcode(x.dtype), dcode(dtype), dtype === 'bool');
  return b.out(id, x.shape, dtype);
}

function isNumeric(t: TI) {
  return t.dtype === 'float32' || t.dtype === 'int32' || t.dtype === 'bool';
}

reg('Cast', ({ inputs, backend, attrs }) => {
  const x = inputs.x;
  const dtype = attrs.dtype as tf.DataType;
  if (!isNumeric(x) || !['float32', 'int32', 'bool'].includes(dtype)) return fallback('Cast', { inputs, backend, attrs });
  return cast(backend, x, dtype);
});

reg('Reshape', ({ inputs, backend, attrs }) => {
  const x = inputs.x;
  const shape = util.inferFromImplicitShape(attrs.shape as number[], size(x.shape));
  return backend.alias(x, shape);
});

reg('Identity', ({ inputs, backend }) => backend.alias(inputs.x, inputs.x.shape));

reg('ExpandDims', ({ inputs, backend, attrs }) => {
  const x = inputs.input;
  const shape = x.shape.slice();
  let dim = attrs.dim as number;
  if (dim < 0) dim += x.shape.length + 1;
  shape.splice(dim, 0, 1);
  return backend.alias(x, shape);
});

// ---------------------------------------------------------------- elementwise

const CMP = new Set(['Equal', 'NotEqual', 'Less', 'LessEqual', 'Greater', 'GreaterEqual', 'LogicalAnd', 'LogicalOr']);

function binary(b: NativeBackend, op: string, a: TI, c: TI): TI {
  const code = b.nat.binaryOps[op];
  let dt: tf.DataType = tf.upcastType(a.dtype, c.dtype);
  if (op === 'LogicalAnd' || op === 'LogicalOr') dt = 'bool';
  const aa = a.dtype === dt ? a : cast(b, a, dt);
  const cc = c.dtype === dt ? c : cast(b, c, dt);
  // Most binary ops in a model see equal shapes: skip the broadcast analysis (and its arrays) then.
  const same = util.arraysEqual(a.shape, c.shape);
  const outShape = same ? a.shape.slice() : backend_util.assertAndGetBroadcastShape(a.shape, c.shape);
  const id = same ? b.nat.binaryFlat(code, dcode(dt), b.nid(aa), b.nid(cc), size(outShape))
    : b.nat.binary(code, dcode(dt), b.nid(aa), aa.shape, b.nid(cc), cc.shape, outShape);
  if (aa !== a) b.disposeIntermediate(aa);
  if (cc !== c) b.disposeIntermediate(cc);
  const res = b.out(id, outShape, CMP.has(op) ? 'bool' : dt);
  if (op === 'FloorDiv' && dt === 'float32') {
    // tfjs-cpu returns int32 for FloorDiv whatever the input dtype.
    const r = cast(b, res, 'int32');
    b.disposeIntermediate(res);
    return r;
  }
  return res;
}

function registerBinary(b: { binaryOps: Record<string, number> }) {
  for (const op of Object.keys(b.binaryOps)) {
    reg(op, ({ inputs, backend, attrs }) => {
      const [a, c] = op === 'Prelu' ? [inputs.x, inputs.alpha] : op === 'EluGrad' ? [inputs.dy, inputs.y] : [inputs.a, inputs.b];
      if (!isNumeric(a) || !isNumeric(c)) return fallback(op, { inputs, backend, attrs });
      return binary(backend, op, a, c);
    });
  }
}

const PRED = new Set(['IsNan', 'IsInf', 'IsFinite', 'LogicalNot']);

function unary(b: NativeBackend, op: string, x: TI, alpha = 0, beta = 0): TI {
  const id = b.nat.unary(b.nat.unaryOps[op], dcode(x.dtype), b.nid(x), size(x.shape), alpha, beta);
  return b.out(id, x.shape, PRED.has(op) ? 'bool' : x.dtype === 'bool' ? 'int32' : x.dtype);
}

function registerUnary(b: { unaryOps: Record<string, number> }) {
  for (const op of Object.keys(b.unaryOps)) {
    reg(op, ({ inputs, backend, attrs }) => {
      const x = inputs.x;
      if (!isNumeric(x)) return fallback(op, { inputs, backend, attrs });
      let alpha = 0, beta = 0;
      if (op === 'Step' || op === 'LeakyRelu') alpha = attrs.alpha as number;
      if (op === 'ClipByValue') [alpha, beta] = [attrs.clipValueMin as number, attrs.clipValueMax as number];
      return unary(backend, op, x, alpha, beta);
    });
  }
}

reg('AddN', ({ inputs, backend }) => {
  const xs = inputs as unknown as TI[];
  if (xs.length === 1) return backend.alias(xs[0], xs[0].shape);
  const dt = xs[0].dtype;
  const id = backend.nat.addN(dcode(dt), xs.map((t) => backend.nid(t)), size(xs[0].shape));
  return backend.out(id, xs[0].shape, dt === 'bool' ? 'int32' : dt);
});

reg('Select', ({ inputs, backend }) => {
  const { condition: c, t, e } = inputs;
  const outShape = t.shape;
  // tfjs allows a rank-1 condition selecting whole rows of higher-rank t/e.
  const cShape = c.shape.length === 1 && t.shape.length > 1
    ? [c.shape[0], ...new Array(t.shape.length - 1).fill(1)]
    : c.shape;
  const id = backend.nat.select(backend.nid(c), backend.nid(t), backend.nid(e), cShape, t.shape, e.shape, outShape);
  return backend.out(id, outShape, tf.upcastType(t.dtype, e.dtype));
});

// ---------------------------------------------------------------- reductions

/** Brings the reduced axes into one contiguous block; returns [input, outer, R, inner, temp?]. */
function reduceView(b: NativeBackend, x: TI, axes: number[]): [TI, number, number, number, TI | null] {
  const sorted = axes.slice().sort((p, q) => p - q);
  const contiguous = sorted.every((a, i) => i === 0 || a === sorted[i - 1] + 1);
  let xin = x;
  let tmp: TI | null = null;
  let lo = sorted[0] ?? 0, hi = sorted.length ? sorted[sorted.length - 1] : -1;
  if (!contiguous) {
    const perm = backend_util.getAxesPermutation(sorted, x.shape.length)!;
    tmp = transpose(b, x, perm);
    xin = tmp;
    lo = x.shape.length - sorted.length;
    hi = x.shape.length - 1;
  }
  const s = xin.shape;
  const outer = size(s.slice(0, lo)), R = size(s.slice(lo, hi + 1)), inner = size(s.slice(hi + 1));
  return [xin, outer, R, inner, tmp];
}

function reduce(b: NativeBackend, op: string, x: TI, axisAttr: number | number[] | null | undefined, keepDims: boolean): TI {
  const axes = util.parseAxisParam(axisAttr ?? null as unknown as number[], x.shape);
  let outDtype: tf.DataType = x.dtype;
  let xx = x;
  if (op === 'Sum' || op === 'Prod') outDtype = tf.upcastType(x.dtype, 'int32');
  if (op === 'All' || op === 'Any') outDtype = 'bool';
  if (op === 'ArgMax' || op === 'ArgMin') outDtype = 'int32';
  if (op === 'Mean') {
    outDtype = 'float32';
    if (x.dtype !== 'float32') xx = cast(b, x, 'float32');
  }
  const [xin, outer, R, inner, tmp] = reduceView(b, xx, axes);
  const id = b.nat.reduce(b.nat.reduceOps[op], dcode(xin.dtype), b.nid(xin), outer, R, inner);
  if (tmp) b.disposeIntermediate(tmp);
  if (xx !== x) b.disposeIntermediate(xx);
  let outShape = x.shape.filter((_, i) => !axes.includes(i));
  if (keepDims) outShape = backend_util.expandShapeToKeepDim(outShape, axes);
  return b.out(id, outShape, outDtype);
}

for (const op of ['Sum', 'Mean', 'Max', 'Min', 'Prod', 'All', 'Any']) {
  reg(op, ({ inputs, backend, attrs }) => {
    const axis = (op === 'Max' ? attrs.reductionIndices : attrs.axis) as number | number[];
    return reduce(backend, op, inputs.x, axis, attrs.keepDims as boolean);
  });
}
for (const op of ['ArgMax', 'ArgMin']) {
  reg(op, ({ inputs, backend, attrs }) => reduce(backend, op, inputs.x, [attrs.axis as number], false));
}

function softmaxLike(b: NativeBackend, x: TI, dim: number, log: boolean, name: string, args: Parameters<KFn>[0]) {
  const rank = x.shape.length;
  if (dim !== -1 && dim !== rank - 1) return fallback(name, args);
  const cols = x.shape[rank - 1] ?? 1;
  const id = b.nat.softmax(b.nid(x), size(x.shape) / Math.max(cols, 1) || 0, cols, log);
  return b.out(id, x.shape, 'float32');
}
reg('Softmax', (a) => softmaxLike(a.backend, a.inputs.logits, a.attrs.dim as number, false, 'Softmax', a));
reg('LogSoftmax', (a) => softmaxLike(a.backend, a.inputs.logits, a.attrs.axis as number, true, 'LogSoftmax', a));

// ---------------------------------------------------------------- data movement

export function transpose(b: NativeBackend, x: TI, perm: number[]): TI {
  const st = stridesOf(x.shape);
  const outShape = perm.map((p) => x.shape[p]);
  const id = b.nat.strided(b.nid(x), 0, perm.map((p) => st[p]), outShape);
  return b.out(id, outShape, x.dtype);
}
reg('Transpose', ({ inputs, backend, attrs }) => transpose(backend, inputs.x, attrs.perm as number[]));

function slice(b: NativeBackend, x: TI, begin: number[], sz: number[], steps?: number[]): TI {
  const st = stridesOf(x.shape);
  let off = 0;
  for (let i = 0; i < begin.length; i++) off += begin[i] * st[i];
  const strides = st.map((s, i) => s * (steps ? steps[i] : 1));
  const id = b.nat.strided(b.nid(x), off, strides, sz);
  return b.out(id, sz, x.dtype);
}

reg('Slice', ({ inputs, backend, attrs }) => {
  const x = inputs.x;
  const [begin, sz] = tf.slice_util.parseSliceParams(x as unknown as tf.Tensor, attrs.begin as number[], attrs.size as number[]);
  tf.slice_util.assertParamsValid(x as unknown as tf.Tensor, begin, sz);
  return slice(backend, x, begin, sz);
});

reg('StridedSlice', ({ inputs, backend, attrs }) => {
  const x = inputs.x;
  const info = tf.slice_util.sliceInfo(x.shape, attrs.begin as number[], attrs.end as number[],
    attrs.strides as number[], attrs.beginMask as number, attrs.endMask as number, attrs.ellipsisMask as number,
    attrs.newAxisMask as number, attrs.shrinkAxisMask as number);
  if (info.isIdentity) return backend.alias(x, info.finalShape);
  const sl = slice(backend, x, info.begin, info.finalShapeSparse, info.strides);
  return { ...sl, shape: info.finalShape };
});

reg('Reverse', ({ inputs, backend, attrs }) => {
  const x = inputs.x;
  const dims = util.parseAxisParam(attrs.dims as number[], x.shape);
  const st = stridesOf(x.shape);
  let off = 0;
  const strides = st.map((s, i) => {
    if (!dims.includes(i) || x.shape[i] === 0) return s;
    off += (x.shape[i] - 1) * s;
    return -s;
  });
  return backend.out(backend.nat.strided(backend.nid(x), off, strides, x.shape), x.shape, x.dtype);
});

function broadcastTo(b: NativeBackend, x: TI, shape: number[]): TI {
  const st = stridesOf(x.shape);
  const r = shape.length, xr = x.shape.length;
  const strides = shape.map((d, i) => {
    const j = i - (r - xr);
    if (j < 0 || x.shape[j] === 1) return 0;
    if (x.shape[j] !== d) throw new Error(`BroadcastTo: cannot broadcast [${x.shape}] to [${shape}]`);
    return st[j];
  });
  return b.out(b.nat.strided(b.nid(x), 0, strides, shape), shape, x.dtype);
}
reg('BroadcastTo', ({ inputs, backend, attrs }) => broadcastTo(backend, inputs.x, attrs.shape as number[]));

reg('Tile', ({ inputs, backend, attrs }) => {
  const x = inputs.x;
  const reps = attrs.reps as number[];
  const st = stridesOf(x.shape);
  const view: number[] = [], strides: number[] = [];
  x.shape.forEach((d, i) => { view.push(reps[i], d); strides.push(0, st[i]); });
  const outShape = x.shape.map((d, i) => d * reps[i]);
  return backend.out(backend.nat.strided(backend.nid(x), 0, strides, view), outShape, x.dtype);
});

reg('PadV2', ({ inputs, backend, attrs }) => {
  const x = inputs.x;
  const pads = attrs.paddings as Array<[number, number]>;
  const outShape = x.shape.map((d, i) => pads[i][0] + d + pads[i][1]);
  const id = backend.nat.fill(dcode(x.dtype), size(outShape), attrs.constantValue as number);
  const ost = stridesOf(outShape);
  const off = pads.reduce((acc, p, i) => acc + p[0] * ost[i], 0);
  if (size(x.shape) > 0) backend.nat.copyInto(backend.nid(x), 0, stridesOf(x.shape), id, off, ost, x.shape);
  return backend.out(id, outShape, x.dtype);
});

function concat(b: NativeBackend, xs: TI[], axis: number): TI {
  const outShape = backend_util.computeOutShape(xs.map((t) => t.shape), axis);
  const dt = xs[0].dtype;
  const id = b.nat.alloc(size(outShape));
  const ost = stridesOf(outShape);
  let pos = 0;
  for (const x of xs) {
    if (size(x.shape) > 0) {
      const xx = x.dtype === dt ? x : cast(b, x, dt);
      b.nat.copyInto(b.nid(xx), 0, stridesOf(x.shape), id, pos * ost[axis], ost, x.shape);
      if (xx !== x) b.disposeIntermediate(xx);
    }
    pos += x.shape[axis];
  }
  return b.out(id, outShape, dt);
}

reg('Concat', ({ inputs, backend, attrs }) => {
  const xs = inputs as unknown as TI[];
  const axis = util.parseAxisParam(attrs.axis as number, xs[0].shape)[0];
  backend_util.assertParamsConsistent(xs.map((t) => t.shape), axis);
  return concat(backend, xs, axis);
});

reg('Pack', ({ inputs, backend, attrs }) => {
  const xs = inputs as unknown as TI[];
  const s = xs[0].shape;
  let axis = attrs.axis as number;
  if (axis < 0) axis += s.length + 1;
  const outShape = s.slice();
  outShape.splice(axis, 0, xs.length);
  const id = backend.nat.alloc(size(outShape));
  const ost = stridesOf(outShape);
  const dst = ost.filter((_, i) => i !== axis);
  xs.forEach((x, i) => {
    if (size(s) > 0) backend.nat.copyInto(backend.nid(x), 0, stridesOf(s), id, i * ost[axis], dst, s);
  });
  return backend.out(id, outShape, xs[0].dtype);
});

reg('Unpack', ({ inputs, backend, attrs }) => {
  const x = inputs.value;
  let axis = attrs.axis as number;
  if (axis < 0) axis += x.shape.length;
  const st = stridesOf(x.shape);
  const outShape = x.shape.filter((_, i) => i !== axis);
  const ost = st.filter((_, i) => i !== axis);
  const res: TI[] = [];
  for (let i = 0; i < x.shape[axis]; i++) {
    res.push(backend.out(backend.nat.strided(backend.nid(x), i * st[axis], ost, outShape), outShape, x.dtype));
  }
  return res;
});

reg('SplitV', ({ inputs, backend, attrs }) => {
  const x = inputs.x;
  const axis = util.parseAxisParam(attrs.axis as number, x.shape)[0];
  const sizes = backend_util.prepareSplitSize(x as unknown as tf.Tensor, attrs.numOrSizeSplits as number[], axis);
  const begin = new Array<number>(x.shape.length).fill(0);
  return sizes.map((s) => {
    const sz = x.shape.slice();
    sz[axis] = s;
    const r = slice(backend, x, begin.slice(), sz);
    begin[axis] += s;
    return r;
  });
});

reg('Fill', ({ backend, attrs }) => {
  const dtype = attrs.dtype as tf.DataType;
  const shape = attrs.shape as number[];
  if (dtype === 'string') throw new Error('vlmix-cpu: string tensors are not supported');
  let v = attrs.value as number;
  if (dtype === 'bool') v = v ? 1 : 0;
  return backend.out(backend.nat.fill(dcode(dtype), size(shape), v), shape, dtype);
});

for (const [op, v] of [['ZerosLike', 0], ['OnesLike', 1]] as const) {
  reg(op, ({ inputs, backend }) => {
    const x = inputs.x;
    return backend.out(backend.nat.fill(dcode(x.dtype), size(x.shape), v), x.shape, x.dtype);
  });
}

reg('Range', ({ backend, attrs }) => {
  const { start, stop, step } = attrs as { start: number; stop: number; step: number };
  const dtype = attrs.dtype as 'float32' | 'int32';
  const empty = start === stop || (start < stop && step < 0) || (stop < start && step > 1);
  const n = empty ? 0 : Math.abs(Math.ceil((stop - start) / step));
  const vals = dtype === 'int32' ? new Int32Array(n) : new Float32Array(n);
  if (n > 0) vals[0] = start;
  for (let i = 1; i < n; i++) vals[i] = vals[i - 1] + step;
  return backend.fromValues(vals, [n], dtype);
});

reg('OneHot', ({ inputs, backend, attrs }) => {
  const idx = inputs.indices;
  const depth = attrs.depth as number;
  const dtype = (attrs.dtype as tf.DataType) ?? 'int32';
  const ii = idx.dtype === 'int32' ? idx : cast(backend, idx, 'int32');
  const n = size(idx.shape);
  const id = backend.nat.oneHot(backend.nid(ii), n, depth, attrs.onValue as number, attrs.offValue as number, dcode(dtype));
  if (ii !== idx) backend.disposeIntermediate(ii);
  return backend.out(id, [...idx.shape, depth], dtype);
});

reg('ResizeNearestNeighbor', (args) => {
  const { inputs, backend, attrs } = args;
  const x = inputs.images;
  if (x.shape.length !== 4 || (x.dtype !== 'float32' && x.dtype !== 'int32')) return fallback('ResizeNearestNeighbor', args);
  const [nh, nw] = attrs.size as [number, number];
  const id = backend.nat.resizeNearest(backend.nid(x), x.shape, nh, nw, !!attrs.alignCorners, !!attrs.halfPixelCenters);
  return backend.out(id, [x.shape[0], nh, nw, x.shape[3]], x.dtype);
});

// The gradient adds each dy pixel to the pixel the forward pass read (tfjs 'cpu' 4.22 offsets dy by the
// images' batch stride, which is wrong for batch > 1; this kernel does not copy that).
reg('ResizeNearestNeighborGrad', (args) => {
  const { inputs, backend, attrs } = args;
  const { images, dy } = inputs;
  if (images.shape.length !== 4 || dy.dtype !== 'float32') return fallback('ResizeNearestNeighborGrad', args);
  const id = backend.nat.resizeNearestGrad(backend.nid(dy), images.shape, dy.shape[1], dy.shape[2], !!attrs.alignCorners);
  return backend.out(id, images.shape, 'float32');
});

reg('GatherV2', (args) => {
  const { inputs, backend, attrs } = args;
  const { x, indices } = inputs;
  if ((attrs.batchDims as number) !== 0) return fallback('GatherV2', args);
  const axis = util.parseAxisParam(attrs.axis as number, x.shape)[0];
  const ii = indices.dtype === 'int32' ? indices : cast(backend, indices, 'int32');
  const outer = size(x.shape.slice(0, axis)), N = x.shape[axis], inner = size(x.shape.slice(axis + 1));
  const M = size(indices.shape);
  const id = backend.nat.gather(backend.nid(x), backend.nid(ii), outer, N, inner, M);
  if (ii !== indices) backend.disposeIntermediate(ii);
  return backend.out(id, [...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)], x.dtype);
});

reg('UnsortedSegmentSum', ({ inputs, backend, attrs }) => {
  const { x, segmentIds } = inputs;
  const S = attrs.numSegments as number;
  const N = size(segmentIds.shape);
  const tail = x.shape.slice(segmentIds.shape.length);
  const inner = size(tail);
  const ii = segmentIds.dtype === 'int32' ? segmentIds : cast(backend, segmentIds, 'int32');
  const dt = x.dtype === 'bool' ? 'int32' : x.dtype;
  const id = backend.nat.segmentSum(backend.nid(x), backend.nid(ii), N, inner, S, dcode(dt));
  if (ii !== segmentIds) backend.disposeIntermediate(ii);
  return backend.out(id, [S, ...tail], dt);
});

// ---------------------------------------------------------------- matmul and conv

function batchMatMul(b: NativeBackend, a: TI, c: TI, ta: boolean, tb: boolean): TI {
  const ra = a.shape.length, rb = c.shape.length;
  const M = ta ? a.shape[ra - 1] : a.shape[ra - 2];
  const K = ta ? a.shape[ra - 2] : a.shape[ra - 1];
  const K2 = tb ? c.shape[rb - 1] : c.shape[rb - 2];
  const N = tb ? c.shape[rb - 2] : c.shape[rb - 1];
  if (K !== K2) throw new Error(`BatchMatMul: inner dimensions must match (${K} vs ${K2}); shapes [${a.shape}] and [${c.shape}]`);
  const aB = a.shape.slice(0, -2), bB = c.shape.slice(0, -2);
  const outB = backend_util.assertAndGetBroadcastShape(aB, bB);
  let aa = a, cc = c;
  const na = size(aB), nb = size(bB), no = size(outB);
  // Only whole-batch sharing maps to strides; anything else is materialised.
  if (na !== no && na !== 1) aa = broadcastTo(b, a, [...outB, ...a.shape.slice(-2)]);
  if (nb !== no && nb !== 1) cc = broadcastTo(b, c, [...outB, ...c.shape.slice(-2)]);
  const ba = size(aa.shape.slice(0, -2)), bb = size(cc.shape.slice(0, -2));
  const id = b.nat.batchMatMul(b.nid(aa), b.nid(cc), ba, bb, M, N, K, ta, tb);
  if (aa !== a) b.disposeIntermediate(aa);
  if (cc !== c) b.disposeIntermediate(cc);
  return b.out(id, [...outB, M, N], 'float32');
}

reg('BatchMatMul', (args) => {
  const { inputs, backend, attrs } = args;
  if (inputs.a.dtype !== 'float32' || inputs.b.dtype !== 'float32') return fallback('BatchMatMul', args);
  return batchMatMul(backend, inputs.a, inputs.b, attrs.transposeA as boolean, attrs.transposeB as boolean);
});

/** Applies a fused activation, consuming (disposing) x. */
function activate(b: NativeBackend, x: TI, activation: string, alpha: number | undefined, prelu?: TI): TI {
  let y: TI;
  switch (activation) {
    case 'linear': return x;
    case 'relu': y = unary(b, 'Relu', x); break;
    case 'relu6': y = unary(b, 'Relu6', x); break;
    case 'elu': y = unary(b, 'Elu', x); break;
    case 'sigmoid': y = unary(b, 'Sigmoid', x); break;
    case 'leakyrelu': y = unary(b, 'LeakyRelu', x, alpha ?? 0.2); break;
    case 'prelu': y = binary(b, 'Prelu', x, prelu!); break;
    default: throw new Error(`vlmix-cpu: unknown fused activation '${activation}'`);
  }
  b.disposeIntermediate(x);
  return y;
}

reg('_FusedMatMul', (args) => {
  const { inputs, backend: b, attrs } = args;
  const { a, b: w, bias, preluActivationWeights } = inputs;
  if (a.dtype !== 'float32' || w.dtype !== 'float32') return fallback('_FusedMatMul', args);
  let y = batchMatMul(b, a, w, attrs.transposeA as boolean, attrs.transposeB as boolean);
  if (bias) {
    const z = binary(b, 'Add', y, bias);
    b.disposeIntermediate(y);
    y = z;
  }
  return activate(b, y, attrs.activation as string, attrs.leakyreluAlpha as number | undefined, preluActivationWeights);
});

function convGeom(ci: tf.backend_util.Conv2DInfo): number[] {
  return [ci.batchSize, ci.inHeight, ci.inWidth, ci.inChannels, ci.filterHeight, ci.filterWidth, ci.outChannels,
    ci.outHeight, ci.outWidth, ci.strideHeight, ci.strideWidth, ci.padInfo.top, ci.padInfo.left,
    ci.dilationHeight, ci.dilationWidth];
}

type Pad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
type Round = 'floor' | 'round' | 'ceil' | undefined;

reg('Conv2D', (args) => {
  const { inputs, backend: b, attrs } = args;
  const { x, filter } = inputs;
  if (attrs.dataFormat === 'NCHW' || x.dtype !== 'float32') return fallback('Conv2D', args);
  const ci = backend_util.computeConv2DInfo(x.shape as [number, number, number, number],
    filter.shape as [number, number, number, number], attrs.strides as [number, number],
    attrs.dilations as [number, number], attrs.pad as Pad, attrs.dimRoundingMode as Round, false, 'channelsLast');
  return b.out(b.nat.conv2d(b.nid(x), b.nid(filter), convGeom(ci)), ci.outShape, 'float32');
});

reg('Conv2DBackpropInput', (args) => {
  const { inputs, backend: b, attrs } = args;
  const { dy, filter } = inputs;
  if (attrs.dataFormat === 'NCHW') return fallback('Conv2DBackpropInput', args);
  const inShape = attrs.inputShape as [number, number, number, number];
  const ci = backend_util.computeConv2DInfo(inShape, filter.shape as [number, number, number, number],
    attrs.strides as [number, number], 1, attrs.pad as Pad, attrs.dimRoundingMode as Round, false, 'channelsLast');
  return b.out(b.nat.conv2dBackpropInput(b.nid(dy), b.nid(filter), convGeom(ci)), inShape, 'float32');
});

reg('Conv2DBackpropFilter', (args) => {
  const { inputs, backend: b, attrs } = args;
  const { x, dy } = inputs;
  if (attrs.dataFormat === 'NCHW') return fallback('Conv2DBackpropFilter', args);
  const fShape = attrs.filterShape as [number, number, number, number];
  const ci = backend_util.computeConv2DInfo(x.shape as [number, number, number, number], fShape,
    attrs.strides as [number, number], 1, attrs.pad as Pad, attrs.dimRoundingMode as Round, false, 'channelsLast');
  return b.out(b.nat.conv2dBackpropFilter(b.nid(x), b.nid(dy), convGeom(ci)), fShape, 'float32');
});

reg('FusedConv2D', (args) => {
  const { inputs, backend: b, attrs } = args;
  const { x, filter, bias, preluActivationWeights } = inputs;
  if (attrs.dataFormat === 'NCHW' || x.dtype !== 'float32') return fallback('FusedConv2D', args);
  const ci = backend_util.computeConv2DInfo(x.shape as [number, number, number, number],
    filter.shape as [number, number, number, number], attrs.strides as [number, number],
    attrs.dilations as [number, number], attrs.pad as Pad, attrs.dimRoundingMode as Round, false, 'channelsLast');
  let y = b.out(b.nat.conv2d(b.nid(x), b.nid(filter), convGeom(ci)), ci.outShape, 'float32');
  if (bias) {
    const z = binary(b, 'Add', y, bias);
    b.disposeIntermediate(y);
    y = z;
  }
  return activate(b, y, attrs.activation as string, attrs.leakyreluAlpha as number | undefined, preluActivationWeights);
});

const tableOps = new Set<string>();
/** Adds the op-table driven kernels (binary/unary names come from the addon; each name once, whichever
 *  addon, vlmix-cpu's or vlmix-cuda's, names it first). */
export function defineTableKernels(nat: { binaryOps: Record<string, number>; unaryOps: Record<string, number> }) {
  const fresh = (ops: Record<string, number>) =>
    Object.fromEntries(Object.entries(ops).filter(([op]) => !tableOps.has(op) && tableOps.add(op)));
  registerBinary({ binaryOps: fresh(nat.binaryOps) });
  registerUnary({ unaryOps: fresh(nat.unaryOps) });
}

export { cast, binary, unary, broadcastTo };
