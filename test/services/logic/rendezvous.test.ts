import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { owner, rank, weight } from '../../../src/services/logic/rendezvous.js';

const ipsArb = fc.uniqueArray(fc.ipV4(), { minLength: 1, maxLength: 200 });
const nodesArb = fc.uniqueArray(fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/), { minLength: 1, maxLength: 8 });

describe('rendezvous', () => {
  it('owner is the head of rank, independent of candidate order', () => {
    fc.assert(
      fc.property(ipsArb, nodesArb, (ips, nodes) => {
        const rev = [...nodes].reverse();
        for (const ip of ips) {
          expect(owner(ip, nodes)).toBe(rank(ip, nodes)[0]);
          expect(owner(ip, rev)).toBe(owner(ip, nodes));
        }
      }),
    );
    expect(owner('198.18.0.1', [])).toBeUndefined();
  });

  it('removing a node moves only its IPs; adding one moves IPs only to it', () => {
    fc.assert(
      fc.property(ipsArb, nodesArb, fc.nat(), (ips, nodes, pick) => {
        const gone = nodes[pick % nodes.length] as string;
        const rest = nodes.filter((n) => n !== gone);
        for (const ip of ips) {
          const before = owner(ip, nodes);
          const after = owner(ip, rest);
          if (before !== gone) expect(after).toBe(before);
          // Adding `gone` back is the reverse move: an IP changes owner only to `gone`.
          if (after !== undefined && before !== after) expect(before).toBe(gone);
        }
      }),
    );
  });

  it('spreads evenly', () => {
    const nodes = ['node-1', 'node-2', 'node-3', 'node-4', 'node-5'];
    const counts = new Map(nodes.map((n) => [n, 0]));
    const total = 5000;
    for (let i = 0; i < total; i++) {
      const ip = `198.18.${i >> 8}.${i & 255}`;
      const o = owner(ip, nodes) as string;
      counts.set(o, (counts.get(o) ?? 0) + 1);
    }
    for (const c of counts.values()) expect(Math.abs(c - total / nodes.length)).toBeLessThan(0.1 * (total / nodes.length));
    // 30 consecutive service IPs over three nodes: every node gets some.
    const three = ['n1', 'n2', 'n3'];
    const owners = new Set(Array.from({ length: 30 }, (_, i) => owner(`198.18.10.${i + 1}`, three)));
    expect(owners.size).toBe(3);
  });

  it('weights are stable across releases (wire contract)', () => {
    expect(weight('node-1', '198.18.0.1')).toBe(weight('node-1', '198.18.0.1'));
    expect([weight('node-1', '198.18.0.1'), weight('node-2', '2001:db8::1')]).toMatchInlineSnapshot(`
      [
        7716594164621527,
        5657774998255827,
      ]
    `);
  });
});
