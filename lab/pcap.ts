/**
 * Reader for classic pcap files (not pcapng), as written by `tcpdump -w`.
 *
 * Pure: bytes in, records out. Accepts both byte orders and both the microsecond (0xa1b2c3d4)
 * and nanosecond (0xa1b23c4d) magic. A file cut short (tcpdump killed mid-write, or read while it
 * is still writing) yields every complete record before the cut and sets `truncated`; it never
 * throws for that. Only a header that is not pcap at all is an error.
 */

export interface PcapRecord {
  /** Capture time in microseconds since the Unix epoch (nanosecond files are floored to µs). */
  time: number;
  /** The captured bytes (may be shorter than `origLen` if the snap length cut it). */
  frame: Buffer;
  /** Length of the frame on the wire. */
  origLen: number;
}

export interface PcapFile {
  /** Link-layer type from the header: 1 = Ethernet (LINKTYPE_ETHERNET). */
  linkType: number;
  snapLen: number;
  /** True when the file stored nanosecond timestamps. */
  nanos: boolean;
  records: PcapRecord[];
  /** True when bytes after the last complete record were ignored. */
  truncated: boolean;
}

export const LINKTYPE_ETHERNET = 1;

const MAGIC_MICROS = 0xa1b2c3d4;
const MAGIC_NANOS = 0xa1b23c4d;
const GLOBAL_HEADER_LEN = 24;
const RECORD_HEADER_LEN = 16;
// A record longer than this is corruption, not a frame; stop rather than allocate it.
const MAX_RECORD_LEN = 16 * 1024 * 1024;

export class PcapFormatError extends Error {
  override name = 'PcapFormatError';
}

/**
 * Parses a whole pcap file. An empty or header-less buffer (tcpdump stopped before it wrote the
 * header) gives no records and `truncated: true`; a buffer with a wrong magic throws.
 */
export function parsePcap(buf: Uint8Array): PcapFile {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < GLOBAL_HEADER_LEN) {
    if (b.length >= 4 && magicOf(b) === undefined) throw new PcapFormatError(`not a pcap file (magic 0x${b.readUInt32BE(0).toString(16)})`);
    return { linkType: LINKTYPE_ETHERNET, snapLen: 0, nanos: false, records: [], truncated: true };
  }
  const magic = magicOf(b);
  if (magic === undefined) throw new PcapFormatError(`not a pcap file (magic 0x${b.readUInt32BE(0).toString(16)})`);
  const { le, nanos } = magic;
  const u32 = (off: number): number => (le ? b.readUInt32LE(off) : b.readUInt32BE(off));
  const snapLen = u32(16);
  const linkType = u32(20) & 0x0fffffff; // upper bits carry FCS info in newer writers

  const records: PcapRecord[] = [];
  let off = GLOBAL_HEADER_LEN;
  let truncated = false;
  while (off < b.length) {
    if (b.length - off < RECORD_HEADER_LEN) {
      truncated = true;
      break;
    }
    const sec = u32(off);
    const frac = u32(off + 4);
    const inclLen = u32(off + 8);
    const origLen = u32(off + 12);
    if (inclLen > MAX_RECORD_LEN) {
      truncated = true;
      break;
    }
    const start = off + RECORD_HEADER_LEN;
    if (b.length - start < inclLen) {
      truncated = true;
      break;
    }
    const sub = nanos ? Math.floor(frac / 1000) : frac;
    records.push({ time: sec * 1_000_000 + sub, frame: Buffer.from(b.subarray(start, start + inclLen)), origLen });
    off = start + inclLen;
  }
  return { linkType, snapLen, nanos, records, truncated };
}

/** The records of a pcap file, `{ time, frame }` in file order (see parsePcap). */
export function readPcapRecords(buf: Uint8Array): PcapRecord[] {
  return parsePcap(buf).records;
}

function magicOf(b: Buffer): { le: boolean; nanos: boolean } | undefined {
  const be = b.readUInt32BE(0);
  const le = b.readUInt32LE(0);
  if (be === MAGIC_MICROS) return { le: false, nanos: false };
  if (be === MAGIC_NANOS) return { le: false, nanos: true };
  if (le === MAGIC_MICROS) return { le: true, nanos: false };
  if (le === MAGIC_NANOS) return { le: true, nanos: true };
  return undefined;
}

/**
 * Writes a classic little-endian microsecond pcap file. Used by tests to make inputs and by
 * anyone who wants to save frames for Wireshark.
 */
export function writePcap(records: ReadonlyArray<{ time: number; frame: Uint8Array; origLen?: number }>, linkType = LINKTYPE_ETHERNET, snapLen = 262144): Buffer {
  const parts: Buffer[] = [];
  const h = Buffer.alloc(GLOBAL_HEADER_LEN);
  h.writeUInt32LE(MAGIC_MICROS, 0);
  h.writeUInt16LE(2, 4);
  h.writeUInt16LE(4, 6);
  h.writeInt32LE(0, 8);
  h.writeUInt32LE(0, 12);
  h.writeUInt32LE(snapLen, 16);
  h.writeUInt32LE(linkType, 20);
  parts.push(h);
  for (const r of records) {
    const rh = Buffer.alloc(RECORD_HEADER_LEN);
    rh.writeUInt32LE(Math.floor(r.time / 1_000_000), 0);
    rh.writeUInt32LE(r.time % 1_000_000, 4);
    rh.writeUInt32LE(r.frame.length, 8);
    rh.writeUInt32LE(r.origLen ?? r.frame.length, 12);
    parts.push(rh, Buffer.from(r.frame));
  }
  return Buffer.concat(parts);
}
