/** Which launcher started this process, read from the environment it sets for every rank; finding mpirun. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export interface Launch {
  /** 'open-mpi' (mpirun/mpiexec of Open MPI), 'pmi' (MPICH/Hydra), 'pmix' (e.g. srun --mpi=pmix), or null: no launcher. */
  launcher: 'open-mpi' | 'pmi' | 'pmix' | null;
  /** Processes started by the launcher (null when it does not say). */
  size: number | null;
  /** This process's rank as the launcher numbers it (null when it does not say). */
  rank: number | null;
}

function int(v: string | undefined): number | null {
  if (v === undefined || !/^\d+$/.test(v)) return null;
  return Number(v);
}

export function detectLaunch(env: NodeJS.ProcessEnv = process.env): Launch {
  if (env.OMPI_COMM_WORLD_SIZE !== undefined) return { launcher: 'open-mpi', size: int(env.OMPI_COMM_WORLD_SIZE), rank: int(env.OMPI_COMM_WORLD_RANK) };
  if (env.PMI_SIZE !== undefined) return { launcher: 'pmi', size: int(env.PMI_SIZE), rank: int(env.PMI_RANK) };
  if (env.PMIX_RANK !== undefined) return { launcher: 'pmix', size: null, rank: int(env.PMIX_RANK) };
  return { launcher: null, size: null, rank: null };
}

/** mpirun to start jobs with: $VLMIX_MPIRUN, else the first on PATH; null when there is none. */
export function findMpirun(env: NodeJS.ProcessEnv = process.env): string | null {
  const cands = [env.VLMIX_MPIRUN, ...(env.PATH ?? '').split(':').filter(Boolean).map((d) => join(d, 'mpirun'))];
  return cands.find((p): p is string => !!p && existsSync(p)) ?? null;
}

/**
 * The environment for starting an mpirun job from a Node process (tests, benchmarks): `env` without
 * the variables of a launcher this process may itself run under, plus Open MPI's consent to run as
 * root when we are root (OMPI_ALLOW_RUN_AS_ROOT, OMPI_ALLOW_RUN_AS_ROOT_CONFIRM).
 */
export function mpirunEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) if (!/^(OMPI_COMM_WORLD|OMPI_MCA_(orte|ess|pmix)|OMPI_UNIVERSE|PMIX_|PMI_)/.test(k)) out[k] = v;
  if (process.getuid?.() === 0) Object.assign(out, { OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' });
  return out;
}
