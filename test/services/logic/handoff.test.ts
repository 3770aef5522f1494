import { describe, expect, it } from 'vitest';
import { handoff, initialHandoff, type HandoffState } from '../../../src/services/logic/handoff.js';
import type { Plan } from '../../../src/services/logic/placement.js';

const planOf = (owners: Record<string, string | undefined>): Plan => ({
  units: Object.entries(owners).map(([ip, owner]) => ({ ip, family: 4, services: ['a/s'], candidates: owner ? [owner] : [], owner })),
  onControlPlaneVip: new Map(),
});

describe('handoff', () => {
  it('first plan: everything waits (previous owners unknown), then is held', () => {
    const r = handoff(initialHandoff, planOf({ '198.18.0.1': 'me', '198.18.0.2': 'b' }), ['me', 'b'], 'me', 1000, 2000);
    expect(r.hold).toEqual([]);
    expect(r.wakeAt).toBe(3000);
    const r2 = handoff(r.state, planOf({ '198.18.0.1': 'me', '198.18.0.2': 'b' }), ['me', 'b'], 'me', 3000, 2000);
    expect(r2.hold).toEqual(['198.18.0.1']);
    expect(r2.wakeAt).toBeUndefined();
  });

  const steady = (owners: Record<string, string | undefined>, holding: string[]): HandoffState => ({
    started: true,
    owners: new Map(Object.entries(owners)),
    waiting: new Map(),
    holding: new Set(holding),
  });

  it('from a live node: wait; from a departed node, a fresh address or an ownerless unit: at once', () => {
    const prev = steady({ '198.18.0.1': 'b', '198.18.0.2': 'gone', '198.18.0.4': undefined }, []);
    const r = handoff(prev, planOf({ '198.18.0.1': 'me', '198.18.0.2': 'me', '198.18.0.3': 'me', '198.18.0.4': 'me' }), ['me', 'b'], 'me', 10, 500);
    expect(r.hold).toEqual(['198.18.0.2', '198.18.0.3', '198.18.0.4']);
    expect([...r.state.waiting]).toEqual([['198.18.0.1', 510]]);
    // The wait is not restarted by later plans.
    const r2 = handoff(r.state, planOf({ '198.18.0.1': 'me' }), ['me', 'b'], 'me', 400, 500);
    expect(r2.wakeAt).toBe(510);
    expect(handoff(r2.state, planOf({ '198.18.0.1': 'me' }), ['me', 'b'], 'me', 510, 500).hold).toEqual(['198.18.0.1']);
  });

  it('giving up is immediate, and a returning address waits again if someone else owned it meanwhile', () => {
    const prev = steady({ '198.18.0.1': 'me' }, ['198.18.0.1']);
    const away = handoff(prev, planOf({ '198.18.0.1': 'b' }), ['me', 'b'], 'me', 0, 500);
    expect(away.hold).toEqual([]);
    const back = handoff(away.state, planOf({ '198.18.0.1': 'me' }), ['me', 'b'], 'me', 1, 500);
    expect(back.hold).toEqual([]);
    expect(back.wakeAt).toBe(501);
  });
});
