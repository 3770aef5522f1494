/**
 * `npm run bench:grants-scale -- [--members 100] [--voters 3] [--ips 1000] [--seconds 10]`
 *
 * What service-IP grants (src/services/logic/grants.ts) cost a voter as the cluster grows: a
 * simulation of the real cores and the real wire codec (grant-wire.ts, HMAC included) at the peer
 * defaults (H 50 ms, E 200 ms), in one process, no network. Every member claims the IPs that
 * rendezvous gives it over the live view, renews every H, and every voter answers every claim.
 * One JSON row per size: messages and bytes per second through one voter (in and out), the
 * voter's CPU per claim (decode + replay check + core + encode), and the whole process's CPU
 * per simulated second. Sizes run side by side in one process, smallest first.
 */
import { parseArgs } from 'node:util';
import { createHmac } from 'node:crypto';
import { owner } from '../src/services/logic/rendezvous.js';
import { initMember, initVoter, memberStep, voterOnClaim, type ClaimRespMsg, type MemberEffect, type MemberState, type VoterState } from '../src/services/logic/grants.js';
import { decodeGrant, GrantCodec } from '../src/services/grant-wire.js';
import { ReplayGuard } from '../src/election/peers/codec.js';

const { values } = parseArgs({
  options: { members: { type: 'string' }, voters: { type: 'string' }, ips: { type: 'string' }, seconds: { type: 'string' } },
  strict: true,
});
const posInt = (name: string, raw: string | undefined, dflt: number): number => {
  const n = raw === undefined ? dflt : Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`bench:grants-scale: --${name} must be a positive integer, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
};
const maxMembers = posInt('members', values.members, 100);
const voterCount = posInt('voters', values.voters, 3);
const ipsPer100 = posInt('ips', values.ips, 1000);
const seconds = posInt('seconds', values.seconds, 10);
const TIMING = { heartbeatMs: 50, electionTimeoutMs: 200, lingerMs: 0, skew: 0.01 };
const KEY = createHmac('sha256', 'bench').update('grants-scale').digest();

function run(members: number): Record<string, unknown> {
  const ipCount = Math.max(1, Math.round((ipsPer100 * members) / 100));
  const voterNames = Array.from({ length: voterCount }, (_, i) => `cp${i + 1}`);
  const memberNames = [...voterNames, ...Array.from({ length: Math.max(0, members - voterCount) }, (_, i) => `w${i + 1}`)].slice(0, members);
  const ips = Array.from({ length: ipCount }, (_, i) => `198.18.${10 + (i >> 8)}.${i & 255}`);
  const epoch = (n: string, role: string) => createHmac('sha256', role).update(n).digest('hex').slice(0, 16);
  const voters = new Map<string, { state: VoterState; codec: GrantCodec; guard: ReplayGuard }>();
  for (const v of voterNames) voters.set(v, { state: initVoter({ self: v, electionTimeoutMs: TIMING.electionTimeoutMs }, -1000, epoch(v, 'voter')), codec: new GrantCodec({ key: KEY, epoch: epoch(v, 'voter') }), guard: new ReplayGuard({ peers: [], openSenders: 4096 }) });
  const ms = new Map<string, { state: MemberState; codec: GrantCodec; guard: ReplayGuard; next: number }>();
  for (const m of memberNames) ms.set(m, { state: initMember({ ...TIMING, self: m, voters: voterNames }, 0, epoch(m, 'member')), codec: new GrantCodec({ key: KEY, epoch: epoch(m, 'member') }), guard: new ReplayGuard({ peers: voterNames }), next: Math.random() * TIMING.heartbeatMs });

  const watched = voterNames[0]!;
  let inMsgs = 0;
  let outMsgs = 0;
  let inBytes = 0;
  let outBytes = 0;
  let voterNs = 0n;
  let claimsAtWatched = 0;
  let held = 0;
  const warmupMs = 1000;
  const wall = 1_700_000_000_000;

  const deliverToMember = (m: string, buf: Buffer, now: number) => {
    const mm = ms.get(m)!;
    const d = decodeGrant(buf, { key: KEY, self: m, accept: (from, type) => type === 'claim-resp' && voters.has(from) });
    if (!d.ok || d.msg.type !== 'claim-resp' || !mm.guard.admit(d.header, now, wall + now).ok) throw new Error(`member ${m} dropped an answer: ${d.ok ? 'replay' : d.reason}`);
    apply(m, memberStep(mm.state, { type: 'message', now, msg: d.msg as ClaimRespMsg }), now);
  };
  const apply = (m: string, fx: MemberEffect[], now: number): void => {
    const mm = ms.get(m)!;
    let replace = false;
    for (const f of fx) {
      if (f.type === 'live') replace = true;
      if (f.type !== 'send') continue;
      const buf = mm.codec.encode(f.msg, wall + now);
      const v = voters.get(f.msg.to)!;
      const t0 = process.hrtime.bigint();
      const d = decodeGrant(buf, { key: KEY, self: f.msg.to, accept: (_from, type) => type === 'claim' });
      if (!d.ok || d.msg.type !== 'claim' || !v.guard.admit(d.header, now, wall + now).ok) throw new Error(`voter dropped a claim: ${d.ok ? 'replay' : d.reason}`);
      const resp = voterOnClaim(v.state, now, d.msg);
      const out = resp === null ? null : v.codec.encode(resp, wall + now);
      const dt = process.hrtime.bigint() - t0;
      if (f.msg.to === watched && now >= warmupMs) {
        inMsgs++;
        inBytes += buf.length;
        voterNs += dt;
        claimsAtWatched++;
        if (out) {
          outMsgs++;
          outBytes += out.length;
        }
      }
      if (out) deliverToMember(m, out, now);
    }
    if (replace) {
      const live = mm.state.reportedLive === '' ? [] : mm.state.reportedLive.split(',');
      apply(m, memberStep(mm.state, { type: 'want', now, ips: ips.filter((ip) => owner(ip, live) === m) }), now);
    }
  };

  const cpu0 = process.cpuUsage();
  const endMs = warmupMs + seconds * 1000;
  for (let now = 0; now <= endMs; now += 1) {
    for (const [m, mm] of ms) {
      if (now < mm.next) continue;
      mm.next = now + TIMING.heartbeatMs;
      apply(m, memberStep(mm.state, { type: 'tick', now }), now);
    }
  }
  const cpu = process.cpuUsage(cpu0);
  for (const mm of ms.values()) held += mm.state.reported.size;
  const s = seconds;
  return {
    bench: 'grants-scale',
    members,
    voters: voterCount,
    ips: ipCount,
    ips_held: held,
    heartbeat_ms: TIMING.heartbeatMs,
    election_timeout_ms: TIMING.electionTimeoutMs,
    per_voter_msgs_in_per_s: Math.round(inMsgs / s),
    per_voter_msgs_out_per_s: Math.round(outMsgs / s),
    per_voter_kbytes_in_per_s: Math.round(inBytes / s / 102.4) / 10,
    per_voter_kbytes_out_per_s: Math.round(outBytes / s / 102.4) / 10,
    voter_us_per_claim: Math.round(Number(voterNs / BigInt(Math.max(1, claimsAtWatched))) / 100) / 10,
    voter_cpu_percent_est: Math.round((Number(voterNs) / 1e9 / s) * 1000) / 10,
    process_cpu_s_per_simulated_s: Math.round(((cpu.user + cpu.system) / 1e6 / (s + warmupMs / 1000)) * 100) / 100,
  };
}

for (const n of [...new Set([3, 10, 30, maxMembers].filter((n) => n <= maxMembers))]) console.log(JSON.stringify(run(n)));
