/**
 * Ctrl-C / SIGTERM during training: the first signal asks the trainer to stop after the current step
 * (it then writes a checkpoint); a second one ends the process at once (the checkpoint protocol makes
 * that safe, too). A step is synchronous, so a signal is seen when the step ends; two signals that
 * arrive within one step are seen together, and the second still wins.
 *
 * Handlers are installed only while steps run: before the first step (setup, type D's tokenizer
 * pre-training) there is nothing to save, and a signal ends the process as usual.
 */
export type StopSignal = 'SIGINT' | 'SIGTERM';

export const EXIT_CODE: Record<StopSignal, number> = { SIGINT: 130, SIGTERM: 143 };

export class GracefulStop {
  readonly controller = new AbortController();
  received: StopSignal | null = null;
  private installed = false;
  private readonly handler = (sig: StopSignal) => {
    if (this.received) {
      this.onSecond(sig);
      return;
    }
    this.received = sig;
    this.onFirst(sig);
    this.controller.abort(sig);
  };

  constructor(
    private readonly onFirst: (sig: StopSignal) => void,
    /** Default: exit now with 130 / 143. */
    private readonly onSecond: (sig: StopSignal) => void = (sig) => process.exit(EXIT_CODE[sig]),
  ) {}

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  install(): void {
    if (this.installed) return;
    this.installed = true;
    process.on('SIGINT', this.handler);
    process.on('SIGTERM', this.handler);
  }

  uninstall(): void {
    if (!this.installed) return;
    this.installed = false;
    process.removeListener('SIGINT', this.handler);
    process.removeListener('SIGTERM', this.handler);
  }
}
