/**
 * The one source of time for logic that must be testable: a monotonic clock in milliseconds.
 * Wall-clock time never decides safety; it only labels logs and API objects.
 */
export interface Clock {
  /** Monotonic milliseconds; only differences are meaningful. */
  now(): number;
}

export const monotonicClock: Clock = {
  now: () => performance.now(),
};
