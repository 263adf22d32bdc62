/**
 * Step capture and replay: what CUDA graphs do on a GPU, for any tfjs backend (vlmix-cpu, vlmix-cuda, tfjs
 * 'cpu').
 *
 * A small model's training step is a few hundred kernels; dispatching each through tfjs's engine (op
 * wrapper, tape, scopes, tensor tracking) costs several microseconds, as much as the kernel itself. A
 * StepReplayer runs the step eagerly the first time it sees an input signature (the shapes and dtypes of
 * its input tensors) and records, below the engine, every kernel call with its inputs, attrs and outputs,
 * and every constant the step uploads. The second time it records again and compares: same kernels, same
 * shapes, same constants, else the step stays eager (with the reason). It then replays the first recording
 * on the second call's inputs and checks that every output is bit for bit the eager one. From the third
 * call on, it replays: the kernel functions are called directly, in order, intermediates freed after their
 * last use. The model code, the tape and the engine do not run. (A composite kernel, one made of tfjs ops
 * such as vlmix's fused kernels on tfjs 'cpu', still runs its ops through the engine.)
 *
 * The contract (as for CUDA graphs): the step depends on its input tensors, the variables and tensors that
 * live across steps, and nothing else. What breaks it is caught where it can be: a value read back to the
 * host mid-step (its control flow may depend on it), a variable assigned inside the step, random numbers or
 * host-computed constants that change from call to call (the two recordings differ). Values computed on the
 * host from something outside the input tensors that happen to be equal on the two recorded calls are not
 * caught: keep such values out of a replayed step.
 */
import * as tf from '@tensorflow/tfjs';
import { fail } from './errors.js';

type DataId = object;
type Src =
  | { k: 'in'; i: number }
  | { k: 'var'; vs: tf.Variable[] } // several: variables that shared one buffer when recorded
  | { k: 'slot'; i: number }
  | { k: 'fixed'; dataId: DataId; n: number };
interface Arg { src: Src; shape: number[]; dtype: tf.DataType }
interface KernelCall {
  t: 'call';
  name: string;
  func: tf.KernelFunc;
  /** Input names in order; null: the kernel takes an array of inputs (e.g. Concat). */
  keys: string[] | null;
  args: (Arg | null)[];
  attrs: tf.NamedAttrMap | undefined;
  outs: number[];
  /** A composite kernel (tfjs ops inside, e.g. every fused kernel on tfjs 'cpu'): it takes and returns tf.Tensors. */
  composite: boolean;
}
interface Upload { t: 'write'; slot: number; values: tf.BackendValues; shape: number[]; dtype: tf.DataType }
type Op = KernelCall | Upload;

/** One recorded step. */
interface Plan {
  backendName: string;
  ops: Op[];
  slots: number;
  outputs: (Arg | null)[];
  /** Slots whose last use is op i: freed right after it. */
  release: number[][];
  /** Tensors from outside the step it reads (e.g. a cached mask); when one is disposed, the step is recorded anew. */
  fixed: DataId[];
  kernels: number;
  /** Variables read that shared one buffer when recorded: the recording holds while they still do. */
  shared: tf.Variable[][];
  /** Every variable read. */
  vars: tf.Variable[];
  /** Canonical text of the step (kernels, shapes, attrs, constants): two recordings must agree. */
  key: string[];
}

interface EngineState {
  state: { registeredVariables: Record<string, tf.Variable>; tensorInfo: WeakMap<DataId, unknown> };
  makeTensorFromTensorInfo(info: tf.TensorInfo, backend: tf.KernelBackend): tf.Tensor;
}
interface Patchable {
  write: tf.KernelBackend['write'];
  readSync: tf.KernelBackend['readSync'];
  read: tf.KernelBackend['read'];
}

/** Stable small numbers for tensors from outside a step, so that two recordings compare. */
const fixedIds = new WeakMap<DataId, number>();
let nextFixed = 0;

function stringifyAttrs(attrs: tf.NamedAttrMap | undefined): string {
  if (!attrs) return '';
  return JSON.stringify(attrs, (_k, v: unknown) => (ArrayBuffer.isView(v) ? Array.from(v as unknown as ArrayLike<number>) : v));
}

/** FNV-1a over a constant's bytes: its identity in the recording's key. */
function hashValues(values: tf.BackendValues): string {
  const v = values as ArrayBufferView;
  if (!ArrayBuffer.isView(v)) return 'non-typed';
  const b = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i]!, 0x01000193) >>> 0;
  return `${b.length}:${h.toString(16)}`;
}

function copyValues(values: tf.BackendValues): tf.BackendValues {
  return (values as Float32Array).slice();
}

interface TraceResult {
  outputs: (tf.Tensor | null)[];
  plan: Plan | null;
  reason: string | null;
}

/** Runs `fn` eagerly, recording the kernels it dispatches on the current backend. */
function trace(fn: () => (tf.Tensor | null)[], inputs: readonly tf.Tensor[]): TraceResult {
  const backendName = tf.getBackend();
  const backend = tf.backend();
  const engine = tf.engine() as unknown as EngineState;
  const ops: Op[] = [];
  const slotOf = new Map<DataId, number>();
  let slots = 0;
  let depth = 0;
  let reason: string | null = null;
  const refuse = (why: string) => { reason ??= why; };
  const inputOf = new Map<DataId, number>();
  inputs.forEach((t, i) => { if (!inputOf.has(t.dataId)) inputOf.set(t.dataId, i); });
  const varOf = new Map<DataId, tf.Variable[]>();
  const vars = Object.values(engine.state.registeredVariables);
  for (const v of vars) {
    const l = varOf.get(v.dataId);
    if (l) l.push(v);
    else varOf.set(v.dataId, [v]);
  }
  const varIds = vars.map((v) => v.dataId);
  const fixed = new Set<DataId>();
  const src = (dataId: DataId): Src => {
    const s = slotOf.get(dataId);
    if (s !== undefined) return { k: 'slot', i: s };
    const i = inputOf.get(dataId);
    if (i !== undefined) return { k: 'in', i };
    const vs = varOf.get(dataId);
    if (vs) return { k: 'var', vs };
    fixed.add(dataId);
    let n = fixedIds.get(dataId);
    if (n === undefined) fixedIds.set(dataId, (n = nextFixed++));
    return { k: 'fixed', dataId, n };
  };
  const newSlot = (dataId: DataId) => {
    slotOf.set(dataId, slots);
    return slots++;
  };

  const kernels = tf.getKernelsForBackend(backendName);
  const originals = kernels.map((k) => k.kernelFunc);
  kernels.forEach((k, j) => {
    const func = originals[j]!;
    k.kernelFunc = (args) => {
      if (depth > 0) return func(args);
      depth++;
      let out: tf.TensorInfo | tf.TensorInfo[];
      try {
        out = func(args);
      } finally {
        depth--;
      }
      const isArray = Array.isArray(args.inputs);
      const entries = isArray ? (args.inputs as unknown as tf.TensorInfo[]).map((t, i) => [String(i), t] as const) : Object.entries(args.inputs);
      const callArgs = entries.map(([, t]) => (t ? { src: src(t.dataId), shape: t.shape.slice(), dtype: t.dtype } : null));
      const list = Array.isArray(out) ? out : [out];
      const composite = list.some((o) => o instanceof tf.Tensor);
      const outs = list.map((o) => newSlot(o.dataId));
      ops.push({ t: 'call', name: k.kernelName, func, keys: isArray ? null : entries.map(([n]) => n), args: callArgs, attrs: args.attrs, outs, composite });
      return out;
    };
  });
  const b = backend as unknown as Patchable;
  const own = { write: Object.hasOwn(b, 'write'), readSync: Object.hasOwn(b, 'readSync'), read: Object.hasOwn(b, 'read') };
  const { write, readSync, read } = b;
  b.write = function (this: tf.KernelBackend, values, shape, dtype) {
    const dataId = write.call(this, values, shape, dtype);
    if (depth === 0) {
      if (dtype === 'string' || !ArrayBuffer.isView(values)) refuse(`the step uploads a ${dtype} tensor that is not a typed array`);
      else ops.push({ t: 'write', slot: newSlot(dataId), values: copyValues(values), shape: shape.slice(), dtype });
    }
    return dataId;
  };
  const onRead = () => {
    if (depth === 0) refuse('the step reads tensor values back to the host (dataSync / data / array): what it does next may depend on them');
  };
  b.readSync = function (this: tf.KernelBackend, dataId) {
    onRead();
    return readSync.call(this, dataId);
  };
  b.read = function (this: tf.KernelBackend, dataId) {
    onRead();
    return read.call(this, dataId);
  };

  let outputs: (tf.Tensor | null)[];
  try {
    outputs = fn();
  } finally {
    kernels.forEach((k, j) => { k.kernelFunc = originals[j]!; });
    for (const m of ['write', 'readSync', 'read'] as const) {
      if (own[m]) (b as unknown as Record<string, unknown>)[m] = m === 'write' ? write : m === 'readSync' ? readSync : read;
      else delete (b as unknown as Record<string, unknown>)[m];
    }
  }
  if (!Array.isArray(outputs) || outputs.some((t) => t !== null && !(t instanceof tf.Tensor))) fail('StepReplayer: the step must return an array of tensors (or nulls)');
  vars.forEach((v, i) => { if (!v.isDisposed && v.dataId !== varIds[i]) refuse(`the step assigns variable '${v.name}'`); });
  if (reason) return { outputs, plan: null, reason };

  const outArgs = outputs.map((t) => (t ? { src: src(t.dataId), shape: t.shape.slice(), dtype: t.dtype } : null));
  // Each slot is freed after its last reader; slots read by the outputs (or by nothing) at the end.
  const last = new Array<number>(slots).fill(-1);
  ops.forEach((op, i) => {
    if (op.t === 'call') for (const a of op.args) if (a?.src.k === 'slot') last[a.src.i] = i;
  });
  const held = new Set<number>();
  for (const a of outArgs) if (a?.src.k === 'slot') held.add(a.src.i);
  const release: number[][] = ops.map(() => []);
  for (let s = 0; s < slots; s++) if (!held.has(s) && last[s] !== -1) release[last[s]!]!.push(s);
  const argKey = (a: Arg | null) => {
    if (!a) return '-';
    const s = a.src;
    const id = s.k === 'var' ? `v:${s.vs.map((v) => v.name).join('|')}` : s.k === 'fixed' ? `f${s.n}` : `${s.k}${s.i}`;
    return `${id}:${a.shape.join('x')}:${a.dtype}`;
  };
  const key = ops.map((op) => (op.t === 'write'
    ? `write ${op.dtype}[${op.shape.join('x')}] ${hashValues(op.values)}`
    : `${op.name}(${op.args.map(argKey).join(', ')}) ${stringifyAttrs(op.attrs)} -> ${op.outs.length}`));
  key.push(`outputs(${outArgs.map(argKey).join(', ')})`);
  const shared = new Set<tf.Variable[]>();
  const varsRead = new Set<tf.Variable>();
  const note = (a: Arg | null) => {
    if (a?.src.k !== 'var') return;
    for (const v of a.src.vs) varsRead.add(v);
    if (a.src.vs.length > 1) shared.add(a.src.vs);
  };
  for (const op of ops) if (op.t === 'call') op.args.forEach(note);
  outArgs.forEach(note);
  const outside = [...fixed];
  const plan: Plan = {
    backendName, ops, slots, outputs: outArgs, release, fixed: outside,
    kernels: ops.filter((o) => o.t === 'call').length, shared: [...shared], vars: [...varsRead], key,
  };
  return { outputs, plan, reason: null };
}

/** Runs a recorded step on new inputs: the kernel functions in order, nothing else. */
function replay(plan: Plan, inputs: readonly tf.Tensor[]): (tf.Tensor | null)[] {
  const backendName = tf.getBackend();
  if (backendName !== plan.backendName) fail(`StepReplayer: the step was recorded on backend '${plan.backendName}', the current backend is '${backendName}'`);
  const backend = tf.backend();
  const vals: (tf.TensorInfo | undefined)[] = new Array(plan.slots);
  const info = (a: Arg): tf.TensorInfo => {
    const s = a.src;
    let dataId: DataId;
    if (s.k === 'slot') dataId = vals[s.i]!.dataId;
    else if (s.k === 'in') dataId = inputs[s.i]!.dataId;
    else if (s.k === 'var') {
      if (s.vs[0]!.isDisposed) fail(`StepReplayer: variable '${s.vs[0]!.name}' was disposed`);
      dataId = s.vs[0]!.dataId;
    } else dataId = s.dataId;
    return { dataId, shape: a.shape, dtype: a.dtype };
  };
  const engine = tf.engine() as unknown as EngineState;
  // A composite kernel runs tfjs ops on its inputs: it gets tensors (each holding one reference), collected
  // in `temps` and disposed after the call unless returned. Other kernels get the TensorInfo itself.
  let temps: tf.Tensor[] | null = null;
  const input = (a: Arg): tf.TensorInfo => {
    const t = info(a);
    if (!temps) return t;
    backend.incRef(t.dataId);
    const x = engine.makeTensorFromTensorInfo(t, backend);
    temps.push(x);
    return x;
  };
  const free = (s: number) => {
    const v = vals[s];
    if (v instanceof tf.Tensor) v.dispose(); // a composite kernel's output
    else if (v) backend.disposeData(v.dataId);
    vals[s] = undefined;
  };
  try {
    for (let i = 0; i < plan.ops.length; i++) {
      const op = plan.ops[i]!;
      if (op.t === 'write') {
        vals[op.slot] = { dataId: backend.write(copyValues(op.values), op.shape, op.dtype), shape: op.shape, dtype: op.dtype };
      } else {
        // Plain loops, no per-op closures: this runs for every kernel of a replayed step.
        const { args, keys, outs } = op;
        temps = op.composite ? [] : null;
        let inputsArg: tf.NamedTensorInfoMap;
        if (keys === null) {
          const list: (tf.TensorInfo | null)[] = new Array(args.length);
          for (let j = 0; j < args.length; j++) list[j] = args[j] ? input(args[j]!) : null;
          inputsArg = list as unknown as tf.NamedTensorInfoMap;
        } else {
          inputsArg = {};
          for (let j = 0; j < keys.length; j++) if (args[j]) inputsArg[keys[j]!] = input(args[j]!);
        }
        const out = op.func({ inputs: inputsArg, attrs: op.attrs ?? {}, backend });
        if (Array.isArray(out)) for (let j = 0; j < outs.length; j++) vals[outs[j]!] = out[j];
        else vals[outs[0]!] = out;
        if (temps) for (const t of temps) if (Array.isArray(out) ? !out.includes(t) : out !== t) t.dispose();
      }
      const rel = plan.release[i]!;
      for (let j = 0; j < rel.length; j++) free(rel[j]!);
    }
    return plan.outputs.map((a) => {
      if (!a) return null;
      const t = info(a);
      backend.incRef(t.dataId);
      return engine.makeTensorFromTensorInfo(t, backend);
    });
  } finally {
    for (let s = 0; s < plan.slots; s++) free(s);
  }
}

/**
 * Whether a recording no longer describes the step: variables that shared a buffer when it was recorded no
 * longer do, a variable it reads was disposed (e.g. weights loaded into new variables), or a tensor from
 * outside the step that it reads was disposed by its owner (e.g. a cache rebuilt).
 */
function stale(plan: Plan): boolean {
  if (plan.shared.some((g) => g.some((v) => v.dataId !== g[0]!.dataId))) return true;
  if (plan.vars.some((v) => v.isDisposed)) return true;
  const tracked = (tf.engine() as unknown as EngineState).state.tensorInfo;
  return plan.fixed.some((d) => !tracked.has(d));
}

function sameBits(a: tf.Tensor, b: tf.Tensor): boolean {
  if (a.dtype !== b.dtype || !tf.util.arraysEqual(a.shape, b.shape)) return false;
  const x = a.dataSync() as Float32Array, y = b.dataSync() as Float32Array;
  const u = new Uint8Array(x.buffer, x.byteOffset, x.byteLength), v = new Uint8Array(y.buffer, y.byteOffset, y.byteLength);
  if (u.length !== v.length) return false;
  for (let i = 0; i < u.length; i++) if (u[i] !== v[i]) return false;
  return true;
}

function firstDifference(a: string[], b: string[]): string {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return `at operation ${i + 1}: '${a[i]}' vs '${b[i]}'`;
  return `${a.length} vs ${b.length} operations`;
}

export type ReplayState = 'recorded' | 'replaying' | 'eager';

export interface ReplayStatus {
  /** Backend and the input tensors' shapes and dtypes. */
  signature: string;
  state: ReplayState;
  /** Why this signature runs eagerly (state 'eager'). */
  reason?: string;
  /** Kernel calls in the recorded step. */
  kernels?: number;
  /** Steps replayed so far (recordings made anew keep counting). */
  replays: number;
}

export interface StepReplayerOptions {
  /** Called once per signature that stays eager, with the reason. */
  onEager?: (reason: string, signature: string) => void;
  /** Signatures kept (least recently used dropped first). Default 16. */
  maxSignatures?: number;
  /**
   * The code the step runs, as a value the recordings hold for (e.g. `() => model.revision`, which changes when
   * a mixin is added or removed): when it changes, every recording is dropped.
   */
  version?: () => unknown;
}

interface Entry {
  state: ReplayState;
  plan: Plan | null;
  reason?: string;
  replays: number;
  /** Recordings made for this signature. */
  records: number;
}

/** Recordings per signature before a step whose recordings keep differing runs eagerly. */
const MAX_RECORDS = 4;

/**
 * Records a fixed-shape step and replays it (see the top of this file). `run(inputs, step)`: `step` computes
 * the outputs from `inputs` (and variables); it runs eagerly on the first two calls of each input
 * signature and whenever the step cannot be replayed, else the recording runs instead of it. The results
 * are bit for bit the eager ones (checked once per signature). `hostKey` (optional) joins the signature: the
 * host values the step's code uploads or branches on (e.g. `StateMap.hostKey()` of the host stage), so that
 * a change in them makes a new recording instead of replaying stale constants.
 */
export class StepReplayer {
  private entries = new Map<string, Entry>();
  private readonly max: number;

  private version: unknown;

  constructor(private readonly opts: StepReplayerOptions = {}) {
    const m = opts.maxSignatures ?? 16;
    if (!Number.isInteger(m) || m < 1) fail(`StepReplayer: maxSignatures must be an integer >= 1, got ${m}`);
    this.max = m;
    this.version = opts.version?.();
  }

  /** Drops the recordings when the step's code changed since they were made (opts.version). */
  private checkVersion(): void {
    if (!this.opts.version) return;
    const v = this.opts.version();
    if (v === this.version) return;
    this.entries.clear();
    this.version = v;
  }

  run(inputs: readonly tf.Tensor[], step: () => (tf.Tensor | null)[], hostKey = ''): (tf.Tensor | null)[] {
    for (const [i, t] of inputs.entries()) if (!(t instanceof tf.Tensor) || t.isDisposed) fail(`StepReplayer.run: inputs[${i}] must be a live tensor`);
    if (typeof hostKey !== 'string') fail(`StepReplayer.run: hostKey must be a string, got ${typeof hostKey}`);
    this.checkVersion();
    const sig = `${tf.getBackend()}: ${inputs.map((t) => `${t.dtype}[${t.shape.join('x')}]`).join(' ') || '(no input tensors)'}${hostKey ? ` | ${hostKey}` : ''}`;
    const e = this.entries.get(sig);
    if (e) { // most recently used last
      this.entries.delete(sig);
      this.entries.set(sig, e);
    }
    if (e?.state === 'eager') return step();
    if (e && stale(e.plan!)) {
      // The recording no longer describes the step (see stale()): record anew, keeping the count of replays.
      this.entries.delete(sig);
      const out = this.run(inputs, step);
      const renewed = this.entries.get(sig);
      if (renewed) renewed.replays += e.replays;
      return out;
    }
    if (e?.state === 'replaying') {
      e.replays++;
      return replay(e.plan!, inputs);
    }
    if (!e) {
      const r = trace(step, inputs);
      this.add(sig, r.plan ? { state: 'recorded', plan: r.plan, replays: 0, records: 1 } : this.eager(sig, r.reason!));
      return r.outputs;
    }
    // Second call: record again; the recordings must agree and the replay must equal the eager step.
    const r = trace(step, inputs);
    const first = e.plan!;
    e.records++;
    if (!r.plan) this.demote(sig, e, r.reason!);
    else if (r.plan.key.join('\n') !== first.key.join('\n')) {
      if ((first.shared.length || r.plan.shared.length) && e.records <= MAX_RECORDS) {
        // Shared buffers made the first recording ambiguous: compare the next call with this one.
        e.plan = r.plan;
        return r.outputs;
      }
      this.demote(sig, e, `the step changed between two calls with the same input shapes ${firstDifference(first.key, r.plan.key)} ` +
        '(random numbers such as dropout, or values the host computed from something other than the input tensors)');
    } else {
      const again = replay(first, inputs);
      try {
        const bad = r.outputs.findIndex((t, i) => (t === null) !== (again[i] === null) || (t !== null && !sameBits(t, again[i]!)));
        if (bad >= 0) this.demote(sig, e, `the replayed step's output ${bad} differs from the eager step's`);
        else e.state = 'replaying';
      } finally {
        for (const t of again) t?.dispose();
      }
    }
    return r.outputs;
  }

  /** Each signature seen, with its state. */
  status(): ReplayStatus[] {
    this.checkVersion();
    return [...this.entries].map(([signature, e]) => ({
      signature, state: e.state, replays: e.replays,
      ...(e.reason ? { reason: e.reason } : {}), ...(e.plan ? { kernels: e.plan.kernels } : {}),
    }));
  }

  /** Drops every recording (e.g. after the model's variables were replaced). */
  clear(): void {
    this.entries.clear();
  }

  dispose(): void {
    this.clear();
  }

  private eager(sig: string, reason: string): Entry {
    this.opts.onEager?.(reason, sig);
    return { state: 'eager', plan: null, reason, replays: 0, records: 0 };
  }

  private demote(sig: string, e: Entry, reason: string): void {
    Object.assign(e, this.eager(sig, reason));
  }

  private add(sig: string, e: Entry): void {
    this.entries.set(sig, e);
    while (this.entries.size > this.max) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }
}

/**
 * The tensors inside a batch-like value (arrays, plain objects and Maps, 6 levels deep), each once, in a
 * fixed order: the inputs of a replayed step when the batch is an arbitrary structure.
 */
export function tensorsIn(value: unknown): tf.Tensor[] {
  const out: tf.Tensor[] = [];
  const seen = new Set<tf.Tensor>();
  const walk = (v: unknown, depth: number) => {
    if (v instanceof tf.Tensor) {
      if (!seen.has(v)) { seen.add(v); out.push(v); }
    } else if (depth < 6 && v != null && typeof v === 'object' && !ArrayBuffer.isView(v)) {
      if (Array.isArray(v)) for (const x of v) walk(x, depth + 1);
      else if (v instanceof Map) for (const x of v.values()) walk(x, depth + 1);
      else if (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null) for (const x of Object.values(v)) walk(x, depth + 1);
    }
  };
  walk(value, 0);
  return out;
}
