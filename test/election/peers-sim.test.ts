/**
 * Randomized simulation of the peer electors, three-node clusters (the common control plane).
 * Every event is checked for overlapping grants, promise coverage and one-promise-at-a-time
 * (test/election/sim.ts); after the heal a holder must appear within the stated bound.
 * VIPD_SIM_SEED / VIPD_SIM_RUNS override the seed and the run count (exploration); a failure
 * prints a JSON case to keep under test/election/regressions/.
 */
import { describe } from 'vitest';
import { explore, simCaseArb } from './simcase.js';

describe('peer election simulation, 3 nodes', () => {
  explore('3 nodes', simCaseArb({ n: [3] }), 5000, 20260501);
});
