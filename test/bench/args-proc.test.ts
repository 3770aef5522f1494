import { describe, expect, it } from 'vitest';
import { parseFailoverArgs, parseFootprintArgs, parseServicesArgs, UsageError } from '../../bench/lib/args.js';
import { cpuPercent, kbField, parseStat } from '../../bench/lib/proc.js';

describe('benchmark arguments', () => {
  it('failover defaults: 1 run, the given systems, every scenario, lab timings', () => {
    expect(parseFailoverArgs([], ['vipd', 'keepalived-default'])).toEqual({
      runs: 1,
      systems: ['vipd', 'keepalived-default'],
      scenarios: ['crash', 'node-down', 'graceful', 'api-down', 'partition', 'cold-start'],
      timings: 'lab',
      verbose: false,
    });
  });

  it('lists are checked against the exact names', () => {
    const a = parseFailoverArgs(['--runs', '5', '--systems', 'kube-vip,vipd-lease-only', '--scenarios', 'crash,crash,partition', '--timings', 'both'], []);
    expect(a).toMatchObject({ runs: 5, systems: ['kube-vip', 'vipd-lease-only'], scenarios: ['crash', 'partition'], timings: 'both' });
    expect(() => parseFailoverArgs(['--systems', 'keepalived'], [])).toThrow(/unknown "keepalived"/);
    expect(() => parseFailoverArgs(['--scenarios', 'reboot'], [])).toThrow(UsageError);
    expect(() => parseFailoverArgs(['--runs', '0'], [])).toThrow(/--runs/);
    expect(() => parseFailoverArgs(['--timings', 'fast'], [])).toThrow(/--timings/);
    expect(() => parseFailoverArgs(['--bogus'], [])).toThrow(UsageError);
  });

  it('footprint and services', () => {
    expect(parseFootprintArgs([], ['vipd'])).toEqual({ systems: ['vipd'], seconds: 60 });
    expect(parseFootprintArgs(['--seconds', '5', '--systems', 'keepalived-default'], [])).toEqual({ systems: ['keepalived-default'], seconds: 5 });
    expect(parseServicesArgs([])).toEqual({ services: 1000, steadySeconds: 60 });
    expect(parseServicesArgs(['--services', '10', '--steady-seconds', '5'])).toEqual({ services: 10, steadySeconds: 5 });
    expect(() => parseServicesArgs(['--services', 'x'])).toThrow(/--services/);
  });
});

describe('/proc parsing', () => {
  it('reads ppid and all four CPU counters, whatever the command name holds', () => {
    const line = '4242 (keep alived) (x)) S 4200 4242 4242 0 -1 4194560 100 0 0 0 150 50 7 3 20 0 1 0 12345 1000 200 ...';
    expect(parseStat(line)).toEqual({ pid: 4242, ppid: 4200, ticks: 210 });
    expect(parseStat('garbage')).toBeNull();
  });

  it('kB fields and CPU percent of one core', () => {
    expect(kbField('Name:\tnode\nVmRSS:\t   51234 kB\n', 'VmRSS')).toBe(51234);
    expect(kbField('Pss:                1000 kB\n', 'Pss')).toBe(1000);
    expect(kbField('', 'VmRSS')).toBeNull();
    expect(cpuPercent({ at: 0, ticks: 100 }, { at: 60_000, ticks: 160 })).toBe(1);
    expect(cpuPercent({ at: 0, ticks: 0 }, { at: 0, ticks: 10 })).toBe(0);
  });
});
