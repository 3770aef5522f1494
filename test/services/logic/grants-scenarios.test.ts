/**
 * Runs every test/services/logic/scenarios/*.txt grant script and compares each command's output
 * with the expected block. VIPD_SCENARIO_REWRITE=1 rewrites the files with what the code does now.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { formatScript, parseScript } from '../../election/scenario.js';
import { GrantScenarioRunner } from './grants-scenario.js';

const dir = fileURLToPath(new URL('./scenarios/', import.meta.url));
const rewrite = process.env.VIPD_SCENARIO_REWRITE === '1';

describe('service-IP grant scenarios', () => {
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.txt')).sort()) {
    test(f.replace(/\.txt$/, ''), () => {
      const { blocks, header } = parseScript(readFileSync(dir + f, 'utf8'));
      const r = new GrantScenarioRunner();
      const outputs: string[] = [];
      for (const b of blocks) {
        let out: string;
        try {
          out = r.run(b.command);
        } catch (e) {
          throw new Error(`${f}:${b.line}: ${b.command}: ${(e as Error).message}`);
        }
        outputs.push(out);
        if (!rewrite) expect(out, `${f}:${b.line}: ${b.command}`).toBe(b.expected);
      }
      if (rewrite) writeFileSync(dir + f, formatScript(header, blocks, outputs));
    });
  }
});
