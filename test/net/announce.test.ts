import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Announcer,
  AnnouncerConfigError,
  announceOffsets,
  checkBurst,
  claimIn,
  DEFAULT_BURST,
  nextAnnounceDelay,
  type ClaimHow,
  type SentKind,
} from '../../src/net/announce.js';
import {
  arpRequest,
  garpReply,
  garpRequest,
  neighborSolicitation,
  parseFrame,
  unsolicitedNa,
  type ParsedArp,
  type ParsedFrame,
  type ParsedNa,
} from '../../src/net/frames.js';
import { openPacketSocket, type PacketSocket } from '../../src/net/packet.js';
import { createLogger } from '../../src/observe/log.js';
import { metrics } from '../../src/observe/metrics.js';
import { createWire, sleep, VIP4, VIP6, waitFor, type CapturedFrame, type Wire } from './wire.js';

const log = createLogger('silent');

describe('announce schedule (pure)', () => {
  it('burst then refresh', () => {
    expect(announceOffsets(8, DEFAULT_BURST, 3000)).toEqual([0, 100, 300, 600, 1000, 4000, 7000, 10000]);
    expect(announceOffsets(4, [0], 200)).toEqual([0, 200, 400, 600]);
    expect(nextAnnounceDelay(0, [0, 100], 3000)).toBe(100);
    expect(nextAnnounceDelay(1, [0, 100], 3000)).toBe(3000);
  });

  it('rejects a burst that does not start at once or does not increase', () => {
    expect(() => checkBurst([])).toThrow(AnnouncerConfigError);
    expect(() => checkBurst([50, 100])).toThrow(/must start at 0/);
    expect(() => checkBurst([0, 100, 100])).toThrow(/must increase/);
    expect(() => checkBurst([0, Number.NaN])).toThrow(/finite/);
  });
});

describe('claimIn (pure)', () => {
  const own = '02:00:00:00:01:11';
  const other = '02:00:00:00:01:12';
  const p = (b: Buffer): ParsedFrame => parseFrame(b)!;
  it('gARP, ARP reply, NA from another MAC claim the VIP; our own frames and questions do not', () => {
    expect(claimIn(p(garpRequest(other, VIP4)), VIP4, own)).toEqual({ mac: other, how: 'garp' });
    expect(claimIn(p(garpReply(other, VIP4)), VIP4, own)).toEqual({ mac: other, how: 'garp' });
    expect(claimIn(p(garpRequest(own, VIP4)), VIP4, own)).toBeNull();
    expect(claimIn(p(arpRequest({ mac: other, senderIp: '198.18.0.2', target: VIP4 })), VIP4, own)).toBeNull();
    expect(claimIn(p(arpRequest({ mac: other, senderIp: VIP4, target: '198.18.0.2' })), VIP4, own)).toEqual({ mac: other, how: 'arp-request-from-vip' });
    expect(claimIn(p(unsolicitedNa(other, VIP6)), VIP6, own)).toEqual({ mac: other, how: 'na' });
    expect(claimIn(p(neighborSolicitation({ mac: other, srcIp: '::', target: VIP6 })), VIP6, own)).toBeNull();
    expect(claimIn(p(neighborSolicitation({ mac: other, srcIp: VIP6, target: '2001:db8::2' })), VIP6, own)).toEqual({ mac: other, how: 'ns-from-vip' });
  });
});

const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('announcer on a real wire (netns + bridge + tcpdump)', () => {
  let wire: Wire;
  const open: Array<{ close(): void }> = [];
  const announcer = async (host: 'a' | 'b', vip: string, extra: { refreshMs?: number; burst?: number[]; answer?: boolean } = {}): Promise<Announcer> => {
    const a = await Announcer.open({ ifname: 'eth0', vip, refreshMs: extra.refreshMs ?? 3000, answer: extra.answer ?? true, log, netns: wire[host].ns, ...(extra.burst ? { burst: extra.burst } : {}) });
    open.push(a);
    return a;
  };
  const rawSocket = async (host: 'a' | 'b' | 'c'): Promise<{ sock: PacketSocket; got: Array<{ at: number; f: ParsedFrame }> }> => {
    const sock = await openPacketSocket('eth0', { netns: wire[host].ns });
    open.push(sock);
    const got: Array<{ at: number; f: ParsedFrame }> = [];
    sock.onFrame((b) => {
      const f = parseFrame(b);
      if (f) got.push({ at: Date.now(), f });
    });
    return { sock, got };
  };
  const arpFrom = (frames: CapturedFrame[], mac: string): Array<{ time: number; f: ParsedArp }> =>
    frames.flatMap((c) => (c.frame?.kind === 'arp' && c.frame.sha === mac ? [{ time: c.time, f: c.frame }] : []));
  const naFrom = (frames: CapturedFrame[], mac: string): Array<{ time: number; f: ParsedNa }> =>
    frames.flatMap((c) => (c.frame?.kind === 'na' && c.frame.ethSrc === mac ? [{ time: c.time, f: c.frame }] : []));

  beforeAll(async () => {
    wire = await createWire();
  });
  afterAll(() => {
    for (const o of open) o.close();
    wire?.destroy();
  });

  const closeAll = (): void => {
    for (const o of open.splice(0)) o.close();
  };

  it('IPv4 takeover: gratuitous ARP request + reply at 0, 100, 300, 600, 1000 ms, nothing after stopHolding', async () => {
    const cap = await wire.capture();
    const ann = await announcer('a', VIP4);
    const t0 = Date.now();
    ann.startHolding(() => true);
    await sleep(1400);
    ann.stopHolding();
    const tStop = Date.now();
    await sleep(600);
    const frames = arpFrom(await cap.stop(), wire.a.mac);
    closeAll();

    const req = frames.filter((x) => x.f.op === 1);
    const rep = frames.filter((x) => x.f.op === 2);
    expect(req).toHaveLength(5);
    expect(rep).toHaveLength(5);
    for (const { f } of req) expect(f).toMatchObject({ ethDst: 'ff:ff:ff:ff:ff:ff', ethSrc: wire.a.mac, sha: wire.a.mac, spa: VIP4, tpa: VIP4, tha: '00:00:00:00:00:00' });
    for (const { f } of rep) expect(f).toMatchObject({ ethDst: 'ff:ff:ff:ff:ff:ff', sha: wire.a.mac, spa: VIP4, tpa: VIP4, tha: wire.a.mac });
    const first = req[0]!.time;
    expect(first - t0).toBeLessThan(100);
    const offsets = req.map((x) => x.time - first);
    DEFAULT_BURST.forEach((want, i) => expect(Math.abs(offsets[i]! - want)).toBeLessThan(80));
    expect(frames.every((x) => x.time <= tStop + 5)).toBe(true);
  });

  it('refresh every refreshMs after the burst', async () => {
    const cap = await wire.capture();
    const ann = await announcer('a', VIP4, { refreshMs: 200, burst: [0] });
    ann.startHolding(() => true);
    await sleep(1100);
    ann.stopHolding();
    const req = arpFrom(await cap.stop(), wire.a.mac).filter((x) => x.f.op === 1);
    closeAll();
    expect(req.length).toBeGreaterThanOrEqual(5);
    expect(req.length).toBeLessThanOrEqual(7);
    const gaps = req.slice(1).map((x, i) => x.time - req[i]!.time).sort((x, y) => x - y);
    expect(Math.abs(gaps[Math.floor(gaps.length / 2)]! - 200)).toBeLessThan(50);
  });

  it('IPv6 takeover: unsolicited NA to ff02::1, hop limit 255, S=0 O=1, target option', async () => {
    const cap = await wire.capture();
    const ann = await announcer('a', VIP6);
    ann.startHolding(() => true);
    await sleep(1400);
    ann.stopHolding();
    await sleep(300);
    const nas = naFrom(await cap.stop(), wire.a.mac);
    closeAll();
    expect(nas).toHaveLength(5);
    for (const { f } of nas) {
      expect(f).toMatchObject({ ethDst: '33:33:00:00:00:01', dst: 'ff02::1', src: VIP6, hopLimit: 255, target: VIP6, solicited: false, override: true, router: false, targetLinkAddr: wire.a.mac });
    }
    const offsets = nas.map((x) => x.time - nas[0]!.time);
    DEFAULT_BURST.forEach((want, i) => expect(Math.abs(offsets[i]! - want)).toBeLessThan(80));
  });

  it('the kernel filter: a standby wakes only for claims on its VIP, a holder also for questions about it', async () => {
    const ann = await announcer('a', VIP4);
    // A second user of a's kernel socket that needs nothing itself: it sees what the announcer asked for.
    const { sock, got } = await rawSocket('a');
    sock.setInterest({ claims: [], questions: [] });
    const { sock: c } = await rawSocket('c');
    const seen = async (): Promise<string[]> => {
      got.length = 0;
      c.send(arpRequest({ mac: wire.c.mac, senderIp: wire.c.ip4, target: VIP4 }));
      c.send(arpRequest({ mac: wire.c.mac, senderIp: wire.c.ip4, target: '198.18.0.201' }));
      c.send(garpRequest(wire.c.mac, '198.18.0.202'));
      c.send(garpRequest(wire.c.mac, VIP4));
      await sleep(100);
      return got.flatMap((g) => (g.f.kind === 'arp' ? [`${g.f.spa}>${g.f.tpa}`] : [`${g.f.kind}`]));
    };
    const question = `${wire.c.ip4}>${VIP4}`;
    const claim = `${VIP4}>${VIP4}`;
    expect(await seen()).toEqual([claim]);
    ann.startHolding(() => true);
    expect(await seen()).toEqual([question, claim]);
    ann.stopHolding();
    expect(await seen()).toEqual([claim]);
    closeAll();
  });

  it('answers ARP requests only while holding and while mayAnswer() is true', async () => {
    const ann = await announcer('a', VIP4, { burst: [0], refreshMs: 60_000 });
    const { sock, got } = await rawSocket('c');
    const ask = async (): Promise<ParsedArp[]> => {
      got.length = 0;
      sock.send(arpRequest({ mac: wire.c.mac, senderIp: wire.c.ip4, target: VIP4 }));
      await sleep(250);
      return got.flatMap((g) => (g.f.kind === 'arp' && g.f.op === 2 && g.f.tha === wire.c.mac ? [g.f] : []));
    };
    expect(await ask()).toEqual([]);
    let may = true;
    const answers: SentKind[] = [];
    ann.on('sent', (k) => answers.push(k));
    ann.startHolding(() => may);
    const replies = await ask();
    expect(replies).toHaveLength(1);
    expect(replies[0]).toEqual({ kind: 'arp', ethDst: wire.c.mac, ethSrc: wire.a.mac, op: 2, sha: wire.a.mac, spa: VIP4, tha: wire.c.mac, tpa: wire.c.ip4 });
    expect(answers).toContain('arp-reply');
    may = false;
    expect(await ask()).toEqual([]);
    may = true;
    expect(await ask()).toHaveLength(1);
    // The grant's end also travels with each frame to the addon: one in the past stops answers
    // even while mayAnswer() still says yes (as for a process descheduled between the two).
    let until = performance.now() + 60_000;
    ann.startHolding(() => true, () => until);
    expect(await ask()).toHaveLength(1);
    until = performance.now() - 1;
    expect(await ask()).toEqual([]);
    ann.stopHolding();
    expect(await ask()).toEqual([]);
    closeAll();
  });

  it('the Linux client resolves the VIP to the agent (ARP and ND), and the responder split works: VIP on lo, kernel silent', async () => {
    const { a, c } = wire;
    // responder `agent`: VIP on lo, kernel must not answer ARP for it on eth0 (strictARP).
    wire.exec(a.ns, ['sysctl', '-qw', 'net.ipv4.conf.all.arp_ignore=1', 'net.ipv4.conf.all.arp_announce=2']);
    wire.exec(a.ns, ['ip', 'addr', 'add', `${VIP4}/32`, 'dev', 'lo']);
    wire.exec(a.ns, ['ip', '-6', 'addr', 'add', `${VIP6}/128`, 'dev', 'lo', 'nodad']);
    const ping = async (vip: string): Promise<boolean> => {
      wire.exec(c.ns, ['ip', 'neigh', 'flush', 'all']);
      // Async: the agent under test runs in this process and must answer while ping waits.
      return (await wire.run(c.ns, ['ping', '-c', '1', '-W', '1', vip])).code === 0;
    };
    try {
      // Nobody answers for the VIP: the kernel of `a` stays silent although the address is local.
      expect(await ping(VIP4)).toBe(false);
      expect(await ping(VIP6)).toBe(false);
      const a4 = await announcer('a', VIP4, { burst: [0], refreshMs: 60_000 });
      const a6 = await announcer('a', VIP6, { burst: [0], refreshMs: 60_000 });
      a4.startHolding(() => true);
      a6.startHolding(() => true);
      expect(await ping(VIP4)).toBe(true);
      expect(wire.exec(c.ns, ['ip', 'neigh', 'show', VIP4])).toContain(a.mac);
      expect(await ping(VIP6)).toBe(true);
      expect(wire.exec(c.ns, ['ip', '-6', 'neigh', 'show', VIP6])).toContain(a.mac);
      a4.stopHolding();
      a6.stopHolding();
      expect(await ping(VIP4)).toBe(false);
      expect(await ping(VIP6)).toBe(false);
    } finally {
      closeAll();
      wire.exec(a.ns, ['ip', 'addr', 'del', `${VIP4}/32`, 'dev', 'lo'], true);
      wire.exec(a.ns, ['ip', '-6', 'addr', 'del', `${VIP6}/128`, 'dev', 'lo'], true);
    }
  });

  it('answers a DAD NS (source ::) with an NA to ff02::1, S=0', async () => {
    const ann = await announcer('a', VIP6, { burst: [0], refreshMs: 60_000 });
    const { sock, got } = await rawSocket('c');
    ann.startHolding(() => true);
    await sleep(50);
    got.length = 0;
    sock.send(neighborSolicitation({ mac: wire.c.mac, srcIp: '::', target: VIP6 }));
    await waitFor(() => got.some((g) => g.f.kind === 'na'), 1000, 'NA');
    const na = got.find((g) => g.f.kind === 'na')!.f;
    expect(na).toMatchObject({ ethSrc: wire.a.mac, dst: 'ff02::1', solicited: false, override: true, target: VIP6, targetLinkAddr: wire.a.mac });
    closeAll();
  });

  it('another MAC claiming the VIP while we hold: conflict reported, counted, answered once per interval', async () => {
    const ann = await announcer('a', VIP4, { burst: [0], refreshMs: 60_000 });
    const { sock } = await rawSocket('b');
    const conflicts: Array<[string, ClaimHow]> = [];
    ann.on('conflict', (mac, how) => conflicts.push([mac, how]));
    ann.startHolding(() => true);
    await sleep(100);
    const before = (await metrics.conflicts.get()).values.find((v) => v.labels.vip === VIP4)?.value ?? 0;
    const cap = await wire.capture();
    const tClaim = Date.now();
    for (let i = 0; i < 5; i++) {
      sock.send(garpRequest(wire.b.mac, VIP4));
      await sleep(50);
    }
    await sleep(300);
    const frames = await cap.stop();
    closeAll();
    expect(conflicts).toHaveLength(5);
    expect(conflicts[0]).toEqual([wire.b.mac, 'garp']);
    const after = (await metrics.conflicts.get()).values.find((v) => v.labels.vip === VIP4)?.value ?? 0;
    expect(after - before).toBe(5);
    const defended = arpFrom(frames, wire.a.mac).filter((x) => x.time >= tClaim);
    expect(defended.map((x) => x.f.op).sort()).toEqual([1, 2]); // one announcement (request + reply), rate-limited
    expect(ann.lastHolderSeen()).toBe(wire.b.mac);
  });

  it('cold-start probe finds an agent holder and a plain kernel holder, and nothing when nobody holds', async () => {
    const holder4 = await announcer('a', VIP4, { burst: [0], refreshMs: 60_000 });
    const holder6 = await announcer('a', VIP6, { burst: [0], refreshMs: 60_000 });
    const prober4 = await announcer('b', VIP4);
    const prober6 = await announcer('b', VIP6);
    expect(await prober4.probe(300)).toBeNull();
    expect(await prober6.probe(300)).toBeNull();
    holder4.startHolding(() => true);
    holder6.startHolding(() => true);
    await sleep(50);
    expect(prober4.lastHolderSeen()).toBe(wire.a.mac); // the takeover gARP was seen passively
    expect(await prober4.probe(300)).toBe(wire.a.mac);
    expect(await prober6.probe(300)).toBe(wire.a.mac);
    holder4.stopHolding();
    holder6.stopHolding();
    closeAll();

    // A Linux host that simply has the address (keepalived style) answers the probe itself.
    const { c } = wire;
    wire.exec(c.ns, ['ip', 'addr', 'add', `${VIP4}/32`, 'dev', 'eth0']);
    wire.exec(c.ns, ['ip', '-6', 'addr', 'add', `${VIP6}/128`, 'dev', 'eth0', 'nodad']);
    try {
      const p4 = await announcer('b', VIP4);
      const p6 = await announcer('b', VIP6);
      expect(await p4.probe(300)).toBe(c.mac);
      expect(await p6.probe(300)).toBe(c.mac);
    } finally {
      closeAll();
      wire.exec(c.ns, ['ip', 'addr', 'del', `${VIP4}/32`, 'dev', 'eth0'], true);
      wire.exec(c.ns, ['ip', '-6', 'addr', 'del', `${VIP6}/128`, 'dev', 'eth0'], true);
    }
  });

  it('a socket per interface is shared and closes with its last user', async () => {
    const x = await announcer('a', VIP4);
    const y = await announcer('a', VIP6);
    const { sock, got } = await rawSocket('c');
    x.close();
    y.startHolding(() => true); // still works on the shared socket
    await waitFor(() => got.some((g) => g.f.kind === 'na'), 1000, 'NA after the other user closed');
    sock.send(arpRequest({ mac: wire.c.mac, senderIp: wire.c.ip4, target: VIP4 }));
    closeAll();
  });
});
