import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parsePcap, PcapFormatError, readPcapRecords, writePcap } from '../../lab/pcap.js';

// Hand-made files: a global header then records, each field written explicitly so the test
// does not depend on the writer it also checks.
function header(magic: number, le: boolean, linkType = 1, snapLen = 65535): Buffer {
  const h = Buffer.alloc(24);
  const w = (v: number, o: number): void => void (le ? h.writeUInt32LE(v, o) : h.writeUInt32BE(v, o));
  const w16 = (v: number, o: number): void => void (le ? h.writeUInt16LE(v, o) : h.writeUInt16BE(v, o));
  w(magic, 0);
  w16(2, 4);
  w16(4, 6);
  w(0, 8);
  w(0, 12);
  w(snapLen, 16);
  w(linkType, 20);
  return h;
}

function record(le: boolean, sec: number, frac: number, data: number[], origLen = data.length): Buffer {
  const h = Buffer.alloc(16);
  const w = (v: number, o: number): void => void (le ? h.writeUInt32LE(v, o) : h.writeUInt32BE(v, o));
  w(sec, 0);
  w(frac, 4);
  w(data.length, 8);
  w(origLen, 12);
  return Buffer.concat([h, Buffer.from(data)]);
}

describe('pcap reader', () => {
  it('reads a little-endian microsecond file byte for byte', () => {
    const bytes = Buffer.from([
      0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x00, 0x04, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0x01, 0, 0, 0,
      // record: sec 0x65000000, usec 0x000f423f (999999), incl 3, orig 60
      0x00, 0x00, 0x00, 0x65, 0x3f, 0x42, 0x0f, 0x00, 0x03, 0, 0, 0, 0x3c, 0, 0, 0,
      0xaa, 0xbb, 0xcc,
    ]);
    const f = parsePcap(bytes);
    expect(f.linkType).toBe(1);
    expect(f.snapLen).toBe(65535);
    expect(f.nanos).toBe(false);
    expect(f.truncated).toBe(false);
    expect(f.records).toHaveLength(1);
    expect(f.records[0]!.time).toBe(0x65000000 * 1_000_000 + 999_999);
    expect([...f.records[0]!.frame]).toEqual([0xaa, 0xbb, 0xcc]);
    expect(f.records[0]!.origLen).toBe(60);
  });

  it('reads big-endian files', () => {
    const b = Buffer.concat([header(0xa1b2c3d4, false), record(false, 10, 5, [1, 2]), record(false, 11, 6, [3])]);
    const r = readPcapRecords(b);
    expect(r.map((x) => x.time)).toEqual([10_000_005, 11_000_006]);
    expect(r.map((x) => [...x.frame])).toEqual([[1, 2], [3]]);
  });

  it('reads nanosecond files in both byte orders, flooring to microseconds', () => {
    for (const le of [true, false]) {
      const b = Buffer.concat([header(0xa1b23c4d, le), record(le, 7, 123_456_789, [9])]);
      const f = parsePcap(b);
      expect(f.nanos).toBe(true);
      expect(f.records[0]!.time).toBe(7_123_456);
    }
  });

  it('keeps complete records and flags a tail cut anywhere', () => {
    const full = Buffer.concat([header(0xa1b2c3d4, true), record(true, 1, 1, [1, 2, 3, 4]), record(true, 2, 2, [5, 6, 7, 8])]);
    for (let cut = 0; cut < full.length; cut++) {
      const f = parsePcap(full.subarray(0, cut));
      const expected = cut >= 24 + 20 + 20 ? 2 : cut >= 24 + 20 ? 1 : 0;
      expect(f.records).toHaveLength(expected);
      // A cut on a record boundary is indistinguishable from a shorter complete file.
      expect(f.truncated).toBe(cut !== 24 && cut !== 24 + 20);
    }
    expect(parsePcap(full).truncated).toBe(false);
  });

  it('treats an empty file (tcpdump stopped before writing) as no records', () => {
    expect(parsePcap(Buffer.alloc(0))).toMatchObject({ records: [], truncated: true });
  });

  it('stops at an absurd record length instead of allocating it', () => {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(0xffffffff, 8);
    const f = parsePcap(Buffer.concat([header(0xa1b2c3d4, true), record(true, 1, 1, [1]), h]));
    expect(f.records).toHaveLength(1);
    expect(f.truncated).toBe(true);
  });

  it('rejects a file that is not pcap', () => {
    expect(() => parsePcap(Buffer.from('0a0d0d0a00000000000000000000000000000000000000', 'hex'))).toThrow(PcapFormatError);
    expect(() => parsePcap(Buffer.from('hello world, this is not a pcap file'))).toThrow(PcapFormatError);
  });

  it('round-trips through the writer, and never throws on any prefix', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ time: fc.integer({ min: 0, max: 2 ** 32 * 1e6 - 1 }), frame: fc.uint8Array({ maxLength: 80 }) }), { maxLength: 8 }),
        fc.nat(),
        (recs, cutSeed) => {
          const b = writePcap(recs);
          const f = parsePcap(b);
          expect(f.records.map((r) => ({ time: r.time, frame: new Uint8Array(r.frame) }))).toEqual(recs.map((r) => ({ time: r.time, frame: r.frame })));
          const cut = cutSeed % (b.length + 1);
          const g = parsePcap(b.subarray(0, cut));
          expect(g.records.length).toBeLessThanOrEqual(recs.length);
        },
      ),
    );
  });
});
