/**
 * A client for an FRR daemon's vty socket (`<dir>/bgpd.vty`), the one vtysh uses: vipd needs no
 * vtysh binary in its image, only the socket directory shared with the FRR sidecar.
 *
 * The protocol (FRR's lib/vty.c, "vtysh" connections): the client writes one command terminated by
 * a NUL; the daemon answers with the command's output followed by three NUL bytes and one status
 * byte (0 success, 1 warning, 2 and up errors). A session starts in view mode, so `enable` comes
 * first; configuration commands then work as on the CLI (`configure terminal`, the lines, `end`).
 * Commands run one at a time per connection.
 */
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';

export type FrrDaemon = 'bgpd' | 'bfdd' | 'zebra';

export interface VtyReply {
  status: number;
  output: string;
}

export class VtyError extends Error {
  constructor(
    readonly daemon: FrrDaemon,
    readonly command: string,
    readonly reply: VtyReply,
  ) {
    super(`${daemon}: "${command}" failed (status ${reply.status}): ${reply.output.trim().split('\n')[0] ?? ''}`);
    this.name = 'VtyError';
  }
}

export class VtyClient {
  private socket: Socket | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private pending: { resolve: (r: VtyReply) => void; reject: (e: Error) => void; chunks: Buffer[] } | undefined;

  constructor(
    readonly daemon: FrrDaemon,
    private readonly dir: string,
    private readonly timeoutMs = 5000,
  ) {}

  get path(): string {
    return join(this.dir, `${this.daemon}.vty`);
  }

  private connect(): Promise<Socket> {
    if (this.socket && !this.socket.destroyed) return Promise.resolve(this.socket);
    return new Promise((resolve, reject) => {
      const s = createConnection(this.path);
      const fail = (err: Error): void => {
        s.destroy();
        reject(err);
      };
      s.once('error', fail);
      s.once('connect', () => {
        s.off('error', fail);
        s.on('error', (err) => this.drop(err));
        s.on('close', () => this.drop(new Error(`${this.daemon}: vty connection closed`)));
        s.on('data', (d: Buffer) => this.onData(d));
        this.socket = s;
        resolve(s);
      });
    }).then(async (s) => {
      await this.exchange(s as Socket, 'enable');
      return s as Socket;
    });
  }

  private drop(err: Error): void {
    this.socket?.destroy();
    this.socket = undefined;
    const p = this.pending;
    this.pending = undefined;
    p?.reject(err);
  }

  private onData(d: Buffer): void {
    const p = this.pending;
    if (!p) return;
    p.chunks.push(d);
    const all = Buffer.concat(p.chunks);
    const n = all.length;
    if (n < 4 || all[n - 4] !== 0 || all[n - 3] !== 0 || all[n - 2] !== 0) {
      p.chunks = [all];
      return;
    }
    this.pending = undefined;
    p.resolve({ status: all[n - 1]!, output: all.subarray(0, n - 4).toString('utf8') });
  }

  private exchange(s: Socket, command: string): Promise<VtyReply> {
    return new Promise<VtyReply>((resolve, reject) => {
      const timer = setTimeout(() => this.drop(new Error(`${this.daemon}: no answer to "${command}" within ${this.timeoutMs} ms`)), this.timeoutMs);
      this.pending = {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
        chunks: [],
      };
      s.write(`${command}\0`);
    });
  }

  /** Runs one command; resolves with its reply whatever the status. */
  run(command: string): Promise<VtyReply> {
    const next = this.chain.then(async () => this.exchange(await this.connect(), command));
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Runs a command that must succeed (status 0 or 1) and returns its output. */
  async ok(command: string): Promise<string> {
    const r = await this.run(command);
    if (r.status > 1) throw new VtyError(this.daemon, command, r);
    return r.output;
  }

  async json<T>(command: string): Promise<T> {
    return JSON.parse(await this.ok(command)) as T;
  }

  /** Enters configuration mode, sends every line (each must succeed), and leaves it. */
  async configure(lines: readonly string[]): Promise<void> {
    await this.ok('configure terminal');
    try {
      for (const line of lines) await this.ok(line.trim());
    } finally {
      await this.run('end').catch(() => undefined);
    }
  }

  close(): void {
    this.socket?.destroy();
    this.socket = undefined;
  }
}
