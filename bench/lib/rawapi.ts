/**
 * A bare HTTPS client for the benchmark's own API calls (creating Services, listing them):
 * kept-alive connections and JSON in/out, nothing else, so the benchmark's client costs as little
 * CPU as possible next to the controllers it measures.
 */
import * as https from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';

export interface RawApi {
  request(method: string, path: string, body?: unknown): Promise<{ status: number; body: string }>;
  close(): void;
}

export function rawApi(kubeconfigPath: string, maxSockets = 16): RawApi {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  if (!cluster) throw new Error(`${kubeconfigPath}: no current cluster`);
  const dec = (b64: string | undefined): string | undefined => (b64 ? Buffer.from(b64, 'base64').toString('utf8') : undefined);
  const agent = new https.Agent({
    keepAlive: true,
    maxSockets,
    ca: dec(cluster.caData),
    cert: dec(user?.certData),
    key: dec(user?.keyData),
  });
  const base = new URL(cluster.server);
  const token = user?.token;
  return {
    request(method, path, body) {
      return new Promise((resolve, reject) => {
        const data = body === undefined ? undefined : JSON.stringify(body);
        const r = https.request(
          {
            host: base.hostname,
            port: base.port || 443,
            path,
            method,
            agent,
            headers: {
              accept: 'application/json',
              ...(data !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}),
              ...(token ? { authorization: `Bearer ${token}` } : {}),
            },
            timeout: 30_000,
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
            res.on('error', reject);
          },
        );
        r.on('timeout', () => r.destroy(new Error(`timeout: ${method} ${path}`)));
        r.on('error', reject);
        r.end(data);
      });
    },
    close() {
      agent.destroy();
    },
  };
}
