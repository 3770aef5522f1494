/**
 * ApiClient against a real kube-apiserver: endpoint override for a kubeconfig that names the VIP,
 * TLS verification by server name, failover order, credential swap without restart,
 * EndpointSlice discovery with its disk cache. ServiceAccount credentials (the RBAC users grant).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AllEndpointsFailedError, ApiClient, httpStatus, normalizeEndpoint } from '../../src/k8s/client.js';
import { paths } from '../../src/k8s/resources.js';
import { startControlPlane, type ControlPlane } from '../../lab/apiserver.js';
import { createLogger } from '../../src/observe/log.js';
import { describeWithApi } from '../lab/with-api.js';

const log = createLogger(process.env.VIPD_TEST_LOG ?? 'silent');
const VIP_URL = 'https://198.18.0.100:6443'; // never dialed: the point of the endpoint override

describeWithApi('ApiClient against kube-apiserver', (assetsDir) => {
  let cp: ControlPlane;
  let dir: string;
  let token: string;

  beforeAll(async () => {
    cp = await startControlPlane({ assetsDir, servers: [{}] });
    token = await cp.serviceAccountToken();
    dir = await mkdtemp(join(tmpdir(), 'vipd-client-test-'));
  }, 240_000);

  afterAll(async () => {
    await cp?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  const getLease = (c: ApiClient, name = 'nope') =>
    c.request('lease.get', 'GET', paths.lease('kube-system', name)).then(
      () => 200,
      (e: unknown) => (e as { code?: number }).code ?? e,
    );

  it('a kubeconfig that names the VIP (kubeadm admin.conf) is used against the local endpoint, verified as "kubernetes"', async () => {
    const kc = await cp.kubeconfigFor(VIP_URL, { token });
    const c = await ApiClient.create({ kubeconfigPath: kc, localEndpoint: cp.servers[0]!.url, discoverEndpoints: false, log });
    try {
      expect(c.endpoints()).toEqual([normalizeEndpoint(cp.servers[0]!.url)]);
      expect(c.tlsServerName()).toBe('kubernetes');
      expect(await getLease(c)).toBe(404); // an answer from the API, with the SA's rights
    } finally {
      c.close();
    }
    // Verification is really on: a name the certificate does not carry fails the TLS handshake.
    const bad = await ApiClient.create({ kubeconfigPath: kc, localEndpoint: cp.servers[0]!.url, tlsServerName: 'not-in-cert.example', discoverEndpoints: false, log });
    try {
      const r = await getLease(bad);
      expect(r).toBeInstanceOf(AllEndpointsFailedError);
      expect(String((r as Error).message)).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID|altnames|Hostname/i);
    } finally {
      bad.close();
    }
  }, 30_000);

  it('fails over to the next endpoint when the first refuses, and puts the failed one last until its cooldown ends', async () => {
    const kc = await cp.serviceAccountKubeconfig();
    const dead = 'https://127.0.0.1:1';
    const c = await ApiClient.create({ kubeconfigPath: kc, localEndpoint: dead, extraEndpoints: [cp.servers[0]!.url], endpointCooldownMs: 300, discoverEndpoints: false, requestTimeoutMs: 500, log });
    try {
      expect(c.endpoints()[0]).toBe(dead);
      expect(await getLease(c)).toBe(404);
      expect(c.endpoints()).toEqual([normalizeEndpoint(cp.servers[0]!.url), dead]);
      await new Promise((r) => setTimeout(r, 350));
      expect(c.endpoints()[0]).toBe(dead); // the local endpoint is preferred again
    } finally {
      c.close();
    }
  }, 30_000);

  it('credentials: a refused primary falls back (super-admin.conf), and a fixed primary file is picked up without restart', async () => {
    const sa = await cp.serviceAccountKubeconfig();
    const primary = join(dir, 'admin.conf');
    const fallback = join(dir, 'super-admin.conf');
    await copyFile(sa, fallback);
    await writeFile(primary, await readFile(await cp.kubeconfigFor(cp.servers[0]!, { token: 'not-a-valid-token' })));
    const c = await ApiClient.create({
      kubeconfigPath: primary,
      fallbackKubeconfigPath: fallback,
      localEndpoint: cp.servers[0]!.url,
      discoverEndpoints: false,
      credentialPollMs: 100,
      credentialRecheckMs: 200,
      log,
    });
    try {
      expect(await getLease(c)).toBe(404); // 401 with the primary, answered with the fallback
      expect(c.credentialsInUse()).toBe(fallback);
      // While the primary is still refused, rechecks keep the fallback.
      await new Promise((r) => setTimeout(r, 250));
      expect(await getLease(c)).toBe(404);
      expect(c.credentialsInUse()).toBe(fallback);
      // kubeadm init finished: the primary now works. No restart.
      await copyFile(sa, primary);
      const end = performance.now() + 5000;
      while (c.credentialsInUse() !== primary && performance.now() < end) {
        expect(await getLease(c)).toBe(404);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(c.credentialsInUse()).toBe(primary);
    } finally {
      c.close();
    }
  }, 30_000);

  it('a missing primary kubeconfig uses the fallback until the file appears', async () => {
    const sa = await cp.serviceAccountKubeconfig();
    const primary = join(dir, 'later.conf');
    const c = await ApiClient.create({ kubeconfigPath: primary, fallbackKubeconfigPath: sa, localEndpoint: cp.servers[0]!.url, discoverEndpoints: false, credentialPollMs: 100, log });
    try {
      expect(c.credentialsInUse()).toBe(sa);
      expect(await getLease(c)).toBe(404);
      await copyFile(sa, primary);
      const end = performance.now() + 5000;
      while (c.credentialsInUse() !== primary && performance.now() < end) {
        await getLease(c);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(c.credentialsInUse()).toBe(primary);
    } finally {
      c.close();
    }
  }, 30_000);

  it('learns the control-plane endpoints from the kubernetes EndpointSlice (RBAC: list) and caches them on disk', async () => {
    // On loopback the API servers cannot publish themselves (loopback addresses are invalid in a
    // slice), so the slice is written here as the API servers would write it. The addresses are
    // only learned and cached, never dialed: the local endpoint answers every request.
    const slice = {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'kubernetes', namespace: 'default', labels: { 'kubernetes.io/service-name': 'kubernetes' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['198.18.0.11'], conditions: { ready: true } }, { addresses: ['198.18.0.12'], conditions: { ready: true } }, { addresses: ['198.18.0.13'], conditions: { ready: false } }],
      ports: [{ name: 'https', port: 6443, protocol: 'TCP' }],
    };
    const created = await cp.request('POST', '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices', slice);
    expect([201, 409]).toContain(created.status);
    const cache = join(dir, 'state', 'endpoints.json');
    const kc = await cp.serviceAccountKubeconfig();
    const c = await ApiClient.create({ kubeconfigPath: kc, localEndpoint: cp.servers[0]!.url, endpointsCachePath: cache, excludeAddresses: ['198.18.0.12'], log });
    try {
      expect(await c.refreshEndpoints()).toEqual(['https://198.18.0.11:6443']);
      expect(c.endpoints()).toEqual([normalizeEndpoint(cp.servers[0]!.url), 'https://198.18.0.11:6443']);
      expect(JSON.parse(await readFile(cache, 'utf8'))).toMatchObject({ version: 1, endpoints: ['https://198.18.0.11:6443'] });
    } finally {
      c.close();
    }
    // A restart while nothing answers still knows the other endpoints.
    const again = await ApiClient.create({ kubeconfigPath: kc, localEndpoint: cp.servers[0]!.url, endpointsCachePath: cache, discoverEndpoints: false, log });
    expect(again.endpoints()).toEqual([normalizeEndpoint(cp.servers[0]!.url), 'https://198.18.0.11:6443']);
    again.close();
    await cp.request('DELETE', '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes');
  }, 30_000);

  it('watch: delivers the current object first; a refused watch reports its HTTP status and does not mark the endpoint down', async () => {
    const kc = await cp.serviceAccountKubeconfig();
    const c = await ApiClient.create({ kubeconfigPath: kc, localEndpoint: cp.servers[0]!.url, discoverEndpoints: false, log });
    try {
      const path = '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases';
      const created = await cp.request('POST', path, { metadata: { name: 'watch-me' }, spec: { holderIdentity: 'x' } });
      expect(created.status).toBe(201);
      const seen: string[] = [];
      const ac = new AbortController();
      const w = c.watch('t.watch', path, { fieldSelector: 'metadata.name=watch-me' }, (type, obj) => {
        seen.push(`${type}:${(obj as { spec?: { holderIdentity?: string } }).spec?.holderIdentity}`);
        ac.abort();
      }, ac.signal);
      await expect(w).rejects.toThrow(/abort/i);
      expect(seen).toEqual(['ADDED:x']);
      // A refused watch carries its HTTP status and is an answer, not a dead endpoint.
      const err = await c.watch('t.watch', '/apis/coordination.k8s.io/v1/namespaces/default/leases', {}, () => {}, AbortSignal.timeout(10_000)).then(() => undefined, (e: unknown) => e);
      expect(httpStatus(err)).toBe(403); // the Role grants Leases in kube-system only
      expect(c.endpoints()[0]).toBe(normalizeEndpoint(cp.servers[0]!.url));
    } finally {
      c.close();
    }
  }, 30_000);
});
