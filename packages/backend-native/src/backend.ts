// The vlmix-cpu KernelBackend: tensor data lives in native buffers, JS keeps integer handles.
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from './native.js';

type DataId = object;
type DataType = tf.DataType;

/**
 * A tensor's native buffer. The data ids this backend creates are Entry objects themselves, so a kernel finds
 * its inputs without a Map lookup and an output costs one object (a Map keyed by fresh objects was the largest
 * part of the per-op cost in a profile: about a quarter of a replayed op). Data ids moved in from another
 * backend keep their own object and map to an Entry in `moved`.
 */
class Entry {
  /** Index in the owner's `live` list (swap-removed on free). */
  slot = -1;
  constructor(
    readonly owner: NativeBackend,
    readonly id: number,
    readonly dtype: DataType,
    readonly shape: number[],
    public refCount: number,
  ) {}
}

export const BACKEND_NAME = 'vlmix-cpu';

/** Native dtype code: bool is stored as int32 0/1. */
export function dcode(dtype: DataType): number {
  if (dtype === 'float32') return 0;
  if (dtype === 'int32' || dtype === 'bool') return 1;
  throw new Error(`vlmix-cpu: dtype '${dtype}' is not supported (float32, int32 and bool only)`);
}

export class NativeBackend extends tf.KernelBackend {
  /** Every live entry (for numDataIds and dispose). */
  private live: Entry[] = [];
  /** Entries of data ids that were created by another backend and moved here. */
  private moved = new WeakMap<DataId, Entry>();

  constructor(readonly nat: NativeAddon) {
    super();
  }

  /** This backend's live entry for a data id, or undefined. */
  private find(dataId: DataId): Entry | undefined {
    if (dataId instanceof Entry && dataId.owner === this && dataId.slot >= 0) return dataId;
    const e = this.moved.get(dataId); // also one of ours that went to another backend and came back
    return e && e.slot >= 0 ? e : undefined;
  }

  private add(e: Entry): Entry {
    e.slot = this.live.length;
    this.live.push(e);
    return e;
  }

  private remove(e: Entry): void {
    const last = this.live.pop()!;
    if (last !== e) {
      this.live[e.slot] = last;
      last.slot = e.slot;
    }
    e.slot = -1;
  }

  /** Entry for a data id, pulling it over from another backend if needed (like DataStorage.get). */
  entry(dataId: DataId): Entry {
    let e = this.find(dataId);
    if (!e) {
      tf.engine().moveData(this, dataId);
      e = this.find(dataId);
      if (!e) throw new Error('vlmix-cpu: unknown tensor data id');
    }
    return e;
  }

  /** Native buffer handle of a tensor. */
  nid(t: tf.TensorInfo): number {
    return this.entry(t.dataId).id;
  }

  /** Wraps a freshly allocated native buffer as a kernel output. */
  out(id: number, shape: number[], dtype: DataType): tf.TensorInfo {
    return { dataId: this.add(new Entry(this, id, dtype, shape.slice(), 1)), shape, dtype };
  }

  /** Shares x's buffer under a new shape / dtype (Reshape, Identity, same-size Cast). */
  alias(x: tf.TensorInfo, shape: number[], dtype: DataType = x.dtype): tf.TensorInfo {
    this.incRef(x.dataId);
    return { dataId: x.dataId, shape, dtype };
  }

  private upload(values: tf.BackendValues | null, shape: number[], dtype: DataType): number {
    const n = tf.util.sizeFromShape(shape);
    dcode(dtype);
    if (values == null) {
      const id = this.nat.fill(dcode(dtype), n, 0);
      return id;
    }
    if (dtype === 'bool') {
      const v = values instanceof Uint8Array ? values : Uint8Array.from(values as ArrayLike<number>);
      return this.nat.createBool(v);
    }
    if (dtype === 'float32') {
      return this.nat.create(values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>));
    }
    return this.nat.create(values instanceof Int32Array ? values : Int32Array.from(values as ArrayLike<number>));
  }

  override write(values: tf.BackendValues, shape: number[], dtype: DataType): DataId {
    return this.out(this.upload(values, shape, dtype), shape, dtype).dataId;
  }

  override move(dataId: DataId, values: tf.BackendValues, shape: number[], dtype: DataType, refCount: number): void {
    this.moved.set(dataId, this.add(new Entry(this, this.upload(values, shape, dtype), dtype, shape.slice(), refCount)));
  }

  /** Creates a kernel output from JS values (used by the fallback path and tiny kernels). */
  fromValues(values: tf.BackendValues, shape: number[], dtype: DataType): tf.TensorInfo {
    return this.out(this.upload(values, shape, dtype), shape, dtype);
  }

  override readSync(dataId: DataId): tf.BackendValues {
    const e = this.entry(dataId);
    const n = this.nat.size(e.id);
    if (e.dtype === 'bool') {
      const v = new Uint8Array(n);
      this.nat.readBool(e.id, v);
      return v;
    }
    const v = e.dtype === 'float32' ? new Float32Array(n) : new Int32Array(n);
    this.nat.read(e.id, v);
    return v;
  }

  override async read(dataId: DataId): Promise<tf.BackendValues> {
    return this.readSync(dataId);
  }

  /** Values of a kernel input as the tensor's logical size (a buffer may be shared by aliases). */
  values(t: tf.TensorInfo): tf.TypedArray {
    return this.readSync(t.dataId) as tf.TypedArray;
  }

  override disposeData(dataId: DataId, force = false): boolean {
    const e = this.find(dataId);
    if (e) {
      e.refCount--;
      if (!force && e.refCount > 0) return false;
      this.nat.free(e.id);
      this.remove(e);
    }
    return true;
  }

  /** Frees a kernel temporary created with out(). */
  disposeIntermediate(t: tf.TensorInfo): void {
    this.disposeData(t.dataId);
  }

  override incRef(dataId: DataId): void {
    const e = this.find(dataId);
    if (e) e.refCount++;
  }

  override refCount(dataId: DataId): number {
    return this.find(dataId)?.refCount ?? 0;
  }

  override numDataIds(): number {
    return this.live.length;
  }

  override memory(): { unreliable: boolean; reasons?: string[] } {
    return { unreliable: false };
  }

  override async time(f: () => void): Promise<tf.BackendTimingInfo> {
    const start = performance.now();
    f();
    return { kernelMs: performance.now() - start };
  }

  override timerAvailable(): boolean {
    return true;
  }

  override floatPrecision(): 16 | 32 {
    return 32;
  }

  override epsilon(): number {
    return 1e-7;
  }

  override dispose(): void {
    for (const e of this.live) {
      this.nat.free(e.id);
      e.slot = -1;
    }
    this.live = [];
    this.moved = new WeakMap();
  }
}
