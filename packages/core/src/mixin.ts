/** A mixin: one small class that serves hooks and owns parameters. */
import type { HookImpls, HookName } from './hooks.js';
import type { Model } from './model.js';
import type { ForwardContext } from './context.js';

export abstract class Mixin {
  /** The name it was added under (set by Model.addMixin); prefixes its parameters by convention. */
  name = '';

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

  /** Runs before the embedding of every forward pass, in addition order: set position ids, token types, masks. */
  prepare?(ctx: ForwardContext): void;

  /** Creates parameters (via model.params.create with component = this.name) and checks the config. */
  attach(_model: Model): void {}

  /** Re-initialises from the base model, e.g. copying language weights into an expert. */
  reinit(_model: Model): void {}

  /** Called before removal; parameters of component `name` are disposed by the model afterwards. */
  detach(_model: Model): void {}
}
