import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answeredRequest, type ProberLine, type VipSummary } from '../../lab/prober.js';
import {
  claimsIn,
  doubleAnswers,
  findTwoHolderEvents,
  firstAnswerFrom,
  interleavedClaims,
  lastAnswerFrom,
  linger,
  summarize,
  type Claim,
  type ProbeRecord,
} from '../../lab/twoholders.js';
import { Announcer } from '../../src/net/announce.js';
import { garpRequest, parseFrame, unsolicitedNa } from '../../src/net/frames.js';
import { createLogger } from '../../src/observe/log.js';
import { createWire, sleep, VIP4, VIP6, type Wire } from '../net/wire.js';
import { wallNow } from '../../lab/wallclock.js';

const X = '02:00:00:00:00:0a';
const Y = '02:00:00:00:00:0b';

const rec = (seq: number, sentAt: number, answers: Array<[string, number]>): ProbeRecord => ({
  seq,
  family: 4,
  sentAt,
  answers: answers.map(([mac, at]) => ({ mac, at })),
});
const claims = (mac: string, times: number[]): Claim[] => times.map((at) => ({ at, mac, kind: 'garp' }));

describe('two-holder analysis (pure)', () => {
  it('a request answered by two MACs is a double answer', () => {
    const records = [rec(0, 0, [[X, 1]]), rec(1, 10, [[X, 11], [Y, 12]]), rec(2, 20, [[Y, 21]])];
    expect(doubleAnswers(records)).toEqual([{ kind: 'double-answer', at: 11, seq: 1, family: 4, macs: [X, Y] }]);
  });

  it('an answer belongs to the newest request sent before the kernel received it, however late it is read', () => {
    const open = [rec(0, 100, []), rec(1, 150, [])];
    expect(answeredRequest(open, 120)?.seq).toBe(0); // read after request 1 went out, received before
    expect(answeredRequest(open, 150.2)?.seq).toBe(1);
    expect(answeredRequest(open, 160)?.seq).toBe(1);
    expect(answeredRequest(open, 90)).toBeUndefined();
  });

  it('a claim inside another MAC holding span is interleaving; a clean handover is not', () => {
    const overlap = interleavedClaims([...claims(X, [0, 3000, 6000]), ...claims(Y, [4000])], 4000);
    expect(overlap).toEqual([{ kind: 'interleaved-claims', at: 4000, holder: X, intruder: Y, spanFrom: 3000, spanTo: 6000 }]);
    expect(interleavedClaims([...claims(X, [0, 100, 300, 3300]), ...claims(Y, [3400, 3500, 6500])], 4000)).toEqual([]);
    // X released, Y held for 5 s, X back: no span of either contains the other.
    expect(interleavedClaims([...claims(X, [0, 3000]), ...claims(Y, [3100, 6100, 8100]), ...claims(X, [8200, 8300])], 4000)).toEqual([]);
    // Two holders announcing side by side for a while: one event for the pair, not one per frame.
    const both = interleavedClaims([...claims(X, [0, 100, 300, 600, 1000]), ...claims(Y, [50, 150, 350, 650, 1050])], 4000);
    expect(both).toHaveLength(1);
    expect(both[0]).toMatchObject({ kind: 'interleaved-claims', at: 50 });
  });

  it('with probe records: a flap X → Y → X inside spanGapMs is not interleaving, a thawed claim inside a live span still is', () => {
    // The prober asks every 10 ms; whoever holds answers, and each answer is also a claim.
    const timeline = (holderAt: (t: number) => string | null, until: number) => {
      const records: ProbeRecord[] = [];
      const cl: Claim[] = [];
      for (let t = 0, seq = 0; t < until; t += 10, seq++) {
        const h = holderAt(t);
        records.push(rec(seq, t, h ? [[h, t + 1]] : []));
        if (h) cl.push({ at: t + 1, mac: h, kind: 'arp-reply' });
      }
      return { records, claims: cl };
    };
    // X holds to 1000, nobody to 1400, Y holds to 2000, nobody to 2300, X again (the kubeadm lab's quorum-lost flap).
    const flap = timeline((t) => (t < 1000 ? X : t < 1400 ? null : t < 2000 ? Y : t < 2300 ? null : X), 3000);
    expect(interleavedClaims(flap.claims, 4000)).toHaveLength(1); // claims alone cannot tell
    expect(interleavedClaims(flap.claims, 4000, flap.records)).toEqual([]);
    expect(findTwoHolderEvents({ vip: VIP4, records: flap.records, claims: flap.claims })).toEqual([]);
    // Y holds throughout; a thawed X claims once at 1505 (a gARP): caught.
    const thaw = timeline(() => Y, 3000);
    const thawed = [...thaw.claims, { at: 1505, mac: X, kind: 'garp' as const }];
    expect(interleavedClaims(thawed, 4000, thaw.records)).toMatchObject([{ holder: Y, intruder: X, at: 1505 }]);
    // Y starved (nobody answers 1200..1900) and X's claim in that silence: Y still held, so still caught.
    const starved = timeline((t) => (t >= 1200 && t < 1900 ? null : Y), 3000);
    expect(interleavedClaims([...starved.claims, { at: 1505, mac: X, kind: 'garp' }], 4000, starved.records)).toMatchObject([{ holder: Y, intruder: X }]);
  });

  it('claims come from gARP, ARP replies and NAs in captured frames', () => {
    const frames = [
      { time: 5, frame: parseFrame(garpRequest(X, VIP4)) },
      { time: 7, frame: parseFrame(unsolicitedNa(Y, VIP6)) },
      { time: 9, frame: null },
    ];
    expect(claimsIn(frames, VIP4)).toEqual([{ at: 5, mac: X, kind: 'garp' }]);
    expect(claimsIn(frames, VIP6)).toEqual([{ at: 7, mac: Y, kind: 'unsolicited-na' }]);
    expect(findTwoHolderEvents({ vip: VIP4, frames, records: [rec(0, 0, [[X, 1], [Y, 2]])] })).toHaveLength(1);
  });

  it('linger, first/last answer, summary and longest outage', () => {
    const records = [rec(0, 0, [[X, 1]]), rec(1, 10, [[X, 11]]), rec(2, 20, []), rec(3, 30, []), rec(4, 40, [[Y, 45]]), rec(5, 50, [[Y, 51]])];
    expect(lastAnswerFrom(records, X)).toBe(11);
    expect(firstAnswerFrom(records, Y)).toBe(45);
    expect(firstAnswerFrom(records, Y, 46)).toBe(51);
    expect(linger(records, X, 5)).toBe(6);
    expect(linger(records, X, 20)).toBe(0);
    expect(summarize(records)).toEqual({
      requests: 6,
      answered: 4,
      unanswered: 2,
      macs: { [X]: { answers: 2, firstAt: 1, lastAt: 11 }, [Y]: { answers: 2, firstAt: 45, lastAt: 51 } },
      doubleAnswers: 0,
      longestOutageMs: 30,
      firstSentAt: 0,
      lastSentAt: 50,
    });
  });
});

const isRoot = process.getuid?.() === 0;
const CLI = fileURLToPath(new URL('../../dist/lab/prober-cli.js', import.meta.url));

interface ProberRun {
  lines: Array<ProberLine | VipSummary>;
  summary(vip: string): VipSummary;
  records(vip: string): ProbeRecord[];
}

describe.skipIf(!isRoot)('prober CLI on a real wire', () => {
  let wire: Wire;
  const log = createLogger('silent');
  const open: Announcer[] = [];
  const holder = async (host: 'a' | 'b', vip: string): Promise<Announcer> => {
    const a = await Announcer.open({ ifname: 'eth0', vip, refreshMs: 3000, answer: true, log, netns: wire[host].ns });
    open.push(a);
    return a;
  };

  /** Runs the built CLI in the client namespace without blocking this event loop (the holders answer from here). */
  const runProber = (args: string[], started?: () => void): Promise<ProberRun> =>
    new Promise((resolve, reject) => {
      const ch = spawn('ip', ['netns', 'exec', wire.c.ns, process.execPath, CLI, '--iface', 'eth0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      ch.stdout.on('data', (d: Buffer) => (out += d.toString()));
      ch.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        if (started && err.includes('prober: started')) {
          started();
          started = undefined;
        }
      });
      ch.on('exit', (code) => {
        if (code !== 0) return reject(new Error(`prober exited ${code}: ${err}`));
        const lines = out.trim().split('\n').map((l) => JSON.parse(l) as ProberLine | VipSummary);
        resolve({
          lines,
          summary: (vip) => lines.find((l): l is VipSummary => l.type === 'summary' && l.vip === vip)!,
          records: (vip) => lines.filter((l): l is Extract<ProberLine, { type: 'request' }> => l.type === 'request' && l.vip === vip),
        });
      });
    });

  beforeAll(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does)`);
    wire = await createWire();
  });
  afterAll(() => {
    for (const a of open) a.close();
    wire?.destroy();
  });

  it('one holder: every request answered by its MAC only, no two-holder events', async () => {
    const a4 = await holder('a', VIP4);
    const a6 = await holder('a', VIP6);
    a4.startHolding(() => true);
    a6.startHolding(() => true);
    const run = await runProber(['--vip', VIP4, '--vip', VIP6, '--interval', '10', '--duration', '1500']);
    for (const vip of [VIP4, VIP6]) {
      const s = run.summary(vip);
      expect(s.requests).toBeGreaterThan(50);
      expect(s.answered / s.requests).toBeGreaterThan(0.9);
      expect(Object.keys(s.macs)).toEqual([wire.a.mac]);
      expect(s.events).toEqual([]);
      expect(run.records(vip).length).toBe(s.requests);
    }
    for (const a of open.splice(0)) a.close();
  });

  it('two holders: double answers from the prober and interleaved announcements in the bridge capture', async () => {
    const cap = await wire.capture();
    const a = await holder('a', VIP4);
    const b = await holder('b', VIP4);
    a.startHolding(() => true);
    await sleep(150);
    b.startHolding(() => true);
    const run = await runProber(['--vip', VIP4, '--interval', '10', '--duration', '800']);
    const frames = await cap.stop();
    for (const x of open.splice(0)) x.close();

    const s = run.summary(VIP4);
    expect(Object.keys(s.macs).sort()).toEqual([wire.a.mac, wire.b.mac].sort());
    expect(s.doubleAnswers).toBeGreaterThan(0);
    expect(s.events.some((e) => e.kind === 'double-answer' && e.macs.length === 2)).toBe(true);

    const fromCapture = findTwoHolderEvents({ vip: VIP4, frames, spanGapMs: 4000 });
    const inter = fromCapture.filter((e) => e.kind === 'interleaved-claims');
    expect(inter.length).toBeGreaterThan(0);
    expect(inter[0]).toMatchObject({ holder: wire.a.mac, intruder: wire.b.mac });
  });

  it('measures how long a holder keeps answering after it stops (linger)', async () => {
    const a = await holder('a', VIP4);
    a.startHolding(() => true);
    let tStop = 0;
    const runP = runProber(['--vip', VIP4, '--interval', '10', '--duration', '1200'], () => {
      setTimeout(() => {
        a.stopHolding();
        tStop = wallNow();
      }, 500);
    });
    const run = await runP;
    for (const x of open.splice(0)) x.close();
    const records = run.records(VIP4);
    expect(firstAnswerFrom(records, wire.a.mac)).not.toBeNull();
    // In-process stop: the next request after stopHolding() is unanswered; a reply already in flight may land.
    expect(linger(records, wire.a.mac, tStop)).toBeLessThan(20);
    const after = records.filter((r) => r.sentAt > tStop + 20);
    expect(after.length).toBeGreaterThan(20);
    expect(after.every((r) => r.answers.length === 0)).toBe(true);
  });
});
