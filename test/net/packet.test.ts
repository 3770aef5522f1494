import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arpRequest, garpRequest, solicitedNodeMac } from '../../src/net/frames.js';
import { interfaceInfo, openPacketSocket, PacketSocketError, type PacketSocket } from '../../src/net/packet.js';
import { createWire, sleep, VIP4, VIP6, type Wire } from './wire.js';

describe('interfaceInfo', () => {
  it('reads index and MAC from /sys, names the interface when it is missing', () => {
    expect(interfaceInfo('lo')).toEqual({ index: 1, mac: '00:00:00:00:00:00' });
    expect(() => interfaceInfo('vipd-nope0')).toThrow(/vipd-nope0: no such interface/);
    expect(() => interfaceInfo('../etc')).toThrow(PacketSocketError);
  });
});

describe.skipIf(process.getuid?.() !== 0)('AF_PACKET socket on a real wire', () => {
  let wire: Wire;
  const open: PacketSocket[] = [];
  const sock = async (host: 'a' | 'b' | 'c'): Promise<PacketSocket> => {
    const s = await openPacketSocket('eth0', { netns: wire[host].ns });
    open.push(s);
    return s;
  };
  beforeAll(async () => {
    wire = await createWire();
  });
  afterAll(() => {
    for (const s of open) s.close();
    wire?.destroy();
  });

  it('errors name the interface and carry the errno code', async () => {
    await expect(openPacketSocket('nope0', { netns: wire.a.ns })).rejects.toMatchObject({ name: 'PacketSocketError', code: 'ENODEV' });
    await expect(openPacketSocket('lo', { netns: wire.a.ns })).rejects.toThrow(/not an Ethernet interface/);
  });

  it('delivers ARP and NS/NA only, never our own frames; shares one kernel socket per interface', async () => {
    const a1 = await sock('a');
    const a2 = await sock('a');
    const c = await sock('c');
    expect(a1.mac).toBe(wire.a.mac);
    expect(a1.index).toBe(a2.index);
    const got1: Buffer[] = [];
    const got2: Buffer[] = [];
    const gotC: Buffer[] = [];
    a1.onFrame((f) => got1.push(f));
    const off2 = a2.onFrame((f) => got2.push(f));
    c.onFrame((f) => gotC.push(f));

    const ipv4 = Buffer.from(garpRequest(wire.c.mac, VIP4));
    ipv4.writeUInt16BE(0x0800, 12); // not ARP any more: filtered in the kernel
    c.send(ipv4);
    c.send(arpRequest({ mac: wire.c.mac, senderIp: wire.c.ip4, target: VIP4 }));
    await sleep(100);
    // Background ND from the young interfaces may arrive too; IPv4 never does.
    const types = (fs: Buffer[]): number[] => fs.map((f) => f.readUInt16BE(12));
    const arp = (fs: Buffer[]): Buffer[] => fs.filter((f) => f.readUInt16BE(12) === 0x0806);
    expect(types(got1).every((t) => t === 0x0806 || t === 0x86dd)).toBe(true);
    expect(arp(got1)).toHaveLength(1);
    expect(arp(got2)).toHaveLength(1);
    expect(arp(gotC)).toEqual([]); // its own frame is not looped back

    off2();
    a2.close();
    c.send(arpRequest({ mac: wire.c.mac, senderIp: wire.c.ip4, target: VIP4 }));
    await sleep(100);
    expect(arp(got1)).toHaveLength(2); // the other user still receives
    expect(arp(got2)).toHaveLength(1);
    expect(() => a2.send(garpRequest(wire.a.mac, VIP4))).toThrow(/socket closed/);
  });

  it('a deadline is checked just before send(2): at or past it nothing leaves and the error is ETIME', async () => {
    const a = await sock('a');
    const c = await sock('c');
    const got: Buffer[] = [];
    a.onFrame((f) => got.push(f));
    const frame = (): Buffer => arpRequest({ mac: wire.c.mac, senderIp: wire.c.ip4, target: VIP4 });
    const now = process.hrtime.bigint();
    expect(() => c.send(frame(), now)).toThrow(expect.objectContaining({ code: 'ETIME' }));
    expect(() => c.send(frame(), now - 1_000_000_000n)).toThrow(expect.objectContaining({ code: 'ETIME' }));
    await sleep(100);
    const arp = (): Buffer[] => got.filter((f) => f.readUInt16BE(12) === 0x0806);
    expect(arp()).toEqual([]);
    c.send(frame(), process.hrtime.bigint() + 1_000_000_000n);
    c.send(frame());
    await sleep(100);
    expect(arp()).toHaveLength(2);
  });

  it('with receiveTimestamps each frame carries the kernel receive time, not when JS got to read it', async () => {
    const a = await openPacketSocket('eth0', { netns: wire.a.ns, receiveTimestamps: true });
    open.push(a);
    const c = await sock('c');
    const got: Array<{ receivedAt: number | undefined; readAt: number }> = [];
    a.onFrame((f, receivedAt) => {
      if (f.readUInt16BE(12) === 0x0806) got.push({ receivedAt, readAt: Date.now() });
    });
    const sentAt = Date.now();
    c.send(arpRequest({ mac: wire.c.mac, senderIp: wire.c.ip4, target: VIP4 }));
    // The event loop is busy while the frame waits in the socket: it is read 300 ms late.
    while (Date.now() < sentAt + 300);
    await sleep(100);
    expect(got).toHaveLength(1);
    const { receivedAt, readAt } = got[0]!;
    expect(readAt - sentAt).toBeGreaterThanOrEqual(300);
    expect(receivedAt).toBeGreaterThanOrEqual(sentAt - 1);
    expect(receivedAt! - sentAt).toBeLessThan(150);
  });

  it('setInterest narrows the kernel filter to the union of its users; a user without one gets every frame', async () => {
    const x = await sock('b');
    const y = await sock('b');
    const c = await sock('c');
    const gotX: Buffer[] = [];
    const gotY: Buffer[] = [];
    x.onFrame((f) => gotX.push(f));
    y.onFrame((f) => gotY.push(f));
    const arpOnly = (fs: Buffer[]): string[] => fs.filter((f) => f.readUInt16BE(12) === 0x0806).map((f) => `${f.readUInt16BE(20)}:${[...f.subarray(38, 42)].join('.')}`);
    const SVC = '198.18.0.200';
    const sendAll = async (): Promise<void> => {
      c.send(arpRequest({ mac: wire.c.mac, senderIp: wire.c.ip4, target: VIP4 })); // a question about VIP4
      c.send(arpRequest({ mac: wire.c.mac, senderIp: wire.c.ip4, target: SVC })); // about another address
      c.send(garpRequest(wire.c.mac, VIP4)); // a claim on VIP4 (TPA = VIP4 too)
      await sleep(100);
    };

    x.setInterest({ claims: [VIP4], questions: [] });
    await sendAll();
    // y never narrowed: the kernel still passes everything, to both.
    expect(arpOnly(gotY)).toEqual([`1:${VIP4}`, `1:${SVC}`, `1:${VIP4}`]);
    expect(arpOnly(gotX)).toHaveLength(3);

    y.setInterest({ claims: [], questions: [SVC] });
    gotX.length = 0;
    gotY.length = 0;
    await sendAll();
    // Union: the claim on VIP4 (x) and the question about SVC (y); the question about VIP4 never arrives.
    expect(arpOnly(gotX)).toEqual([`1:${SVC}`, `1:${VIP4}`]);
    expect(arpOnly(gotY)).toEqual(arpOnly(gotX));
    expect(gotX.every((f) => f.readUInt16BE(12) === 0x0806)).toBe(true); // no background ND either

    y.close();
    gotX.length = 0;
    await sendAll();
    expect(arpOnly(gotX)).toEqual([`1:${VIP4}`]); // only x's claim left

    x.setInterest(null);
    gotX.length = 0;
    await sendAll();
    expect(arpOnly(gotX)).toHaveLength(3);
    x.close();
  });

  it('multicast membership is counted per group and released with the last user', async () => {
    const group = solicitedNodeMac(VIP6);
    const maddr = (): string => wire.exec(wire.b.ns, ['ip', 'maddr', 'show', 'dev', 'eth0']);
    const x = await sock('b');
    const y = await sock('b');
    x.addMulticast(group);
    y.addMulticast(group);
    expect(maddr()).toContain(group);
    x.removeMulticast(group);
    expect(maddr()).toContain(group);
    y.close();
    expect(maddr()).not.toContain(group);
    x.close();
  });
});
