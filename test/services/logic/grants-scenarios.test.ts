/**
 * Runs every test/services/logic/scenarios/*.txt grant script and compares each command's output
 * with the expected block. VIPD_SCENARIO_REWRITE=1 rewrites the files with what the code does now.
 */
import { fileURLToPath } from 'node:url';
import { scenarioSuite } from '../../election/scenario.js';
import { GrantScenarioRunner } from './grants-scenario.js';

scenarioSuite('service-IP grant scenarios', fileURLToPath(new URL('./scenarios/', import.meta.url)), () => new GrantScenarioRunner());
