/**
 * Self-contained kubeconfig files for the lab: CA, client certificate or token embedded as data,
 * so a file works from any network namespace and outlives nothing but its folder.
 * Written as JSON, which is valid YAML: kubectl and @kubernetes/client-node read it as usual.
 */
import { writeFile } from 'node:fs/promises';

export type KubeconfigUser = { token: string } | { certPem: string; keyPem: string };

export interface KubeconfigSpec {
  /** https://host:port of the API server (or of the VIP in front of them). */
  server: string;
  caPem: string;
  user: KubeconfigUser;
  /** Context, cluster and user name; defaults to "vipd-lab". */
  name?: string;
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

export function kubeconfigText(spec: KubeconfigSpec): string {
  const name = spec.name ?? 'vipd-lab';
  const user =
    'token' in spec.user
      ? { token: spec.user.token }
      : { 'client-certificate-data': b64(spec.user.certPem), 'client-key-data': b64(spec.user.keyPem) };
  return (
    JSON.stringify(
      {
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name, cluster: { server: spec.server, 'certificate-authority-data': b64(spec.caPem) } }],
        users: [{ name, user }],
        contexts: [{ name, context: { cluster: name, user: name } }],
        'current-context': name,
        preferences: {},
      },
      null,
      2,
    ) + '\n'
  );
}

/** Writes the kubeconfig (mode 0600: it holds a credential) and returns the path. */
export async function writeKubeconfig(file: string, spec: KubeconfigSpec): Promise<string> {
  await writeFile(file, kubeconfigText(spec), { mode: 0o600 });
  return file;
}
