import { UsageError } from './args.js';
import { preflight } from './preflight.js';

/**
 * The benchmarks' common start: parse the command line and check what the run needs. A usage
 * error (with the usage line) or a missing prerequisite is printed once and gives null: exit 2.
 */
export function benchArgs<T>(name: string, usage: string, parse: () => T, needs: { root: boolean }): T | null {
  let args: T;
  try {
    args = parse();
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${name}: ${err.message}\n${usage}\n`);
      return null;
    }
    throw err;
  }
  const cannot = preflight(name, needs);
  if (cannot) {
    process.stderr.write(`${cannot}\n`);
    return null;
  }
  return args;
}

/**
 * The benchmarks' entry: run `main`, exit with its code, or print the error under the command's
 * name and exit 1.
 */
export function runMain(name: string, main: () => Promise<number>): void {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
