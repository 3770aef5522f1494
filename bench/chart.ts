/**
 * `npm run bench:chart -- <results.json> [out.svg]`: draws the charts of a stored results file
 * (bench/results/*.json, or docs/img/failover.json for README's picture) without running the
 * benchmark again. Without `out.svg` the charts go next to the JSON; a file with a second chart
 * (bench:failover's outage) gets it as `<out>-outage.svg`.
 */
import { readFile } from 'node:fs/promises';
import { FAILOVER_MEASURES, writeCharts, type ResultsBody } from './lib/chart.js';
import { runMain } from './lib/main.js';

const USAGE = 'usage: npm run bench:chart -- <results.json> [out.svg]';

async function main(): Promise<number> {
  const [file, out, ...rest] = process.argv.slice(2);
  if (file === undefined || file.startsWith('-') || rest.length > 0 || (out !== undefined && !out.endsWith('.svg'))) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const body = JSON.parse(await readFile(file, 'utf8')) as ResultsBody;
  const written = await writeCharts(file, body, out);
  if (written.length === 0) {
    process.stderr.write(`bench:chart: no chart for ${file} (bench "${body.bench ?? '?'}"); charts exist for ${[...Object.keys(FAILOVER_MEASURES), 'footprint'].join(', ')} results with rows\n`);
    return 1;
  }
  for (const w of written) process.stdout.write(`${w}\n`);
  return 0;
}

runMain('bench:chart', main);
