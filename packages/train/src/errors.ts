import { VlmixError } from '@vlmix/core';

/** A step produced a NaN/Inf loss or gradient norm. The step was not applied. */
export class TrainingDivergedError extends VlmixError {
  override name = 'TrainingDivergedError';

  constructor(
    /** 1-based number of the step that diverged. */
    readonly step: number,
    readonly quantity: 'loss' | 'gradNorm',
    readonly value: number,
    /** The last checkpoint written or resumed from (left untouched), if any. */
    readonly lastCheckpoint: { step: number; dir: string } | null,
  ) {
    super(
      `training diverged at step ${step}: ${quantity === 'loss' ? 'loss' : 'gradient norm'} is ${value}; ` +
        'the update was not applied' +
        (lastCheckpoint ? `; the last good checkpoint (step ${lastCheckpoint.step}) in ${lastCheckpoint.dir} was left untouched` : ' (no checkpoint was written yet)'),
    );
  }
}

/** A checkpoint could not be written (disk full, I/O error, read-only directory). Training stopped there. */
export class CheckpointWriteError extends VlmixError {
  override name = 'CheckpointWriteError';

  constructor(
    readonly step: number,
    readonly dir: string,
    readonly error: Error,
    /** The last checkpoint committed before the failure (untouched), if any. */
    readonly lastCheckpoint: { step: number; dir: string } | null,
  ) {
    super(
      `could not write the checkpoint of step ${step} to ${dir}: ${error.message}; training stopped` +
        (lastCheckpoint ? `; the last good checkpoint (step ${lastCheckpoint.step}) in ${lastCheckpoint.dir} is intact` : ' (no checkpoint was written yet)'),
    );
  }
}
