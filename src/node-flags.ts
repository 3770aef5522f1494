/**
 * The V8 flags the agent runs with. One list, carried by every way the agent starts: the image's
 * ENTRYPOINT (Dockerfile, so `vipd manifest`'s pods and DaemonSets get them by default), the
 * `vipd` bin's shebang (src/cli.ts) and the lab's agents (lab/agents.ts); test/node-flags.test.ts
 * checks that the three agree.
 *
 * Measured with `npm run bench:footprint`, `bench:failover` and `bench:soak` (bench/README.md,
 * "Footprint"):
 * - `--max-semi-space-size=1` (MB): V8 grows the young generation's semi-spaces up to 16 MB under
 *   a steady allocation rate (a holder answering ARP allocates a Buffer per frame). Capped at 1 MB
 *   the holder's idle RSS is ~12 MB smaller (about 86 -> 74 MB); scavenges run more often, each
 *   as short. The soak with it counted no more false failovers than without.
 * - Not here: `--no-opt` (a further ~13 MB, to ~60 MB). JS runs slower without TurboFan, and with
 *   the 50/200 ms peer defaults the soak counted 15 false failovers in 10 minutes at load 8.5
 *   with it, against 2 at load 8 without (docs/election.md §8). Operators who run at low load and
 *   need the memory can add it to the container's command.
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];
