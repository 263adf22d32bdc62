import { VlmixError } from '@vlmix/core';

/** Misuse or failure of a distributed run: not launched by mpirun, ranks disagreeing, MPI errors. */
export class DistributedError extends VlmixError {
  override name = 'DistributedError';
}

/**
 * A collective did not complete within the watchdog timeout: another rank died, hangs or took a
 * different code path. The communicator is unusable afterwards; exit non-zero (mpirun then stops the
 * other ranks).
 */
export class DistributedTimeoutError extends DistributedError {
  override name = 'DistributedTimeoutError';

  constructor(
    readonly op: string,
    readonly timeoutMs: number,
    readonly rank: number,
    readonly size: number,
  ) {
    super(
      `${op}: rank ${rank} of ${size} waited ${(timeoutMs / 1000).toFixed(1)} s for the other ranks (watchdog timeout); ` +
        'another rank has probably died, hangs, or took a different code path. The communicator is unusable now: exit non-zero ' +
        '(mpirun then stops the job). Raise the limit with initDistributed({ timeoutMs }) or VLMIX_DIST_TIMEOUT_MS for slow steps.',
    );
  }
}
