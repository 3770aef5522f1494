import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  advertIntText,
  KEEPALIVED_DEFAULT,
  KEEPALIVED_FAST,
  keepalivedConf,
  KeepalivedConfError,
  masterDownSeconds,
  priorityOf,
  type KeepalivedConfInput,
} from '../../bench/lib/keepalived-conf.js';

const nodes = [
  { name: 'n1', ipv4: '198.18.0.11', index: 0 },
  { name: 'n2', ipv4: '198.18.0.12', index: 1 },
  { name: 'n3', ipv4: '198.18.0.13', index: 2 },
];
const input = (over: Partial<KeepalivedConfInput> = {}): KeepalivedConfInput => ({
  profile: KEEPALIVED_DEFAULT,
  node: nodes[1]!,
  nodes,
  vip: '198.18.0.100',
  iface: 'eth0',
  vrid: 51,
  checkCommand: ['/usr/bin/curl', '-sfk', '--max-time', '1', '-o', '/dev/null', 'https://127.0.0.1:6443/livez'],
  ...over,
});

describe('keepalived config', () => {
  it('default profile: VRRP v2, 1 s adverts, BACKUP + nopreempt, multicast, unweighted /livez check', () => {
    const text = keepalivedConf(input());
    expect(text).toContain('router_id n2');
    expect(text).toContain('vrrp_version 2');
    expect(text).toMatch(/state BACKUP\n\s+nopreempt/);
    expect(text).toContain('advert_int 1\n');
    expect(text).toContain('priority 100');
    expect(text).toContain('virtual_router_id 51');
    expect(text).toContain('198.18.0.100/32 dev eth0');
    expect(text).toContain('script "/usr/bin/curl -sfk --max-time 1 -o /dev/null https://127.0.0.1:6443/livez"');
    expect(text).toMatch(/interval 1\n\s+timeout 1\n\s+fall 3\n\s+rise 1\n\s+weight 0/);
    expect(text).not.toContain('unicast_peer');
  });

  it('fast profile: VRRP v3 with 0.1 s adverts', () => {
    const text = keepalivedConf(input({ profile: KEEPALIVED_FAST }));
    expect(text).toContain('vrrp_version 3');
    expect(text).toContain('advert_int 0.1\n');
  });

  it('unicast lists the other nodes only', () => {
    const text = keepalivedConf(input({ profile: { ...KEEPALIVED_DEFAULT, unicast: true } }));
    expect(text).toContain('unicast_src_ip 198.18.0.12');
    expect(text).toMatch(/unicast_peer \{\n\s+198\.18\.0\.11\n\s+198\.18\.0\.13\n\s+\}/);
  });

  it('priorities by index, the last one repeating', () => {
    const p = { ...KEEPALIVED_DEFAULT, priorities: [100, 99] };
    expect(priorityOf(p, 0)).toBe(100);
    expect(priorityOf(p, 1)).toBe(99);
    expect(priorityOf(p, 2)).toBe(99);
    expect(() => priorityOf({ ...p, priorities: [255] }, 0)).toThrow(/1\.\.254/);
  });

  it('advert_int syntax per VRRP version', () => {
    expect(advertIntText({ vrrpVersion: 2, advertInt: 1 })).toBe('1');
    expect(() => advertIntText({ vrrpVersion: 2, advertInt: 0.5 })).toThrow(KeepalivedConfError);
    expect(advertIntText({ vrrpVersion: 3, advertInt: 0.1 })).toBe('0.1');
    expect(advertIntText({ vrrpVersion: 3, advertInt: 0.05 })).toBe('0.05');
    expect(advertIntText({ vrrpVersion: 3, advertInt: 2 })).toBe('2');
    expect(() => advertIntText({ vrrpVersion: 3, advertInt: 0.005 })).toThrow(KeepalivedConfError);
    expect(() => advertIntText({ vrrpVersion: 3, advertInt: 41 })).toThrow(KeepalivedConfError);
  });

  it('Master_Down_Interval matches the RFCs (anchors §1: 3.61 s at priority 100, v2)', () => {
    expect(masterDownSeconds(KEEPALIVED_DEFAULT, 100)).toBeCloseTo(3.609, 3);
    expect(masterDownSeconds(KEEPALIVED_DEFAULT, 254)).toBeCloseTo(3.008, 3);
    expect(masterDownSeconds(KEEPALIVED_FAST, 100)).toBeCloseTo(0.361, 3);
  });

  it('refuses a relative health command, a bad VRID, a quote it cannot express', () => {
    expect(() => keepalivedConf(input({ checkCommand: ['curl'] }))).toThrow(/absolute path/);
    expect(() => keepalivedConf(input({ vrid: 0 }))).toThrow(/virtual_router_id/);
    expect(() => keepalivedConf(input({ checkCommand: ['/bin/sh', '-c', "echo 'x'"] }))).toThrow(/single quote/);
    expect(keepalivedConf(input({ checkCommand: ['/bin/sh', '-c', 'exit 0'] }))).toContain(`script "/bin/sh -c 'exit 0'"`);
  });

  it.skipIf(!existsSync('/usr/sbin/keepalived'))('keepalived itself accepts both generated files (keepalived -t)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vipd-bench-ka-'));
    try {
      for (const profile of [KEEPALIVED_DEFAULT, KEEPALIVED_FAST]) {
        const file = join(dir, `${profile.name}.conf`);
        writeFileSync(file, keepalivedConf(input({ profile })));
        // -t exits non-zero and prints the problems on stderr when the file is wrong.
        execFileSync('/usr/sbin/keepalived', ['-t', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
