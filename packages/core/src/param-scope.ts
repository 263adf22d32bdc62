/**
 * A sub-module's view of the model's ParamStore: it creates and reads parameters named
 * `<prefix><local>` under one component (the owning mixin), so a module (ViT, projector, Q-Former)
 * keeps its reference names (`encoder.layers.0.self_attn.q_proj.weight`) while the model sees
 * `<mixin>.encoder.layers.0...`. Used by the mixins' sub-modules (see Mixin.submodule).
 */
import type * as tf from '@tensorflow/tfjs';
import type { Init } from './init.js';
import type { ParamStore } from './params.js';

/** Per-call parameter overrides by local name (e.g. for gradient checks or functional use). */
export type ParamOverrides = Readonly<Record<string, tf.Tensor>>;

export class ParamScope {
  constructor(
    readonly store: ParamStore,
    readonly prefix: string,
    readonly component: string,
  ) {}

  create(local: string, shape: number[], init: Init): tf.Variable {
    return this.store.create(this.prefix + local, shape, init, { component: this.component });
  }

  /** A getter by local name that prefers `overrides`. */
  getter(overrides?: ParamOverrides): (local: string) => tf.Tensor {
    return (local) => overrides?.[local] ?? this.store.get(this.prefix + local);
  }

  has(local: string): boolean {
    return this.store.has(this.prefix + local);
  }

  /** Local names of this scope's parameters. */
  localNames(): string[] {
    return this.store.names().filter((n) => n.startsWith(this.prefix)).map((n) => n.slice(this.prefix.length));
  }
}
