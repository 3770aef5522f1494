import { describe, expect, it } from 'vitest';
import { EcmpElector } from '../../src/election/ecmp.js';
import type { HealthGate } from '../../src/health/livez.js';
import type { Verdict } from '../../src/election/types.js';

function gate(initial: boolean): HealthGate & { set(v: boolean): void } {
  let healthy = initial;
  const ls = new Set<(h: boolean, r: string) => void>();
  return {
    healthy: () => healthy,
    onChange: (l) => (ls.add(l), () => ls.delete(l)),
    set(v) {
      healthy = v;
      for (const l of ls) l(v, v ? 'up' : 'down');
    },
  };
}

describe('ECMP elector (BGP mode)', () => {
  it('holds without a deadline or a probe while the gate is open, stands by when it closes and on shutdown', async () => {
    const g = gate(false);
    const e = new EcmpElector(g, 'open');
    const seen: Verdict[] = [];
    e.onVerdict((v) => seen.push(v));
    const ac = new AbortController();
    const running = e.run(ac.signal);
    expect(seen).toEqual([]);
    g.set(true);
    expect(seen.at(-1)).toMatchObject({ kind: 'hold', until: Number.POSITIVE_INFINITY, previousHolder: 'ecmp' });
    g.set(false);
    expect(seen.at(-1)?.kind).toBe('standby');
    g.set(true);
    ac.abort();
    await running;
    expect(seen.map((v) => v.kind)).toEqual(['hold', 'standby', 'hold', 'standby']);
    expect(seen.at(-1)).toMatchObject({ reason: 'shutdown' });
  });
});
