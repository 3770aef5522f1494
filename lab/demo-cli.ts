/**
 * `sudo npm run lab` (node dist/lab/demo-cli.js [--lease-only] [--tour-only]): the embedded demo,
 * run from a clone of the repository. The lab is development tooling and is not in the release.
 */
import { runLabDemo } from './demo.js';

runLabDemo(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`lab: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
