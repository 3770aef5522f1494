/**
 * Percentiles and the row shapes the benchmarks print. Pure.
 *
 * Percentiles use the nearest-rank method on the sorted sample (p in (0, 100]): the value at
 * rank ceil(p/100 · n). With the few runs a benchmark affords (3–10), interpolating between
 * samples would report times no run produced; nearest rank always reports a measured one.
 */

/** Nearest-rank percentile; null for an empty sample. Non-finite values are ignored. */
export function percentile(values: readonly number[], p: number): number | null {
  if (!(p > 0 && p <= 100)) throw new RangeError(`percentile must be in (0, 100], got ${p}`);
  const xs = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return null;
  const rank = Math.ceil((p / 100) * xs.length);
  return xs[Math.min(xs.length, Math.max(1, rank)) - 1]!;
}

export function median(values: readonly number[]): number | null {
  return percentile(values, 50);
}

export function maxOf(values: readonly number[]): number | null {
  const xs = values.filter((v) => Number.isFinite(v));
  return xs.length === 0 ? null : Math.max(...xs);
}

/** Milliseconds rounded to 0.1 ms (the prober's schedule is 10 ms; more digits are noise). */
export function roundMs(v: number | null): number | null {
  return v === null ? null : Math.round(v * 10) / 10;
}

/** a / b rounded to two decimals, null when either side is missing or b is 0. */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined || b === 0) return null;
  return Math.round((a / b) * 100) / 100;
}
