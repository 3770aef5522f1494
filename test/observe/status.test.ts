import { describe, expect, it } from 'vitest';
import { buildStatus, renderStatus, type StatusInput } from '../../src/observe/status.js';

const now = 100_000;

describe('buildStatus', () => {
  it('turns monotonic instants into ms ago / ms left and says which VIPs are held', () => {
    const input: StatusInput = {
      node: 'cp1',
      election: 'hybrid',
      now,
      vips: [
        { ip: '198.18.0.10', state: { kind: 'holding', since: now - 4000, until: now + 1500 } },
        { ip: '198.18.0.11', state: { kind: 'idle' } },
        { ip: '198.18.0.12', state: { kind: 'holding', since: now - 9000, until: now - 1 } },
        { ip: '198.18.0.13', state: { kind: 'blocked', until: now + 200, owner: '02:00:00:00:00:01' } },
      ],
      lease: { role: 'holding', until: now + 3000, leader: 'cp1', observedAt: now - 250, renewTime: '2026-12-03T09:00:00.000000Z', gateHealthy: true },
      peers: {
        self: 'cp1',
        term: 7,
        role: 'leader',
        leader: 'cp1',
        leaderUntil: now + 1500,
        promise: { to: 'cp1', until: now + 800 },
        lastActive: { cp3: now - 120, cp2: now - 40, cp1: now },
      },
      services: { members: ['w2', 'w1'], grantUntil: now + 5000, claims: {}, holding: ['198.18.1.2', '198.18.1.1'], announcing: [] },
    };
    expect(buildStatus(input)).toEqual({
      node: 'cp1',
      election: 'hybrid',
      vips: [
        { ip: '198.18.0.10', holding: true, state: 'holding', holdingForMs: 4000, grantLeftMs: 1500 },
        { ip: '198.18.0.11', holding: false, state: 'idle' },
        // Past its deadline the holder no longer answers, whatever its timer has not yet done.
        { ip: '198.18.0.12', holding: false, state: 'holding', holdingForMs: 9000, grantLeftMs: 0 },
        { ip: '198.18.0.13', holding: false, state: 'blocked', grantLeftMs: 200, conflictOwner: '02:00:00:00:00:01' },
      ],
      lease: { role: 'holding', holder: 'cp1', grantLeftMs: 3000, renewTime: '2026-12-03T09:00:00.000000Z', lastSeenMsAgo: 250, healthGateOpen: true },
      peers: {
        term: 7,
        role: 'leader',
        leader: 'cp1',
        leaderGrantLeftMs: 1500,
        promisedTo: { peer: 'cp1', leftMs: 800 },
        heard: [
          { peer: 'cp2', msAgo: 40 },
          { peer: 'cp3', msAgo: 120 },
        ],
      },
      services: { holding: ['198.18.1.1', '198.18.1.2'], members: ['w1', 'w2'], grantLeftMs: 5000, announcing: [] },
    });
  });

  it('leaves out the parts that are off and a promise that has run out', () => {
    const r = buildStatus({
      node: 'cp2',
      election: 'hybrid',
      now,
      vips: [{ ip: '2001:db8::10', state: { kind: 'idle' } }],
      peers: { self: 'cp2', term: 3, role: 'follower', leader: null, promise: { to: 'cp1', until: now - 1 }, lastActive: {} },
    });
    expect(r).toEqual({
      node: 'cp2',
      election: 'hybrid',
      vips: [{ ip: '2001:db8::10', holding: false, state: 'idle' }],
      peers: { term: 3, role: 'follower', leader: null, heard: [] },
    });
    expect(JSON.parse(JSON.stringify(r))).toEqual(r);
  });
});

describe('renderStatus', () => {
  it('prints one fact a line', () => {
    const text = renderStatus(
      buildStatus({
        node: 'cp2',
        election: 'lease',
        now,
        vips: [
          { ip: '198.18.0.10', state: { kind: 'idle' } },
          { ip: '198.18.0.11', state: { kind: 'holding', since: now - 2000, until: now + 5000 } },
        ],
        lease: { role: 'candidate', leader: 'cp1', observedAt: now - 1200, renewTime: '2026-12-03T09:00:00.000000Z', gateHealthy: false },
      }),
    );
    expect(text).toBe(
      [
        'node cp2, election lease',
        '  VIP 198.18.0.10: standby',
        '  VIP 198.18.0.11: HOLDING for 2.0 s, grant 5.0 s left',
        '  Lease: held by cp1, renewed 2026-12-03T09:00:00.000000Z, last seen 1.2 s ago; health gate closed',
        '',
      ].join('\n'),
    );
  });

  it('shows peer voting and services', () => {
    const text = renderStatus(
      buildStatus({
        node: 'cp1',
        election: 'hybrid',
        now,
        vips: [],
        peers: { self: 'cp1', term: 2, role: 'follower', leader: 'cp3', promise: { to: 'cp3', until: now + 900 }, lastActive: { cp3: now - 100 } },
        services: { members: [], grantUntil: now, claims: {}, holding: [], announcing: [] },
      }),
    );
    expect(text).toBe(
      [
        'node cp1, election hybrid',
        '  peers: term 2, follower, leader cp3',
        '    promised its vote to cp3 for 0.9 s',
        '    heard cp3 0.1 s ago',
        '  services: holding no service IP; members none; grant 0.0 s left',
        '',
      ].join('\n'),
    );
  });

  it('lists each announced address with its interface, Services, since and reason', () => {
    const text = renderStatus(
      buildStatus({
        node: 'n2',
        election: 'hybrid',
        now,
        vips: [],
        services: {
          members: ['n1', 'n2'],
          grantUntil: now + 2000,
          claims: {},
          holding: ['198.18.2.240'],
          announcing: [{ ip: '198.18.2.240', iface: 'eth1', services: ['default/seg2', 'web/shared'], reason: 'peer grant (rendezvous owner)', since: '2026-12-04T03:00:00.000Z' }],
        },
      }),
    );
    expect(text.split('\n').slice(1, 3)).toEqual([
      '  services: holding 198.18.2.240; members n1, n2; grant 2.0 s left',
      '    198.18.2.240 on eth1 for default/seg2, web/shared since 2026-12-04T03:00:00.000Z: peer grant (rendezvous owner)',
    ]);
  });
});
