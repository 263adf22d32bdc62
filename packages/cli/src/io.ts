/** Where a command writes: results to out (stdout), diagnostics and progress to err (stderr). */
export interface IO {
  out: (s: string) => void;
  err: (s: string) => void;
}
