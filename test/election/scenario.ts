/**
 * Interpreter for readable scenario scripts (test/election/scenarios/*.txt), in the style of
 * etcd-io/raft's datadriven tests: a command, a `----` line, then the output it must produce,
 * ended by a blank line. `#` lines are comments. Run with VIPD_SCENARIO_REWRITE=1 to write the
 * actual output into the files (then read the diff: that is the review).
 *
 * The cluster runs in the simulator (test/election/sim.ts), so every invariant is checked at
 * every event while a script runs: a script that produced two holders fails whatever it expects.
 * Messages take exactly `latency` ms (default 1), so output is deterministic.
 *
 * Commands
 *   nodes n1 n2 n3 [bootstrap=n1] [heartbeat=100] [election=400] [linger=0] [seed=1]
 *         [rate.n1=1.01 ...] [latency=1] [codec] [key.n3=other] [lease=auto|manual]
 *   start n1 n2 | start all          crash n1 | restart n1        stop n1 (SIGSTOP) | cont n1 (SIGCONT)
 *   shutdown n1 (SIGTERM)            campaign n1                  tick 500
 *   partition n1 | n2 n3             block n1>n2                  heal
 *   net drop=0.5 dup=0.1 delay=1..20
 *   lease-holder n1|none (an API write)      lease-want n2 (its Lease elector tries to acquire)
 *   api-down n2 n3 | api-up n2 n3            health n1 bad|ok|alone (its API server down, and every other one it probed too)
 *   log messages|quiet                        status          drops (codec: dropped packets by reason)
 *   check holder n2|none                      check term n1 3
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { isHolding } from '../../src/election/peers/core.js';
import { Sim, type SimNodeSpec } from './sim.js';

export interface Block {
  line: number;
  command: string;
  expected: string;
}

export function parseScript(text: string): { blocks: Block[]; header: string[] } {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  const header: string[] = [];
  let i = 0;
  let pending: string[] = [];
  while (i < lines.length) {
    const l = lines[i]!;
    if (l.trim() === '' || l.startsWith('#')) {
      pending.push(l);
      i++;
      continue;
    }
    if (blocks.length === 0) header.push(...pending);
    pending = [];
    const cmdLine = i + 1;
    const command = l.trim();
    i++;
    if (lines[i]?.trim() !== '----') throw new Error(`line ${cmdLine + 1}: expected ---- after "${command}"`);
    i++;
    const out: string[] = [];
    while (i < lines.length && lines[i]!.trim() !== '') out.push(lines[i++]!);
    blocks.push({ line: cmdLine, command, expected: out.join('\n') });
    // Comments between blocks belong to the next block.
    const comments: string[] = [];
    while (i < lines.length && (lines[i]!.trim() === '' || lines[i]!.startsWith('#'))) comments.push(lines[i++]!);
    (blocks[blocks.length - 1] as Block & { after?: string[] }).after = comments;
  }
  return { blocks, header };
}

export function formatScript(header: string[], blocks: (Block & { after?: string[] })[], outputs: string[]): string {
  const parts: string[] = [...header];
  blocks.forEach((b, k) => {
    parts.push(b.command, '----', ...(outputs[k] === '' ? [] : [outputs[k]!]));
    parts.push(...(b.after ?? ['']));
  });
  let s = parts.join('\n');
  if (!s.endsWith('\n')) s += '\n';
  return s;
}

/**
 * Registers one test per `dir/*.txt` script: each command's output must equal its expected
 * block; with VIPD_SCENARIO_REWRITE=1 the files are rewritten with what the code does now.
 */
export function scenarioSuite(title: string, dir: string, runner: () => { run(command: string): string }): void {
  const rewrite = process.env.VIPD_SCENARIO_REWRITE === '1';
  describe(title, () => {
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.txt')).sort()) {
      test(f.replace(/\.txt$/, ''), () => {
        const { blocks, header } = parseScript(readFileSync(dir + f, 'utf8'));
        const r = runner();
        const outputs: string[] = [];
        for (const b of blocks) {
          let out: string;
          try {
            out = r.run(b.command);
          } catch (e) {
            throw new Error(`${f}:${b.line}: ${b.command}: ${(e as Error).message}`);
          }
          outputs.push(out);
          if (!rewrite) expect(out, `${f}:${b.line}: ${b.command}`).toBe(b.expected);
        }
        if (rewrite) writeFileSync(dir + f, formatScript(header, blocks, outputs));
      });
    }
  });
}

export class ScenarioRunner {
  private sim: Sim | null = null;

  private need(): Sim {
    if (this.sim === null) throw new Error('no cluster: start the script with `nodes`');
    return this.sim;
  }

  private names(args: string[]): string[] {
    const sim = this.need();
    const out = args.length === 1 && args[0] === 'all' ? sim.names : args;
    for (const n of out) if (!sim.names.includes(n)) throw new Error(`unknown node ${n}`);
    return out;
  }

  /** Runs one command; returns its output (log lines produced while it ran, or its answer). */
  run(command: string): string {
    const [cmd, ...args] = command.split(/\s+/);
    const sim = this.sim;
    const mark = sim?.log.length ?? 0;
    let answer: string[] = [];
    switch (cmd) {
      case 'nodes': {
        const names = args.filter((a) => !a.includes('=') && a !== 'codec');
        const kv = Object.fromEntries(args.filter((a) => a.includes('=')).map((a) => a.split('=') as [string, string]));
        const nodes: SimNodeSpec[] = names.map((name) => ({ name, rate: kv[`rate.${name}`] ? Number(kv[`rate.${name}`]) : 1, offset: 1_000_000 * (names.indexOf(name) + 1), bootstrap: kv.bootstrap === name }));
        this.sim = new Sim({
          nodes,
          timing: { heartbeatMs: Number(kv.heartbeat ?? 100), electionTimeoutMs: Number(kv.election ?? 400), lingerMs: Number(kv.linger ?? 0), skew: 0.01 },
          seed: Number(kv.seed ?? 1),
          codec: args.includes('codec') || Object.keys(kv).some((k) => k.startsWith('key.')),
          keys: Object.fromEntries(
            Object.entries(kv)
              .filter(([k]) => k.startsWith('key.'))
              .map(([k, v]) => [k.slice(4), createHash('sha256').update(v).digest()]),
          ),
          autoLease: kv.lease !== 'manual',
          log: true,
        });
        const lat = Number(kv.latency ?? 1);
        this.sim.setNet({ drop: 0, dup: 0, minDelay: lat, maxDelay: lat });
        return 'ok';
      }
      case 'start':
        for (const n of this.names(args)) this.need().start(n);
        break;
      case 'crash':
        for (const n of this.names(args)) this.need().crash(n);
        break;
      case 'restart':
        for (const n of this.names(args)) this.need().restart(n);
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
      case 'campaign':
        for (const n of this.names(args)) this.need().campaign(n);
        break;
      case 'tick':
        this.need().run(Number(args[0]));
        break;
      case 'partition': {
        const groups = args
          .join(' ')
          .split('|')
          .map((g) => g.trim().split(/\s+/).filter(Boolean));
        for (const g of groups) this.names(g);
        this.need().partition(groups);
        answer = [`partitioned: ${groups.map((g) => g.join(' ')).join(' | ')}`];
        break;
      }
      case 'block': {
        const [a, b] = (args[0] ?? '').split('>');
        this.names([a ?? '', b ?? '']);
        this.need().block(a!, b!);
        break;
      }
      case 'heal':
        this.need().heal();
        break;
      case 'net': {
        const kv = Object.fromEntries(args.map((a) => a.split('=') as [string, string]));
        const [lo, hi] = (kv.delay ?? '1..1').split('..').map(Number);
        this.need().setNet({ drop: Number(kv.drop ?? 0), dup: Number(kv.dup ?? 0), minDelay: lo ?? 1, maxDelay: hi ?? lo ?? 1 });
        break;
      }
      case 'lease-holder':
        this.need().setLeaseHolder(args[0] === 'none' ? null : this.names([args[0] ?? ''])[0]!);
        break;
      case 'lease-want':
        this.need().wantLease(this.names([args[0] ?? ''])[0]!);
        break;
      case 'api-down':
        for (const n of this.names(args)) this.need().setApi(n, false);
        break;
      case 'api-up':
        for (const n of this.names(args)) this.need().setApi(n, true);
        break;
      case 'health': {
        const [n, v] = args;
        if (v !== 'ok' && v !== 'bad' && v !== 'alone') throw new Error(`health: ok, bad or alone, not ${v}`);
        this.need().setEligible(this.names([n ?? ''])[0]!, v !== 'bad', v === 'ok');
        break;
      }
      case 'log':
        this.need().logMessages = args[0] === 'messages';
        return 'ok';
      case 'status':
        answer = this.status();
        break;
      case 'drops':
        answer = [...this.need().drops.entries()].sort().map(([k, v]) => `${k}: ${v}`);
        if (answer.length === 0) answer = ['none'];
        break;
      case 'check':
        answer = [this.check(args)];
        break;
      default:
        throw new Error(`unknown command ${cmd}`);
    }
    const produced = sim === null ? [] : this.need().log.slice(mark);
    return [...produced, ...answer].join('\n');
  }

  private status(): string[] {
    const sim = this.need();
    const holders = sim.holders();
    const out: string[] = [];
    for (const name of sim.names) {
      const n = sim.node(name);
      if (n.status === 'down') {
        out.push(`${name} down`);
        continue;
      }
      const s = n.state!;
      const now = sim.local(n);
      const rel = (x: number) => `${x >= now ? '+' : ''}${Math.round(x - now)}`;
      const parts = [name, s.role.kind, `term=${s.term}`];
      if (s.role.kind === 'leader') parts.push(`until=${rel(s.role.until)}`);
      if (s.leader !== null && s.leader !== name) parts.push(`leader=${s.leader}`);
      if (s.promise !== null && now < s.promise.until) parts.push(`promised=${s.promise.to}(${rel(s.promise.until)})`);
      if (s.bootstrap === 'active') parts.push('bootstrap');
      if (s.lease.holderIdentity !== null && now < s.lease.liveUntil) parts.push(`lease=${s.lease.holderIdentity}`);
      if (n.status === 'paused') parts.push('(stopped)');
      if (!n.eligible) parts.push('(unhealthy)');
      else if (!n.apiHealthy) parts.push('(api down, none answers)');
      if (s.shutdown) parts.push('(shutting down)');
      out.push(parts.join(' '));
    }
    out.push(`VIP held by: ${holders.length === 0 ? 'nobody' : holders.join(', ')}`);
    return out;
  }

  private check(args: string[]): string {
    const sim = this.need();
    const [what, ...rest] = args;
    if (what === 'holder') {
      const want = rest[0];
      const h = sim.holders();
      const got = h.length === 0 ? 'none' : h.join(',');
      if (got !== want) throw new Error(`check holder: expected ${want}, VIP held by ${got}`);
      if (want !== 'none') {
        const n = sim.node(want!);
        if (n.state === null || !isHolding(n.state, sim.local(n))) throw new Error(`check holder: ${want} is not holding by its own account`);
      }
      return 'ok';
    }
    if (what === 'term') {
      const [n, t] = rest;
      const got = sim.stateOf(this.names([n ?? ''])[0]!)?.term;
      if (String(got) !== t) throw new Error(`check term: ${n} has term ${got}, expected ${t}`);
      return 'ok';
    }
    throw new Error(`unknown check ${what}`);
  }
}
