import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  arpProbe,
  arpReply,
  arpRequest,
  garpReply,
  garpRequest,
  macToBytes,
  macToString,
  neighborSolicitation,
  parseFrame,
  solicitedNa,
  solicitedNodeAddress,
  solicitedNodeMac,
  unsolicitedNa,
} from '../../src/net/frames.js';

const A = '02:00:00:00:00:0a';
const C = '02:00:00:00:00:0c';
const VIP4 = '198.18.0.100';
const VIP6 = '2001:db8::100';

/** Hex written field by field; spaces and `|` are only for the reader. */
const hex = (...parts: string[]): string => parts.join('').replace(/[\s|]/g, '');
const PAD18 = '00'.repeat(18);

/**
 * Independent ICMPv6 checksum: 32-bit accumulation over the pseudo-header + message, folded at the
 * end (the codec folds every step over 16-bit words). A correct frame sums to 0.
 */
function verifyIcmpv6(frame: Buffer): number {
  const src = frame.subarray(22, 38);
  const dst = frame.subarray(38, 54);
  const plen = frame.readUInt16BE(18);
  const msg = frame.subarray(54, 54 + plen);
  const words: number[] = [];
  const push = (b: Buffer): void => {
    for (let i = 0; i < b.length; i += 2) words.push((b[i]! << 8) | (b[i + 1] ?? 0));
  };
  push(src);
  push(dst);
  words.push(0, plen, 0, 58);
  push(msg);
  let s = words.reduce((a, w) => a + w, 0);
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return (~s & 0xffff);
}

describe('golden ARP frames', () => {
  it('gratuitous ARP request: broadcast, op 1, SPA=TPA=VIP, THA zero, 60 bytes', () => {
    const f = garpRequest(A, VIP4);
    expect(f.length).toBe(60);
    expect(f.toString('hex')).toBe(
      hex('ffffffffffff | 02000000000a | 0806', '0001 0800 06 04 0001', '02000000000a c6120064', '000000000000 c6120064', PAD18),
    );
  });

  it('gratuitous ARP reply: broadcast, op 2, THA = SHA (Linux arp_is_garp)', () => {
    expect(garpReply(A, VIP4).toString('hex')).toBe(
      hex('ffffffffffff | 02000000000a | 0806', '0001 0800 06 04 0002', '02000000000a c6120064', '02000000000a c6120064', PAD18),
    );
  });

  it('ARP reply unicast to the requester', () => {
    expect(arpReply({ mac: A, ip: VIP4, toMac: C, toIp: '198.18.0.12' }).toString('hex')).toBe(
      hex('02000000000c | 02000000000a | 0806', '0001 0800 06 04 0002', '02000000000a c6120064', '02000000000c c612000c', PAD18),
    );
  });

  it('ARP request and RFC 5227 probe (SPA 0.0.0.0)', () => {
    expect(arpRequest({ mac: C, senderIp: '198.18.0.12', target: VIP4 }).toString('hex')).toBe(
      hex('ffffffffffff | 02000000000c | 0806', '0001 0800 06 04 0001', '02000000000c c612000c', '000000000000 c6120064', PAD18),
    );
    expect(arpProbe(C, VIP4).toString('hex')).toBe(
      hex('ffffffffffff | 02000000000c | 0806', '0001 0800 06 04 0001', '02000000000c 00000000', '000000000000 c6120064', PAD18),
    );
  });
});

describe('golden IPv6 ND frames', () => {
  const VIP6_HEX = '20010db8000000000000000000000100';
  const C6_HEX = '20010db800000000000000000000000c';
  const ALL_NODES = 'ff020000000000000000000000000001';
  const SOL_NODE = 'ff0200000000000000000001ff000100';

  it('unsolicited NA: ff02::1, hop limit 255, S=0 O=1, target option', () => {
    const f = unsolicitedNa(A, VIP6);
    expect(f.toString('hex')).toBe(
      hex(
        '333300000001 | 02000000000a | 86dd',
        '60000000 0020 3a ff', VIP6_HEX, ALL_NODES,
        '88 00 f723 20000000', VIP6_HEX,
        '02 01 02000000000a',
      ),
    );
    expect(f.length).toBe(86);
    expect(verifyIcmpv6(f)).toBe(0);
  });

  it('solicited NA: unicast to the solicitor, S=1 O=1', () => {
    const f = solicitedNa({ mac: A, target: VIP6, toMac: C, toIp: '2001:db8::c' });
    expect(f.toString('hex')).toBe(
      hex('02000000000c | 02000000000a | 86dd', '60000000 0020 3a ff', VIP6_HEX, C6_HEX, '88 00 8862 60000000', VIP6_HEX, '02 01 02000000000a'),
    );
    expect(verifyIcmpv6(f)).toBe(0);
  });

  it('NA answering a DAD NS (source ::) goes to ff02::1 with S=0', () => {
    const f = solicitedNa({ mac: A, target: VIP6, toMac: C, toIp: '::' });
    expect(f.equals(unsolicitedNa(A, VIP6))).toBe(true);
  });

  it('NS to the solicited-node group with source link-layer option', () => {
    const f = neighborSolicitation({ mac: C, srcIp: '2001:db8::c', target: VIP6 });
    expect(f.toString('hex')).toBe(
      hex('3333ff000100 | 02000000000c | 86dd', '60000000 0020 3a ff', C6_HEX, SOL_NODE, '87 00 1a15 00000000', VIP6_HEX, '01 01 02000000000c'),
    );
    expect(verifyIcmpv6(f)).toBe(0);
  });

  it('DAD NS: source ::, no option', () => {
    const f = neighborSolicitation({ mac: C, srcIp: '::', target: VIP6 });
    expect(f.toString('hex')).toBe(
      hex('3333ff000100 | 02000000000c | 86dd', '60000000 0018 3a ff', '0'.repeat(32), SOL_NODE, '87 00 4aef 00000000', VIP6_HEX),
    );
    expect(verifyIcmpv6(f)).toBe(0);
  });
});

describe('parseFrame round trips', () => {
  it('ARP', () => {
    expect(parseFrame(garpReply(A, VIP4))).toEqual({
      kind: 'arp', ethDst: 'ff:ff:ff:ff:ff:ff', ethSrc: A, op: 2, sha: A, spa: VIP4, tha: A, tpa: VIP4,
    });
    expect(parseFrame(arpProbe(C, VIP4))).toMatchObject({ op: 1, spa: '0.0.0.0', tpa: VIP4, sha: C });
  });

  it('NA / NS', () => {
    expect(parseFrame(unsolicitedNa(A, VIP6))).toEqual({
      kind: 'na', ethDst: '33:33:00:00:00:01', ethSrc: A, src: VIP6, dst: 'ff02::1', hopLimit: 255, target: VIP6,
      router: false, solicited: false, override: true, targetLinkAddr: A,
    });
    expect(parseFrame(solicitedNa({ mac: A, target: VIP6, toMac: C, toIp: '2001:db8::c' }))).toMatchObject({
      kind: 'na', solicited: true, override: true, dst: '2001:db8::c',
    });
    expect(parseFrame(neighborSolicitation({ mac: C, srcIp: '2001:db8::c', target: VIP6 }))).toEqual({
      kind: 'ns', ethDst: '33:33:ff:00:01:00', ethSrc: C, src: '2001:db8::c', dst: 'ff02::1:ff00:100', hopLimit: 255,
      target: VIP6, sourceLinkAddr: C,
    });
    expect(parseFrame(neighborSolicitation({ mac: C, srcIp: '::', target: VIP6 }))).toMatchObject({ kind: 'ns', src: '::', sourceLinkAddr: null });
  });

  it('accepts trailing Ethernet padding after an IPv6 packet', () => {
    const f = Buffer.concat([unsolicitedNa(A, VIP6), Buffer.alloc(10)]);
    expect(parseFrame(f)).toMatchObject({ kind: 'na' });
  });

  it('rejects what a Linux receiver would drop', () => {
    const bad = (mut: (f: Buffer) => void, base = unsolicitedNa(A, VIP6)): void => {
      const f = Buffer.from(base);
      mut(f);
      expect(parseFrame(f)).toBeNull();
    };
    bad((f) => (f[21] = 64)); // hop limit
    bad((f) => (f[56] = f[56]! ^ 1)); // checksum
    bad((f) => (f[55] = 1)); // code
    bad((f) => (f[79] = 0)); // option length 0 (checksum stays wrong too, either way dropped)
    bad((f) => (f[58] = 0x60)); // S=1 to a multicast destination (checksum also off)
    bad((f) => f.writeUInt16BE(0x0800, 12)); // not ARP/IPv6
    bad((f) => f.writeUInt16BE(3, 20)); // ARP op 3
    expect(parseFrame(Buffer.alloc(0))).toBeNull();
    expect(parseFrame(garpRequest(A, VIP4).subarray(0, 41))).toBeNull();
  });
});

describe('address helpers', () => {
  it('MAC text <-> bytes', () => {
    expect(macToBytes('02:AA:bb:0c:0d:0E').toString('hex')).toBe('02aabb0c0d0e');
    expect(macToString(Buffer.from('02aabb0c0d0e', 'hex'))).toBe('02:aa:bb:0c:0d:0e');
    expect(() => macToBytes('02:aa:bb:0c:0d')).toThrow(/not a MAC/);
    expect(() => macToBytes('02:aa:bb:0c:0d:0g')).toThrow(/not a MAC/);
  });

  it('solicited-node address and MAC', () => {
    expect(solicitedNodeAddress('2001:db8::1:2345:6789')).toBe('ff02::1:ff45:6789');
    expect(solicitedNodeMac('2001:db8::1:2345:6789')).toBe('33:33:ff:45:67:89');
    expect(solicitedNodeMac(VIP6)).toBe('33:33:ff:00:01:00');
  });

});

describe('parseFrame never throws', () => {
  const valid = [
    garpRequest(A, VIP4),
    garpReply(A, VIP4),
    arpReply({ mac: A, ip: VIP4, toMac: C, toIp: '198.18.0.12' }),
    unsolicitedNa(A, VIP6),
    solicitedNa({ mac: A, target: VIP6, toMac: C, toIp: '2001:db8::c' }),
    neighborSolicitation({ mac: C, srcIp: '2001:db8::c', target: VIP6 }),
    neighborSolicitation({ mac: C, srcIp: '::', target: VIP6 }),
  ];

  it('random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const r = parseFrame(bytes);
        expect(r === null || typeof r.kind === 'string').toBe(true);
      }),
      { numRuns: 5000 },
    );
  });

  it('random bytes behind a plausible Ethernet + IPv6 ND header', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), fc.constantFrom(0x0806, 0x86dd), (tail, type) => {
        const head = Buffer.alloc(14);
        head.writeUInt16BE(type, 12);
        parseFrame(Buffer.concat([head, tail]));
      }),
      { numRuns: 5000 },
    );
  });

  it('mutated valid frames (byte flips, truncation, extension)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...valid),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        fc.nat(),
        fc.uint8Array({ maxLength: 40 }),
        (base, flips, cut, extra) => {
          const f = Buffer.from(base);
          for (const [pos, v] of flips) f[pos % f.length] = v;
          const g = Buffer.concat([f.subarray(0, cut % (f.length + 1)), extra]);
          const r = parseFrame(g);
          if (r && r.kind !== 'arp') expect(r.hopLimit).toBe(255);
        },
      ),
      { numRuns: 10000 },
    );
  });

  it('a mutated ND frame that still parses has a valid checksum', () => {
    fc.assert(
      fc.property(fc.constantFrom(...valid.slice(3)), fc.nat(), fc.integer({ min: 1, max: 255 }), (base, pos, x) => {
        const f = Buffer.from(base);
        const p = 14 + (pos % (f.length - 14));
        f[p] = (f[p]! ^ x) & 0xff;
        if (parseFrame(f) !== null) expect(verifyIcmpv6(f)).toBe(0);
      }),
      { numRuns: 5000 },
    );
  });
});
