/**
 * Tag server: a TCP listener that answers every connection with its node name and a newline,
 * then closes. A client connecting to VIP:port learns which node served it, which is how the
 * lab and the benchmarks tell holders apart at the TCP level.
 *
 * The server closes first (it sends FIN right after the tag), so TIME_WAIT lands on the server
 * side and a prober making a hundred connections a second does not run out of client ports.
 */
import { createServer, type AddressInfo, type Socket } from 'node:net';

export interface TagServerOptions {
  /** The tag sent to each client, usually the node name ('n2'). */
  name: string;
  /** Bind address; default '::' (dual-stack), or '0.0.0.0' when IPv6 is off in the namespace. */
  host?: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  signal?: AbortSignal;
}

export interface TagServer {
  address: string;
  port: number;
  /** Connections answered so far. */
  connections(): number;
  close(): Promise<void>;
}

export async function startTagServer(opts: TagServerOptions): Promise<TagServer> {
  if (!/^[\x21-\x7e]{1,64}$/.test(opts.name)) throw new Error(`tag name must be 1..64 printable ASCII characters without spaces, got ${JSON.stringify(opts.name)}`);
  const reply = Buffer.from(`${opts.name}\n`);
  let answered = 0;
  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
    // A prober that gave up (timeout) resets the connection; that is not our error.
    sock.on('error', () => undefined);
    answered++;
    sock.end(reply);
  });

  const listen = (host: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      server.once('error', onError);
      server.listen({ host, port: opts.port, backlog: 1024 }, () => {
        server.off('error', onError);
        resolve();
      });
    });

  if (opts.host !== undefined) {
    await listen(opts.host);
  } else {
    try {
      await listen('::');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL') throw err;
      await listen('0.0.0.0');
    }
  }

  const addr = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
    return closing;
  };
  opts.signal?.addEventListener('abort', () => void close(), { once: true });
  return { address: addr.address, port: addr.port, connections: () => answered, close };
}
