/** `pnpm bench`: see bench/README.md and --help. */
import { ArgError, HELP, parseArgs } from './args.js';
import { runProcesses } from './processes.js';
import { defaultOutDir, runBench } from './run.js';

async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'distributed') return (await import('./suites/distributed.js')).runDistributedBench(argv.slice(1));
  if (argv[0] === 'data') return (await import('./suites/data.js')).runDataBench(argv.slice(1));
  if (argv[0] === 'checkpoint') return (await import('./suites/checkpoint.js')).runCheckpointBench(argv.slice(1));
  let opts;
  try {
    opts = parseArgs(argv);
  } catch (e) {
    if (e instanceof ArgError) {
      process.stderr.write(`bench: ${e.message}\n(see pnpm bench --help)\n`);
      return 2;
    }
    throw e;
  }
  if (opts.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const t0 = performance.now();
  const { results, dir } = (opts.processes ?? 1) > 1
    ? runProcesses(opts.processes!, argv, opts.out ?? defaultOutDir(), opts.json)
    : await runBench({ ...opts, command: `pnpm bench ${argv.join(' ')}`.trim() });
  const failed = results.benchmarks.filter((b) => b.error).length;
  process.stdout.write(`${results.benchmarks.length} measurements (${failed} failed) in ${((performance.now() - t0) / 1000).toFixed(0)} s; report: ${dir}/report.md\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`bench: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
