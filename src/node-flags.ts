/**
 * The V8 flags the agent runs with. One list, carried by every way the agent starts: the image's
 * ENTRYPOINT (Dockerfile, so `vipd manifest`'s pods and DaemonSets get them by default), the
 * `vipd` bin's shebang (src/cli.ts) and the lab's agents (lab/agents.ts); test/node-flags.test.ts
 * checks that the three agree.
 *
 * Measured with `npm run bench:footprint`, `bench:failover` and `bench:soak` (bench/README.md,
 * "Footprint", third round):
 * - `--max-semi-space-size=1` (MB): V8 grows the young generation's semi-spaces up to 16 MB under
 *   a steady allocation rate (a holder answering ARP allocates a Buffer per frame). Capped at 1 MB
 *   the holder's idle RSS is ~12 MB smaller; scavenges run more often, each as short.
 * - `--max-opt=1`: Ignition and Sparkplug only, no TurboFan. The agent's JavaScript is small and
 *   runs briefly, a few hundred callbacks a second at most, so peak speed buys nothing; TurboFan's
 *   compiler pages, zones and worker-thread arenas cost ~14 MB (holder 72 -> 58 MB with the next
 *   flag), and the holder's idle CPU was a point lower without it. Side by side over 10 runs per
 *   scenario the crash, node-down and SIGTERM takeovers were the same as with TurboFan.
 * - `--optimize-for-size`: V8's low-memory heuristics (smaller heap growth).
 * - Not here: `--single-threaded` (no V8 worker threads, a further ~1 MB once TurboFan is off):
 *   with garbage collection all on the main thread, 3 of 10 crash takeovers took 260-490 ms
 *   against none over 250 ms without it. `--no-opt` (no Sparkplug either): more CPU, no less RSS.
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--max-opt=1', '--optimize-for-size'];
