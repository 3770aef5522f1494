/**
 * The kernel's wall clock (CLOCK_REALTIME) in ms with performance.now()'s resolution, for every
 * time the lab compares across processes: the prober's kernel receive stamps and tcpdump's are on
 * CLOCK_REALTIME, and so are the agents' log times. performance.timeOrigin + performance.now() is
 * off from it by a constant of a few ms per process (3 ms seen on this machine), more than a veth
 * round trip, so answers could land before their requests.
 */
let offset: number | undefined;

export function wallNow(): number {
  if (offset === undefined) {
    // Date.now() has whole ms: at the moment it steps it is exact.
    const start = Date.now();
    let p: number;
    let t: number;
    do {
      p = performance.now();
      t = Date.now();
    } while (t === start);
    offset = t - p;
  }
  return offset + performance.now();
}
