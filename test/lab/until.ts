/**
 * Polls `fn` until it returns something other than undefined or false, and returns that; an error
 * it throws counts as "not yet" and is named in the timeout message.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number, stepMs = 100): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(stepMs);
  }
}
