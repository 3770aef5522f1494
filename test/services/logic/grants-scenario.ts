/**
 * Scenario scripts for service-IP grants (test/services/logic/scenarios/*.txt), in the format of
 * the peer election's (test/election/scenario.ts: a command, `----`, the output it must produce).
 * The cluster runs in the grant simulator (grants-sim.ts), which throws on a second holder of
 * any IP at any moment, whatever the script expects. Messages take exactly `latency` ms, clocks
 * run at the same rate, so output is deterministic.
 *
 * Commands
 *   nodes 4 voters=3 ips=2 [placement=rendezvous|manual] [heartbeat=50] [election=200] [linger=0]
 *         [latency=1] [ready=20] [seed=1]          (nodes n1..n4, the first 3 vote; IPs 198.18.9.1..)
 *   start all | start n1          crash n1          stop n1 (SIGSTOP)   cont n1 (SIGCONT)
 *   shutdown n1 (SIGTERM)         want n1 198.18.9.1 198.18.9.2 (manual placement)
 *   tick 500                      partition n1 | n2 n3   heal
 *   check holder 198.18.9.1 n2|none                      status
 */
import { GrantSim } from './grants-sim.js';

export class GrantScenarioRunner {
  private sim: GrantSim | null = null;

  private need(): GrantSim {
    if (this.sim === null) throw new Error('no cluster: start the script with `nodes`');
    return this.sim;
  }

  private names(args: string[]): string[] {
    const sim = this.need();
    const out = args.length === 1 && args[0] === 'all' ? sim.names : args;
    for (const n of out) if (!sim.names.includes(n)) throw new Error(`unknown node ${n}`);
    return out;
  }

  run(command: string): string {
    const [cmd, ...args] = command.split(/\s+/);
    const sim = this.sim;
    const mark = sim?.log?.length ?? 0;
    let answer: string[] = [];
    switch (cmd) {
      case 'nodes': {
        const opts = new Map(args.slice(1).map((a) => a.split('=') as [string, string]));
        const num = (k: string, d: number) => (opts.has(k) ? Number(opts.get(k)) : d);
        const s = new GrantSim({
          seed: num('seed', 1),
          nodes: Number(args[0]),
          voters: num('voters', 3),
          ips: num('ips', 2),
          timing: { heartbeatMs: num('heartbeat', 50), electionTimeoutMs: num('election', 200), lingerMs: num('linger', 0), skew: 0.01 },
          rateSpread: 0,
          placement: (opts.get('placement') as 'rendezvous' | 'manual' | undefined) ?? 'rendezvous',
          readyAfterMs: num('ready', 20),
        });
        const latency = num('latency', 1);
        s.net = { drop: 0, minDelay: latency, maxDelay: latency };
        s.log = [];
        this.sim = s;
        answer = [`ok: ${s.names.join(' ')}; voters ${s.voterNames.join(' ')}; IPs ${s.ipList.join(' ')}`];
        break;
      }
      case 'start':
        for (const n of this.names(args)) this.need().start(n);
        break;
      case 'crash':
        for (const n of this.names(args)) this.need().crash(n);
        break;
      case 'stop':
        for (const n of this.names(args)) this.need().pause(n);
        break;
      case 'cont':
        for (const n of this.names(args)) this.need().cont(n);
        break;
      case 'shutdown':
        for (const n of this.names(args)) this.need().shutdown(n);
        break;
      case 'want': {
        const [node, ...ips] = args;
        this.names([node!]);
        this.need().want(node!, ips);
        break;
      }
      case 'tick': {
        const s = this.need();
        s.runUntil(s.t + Number(args[0]));
        break;
      }
      case 'partition': {
        const groups = args.join(' ').split('|').map((g) => g.trim().split(/\s+/).filter(Boolean));
        for (const g of groups) this.names(g);
        this.need().partition(groups);
        answer = [`partitioned: ${groups.map((g) => g.join(' ')).join(' | ')}`];
        break;
      }
      case 'heal':
        this.need().heal();
        break;
      case 'check': {
        if (args[0] !== 'holder' || args.length !== 3) throw new Error('check holder <ip> <node|none>');
        const holders = this.need().holders().get(args[1]!);
        if (holders === undefined) throw new Error(`unknown IP ${args[1]}`);
        const got = holders.length === 0 ? 'none' : holders.join(',');
        if (got !== args[2]) throw new Error(`check holder ${args[1]}: expected ${args[2]}, held by ${got}`);
        answer = ['ok'];
        break;
      }
      case 'status': {
        const s = this.need();
        answer = [...s.holders()].map(([ip, h]) => `${ip}: ${h.length === 0 ? 'nobody' : h.join(',')}`);
        break;
      }
      default:
        throw new Error(`unknown command ${cmd}`);
    }
    const logged = this.sim?.log?.slice(mark) ?? [];
    return [...logged, ...answer].join('\n');
  }
}
