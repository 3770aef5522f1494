/**
 * Raw Ethernet I/O through the AF_PACKET addon (native/afpacket.c, built by node-gyp on install).
 *
 * Invariants:
 * - One kernel socket per (network namespace, interface), shared by every VIP on that interface
 *   and reference-counted: it closes when the last user closes. Multicast memberships are counted
 *   the same way, so two VIPs with the same solicited-node group do not undo each other.
 * - The socket only ever delivers ARP and ICMPv6 NS/NA frames received on the interface (a BPF
 *   filter in the kernel), never our own outgoing frames, never VLAN-tagged ones.
 * - A user may narrow what it needs (`setInterest`: claims on and questions about its addresses);
 *   the kernel program is then the union over the socket's users (src/net/bpf.ts), so frames
 *   nobody needs never wake the process. A user that never called it (or passed null) gets every
 *   ARP/ND frame, as before. A program too large for the kernel falls back to every frame: a
 *   wider filter is always safe, the users' own checks still apply.
 * - Frame callbacks run on the event loop, one frame at a time, with a Buffer the callee may keep.
 * - `send` is synchronous: when it returns without throwing, the kernel has the frame.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { ALL_FRAMES, encodeProgram, programFor, type FrameInterest } from './bpf.js';
import { macToBytes, macToString } from './frames.js';

interface NativeHandle {
  readonly __brand?: 'afpacket';
}

interface NativeAfPacket {
  open(ifname: string, netnsPath: string | null, onFrame: FrameListener): { handle: NativeHandle; ifindex: number; mac: Buffer };
  send(handle: NativeHandle, frame: Buffer, deadlineNs?: bigint): number;
  membership(handle: NativeHandle, mac: Buffer, add: boolean): void;
  setFilter(handle: NativeHandle, program: Buffer): void;
  receiveTimestamps(handle: NativeHandle): void;
  close(handle: NativeHandle): void;
}

let native: NativeAfPacket | undefined;

/** Loads build/Release/afpacket.node from the project root (works from src/ under vitest and from dist/). */
function addon(): NativeAfPacket {
  if (native) return native;
  const require = createRequire(import.meta.url);
  const candidates = ['../../build/Release/afpacket.node', '../../../build/Release/afpacket.node'];
  const errors: string[] = [];
  for (const c of candidates) {
    try {
      native = require(c) as NativeAfPacket;
      return native;
    } catch (e) {
      errors.push(`${c}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(`the AF_PACKET addon is not built; run \`npm run build:native\` (${errors.join('; ')})`);
}

export class PacketSocketError extends Error {
  override name = 'PacketSocketError';
  constructor(
    message: string,
    readonly ifname: string,
    readonly code: string,
  ) {
    super(message);
  }
}

export interface InterfaceInfo {
  index: number;
  mac: string;
}

const IFNAME = /^[^/\s:]{1,15}$/;

/** Index and MAC of an interface in this process's network namespace, from /sys/class/net. */
export function interfaceInfo(ifname: string): InterfaceInfo {
  if (!IFNAME.test(ifname) || ifname === '.' || ifname === '..') {
    throw new PacketSocketError(`not an interface name: ${JSON.stringify(ifname)}`, ifname, 'EINVAL');
  }
  try {
    const index = Number(readFileSync(`/sys/class/net/${ifname}/ifindex`, 'utf8').trim());
    const mac = macToString(macToBytes(readFileSync(`/sys/class/net/${ifname}/address`, 'utf8').trim()));
    return { index, mac };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EINVAL';
    throw new PacketSocketError(`interface ${ifname}: ${code === 'ENOENT' ? 'no such interface' : (e as Error).message}`, ifname, code);
  }
}

export interface PacketSocket {
  readonly ifname: string;
  readonly index: number;
  /** The interface's MAC when the socket was opened. */
  readonly mac: string;
  /**
   * Sends one whole Ethernet frame; throws PacketSocketError (code ENETDOWN, EAGAIN, ...) if the
   * kernel refuses it. With deadlineNs (process.hrtime.bigint()'s clock), the addon checks it again
   * just before send(2) and refuses with ETIME once it has passed.
   */
  send(frame: Buffer, deadlineNs?: bigint): void;
  /**
   * Every received ARP / NS / NA frame; returns the unsubscribe function. `receivedAt` is the
   * kernel's receive time (wall clock, ms) once any user of the socket asked for it
   * (OpenOptions.receiveTimestamps), else undefined.
   */
  onFrame(cb: FrameListener): () => void;
  /** Accept frames to this Ethernet multicast group (needed on real NICs for NS to a solicited-node group). */
  addMulticast(mac: string): void;
  removeMulticast(mac: string): void;
  /**
   * Only frames about these addresses are needed by this user (null: every ARP/ND frame). Takes
   * effect in the kernel before it returns; throws PacketSocketError if the kernel refuses.
   */
  setInterest(interest: FrameInterest | null): void;
  /** Releases this user's listeners and groups; the kernel socket closes with its last user. Idempotent. */
  close(): void;
}

export type FrameListener = (frame: Buffer, receivedAt?: number) => void;

export interface OpenOptions {
  /** Network namespace: a name under /var/run/netns or an absolute path; default the current one. */
  netns?: string;
  /** Have the kernel stamp each received frame (SO_TIMESTAMPNS): measurements, not the agent. */
  receiveTimestamps?: boolean;
}

interface Shared {
  key: string;
  handle: NativeHandle;
  index: number;
  mac: string;
  users: Set<User>;
  groups: Map<string, number>;
  /** The program attached now (null: the addon's open-time filter). */
  program: Buffer | null;
  /** Receive timestamps are on. */
  stamped?: boolean;
}

/** Long enough for the kernel to turn packet timestamping on: at 0 ms the test's frame had none, at 50 it did. */
const STAMPING_SETTLE_MS = 50;

interface User {
  listeners: Set<FrameListener>;
  groups: Map<string, number>;
  interest: FrameInterest | null;
}

/** Attaches the union of the users' interests, if it differs from what is attached. */
function applyFilter(s: Shared, ifname: string): void {
  let program: Buffer;
  if ([...s.users].some((u) => u.interest === null)) {
    program = ALL_FRAMES;
  } else {
    const claims = [...s.users].flatMap((u) => u.interest!.claims);
    const questions = [...s.users].flatMap((u) => u.interest!.questions);
    const prog = programFor({ claims, questions });
    program = prog ? encodeProgram(prog) : ALL_FRAMES;
  }
  if (s.program === null ? program === ALL_FRAMES : s.program.equals(program)) return;
  try {
    addon().setFilter(s.handle, program);
  } catch (e) {
    throw new PacketSocketError(`${ifname}: attach filter: ${(e as Error).message}`, ifname, errCode(e));
  }
  s.program = program;
}

const shared = new Map<string, Shared>();

function netnsPath(netns: string | undefined): string | null {
  if (netns === undefined) return null;
  return netns.includes('/') ? netns : `/var/run/netns/${netns}`;
}

function dispatch(s: Shared, frame: Buffer, receivedAt: number | undefined): void {
  for (const u of [...s.users]) {
    for (const cb of [...u.listeners]) {
      try {
        cb(frame, receivedAt);
      } catch (e) {
        // Same fate as a throwing EventEmitter listener, but the other listeners still get the frame.
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
}

function errCode(e: unknown): string {
  const c = (e as { code?: unknown }).code;
  return typeof c === 'string' ? c : 'EIO';
}

export async function openPacketSocket(ifname: string, opts: OpenOptions = {}): Promise<PacketSocket> {
  const key = `${opts.netns ?? ''}\0${ifname}`;
  let s = shared.get(key);
  if (!s) {
    const lib = addon();
    let opened: ReturnType<NativeAfPacket['open']>;
    const holder: { s?: Shared } = {};
    try {
      opened = lib.open(ifname, netnsPath(opts.netns), (frame, receivedAt) => {
        if (holder.s) dispatch(holder.s, frame, receivedAt);
      });
    } catch (e) {
      throw new PacketSocketError(`${ifname}${opts.netns ? ` (netns ${opts.netns})` : ''}: ${(e as Error).message}`, ifname, errCode(e));
    }
    s = { key, handle: opened.handle, index: opened.ifindex, mac: macToString(opened.mac), users: new Set(), groups: new Map(), program: null };
    holder.s = s;
    shared.set(key, s);
  }
  const sh = s;
  let stamping: Promise<void> | undefined;
  if (opts.receiveTimestamps && !sh.stamped) {
    try {
      addon().receiveTimestamps(sh.handle);
      sh.stamped = true;
      // The kernel starts stamping received packets from a work item (a static key), not at once:
      // until then frames carry the time they were read.
      stamping = sleep(STAMPING_SETTLE_MS);
    } catch (e) {
      if (sh.users.size === 0) {
        shared.delete(sh.key);
        addon().close(sh.handle);
      }
      throw new PacketSocketError(`${ifname}: receive timestamps: ${(e as Error).message}`, ifname, errCode(e));
    }
  }
  const user: User = { listeners: new Set(), groups: new Map(), interest: null };
  sh.users.add(user);
  applyFilter(sh, ifname); // a new user sees every frame until it narrows
  let closed = false;

  const join = (mac: string, add: boolean): void => {
    const norm = macToString(macToBytes(mac));
    const before = sh.groups.get(norm) ?? 0;
    const after = before + (add ? 1 : -1);
    if (after < 0) return;
    if (before === 0 && add) {
      try {
        addon().membership(sh.handle, macToBytes(norm), true);
      } catch (e) {
        throw new PacketSocketError(`${ifname}: join ${norm}: ${(e as Error).message}`, ifname, errCode(e));
      }
    }
    if (after === 0 && !add) addon().membership(sh.handle, macToBytes(norm), false);
    if (after === 0) sh.groups.delete(norm);
    else sh.groups.set(norm, after);
  };

  await stamping;
  return {
    ifname,
    index: sh.index,
    mac: sh.mac,
    send(frame: Buffer, deadlineNs?: bigint): void {
      if (closed) throw new PacketSocketError(`${ifname}: socket closed`, ifname, 'EBADF');
      const rc = addon().send(sh.handle, frame, deadlineNs);
      if (rc !== 0) throw new PacketSocketError(`${ifname}: send failed (errno ${rc})`, ifname, errnoName(rc));
    },
    onFrame(cb: FrameListener): () => void {
      if (closed) return () => {};
      user.listeners.add(cb);
      return () => {
        user.listeners.delete(cb);
      };
    },
    addMulticast(mac: string): void {
      if (closed) return;
      join(mac, true);
      const norm = macToString(macToBytes(mac));
      user.groups.set(norm, (user.groups.get(norm) ?? 0) + 1);
    },
    removeMulticast(mac: string): void {
      const norm = macToString(macToBytes(mac));
      const n = user.groups.get(norm) ?? 0;
      if (closed || n === 0) return;
      if (n === 1) user.groups.delete(norm);
      else user.groups.set(norm, n - 1);
      join(norm, false);
    },
    setInterest(interest: FrameInterest | null): void {
      if (closed) return;
      user.interest = interest === null ? null : { claims: [...interest.claims], questions: [...interest.questions] };
      applyFilter(sh, ifname);
    },
    close(): void {
      if (closed) return;
      closed = true;
      user.listeners.clear();
      sh.users.delete(user);
      if (sh.users.size === 0) {
        shared.delete(sh.key);
        addon().close(sh.handle); // drops every membership with the socket
        return;
      }
      for (const [g, n] of user.groups) for (let i = 0; i < n; i++) join(g, false);
      user.groups.clear();
      try {
        applyFilter(sh, ifname);
      } catch {
        // Narrowing after a user left: the wider program stays attached, which is always safe.
      }
    },
  };
}

function errnoName(n: number): string {
  for (const [name, v] of Object.entries(osConstants.errno)) if (v === n) return name;
  return `errno ${n}`;
}
