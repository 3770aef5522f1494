/**
 * Runs every test/election/scenarios/*.txt script and compares each command's output with the
 * expected block. VIPD_SCENARIO_REWRITE=1 rewrites the files with what the code does now.
 */
import { fileURLToPath } from 'node:url';
import { ScenarioRunner, scenarioSuite } from './scenario.js';

scenarioSuite('peer election scenarios', fileURLToPath(new URL('./scenarios/', import.meta.url)), () => new ScenarioRunner());
