/**
 * Shrunk counter-examples from the randomized simulation, replayed on every run. Each file says
 * why it failed and what changed. `VIPD_SIM_CASE='<json>'` replays one case with the event log
 * printed (debugging a new failure).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'vitest';
import { runCase, type SimCase } from './simcase.js';

const dir = fileURLToPath(new URL('./regressions/', import.meta.url));

describe('simulation regressions', () => {
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.json')).sort()) {
    const { why, case: c } = JSON.parse(readFileSync(dir + f, 'utf8')) as { why: string; case: SimCase };
    test(`${f.replace(/\.json$/, '')}: ${why.split('.')[0]}`, () => {
      runCase(c);
    });
  }
  const one = process.env.VIPD_SIM_CASE;
  test.runIf(one !== undefined)('VIPD_SIM_CASE', () => {
    const debug: { log: string[] } = { log: [] };
    try {
      runCase(JSON.parse(one ?? '{}') as SimCase, debug);
    } finally {
      console.log(debug.log.join('\n'));
    }
  });
});
