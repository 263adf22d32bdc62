// The vlmix-cpu KernelBackend: tensor data lives in native buffers, JS keeps integer handles.
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from './native.js';

type DataId = object;
type DataType = tf.DataType;

interface Entry {
  id: number;
  dtype: DataType;
  shape: number[];
  refCount: number;
}

export const BACKEND_NAME = 'vlmix-cpu';

/** Native dtype code: bool is stored as int32 0/1. */
export function dcode(dtype: DataType): number {
  if (dtype === 'float32') return 0;
  if (dtype === 'int32' || dtype === 'bool') return 1;
  throw new Error(`vlmix-cpu: dtype '${dtype}' is not supported (float32, int32 and bool only)`);
}

export class NativeBackend extends tf.KernelBackend {
  private data = new Map<DataId, Entry>();

  constructor(readonly nat: NativeAddon) {
    super();
  }

  /** Entry for a data id, pulling it over from another backend if needed (like DataStorage.get). */
  entry(dataId: DataId): Entry {
    let e = this.data.get(dataId);
    if (!e) {
      tf.engine().moveData(this, dataId);
      e = this.data.get(dataId);
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
    const dataId = {};
    this.data.set(dataId, { id, dtype, shape: shape.slice(), refCount: 1 });
    return { dataId, shape, dtype };
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
    const dataId = {};
    this.data.set(dataId, { id: this.upload(values, shape, dtype), dtype, shape: shape.slice(), refCount: 1 });
    return dataId;
  }

  override move(dataId: DataId, values: tf.BackendValues, shape: number[], dtype: DataType, refCount: number): void {
    this.data.set(dataId, { id: this.upload(values, shape, dtype), dtype, shape: shape.slice(), refCount });
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
    const e = this.data.get(dataId);
    if (e) {
      e.refCount--;
      if (!force && e.refCount > 0) return false;
      this.nat.free(e.id);
      this.data.delete(dataId);
    }
    return true;
  }

  /** Frees a kernel temporary created with out(). */
  disposeIntermediate(t: tf.TensorInfo): void {
    this.disposeData(t.dataId);
  }

  override incRef(dataId: DataId): void {
    const e = this.data.get(dataId);
    if (e) e.refCount++;
  }

  override refCount(dataId: DataId): number {
    return this.data.get(dataId)?.refCount ?? 0;
  }

  override numDataIds(): number {
    return this.data.size;
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
    for (const e of this.data.values()) this.nat.free(e.id);
    this.data.clear();
  }
}
