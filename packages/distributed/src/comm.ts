/**
 * The process group: `initDistributed()` and the collectives on it (all-reduce, broadcast, all-gather,
 * barrier). Under mpirun it is Open MPI's world through the native addon; launched plainly it is a
 * one-process world whose collectives are identities, so the same training code runs either way.
 */
import * as tf from '@tensorflow/tfjs';
import { loadMpiAddon, type MpiAddon, type NativePending } from './addon.js';
import { DistributedError, DistributedTimeoutError } from './errors.js';
import { detectLaunch, type Launch } from './launch.js';

export type ReduceOp = 'sum' | 'mean';

export type TypedArray = Float32Array | Float64Array | Int32Array | Uint32Array | Int16Array | Uint16Array | Int8Array | Uint8Array |
  Uint8ClampedArray | BigInt64Array | BigUint64Array;

export interface CollectiveOptions {
  /**
   * Default true: each element is summed once, in rank order (reduce-scatter with MPI_Alltoallv, sum,
   * MPI_Allgatherv), so the result is bit-identical on every rank and equals a single process adding
   * the same buffers in a loop. false: the library's MPI_Allreduce (its own summation order).
   */
  deterministic?: boolean;
  /** Default true: first check that every rank passes the same length (one 48-byte all-reduce). */
  check?: boolean;
}

export interface InitOptions {
  /**
   * Distributed mode was asked for (e.g. `vlmix train --distributed`): throw unless an MPI launcher
   * started this process. Default false: a plain launch gives a one-process world.
   */
  require?: boolean;
  /** Watchdog for each collective in ms (0: none). Default $VLMIX_DIST_TIMEOUT_MS, else 600000 (10 min). */
  timeoutMs?: number;
}

export const DEFAULT_TIMEOUT_MS = 600_000;

function describeValue(x: unknown): string {
  if (x instanceof tf.Tensor) return `${/^[aeiou]/.test(x.dtype) ? 'an' : 'a'} ${x.dtype} tensor`;
  if (ArrayBuffer.isView(x)) return x.constructor.name;
  return x === null ? 'null' : typeof x;
}

function checkOp(what: string, op: unknown): asserts op is ReduceOp {
  if (op !== 'sum' && op !== 'mean') throw new DistributedError(`${what}: op must be 'sum' or 'mean', got ${JSON.stringify(op)}`);
}

/** A posted all-reduce: `wait()` returns the reduced buffer (the one passed in). */
export class PendingReduce {
  constructor(
    private readonly comm: Communicator,
    private readonly native: NativePending | null,
    readonly buffer: Float32Array,
    private readonly what: string,
  ) {}

  /** Drives the reduction without blocking; true when done. */
  test(): boolean {
    return this.native ? this.comm.guard(this.what, () => this.native!.test()) : true;
  }

  wait(): Float32Array {
    if (this.native) this.comm.guard(this.what, () => this.native!.wait(this.comm.timeoutMs));
    return this.buffer;
  }
}

export class Communicator {
  /** Watchdog per collective in ms (0: none). */
  timeoutMs: number;
  private finalized = false;

  constructor(
    readonly rank: number,
    readonly size: number,
    /** 'mpi' under a launcher, 'local' for the one-process world. */
    readonly backend: 'mpi' | 'local',
    private readonly native: MpiAddon | null,
    readonly launch: Launch,
    /** e.g. 'Open MPI v4.1.4' and the host name, or a note for the local world. */
    readonly library: string,
    readonly host: string,
    timeoutMs: number,
  ) {
    this.timeoutMs = timeoutMs;
  }

  /** Runs a native call, turning its coded errors into DistributedError / DistributedTimeoutError. */
  guard<T>(what: string, f: () => T): T {
    if (this.finalized) throw new DistributedError(`${what}: the process group was finalized`);
    try {
      return f();
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'VLMIX_MPI_TIMEOUT') throw new DistributedTimeoutError(what, this.timeoutMs, this.rank, this.size);
      if (e instanceof DistributedError) throw e;
      throw new DistributedError(`${(e as Error).message} (rank ${this.rank} of ${this.size})`);
    }
  }

  /** Sum or mean over ranks of a float32 buffer, in place (returns it). */
  allReduce(x: Float32Array, op?: ReduceOp, opts?: CollectiveOptions): Float32Array;
  /** Sum or mean over ranks of a float32 tensor: a new tensor (the input is left alone). */
  allReduce(x: tf.Tensor, op?: ReduceOp, opts?: CollectiveOptions): tf.Tensor;
  allReduce(x: Float32Array | tf.Tensor, op: ReduceOp = 'sum', opts: CollectiveOptions = {}): Float32Array | tf.Tensor {
    if (x instanceof tf.Tensor) {
      if (x.dtype !== 'float32') throw new DistributedError(`allReduce: x must be a Float32Array or a float32 tensor, got ${describeValue(x)}`);
      // A copy: dataSync() may hand out the backend's own storage (tfjs 'cpu').
      const buf = Float32Array.from(x.dataSync() as Float32Array);
      return tf.tensor(this.allReduce(buf, op, opts), x.shape, 'float32');
    }
    return this.allReduceAsync(x, op, opts).wait();
  }

  /** Posts an all-reduce of `x` (in place) and returns at once; `wait()` before touching `x`. */
  allReduceAsync(x: Float32Array, op: ReduceOp = 'sum', opts: CollectiveOptions = {}): PendingReduce {
    if (!(x instanceof Float32Array)) throw new DistributedError(`allReduce: x must be a Float32Array or a float32 tensor, got ${describeValue(x)}`);
    checkOp('allReduce', op);
    if (!this.native) return new PendingReduce(this, null, x, 'allReduce');
    const divisor = op === 'mean' ? this.size : 1;
    const pending = this.guard('allReduce', () =>
      this.native!.allReduceStart(x, divisor, opts.deterministic ?? true, opts.check ?? true, this.timeoutMs, 'allReduce'));
    return new PendingReduce(this, pending, x, 'allReduce');
  }

  /** Root's contents into `x` on every rank, in place (returns it). Any typed array, same length everywhere. */
  broadcast<T extends TypedArray>(x: T, root?: number, opts?: Pick<CollectiveOptions, 'check'>): T;
  /** Root's tensor on every rank: a new tensor (every rank passes one of the same shape and dtype). */
  broadcast(x: tf.Tensor, root?: number, opts?: Pick<CollectiveOptions, 'check'>): tf.Tensor;
  broadcast(x: TypedArray | tf.Tensor, root = 0, opts: Pick<CollectiveOptions, 'check'> = {}): TypedArray | tf.Tensor {
    this.checkRoot('broadcast', root);
    if (x instanceof tf.Tensor) {
      if (x.dtype !== 'float32' && x.dtype !== 'int32') throw new DistributedError(`broadcast: tensors must be float32 or int32, got ${x.dtype}`);
      const buf = x.dtype === 'float32' ? Float32Array.from(x.dataSync() as Float32Array) : Int32Array.from(x.dataSync() as Int32Array);
      return tf.tensor(this.broadcast(buf, root, opts), x.shape, x.dtype);
    }
    if (!ArrayBuffer.isView(x) || x instanceof DataView) throw new DistributedError(`broadcast: x must be a typed array or a tensor, got ${describeValue(x)}`);
    if (this.native) this.guard('broadcast', () => this.native!.broadcast(x, root, opts.check ?? true, this.timeoutMs, 'broadcast'));
    return x;
  }

  /** Root's JSON-serialisable value on every rank (others pass anything, e.g. null). */
  broadcastJson<T>(value: T, root = 0): T {
    this.checkRoot('broadcastJson', root);
    if (!this.native) return JSON.parse(JSON.stringify(value)) as T;
    const bytes = this.rank === root ? new TextEncoder().encode(JSON.stringify(value) ?? 'null') : new Uint8Array(0);
    const len = this.broadcast(new Float64Array([bytes.length]), root);
    const buf = this.rank === root ? bytes : new Uint8Array(len[0]!);
    this.broadcast(buf, root);
    return JSON.parse(new TextDecoder().decode(buf)) as T;
  }

  /** Every rank's `x`, concatenated in rank order (a new array of size * x.length). */
  allGather<T extends TypedArray>(x: T, opts: Pick<CollectiveOptions, 'check'> = {}): T {
    if (!ArrayBuffer.isView(x) || x instanceof DataView) throw new DistributedError(`allGather: x must be a typed array, got ${describeValue(x)}`);
    const Ctor = x.constructor as new (n: number) => T;
    const out = new Ctor(x.length * this.size);
    if (!this.native) {
      (out as unknown as { set(a: T): void }).set(x);
      return out;
    }
    this.guard('allGather', () => this.native!.allGather(x, out, opts.check ?? true, this.timeoutMs, 'allGather'));
    return out;
  }

  /** Returns when every rank has called it (within the watchdog timeout). */
  barrier(): void {
    if (this.native) this.guard('barrier', () => this.native!.barrier(this.timeoutMs, 'barrier'));
  }

  /** Ends MPI for this process (collective: every rank calls it). Later calls on this group throw. */
  finalize(): void {
    if (this.finalized) return;
    this.finalized = true;
    if (this.native) this.native.finalize();
    if (world === this) finalizedWorld = true;
  }

  get isFinalized(): boolean {
    return this.finalized;
  }

  /** Stops every rank of the job now (MPI_Abort); for the local world, exits the process. */
  abort(code = 1): never {
    if (this.native) this.native.abort(code);
    process.exit(code);
  }

  private checkRoot(what: string, root: number): void {
    if (!Number.isInteger(root) || root < 0 || root >= this.size) throw new DistributedError(`${what}: root must be an integer in [0, ${this.size}), got ${root}`);
  }
}

let world: Communicator | null = null;
let finalizedWorld = false;

function envTimeout(): number {
  const raw = process.env.VLMIX_DIST_TIMEOUT_MS;
  if (raw === undefined || raw === '') return DEFAULT_TIMEOUT_MS;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < 0) throw new DistributedError(`VLMIX_DIST_TIMEOUT_MS must be a number of milliseconds >= 0, got '${raw}'`);
  return v;
}

/** Whether the MPI addon is built and loads, and how this process was launched. Never throws. */
export function distributedInfo(): { available: boolean; reason: string; launch: Launch } {
  const { addon, reason } = loadMpiAddon();
  return { available: addon !== null, reason, launch: detectLaunch() };
}

/**
 * Joins the process group (idempotent: later calls return the same one). Under mpirun: MPI's world,
 * rank and size from MPI. Without a launcher: a one-process world, or, with `require: true`, an error.
 */
export function initDistributed(opts: InitOptions = {}): Communicator {
  if (opts.timeoutMs !== undefined && !(Number.isFinite(opts.timeoutMs) && opts.timeoutMs >= 0)) {
    throw new DistributedError(`initDistributed: timeoutMs must be a number of milliseconds >= 0, got ${opts.timeoutMs}`);
  }
  if (finalizedWorld) throw new DistributedError('initDistributed: the process group was finalized; MPI cannot be initialised twice in one process');
  const launch = world?.launch ?? detectLaunch();
  if (!launch.launcher && opts.require) {
    throw new DistributedError('distributed mode needs a launch by mpirun: this process was started without one (none of OMPI_COMM_WORLD_SIZE, ' +
      'PMI_SIZE, PMIX_RANK is set). Start every rank with e.g. `mpirun -np 2 <command>` (docs/distributed.md)');
  }
  if (world) {
    if (opts.timeoutMs !== undefined) world.timeoutMs = opts.timeoutMs;
    return world;
  }
  const timeoutMs = opts.timeoutMs ?? envTimeout();
  if (!launch.launcher) {
    return (world = new Communicator(0, 1, 'local', null, launch, 'none (single process)', 'localhost', timeoutMs));
  }
  const { addon, reason } = loadMpiAddon();
  if (!addon) {
    if (launch.size === 1) return (world = new Communicator(0, 1, 'local', null, launch, `none (${reason})`, 'localhost', timeoutMs));
    throw new DistributedError(`launched by ${launch.launcher} with ${launch.size ?? 'several'} processes, but the MPI addon cannot be used: ${reason}; every process would train alone`);
  }
  let info: ReturnType<MpiAddon['init']>;
  try {
    info = addon.init();
  } catch (e) {
    throw new DistributedError(`initDistributed: ${(e as Error).message}`);
  }
  if (launch.size !== null && launch.size !== info.size) {
    throw new DistributedError(`initDistributed: ${launch.launcher} started ${launch.size} processes but MPI sees ${info.size} in its world: ` +
      `the addon's MPI (${info.library}) is not the launcher's MPI; use that library's mpirun`);
  }
  world = new Communicator(info.rank, info.size, 'mpi', addon, launch, info.library, info.host, timeoutMs);
  installExitHandler(world);
  return world;
}

/**
 * MPI must be finalized on a clean exit (else mpirun reports the rank as failed), and a failing rank
 * should stop the others at once rather than leave them waiting in a collective until the watchdog:
 * on exit code 0 finalize, otherwise MPI_Abort with that code.
 */
function installExitHandler(w: Communicator): void {
  process.on('exit', (code) => {
    if (w.isFinalized) return;
    if (code === 0) w.finalize();
    else w.abort(code);
  });
}

/** The group made by initDistributed(); throws when there is none. */
export function getWorld(what = 'distributed'): Communicator {
  if (!world) throw new DistributedError(`${what}: not initialised; call initDistributed() first`);
  if (world.isFinalized) throw new DistributedError(`${what}: the process group was finalized`);
  return world;
}

export const rank = (): number => getWorld('rank').rank;
export const size = (): number => getWorld('size').size;

export function allReduce(x: Float32Array, op?: ReduceOp, opts?: CollectiveOptions): Float32Array;
export function allReduce(x: tf.Tensor, op?: ReduceOp, opts?: CollectiveOptions): tf.Tensor;
export function allReduce(x: Float32Array | tf.Tensor, op: ReduceOp = 'sum', opts: CollectiveOptions = {}): Float32Array | tf.Tensor {
  return getWorld('allReduce').allReduce(x as Float32Array, op, opts);
}

export function broadcast<T extends TypedArray>(x: T, root?: number): T;
export function broadcast(x: tf.Tensor, root?: number): tf.Tensor;
export function broadcast(x: TypedArray | tf.Tensor, root = 0): TypedArray | tf.Tensor {
  return getWorld('broadcast').broadcast(x as Float32Array, root);
}

export const barrier = (): void => getWorld('barrier').barrier();

export function finalize(): void {
  world?.finalize();
}
