/**
 * Named parameters with stable names (SAT/HF-like, e.g. `transformer.layers.3.attention.query_key_value.weight`),
 * a trainable flag, freezing by glob and counts per component.
 */
import * as tf from '@tensorflow/tfjs';
import { initTensor, type Init } from './init.js';
import { fail, shapeStr } from './errors.js';

export interface Param {
  readonly name: string;
  readonly variable: tf.Variable;
  /** Who owns it: 'transformer.embeddings', 'transformer.layers', 'transformer.final', 'lm_head' or a mixin's name. */
  readonly component: string;
  trainable: boolean;
}

export interface ParamCounts {
  total: number;
  trainable: number;
  byComponent: Record<string, number>;
}

/** `*` matches within one dotted segment, `**` across segments. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') re += '[^.]*';
    else if (c === '?') re += '[^.]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

export class ParamStore {
  private readonly map = new Map<string, Param>();

  constructor(readonly seed: string | number) {}

  create(name: string, shape: number[], init: Init, opts: { component: string; trainable?: boolean }): tf.Variable {
    if (this.map.has(name)) fail(`parameter '${name}' already exists (owned by '${this.map.get(name)!.component}')`);
    if (shape.some((d) => !Number.isInteger(d) || d < 0)) fail(`parameter '${name}': invalid shape ${shapeStr(shape)}`);
    const trainable = opts.trainable ?? true;
    const variable = tf.tidy(() => tf.variable(initTensor(init, shape, this.seed, name), trainable, `vlmix/${name}/${uid++}`));
    this.map.set(name, { name, variable, component: opts.component, trainable });
    return variable;
  }

  has(name: string): boolean {
    return this.map.has(name);
  }

  get(name: string): tf.Variable {
    const p = this.map.get(name);
    if (!p) {
      const near = [...this.map.keys()].filter((k) => k.includes(name.split('.').slice(-2).join('.'))).slice(0, 5);
      fail(`unknown parameter '${name}'${near.length ? `; similar: ${near.join(', ')}` : ''}`);
    }
    return p.variable;
  }

  param(name: string): Param {
    this.get(name);
    return this.map.get(name)!;
  }

  names(): string[] {
    return [...this.map.keys()];
  }

  list(): Param[] {
    return [...this.map.values()];
  }

  /** Disposes and forgets every parameter of a component (a mixin being removed). */
  removeComponent(component: string): string[] {
    const gone: string[] = [];
    for (const [name, p] of this.map) {
      if (p.component !== component) continue;
      p.variable.dispose();
      this.map.delete(name);
      gone.push(name);
    }
    return gone;
  }

  /** Sets the trainable flag of every parameter whose name matches one of the globs; returns the names. */
  setTrainable(globs: string | string[], trainable: boolean): string[] {
    const res = (Array.isArray(globs) ? globs : [globs]).map(globToRegExp);
    const hit: string[] = [];
    for (const p of this.map.values()) {
      if (!res.some((r) => r.test(p.name))) continue;
      p.trainable = trainable;
      p.variable.trainable = trainable;
      hit.push(p.name);
    }
    if (hit.length === 0) fail(`no parameter matches ${JSON.stringify(globs)}`);
    return hit;
  }

  freeze(globs: string | string[]): string[] {
    return this.setTrainable(globs, false);
  }

  unfreeze(globs: string | string[]): string[] {
    return this.setTrainable(globs, true);
  }

  trainable(): Param[] {
    return this.list().filter((p) => p.trainable);
  }

  counts(): ParamCounts {
    const out: ParamCounts = { total: 0, trainable: 0, byComponent: {} };
    for (const p of this.map.values()) {
      const n = p.variable.size;
      out.total += n;
      if (p.trainable) out.trainable += n;
      out.byComponent[p.component] = (out.byComponent[p.component] ?? 0) + n;
    }
    return out;
  }

  dispose(): void {
    for (const p of this.map.values()) p.variable.dispose();
    this.map.clear();
  }
}

let uid = 0;
