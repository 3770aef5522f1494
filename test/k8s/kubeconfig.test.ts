/**
 * The kubeconfig loader vipd uses instead of client-node's KubeConfig: it must mean the same
 * thing (fields, relative paths, exec plugins, token files, static tokens) as KubeConfig does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { Kubeconfig } from '../../src/k8s/kubeconfig.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

function yaml(user: string, cluster = `server: https://cp.example:6443\n    certificate-authority: ca.crt\n    tls-server-name: api`): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    ${cluster}
users:
- name: u
  user:
${user}
contexts:
- name: x
  context: { cluster: c, user: u }
current-context: x
`;
}

describe('Kubeconfig', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vipd-kubeconfig-test-'));
    await writeFile(join(dir, 'ca.crt'), 'CA PEM');
    await writeFile(join(dir, 'token'), 'from-file');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the current context like KubeConfig, with file names relative to the kubeconfig', async () => {
    const text = yaml(`    client-certificate-data: ${b64('CERT')}\n    client-key: key.pem`);
    const file = join(dir, 'config');
    const kc = Kubeconfig.parse(text, file);
    const ref = new KubeConfig();
    ref.loadFromString(text);
    ref.makePathsAbsolute(dir);
    expect(kc.cluster).toEqual(ref.getCurrentCluster());
    expect(kc.user).toEqual(ref.getCurrentUser());
    expect(kc.cluster.caFile).toBe(join(dir, 'ca.crt'));
    await writeFile(join(dir, 'key.pem'), 'KEY');
    const c = await kc.credentials();
    expect(c.ca?.toString()).toBe('CA PEM');
    expect(c.cert?.toString()).toBe('CERT');
    expect(c.key?.toString()).toBe('KEY');
    expect(c.headers).toEqual({});
  });

  it('a token file provider (the DaemonSet kubeconfig) and a static token', async () => {
    const fromFile = Kubeconfig.parse(yaml(`    auth-provider: { name: tokenFile, config: { tokenFile: ${join(dir, 'token')} } }`), join(dir, 'config'));
    expect((await fromFile.credentials()).headers.Authorization).toBe('Bearer from-file');
    const fixed = Kubeconfig.parse(yaml('    token: abc'), join(dir, 'config'));
    expect((await fixed.credentials()).headers.Authorization).toBe('Bearer abc');
  });

  it('an exec plugin: its token is used and cached until it expires', async () => {
    const counter = join(dir, 'exec-count');
    const script = join(dir, 'exec.mjs');
    await writeFile(
      script,
      `import { appendFileSync } from 'node:fs';
appendFileSync(${JSON.stringify(counter)}, 'x');
process.stdout.write(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: 'exec-token' } }));
`,
    );
    const kc = Kubeconfig.parse(yaml(`    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: ${process.execPath}\n      args: [${script}]`), join(dir, 'config'));
    expect((await kc.credentials()).headers.Authorization).toBe('Bearer exec-token');
    expect((await kc.credentials()).headers.Authorization).toBe('Bearer exec-token');
    expect(await readFile(counter, 'utf8')).toBe('x');
  });

  it('refuses a kubeconfig whose current context has no cluster or user', () => {
    expect(() => Kubeconfig.parse(yaml('    token: abc').replace('current-context: x', 'current-context: nope'), join(dir, 'config'))).toThrow(/no current context/);
    expect(() => Kubeconfig.parse('clusters: [{ name: c }]\n', join(dir, 'config'))).toThrow();
  });
});
