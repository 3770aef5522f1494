/**
 * A throwaway certificate authority for a lab control plane, made with the `openssl` CLI (Debian's
 * openssl package; no npm crypto library needed). Lab-only code.
 *
 * Keys are ECDSA P-256 (fast to generate; kube-apiserver and etcd accept them for serving, client
 * and service-account signing). Certificates are valid from now for `days`: the lab never moves
 * the wall clock of the API server, so no back-dating is needed.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';

export interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
  caPem: string;
  /** Serving certificate for every API server of the control plane (one cert, all names and IPs). */
  serverCert: string;
  serverKey: string;
  /** Client certificate in group system:masters: the cluster admin. */
  adminCert: string;
  adminKey: string;
  adminCertPem: string;
  adminKeyPem: string;
  /** Service-account token signing key pair. */
  saKey: string;
  saPub: string;
}

export interface PkiOptions {
  dnsNames: string[];
  ips: string[];
  days?: number;
}

function openssl(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`openssl ${args[0]} failed: ${stderr.trim() || err.message}`));
      else resolve();
    });
  });
}

async function ecKey(dir: string, file: string): Promise<string> {
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file], dir);
  return join(dir, file);
}

const REQ_CONFIG = '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n';

async function sign(
  dir: string,
  base: string,
  subject: string,
  extensions: string[],
  ca: { cert: string; key: string },
  days: number,
): Promise<{ cert: string; key: string }> {
  const key = await ecKey(dir, `${base}.key`);
  await writeFile(join(dir, `${base}.cnf`), REQ_CONFIG);
  await writeFile(join(dir, `${base}.ext`), extensions.join('\n') + '\n');
  await openssl(['req', '-new', '-key', key, '-subj', subject, '-config', `${base}.cnf`, '-out', `${base}.csr`], dir);
  await openssl(
    ['x509', '-req', '-in', `${base}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', '0x' + randomBytes(12).toString('hex'),
      '-days', String(days), '-sha256', '-extfile', `${base}.ext`, '-out', `${base}.crt`],
    dir,
  );
  return { cert: join(dir, `${base}.crt`), key };
}

/** Subject Alternative Name value for the given names and addresses (deduplicated, order kept). */
export function subjectAltName(dnsNames: string[], ips: string[]): string {
  const entries = [
    ...[...new Set(dnsNames)].map((n) => `DNS:${n}`),
    ...[...new Set(ips)].map((ip) => {
      if (!isIP(ip)) throw new Error(`certificate IP ${JSON.stringify(ip)} is not an IP address`);
      return `IP:${ip}`;
    }),
  ];
  return 'subjectAltName = ' + entries.join(',');
}

export async function createPki(dir: string, opts: PkiOptions): Promise<Pki> {
  const days = opts.days ?? 30;
  const caKey = await ecKey(dir, 'ca.key');
  await writeFile(
    join(dir, 'ca.cnf'),
    REQ_CONFIG +
      '[v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier = hash\n',
  );
  await openssl(
    ['req', '-x509', '-new', '-key', caKey, '-subj', '/CN=vipd-lab-ca', '-days', String(days), '-sha256',
      '-config', 'ca.cnf', '-extensions', 'v3_ca', '-out', 'ca.crt'],
    dir,
  );
  const ca = { cert: join(dir, 'ca.crt'), key: caKey };
  const leaf = ['basicConstraints = critical,CA:FALSE', 'authorityKeyIdentifier = keyid'];
  const server = await sign(
    dir,
    'apiserver',
    '/CN=kube-apiserver',
    [...leaf, 'keyUsage = critical,digitalSignature,keyEncipherment', 'extendedKeyUsage = serverAuth',
      subjectAltName(opts.dnsNames, opts.ips)],
    ca,
    days,
  );
  const admin = await sign(
    dir,
    'admin',
    '/O=system:masters/CN=vipd-lab-admin',
    [...leaf, 'keyUsage = critical,digitalSignature,keyEncipherment', 'extendedKeyUsage = clientAuth'],
    ca,
    days,
  );
  const saKey = await ecKey(dir, 'sa.key');
  await openssl(['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
  return {
    dir,
    caCert: ca.cert,
    caKey,
    caPem: await readFile(ca.cert, 'utf8'),
    serverCert: server.cert,
    serverKey: server.key,
    adminCert: admin.cert,
    adminKey: admin.key,
    adminCertPem: await readFile(admin.cert, 'utf8'),
    adminKeyPem: await readFile(admin.key, 'utf8'),
    saKey,
    saPub: join(dir, 'sa.pub'),
  };
}
