/** Which launcher started this process, read from the environment it sets for every rank. */

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
