/** Randomized simulation: 2, 4 and 5 nodes, and bootstrap joins (see peers-sim.test.ts). */
import { describe } from 'vitest';
import { explore, simCaseArb } from './simcase.js';

describe('peer election simulation, other sizes and bootstrap', () => {
  explore('2, 4, 5 nodes', simCaseArb({ n: [2, 4, 5, 5] }), 3500, 20260502);
  explore('bootstrap then join', simCaseArb({ n: [3, 5], bootstrap: true }), 1500, 20260503);
});
