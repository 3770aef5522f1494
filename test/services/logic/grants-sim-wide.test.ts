/**
 * Service-IP grants under chaos with other voter counts: one control-plane node (a majority of
 * one) and five, with workers beside them (test/services/logic/grants-explore.ts).
 */
import { describe } from 'vitest';
import { exploreGrants } from './grants-explore.js';

describe('service-IP grant simulation, 1 and 5 voters', () => {
  exploreGrants('1 voter, 2-3 members', { nodes: [2, 3], voters: [1] }, 1000, 20261302, 3000);
  exploreGrants('5 voters, 5-7 members', { nodes: [5, 6, 7], voters: [5] }, 3000, 20261402, 3000);
});
