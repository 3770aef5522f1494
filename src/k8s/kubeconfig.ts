/**
 * A kubeconfig file, and the TLS material and headers a request made with it carries.
 *
 * Why not client-node's KubeConfig: its module (config.js), like the package entry, statically
 * imports the whole generated API, which costs ~78 MB of RSS in a process that uses none of it
 * (`node dist/bench/imports.js`). What a kubeconfig means is still client-node's: the YAML is read
 * with js-yaml as KubeConfig.loadFromString reads it, the fields are mapped and checked by its
 * config_types (newClusters/newUsers/newContexts), and exec plugins and token files go through
 * its ExecAuth (credential cached until it expires) and FileAuth (re-read every 60 s, so a rotated
 * projected token is picked up). Those modules import only node built-ins (3 MB together).
 *
 * The legacy auth providers (azure, gcp, oidc) are the exception: a kubeconfig that uses one gets
 * client-node's KubeConfig itself, loaded on first use, and pays its memory.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { load as loadYaml } from 'js-yaml';
import { newClusters, newContexts, newUsers, type Cluster, type User } from '@kubernetes/client-node/dist/config_types.js';
import { ExecAuth } from '@kubernetes/client-node/dist/exec_auth.js';
import { FileAuth } from '@kubernetes/client-node/dist/file_auth.js';

export type { Cluster, User };

/** What one request needs from the kubeconfig (fields named as node:https/tls options). */
export interface RequestCredentials {
  ca?: Buffer;
  cert?: Buffer | string;
  key?: Buffer | string;
  rejectUnauthorized?: boolean;
  headers: Record<string, string>;
}

const LEGACY_PROVIDERS = new Set(['azure', 'gcp', 'oidc']);

/** What the legacy path needs of client-node's KubeConfig. */
interface FullKubeConfig {
  loadFromString(text: string): void;
  makePathsAbsolute(dir: string): void;
  applyToHTTPSOptions(opts: object): Promise<void>;
}

export class Kubeconfig {
  // One per loaded file: an exec credential or a file token is cached for this file's user.
  private readonly exec = new ExecAuth();
  private readonly tokenFile = new FileAuth();
  private full: Promise<FullKubeConfig> | undefined;

  private constructor(
    readonly cluster: Cluster,
    readonly user: User,
    private readonly text: string,
    private readonly dir: string,
  ) {}

  /** Throws when the YAML or an entry is invalid, or the current context lacks a cluster or a user. */
  static parse(text: string, file: string): Kubeconfig {
    const obj = (loadYaml(text) ?? {}) as { clusters?: unknown; users?: unknown; contexts?: unknown; 'current-context'?: unknown };
    const contexts = newContexts(obj.contexts);
    const context = contexts.find((c) => c.name === obj['current-context']);
    const cluster = context && newClusters(obj.clusters).find((c) => c.name === context.cluster);
    const user = context && newUsers(obj.users).find((u) => u.name === context.user);
    if (!cluster || !user) throw new Error('no current context with a cluster and a user');
    // Relative file names are relative to the kubeconfig, as in KubeConfig.makePathsAbsolute.
    const dir = path.dirname(file);
    if (cluster.caFile) cluster.caFile = absolute(dir, cluster.caFile);
    if (user.certFile) user.certFile = absolute(dir, user.certFile);
    if (user.keyFile) user.keyFile = absolute(dir, user.keyFile);
    return new Kubeconfig(cluster, user, text, dir);
  }

  /**
   * TLS material and the Authorization header for one request, as KubeConfig.applyToHTTPSOptions
   * gives them. Files (CA, certificate, key) are read each time, so a rotated one is used at once.
   */
  async credentials(): Promise<RequestCredentials> {
    const { cluster, user } = this;
    const out: RequestCredentials = { headers: {} };
    if (LEGACY_PROVIDERS.has(String(user.authProvider?.name))) {
      await (await this.fullKubeConfig()).applyToHTTPSOptions(out);
      return out;
    }
    if (cluster.skipTLSVerify) out.rejectUnauthorized = false;
    const ca = await fileOrData(cluster.caFile, cluster.caData);
    if (ca) out.ca = ca;
    const cert = await fileOrData(user.certFile, user.certData);
    if (cert) out.cert = cert;
    const key = await fileOrData(user.keyFile, user.keyData);
    if (key) out.key = key;
    if (user.impersonateUser) out.headers['Impersonate-User'] = user.impersonateUser;
    if (this.exec.isAuthProvider(user)) await this.exec.applyAuthentication(user, out);
    else if (this.tokenFile.isAuthProvider(user)) await this.tokenFile.applyAuthentication(user, out);
    // A static token wins over a provider, as in client-node.
    if (user.token) out.headers.Authorization = `Bearer ${user.token}`;
    return out;
  }

  private fullKubeConfig(): Promise<FullKubeConfig> {
    this.full ??= import('@kubernetes/client-node/dist/config.js').then(({ KubeConfig }) => {
      const kc = new KubeConfig();
      kc.loadFromString(this.text);
      kc.makePathsAbsolute(this.dir);
      return kc;
    });
    return this.full;
  }
}

function absolute(dir: string, file: string): string {
  return path.isAbsolute(file) ? file : path.join(dir, file);
}

async function fileOrData(file: string | undefined, data: string | undefined): Promise<Buffer | undefined> {
  if (file) return fsp.readFile(file);
  if (data) return Buffer.from(data, 'base64');
  return undefined;
}
