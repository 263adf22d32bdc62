/** A mixin: one small class that serves hooks and owns parameters. */
import { fail } from './errors.js';
import type { HookImpls, HookName } from './hooks.js';
import type { Model } from './model.js';

/**
 * A part a mixin builds when it is attached (a sub-module that creates parameters, resolved options):
 * declared once in the class body, built by `model.addMixin` before `attach()`, dropped on removal.
 * Reading it before the mixin is attached is an error that says so.
 */
export class Submodule<T> {
  private value: T | null = null;

  constructor(
    private readonly owner: Mixin,
    readonly what: string,
    private readonly build: (model: Model) => T,
  ) {}

  get(): T {
    if (this.value == null) {
      fail(`${this.owner.constructor.name}${this.owner.name ? ` '${this.owner.name}'` : ''}: not attached to a model yet; ` +
        `its ${this.what} is built by model.addMixin(name, mixin)`);
    }
    return this.value;
  }

  /** @internal */
  static attach(s: Submodule<unknown>, model: Model): void {
    s.value = s.build(model);
  }

  /** @internal */
  static detach(s: Submodule<unknown>): void {
    s.value = null;
  }
}

export abstract class Mixin {
  /** The name it was added under (set by Model.addMixin); prefixes its parameters by convention. */
  name = '';
  #model: Model | null = null;
  readonly #parts: Submodule<unknown>[] = [];
  #options: unknown = undefined;

  /**
   * Records the constructor options a saved recipe rebuilds this mixin with (recipe.ts). Call it in the
   * constructor; a subclass's call runs after its parent's and wins.
   */
  protected recordOptions(options: unknown): void {
    this.#options = options;
  }

  /** The recorded constructor options (undefined when the class does not record them). */
  get recipeOptions(): unknown {
    return this.#options;
  }

  /** Hook implementations. Called once when the mixin is added. */
  abstract hooks(): HookImpls;

  /** Whether a per-layer hook applies at `layer` (default: every layer). */
  appliesTo(_hook: HookName, _layer: number): boolean {
    return true;
  }

  /** Plain hooks this mixin deliberately takes over from a mixin already serving them. */
  overrides(): HookName[] {
    return [];
  }

  /** The model it is attached to (after addMixin). */
  get model(): Model {
    if (!this.#model) fail(`${this.constructor.name}${this.name ? ` '${this.name}'` : ''}: not attached to a model yet (call model.addMixin(name, mixin) first)`);
    return this.#model;
  }

  get attached(): boolean {
    return this.#model != null;
  }

  /**
   * Declares a part built on attach, in declaration order, before `attach()` runs:
   *   private readonly proj = this.submodule('projector', (m) => new VisualProjector(m.params, `${this.name}.`, ...));
   */
  protected submodule<T>(what: string, build: (model: Model) => T): Submodule<T> {
    const s = new Submodule(this, what, build);
    this.#parts.push(s as Submodule<unknown>);
    return s;
  }

  /** Creates parameters (via model.params.create with component = this.name) and checks the config. Runs after the submodules are built. */
  attach(_model: Model): void {}

  /** Re-initialises from the base model, e.g. copying language weights into an expert. */
  reinit(_model: Model): void {}

  /** Called before removal; parameters of component `name` are disposed by the model afterwards. */
  detach(_model: Model): void {}

  /** @internal Model.addMixin: binds, builds the submodules, then attach(). */
  static bind(m: Mixin, model: Model): void {
    m.#model = model;
    try {
      for (const s of m.#parts) Submodule.attach(s, model);
      m.attach(model);
    } catch (e) {
      Mixin.unbind(m);
      throw e;
    }
  }

  /** @internal Model.removeMixin (after detach()). */
  static unbind(m: Mixin): void {
    for (const s of m.#parts) Submodule.detach(s);
    m.#model = null;
  }
}
