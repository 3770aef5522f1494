/**
 * `vipd status [--address host:port] [--json]`: asks a running agent for GET /status on its
 * prometheus_server listener and prints the text view (src/observe/status.ts) or the JSON as the
 * agent sent it. Exit 0; 1 when the agent cannot be reached or answers badly; 2 for bad input.
 * The default address is the prometheus_server setting (its environment variable, else ":2112"),
 * read by the same parser the agent uses; a listener on every address is asked on loopback.
 */
import { ConfigError } from '../config/index.js';
import { settingDef, type ListenAddress } from '../config/settings.js';
import { hostPort } from '../net/ip.js';
import { renderStatus, type StatusReport } from './status.js';

const EXIT_BAD_INPUT = 2;

export interface StatusCommandIo {
  env: NodeJS.ProcessEnv;
  out: (s: string) => void;
  err: (s: string) => void;
  /** How long to wait for the agent (default 5000 ms). */
  timeoutMs?: number;
}

export const STATUS_USAGE = `vipd status [--address host:port] [--json]

Asks the agent on this node what it holds and why (GET /status on the prometheus_server listener).
  --address host:port  where the agent listens (default: the prometheus_server setting, :2112)
  --json               print the agent's JSON as it is`;

function parseAddress(raw: string | undefined, source: string): ListenAddress {
  const a = settingDef('metricsAddress').parse(raw, source) as ListenAddress | undefined;
  if (a === undefined) throw new ConfigError(source, raw, 'is empty, so the agent serves no /status; give --address host:port');
  return a;
}

export async function statusCommand(argv: string[], io: StatusCommandIo): Promise<number> {
  let json = false;
  let address: string | undefined;
  try {
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i]!;
      if (a === '--help' || a === '-h') {
        io.out(`${STATUS_USAGE}\n`);
        return 0;
      } else if (a === '--json') json = true;
      else if (a === '--address') {
        address = argv[++i];
        if (address === undefined) throw new ConfigError('--address', undefined, 'needs a value: host:port, for example 127.0.0.1:2112');
      } else if (a.startsWith('--address=')) address = a.slice('--address='.length);
      else throw new ConfigError(a, undefined, 'is not an option of vipd status; expected --address host:port or --json');
    }
    const listen = address !== undefined ? parseAddress(address, '--address') : parseAddress(io.env[settingDef('metricsAddress').env], 'prometheus_server');
    const url = `http://${hostPort(listen.host ?? '127.0.0.1', listen.port)}/status`;
    return await fetchStatus(url, json, io);
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(`vipd: ${err.message}\n`);
      return EXIT_BAD_INPUT;
    }
    throw err;
  }
}

async function fetchStatus(url: string, json: boolean, io: StatusCommandIo): Promise<number> {
  const where = url.replace(/^http:\/\//, '');
  let body: string;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(io.timeoutMs ?? 5000) });
    body = await res.text();
    if (res.status !== 200) throw new Error(`HTTP ${res.status}${res.status === 404 ? ' (an agent older than vipd status, or not vipd)' : ''}`);
  } catch (err) {
    io.err(`vipd: cannot reach the agent at ${where}: ${reason(err)}\n`);
    return 1;
  }
  if (json) {
    io.out(body.endsWith('\n') ? body : `${body}\n`);
    return 0;
  }
  let report: StatusReport;
  try {
    report = JSON.parse(body) as StatusReport;
  } catch {
    io.err(`vipd: cannot reach the agent at ${where}: the answer is not JSON\n`);
    return 1;
  }
  io.out(renderStatus(report));
  return 0;
}

/** fetch hides the socket error (ECONNREFUSED, …) in `cause`. */
function reason(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (err.name === 'TimeoutError') return 'no answer in time';
  const cause = err.cause as { code?: string; message?: string } | undefined;
  return cause?.code ?? cause?.message ?? err.message;
}
