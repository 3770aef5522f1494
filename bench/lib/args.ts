/**
 * Command lines of the benchmarks. Pure: argv in, options or a usage error out.
 */
import { parseArgs } from 'node:util';

export const SYSTEMS = ['vipd', 'vipd-lease-only', 'keepalived-default', 'keepalived-fast', 'kube-vip'] as const;
export type SystemName = (typeof SYSTEMS)[number];
export const SCENARIOS = ['crash', 'node-down', 'graceful', 'api-down', 'partition', 'cold-start'] as const;
export type Scenario = (typeof SCENARIOS)[number];
/** Lease timings of the vipd rows: the lab's 3/2/0.5 s, vipd's (and client-go's) 15/10/2 s defaults, or both row sets. */
export const TIMINGS = ['lab', 'default', 'both'] as const;
export type Timings = (typeof TIMINGS)[number];

export class UsageError extends Error {
  override name = 'UsageError';
}

/** A comma list of `allowed` names (default `dflt`); unknown or empty lists are usage errors. */
export function list<T extends string>(what: string, raw: string | undefined, allowed: readonly T[], dflt: readonly T[]): T[] {
  if (raw === undefined) return [...dflt];
  const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new UsageError(`--${what} needs at least one of ${allowed.join(', ')}`);
  for (const i of items) if (!(allowed as readonly string[]).includes(i)) throw new UsageError(`--${what}: unknown ${JSON.stringify(i)}; choose from ${allowed.join(', ')}`);
  return [...new Set(items)] as T[];
}

export function posInt(what: string, raw: string | undefined, dflt: number, max: number): number {
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`--${what} must be an integer 1..${max}, got ${JSON.stringify(raw)}`);
  return n;
}

export interface FailoverArgs {
  runs: number;
  systems: SystemName[];
  scenarios: Scenario[];
  timings: Timings;
  /** Keep per-run details (windows, episodes) in the results file. */
  verbose: boolean;
}

/**
 * Default runs = 1: 4 systems × 5 scenarios × 1 run plus one control-plane start is what fits in
 * five minutes on 2 cores (API server restarts dominate); --runs 5 gives percentiles worth the name.
 */
export const FAILOVER_USAGE =
  'usage: npm run bench:failover -- [--runs N (default 1)] [--systems ' + SYSTEMS.join(',') + '] [--scenarios ' + SCENARIOS.join(',') + '] [--timings lab|default|both] [--verbose]';

/** Default systems: all but kube-vip, which joins when its binary was built (see bench/README.md). */
export function parseFailoverArgs(argv: readonly string[], defaultSystems: readonly SystemName[]): FailoverArgs {
  let values: { runs?: string; systems?: string; scenarios?: string; timings?: string; verbose?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: { runs: { type: 'string' }, systems: { type: 'string' }, scenarios: { type: 'string' }, timings: { type: 'string' }, verbose: { type: 'boolean' } },
      strict: true,
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const timings = values.timings ?? 'lab';
  if (!(TIMINGS as readonly string[]).includes(timings)) throw new UsageError(`--timings must be one of ${TIMINGS.join(', ')}, got ${JSON.stringify(timings)}`);
  return {
    runs: posInt('runs', values.runs, 1, 1000),
    systems: list('systems', values.systems, SYSTEMS, defaultSystems),
    scenarios: list('scenarios', values.scenarios, SCENARIOS, SCENARIOS),
    timings: timings as Timings,
    verbose: values.verbose === true,
  };
}

export interface FootprintArgs {
  systems: SystemName[];
  seconds: number;
}

export const FOOTPRINT_SYSTEMS = ['vipd', 'vipd-lease-only', 'keepalived-default', 'keepalived-fast', 'kube-vip'] as const satisfies readonly SystemName[];

export function parseFootprintArgs(argv: readonly string[], defaultSystems: readonly SystemName[]): FootprintArgs {
  let values: { systems?: string; seconds?: string };
  try {
    ({ values } = parseArgs({ args: [...argv], options: { systems: { type: 'string' }, seconds: { type: 'string' } }, strict: true }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return { systems: list('systems', values.systems, SYSTEMS, defaultSystems), seconds: posInt('seconds', values.seconds, 60, 3600) };
}

export interface ServicesArgs {
  services: number;
  steadySeconds: number;
}

export function parseServicesArgs(argv: readonly string[]): ServicesArgs {
  let values: { services?: string; 'steady-seconds'?: string };
  try {
    ({ values } = parseArgs({ args: [...argv], options: { services: { type: 'string' }, 'steady-seconds': { type: 'string' } }, strict: true }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return { services: posInt('services', values.services, 1000, 4000), steadySeconds: posInt('steady-seconds', values['steady-seconds'], 60, 3600) };
}
