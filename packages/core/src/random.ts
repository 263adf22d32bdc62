/** All randomness in vlmix goes through seeded generators from seedrandom. */
import seedrandom from 'seedrandom';

export type RngState = object;

export class Rng {
  private g: seedrandom.PRNG;
  private spare: number | null = null;

  constructor(seed: string | number, state?: RngState) {
    this.g = state ? seedrandom('', { state: state as seedrandom.State.Arc4 }) : seedrandom(String(seed), { state: true });
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.g();
  }

  uniform(lo = 0, hi = 1): number {
    return lo + (hi - lo) * this.g();
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.g() * n);
  }

  /** Standard normal (Box-Muller, caching the second value). */
  normal(): number {
    if (this.spare != null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.g();
    const v = this.g();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
    return xs;
  }

  /** Serialisable state (resume exactly). The cached normal is dropped first so state is complete. */
  state(): RngState {
    this.spare = null;
    return (this.g as unknown as { state(): seedrandom.State.Arc4 }).state();
  }
}

/** A generator private to one named thing, so adding a parameter never shifts another's values. */
export function rngFor(seed: string | number, name: string): Rng {
  return new Rng(`${seed}/${name}`);
}
