import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ACCEPT_LEN, ALL_FRAMES, BPF_MAXINSNS, OP, encodeProgram, programFor, type Insn } from '../../src/net/bpf.js';
import {
  arpProbe,
  arpReply,
  arpRequest,
  garpReply,
  garpRequest,
  neighborSolicitation,
  solicitedNa,
  unsolicitedNa,
} from '../../src/net/frames.js';

/** What the kernel tells a packet socket filter besides the bytes. */
interface Meta {
  outgoing?: boolean;
  vlan?: boolean;
}

/**
 * A classic BPF interpreter for the instructions programFor emits (ld w/h/b abs, the two
 * ancillary loads, jeq, ja, ret), with the kernel's rules: a load past the end returns 0 (drop),
 * jumps are relative to the next instruction, falling off the end is an error.
 */
function run(prog: readonly Insn[], frame: Buffer, meta: Meta = {}): number {
  let a = 0;
  for (let pc = 0, steps = 0; pc < prog.length; pc++, steps++) {
    if (steps > prog.length) throw new Error('loop');
    const { code, jt, jf, k } = prog[pc]!;
    const off = k | 0;
    switch (code) {
      case OP.ldw:
      case OP.ldh:
      case OP.ldb: {
        if (off < 0) {
          const ad = off + 0x1000;
          if (ad === 4) a = meta.outgoing ? 4 : 0;
          else if (ad === 44) a = meta.vlan ? 1 : 0;
          else throw new Error(`ancillary ${ad}`);
          break;
        }
        const size = code === OP.ldw ? 4 : code === OP.ldh ? 2 : 1;
        if (off + size > frame.length) return 0;
        a = size === 4 ? frame.readUInt32BE(off) : size === 2 ? frame.readUInt16BE(off) : frame.readUInt8(off);
        break;
      }
      case OP.jeq:
        pc += a >>> 0 === k >>> 0 ? jt : jf;
        break;
      case OP.ja:
        pc += k;
        break;
      case OP.ret:
        return k;
      default:
        throw new Error(`opcode ${code}`);
    }
  }
  throw new Error('fell off the end');
}

const MAC = '02:00:00:00:00:0a';
const OTHER = '02:00:00:00:00:0b';
const VIP4 = '198.18.0.100';
const SVC4 = '198.18.0.200';
const VIP6 = '2001:db8::100';
const CLIENT4 = '198.18.0.2';
const CLIENT6 = '2001:db8::2';

const accepts = (prog: readonly Insn[] | null, frame: Buffer, meta?: Meta): boolean => run(prog!, frame, meta) === ACCEPT_LEN;

describe('programFor', () => {
  const standby = programFor({ claims: [VIP4, VIP6], questions: [] });
  const holder = programFor({ claims: [VIP4, VIP6], questions: [VIP4, VIP6] });

  it('a standby gets claims on its addresses, not the clients\' questions', () => {
    expect(accepts(standby, garpRequest(OTHER, VIP4))).toBe(true);
    expect(accepts(standby, garpReply(OTHER, VIP4))).toBe(true);
    expect(accepts(standby, arpReply({ mac: OTHER, ip: VIP4, toMac: MAC, toIp: CLIENT4 }))).toBe(true);
    expect(accepts(standby, unsolicitedNa(OTHER, VIP6))).toBe(true);
    expect(accepts(standby, neighborSolicitation({ mac: OTHER, srcIp: VIP6, target: CLIENT6 }))).toBe(true);
    expect(accepts(standby, arpRequest({ mac: OTHER, senderIp: CLIENT4, target: VIP4 }))).toBe(false);
    expect(accepts(standby, arpProbe(OTHER, VIP4))).toBe(false);
    expect(accepts(standby, neighborSolicitation({ mac: OTHER, srcIp: CLIENT6, target: VIP6 }))).toBe(false);
  });

  it('a holder also gets the questions about its addresses', () => {
    expect(accepts(holder, arpRequest({ mac: OTHER, senderIp: CLIENT4, target: VIP4 }))).toBe(true);
    expect(accepts(holder, arpProbe(OTHER, VIP4))).toBe(true);
    expect(accepts(holder, neighborSolicitation({ mac: OTHER, srcIp: CLIENT6, target: VIP6 }))).toBe(true);
    expect(accepts(holder, neighborSolicitation({ mac: OTHER, srcIp: '::', target: VIP6 }))).toBe(true);
  });

  it('nobody gets frames about other addresses, other ethertypes, outgoing or VLAN-tagged frames', () => {
    for (const p of [standby, holder]) {
      expect(accepts(p, arpRequest({ mac: OTHER, senderIp: CLIENT4, target: SVC4 }))).toBe(false);
      expect(accepts(p, garpRequest(OTHER, SVC4))).toBe(false);
      expect(accepts(p, unsolicitedNa(OTHER, '2001:db8::101'))).toBe(false);
      expect(accepts(p, solicitedNa({ mac: OTHER, target: CLIENT6, toMac: MAC, toIp: VIP6 }))).toBe(false);
      const ipv4 = Buffer.from(garpRequest(OTHER, VIP4));
      ipv4.writeUInt16BE(0x0800, 12);
      expect(accepts(p, ipv4)).toBe(false);
      expect(accepts(p, garpRequest(OTHER, VIP4), { outgoing: true })).toBe(false);
      expect(accepts(p, garpRequest(OTHER, VIP4), { vlan: true })).toBe(false);
      expect(accepts(p, garpRequest(OTHER, VIP4).subarray(0, 30))).toBe(false);
    }
  });

  it('an IPv6 address differing in any one word does not match', () => {
    const p = programFor({ claims: [], questions: ['2001:db8:1:2:3:4:5:6'] });
    for (const t of ['2001:db8:1:2:3:4:5:6', '2001:db9:1:2:3:4:5:6', '2001:db8:1:3:3:4:5:6', '2001:db8:1:2:3:5:5:6', '2001:db8:1:2:3:4:5:7']) {
      expect(accepts(p, neighborSolicitation({ mac: OTHER, srcIp: CLIENT6, target: t }))).toBe(t === '2001:db8:1:2:3:4:5:6');
    }
  });

  it('"all" passes every ARP and NS/NA frame, as the addon\'s open-time filter', () => {
    const all = programFor('all')!;
    expect(accepts(all, arpRequest({ mac: OTHER, senderIp: CLIENT4, target: SVC4 }))).toBe(true);
    expect(accepts(all, unsolicitedNa(OTHER, '2001:db8::101'))).toBe(true);
    expect(accepts(all, garpRequest(OTHER, VIP4), { outgoing: true })).toBe(false);
    expect(ALL_FRAMES.length).toBe(all.length * 8);
  });

  it('matches exactly the addresses given, for any set of them; jumps stay short; too many is null', () => {
    const v4 = fc.tuple(fc.constant(198), fc.constant(18), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));
    fc.assert(
      fc.property(fc.uniqueArray(v4, { maxLength: 40 }), fc.uniqueArray(v4, { maxLength: 40 }), v4, (claims, questions, probe) => {
        const p = programFor({ claims, questions })!;
        for (const insn of p) expect(insn.jt <= 255 && insn.jf <= 255).toBe(true);
        // A gratuitous ARP asks about its own address too, so it also passes as a question.
        expect(accepts(p, garpRequest(OTHER, probe))).toBe(claims.includes(probe) || questions.includes(probe));
        expect(accepts(p, arpRequest({ mac: OTHER, senderIp: '0.0.0.1', target: probe }))).toBe(questions.includes(probe) || claims.includes('0.0.0.1'));
      }),
    );
    const many = Array.from({ length: 1500 }, (_, i) => `10.${i >> 8}.${i & 255}.1`);
    expect(programFor({ claims: many, questions: [] })!.length).toBeLessThanOrEqual(BPF_MAXINSNS);
    expect(programFor({ claims: many, questions: many })).toBeNull();
  });

  it('encodes struct sock_filter in host order', () => {
    const b = encodeProgram([{ code: 0x15, jt: 1, jf: 2, k: 0xc6120064 }]);
    expect(b.length).toBe(8);
    expect([b.readUInt16LE(0), b[2], b[3], b.readUInt32LE(4)]).toEqual([0x15, 1, 2, 0xc6120064]);
  });
});
