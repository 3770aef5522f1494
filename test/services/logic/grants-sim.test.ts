/**
 * Service-IP grants under chaos, three voters (the common control plane) with workers beside
 * them; test/services/logic/grants-explore.ts says what each run does and checks. With
 * grants-sim-wide.test.ts: 10,000 seeded runs in every CI run.
 */
import { describe } from 'vitest';
import { exploreGrants } from './grants-explore.js';

describe('service-IP grant simulation, 3 voters', () => {
  exploreGrants('3 voters, 3-5 members', { nodes: [3, 4, 5], voters: [3] }, 6000, 20261202, 3000);
});
