/**
 * `node dist/lab/apiprobe-cli.js --kubeconfig FILE [--interval 50] [--timeout MS] [--path P]`, run
 * in the cluster lab's client namespace: a kubectl-like client. Every interval it makes one GET
 * (default a one-item pod list in kube-system, as `kubectl get pods` starts) on a NEW connection to
 * the kubeconfig's server with its client certificate, on a fixed schedule (tcpprobe.ts's rules),
 * so a dead holder shows up as failed attempts, not as one hung keep-alive connection.
 * Until SIGINT/SIGTERM; then one JSON line: summarizeProbe() of all attempts (longestGapMs is the
 * longest outage the client saw). `probing …` on stderr says it has started.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { parseArgs } from 'node:util';
import { summarizeProbe, type ProbeRecord } from './tcpprobe.js';
import { wallNow } from './wallclock.js';

interface Creds {
  server: URL;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** The first cluster and user of a kubeadm kubeconfig (YAML with embedded *-data fields). */
export function parseKubeconfig(text: string): Creds {
  const field = (name: string): string => {
    const m = new RegExp(`^\\s*${name}:\\s*"?([^"\\s]+)"?\\s*$`, 'm').exec(text);
    if (!m?.[1]) throw new Error(`kubeconfig has no ${name}`);
    return m[1];
  };
  const b = (name: string): Buffer => Buffer.from(field(name), 'base64');
  return { server: new URL(field('server')), ca: b('certificate-authority-data'), cert: b('client-certificate-data'), key: b('client-key-data') };
}


function once(c: Creds, path: string, timeoutMs: number): Promise<ProbeRecord> {
  const t = wallNow();
  const started = performance.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (ok: boolean, err?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve({ t, ok, node: ok ? 'api' : null, ms: performance.now() - started, ...(err !== undefined ? { err } : {}) });
    };
    const req = request({ host: c.server.hostname, port: c.server.port || 443, path, method: 'GET', ca: c.ca, cert: c.cert, key: c.key, agent: false, headers: { accept: 'application/json' } }, (res) => {
      res.resume();
      res.once('end', () => (res.statusCode === 200 ? finish(true) : finish(false, `HTTP${res.statusCode}`)));
      res.once('error', () => finish(false, 'RESET'));
    });
    const timer = setTimeout(() => finish(false, 'ETIMEDOUT'), timeoutMs);
    req.once('error', (e: NodeJS.ErrnoException) => finish(false, e.code ?? 'ERROR'));
    req.end();
  });
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      kubeconfig: { type: 'string' },
      interval: { type: 'string', default: '50' },
      timeout: { type: 'string', default: '1000' },
      path: { type: 'string', default: '/api/v1/namespaces/kube-system/pods?limit=1' },
    },
    strict: true,
  });
  if (!values.kubeconfig) {
    process.stderr.write('usage: apiprobe-cli --kubeconfig FILE [--interval MS] [--timeout MS] [--path P]\n');
    return 2;
  }
  const c = parseKubeconfig(readFileSync(values.kubeconfig, 'utf8'));
  const intervalMs = Number(values.interval);
  const timeoutMs = Number(values.timeout);
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  process.once('SIGTERM', () => ac.abort());
  process.stderr.write(`probing ${c.server.href} every ${intervalMs} ms\n`);
  const records: ProbeRecord[] = [];
  const inFlight = new Set<Promise<void>>();
  const origin = performance.now();
  for (let k = 1; !ac.signal.aborted; k++) {
    const p = once(c, values.path!, timeoutMs).then((r) => void records.push(r));
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
    let next = origin + k * intervalMs;
    if (next < performance.now()) {
      k = Math.ceil((performance.now() - origin) / intervalMs);
      next = origin + k * intervalMs;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, next - performance.now()));
      ac.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    });
  }
  await Promise.all(inFlight);
  process.stdout.write(JSON.stringify(summarizeProbe(records, { target: c.server.host, intervalMs, timeoutMs })) + '\n');
  return 0;
}

if (process.argv[1]?.endsWith('apiprobe-cli.js')) {
  main().then(
    (code) => void (process.exitCode = code),
    (err: unknown) => {
      process.stderr.write(`apiprobe: ${(err as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
