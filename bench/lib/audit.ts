/**
 * Counting API requests where they land: the kube-apiserver audit log. Pure parsing and
 * counting; the policy text is what the bench hands to every API server.
 *
 * - The policy logs Metadata for everything (resource and non-resource URLs, /livez included)
 *   and omits the RequestReceived stage; a request is counted once by its auditID, at its
 *   requestReceivedTimestamp, whichever stage carried it (a watch shows up at ResponseStarted).
 * - Lines that are not audit events (klog output, a line cut by a concurrent write) are skipped.
 */

export const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
`;

export interface AuditEvent {
  auditID: string;
  stage: string;
  verb: string;
  requestURI: string;
  user: string;
  userAgent: string;
  sourceIPs: string[];
  /** ms since the epoch. */
  receivedAt: number;
  /** objectRef.resource (+ '/' + subresource), or the path of a non-resource request. */
  target: string;
  code: number | null;
}

interface RawEvent {
  kind?: string;
  auditID?: string;
  stage?: string;
  verb?: string;
  requestURI?: string;
  user?: { username?: string };
  userAgent?: string;
  sourceIPs?: string[];
  requestReceivedTimestamp?: string;
  objectRef?: { resource?: string; subresource?: string };
  responseStatus?: { code?: number };
}

export function parseAuditLine(line: string): AuditEvent | null {
  const s = line.trim();
  if (!s.startsWith('{')) return null;
  let raw: RawEvent;
  try {
    raw = JSON.parse(s) as RawEvent;
  } catch {
    return null;
  }
  if (raw.kind !== 'Event' || !raw.auditID || !raw.requestReceivedTimestamp) return null;
  const receivedAt = Date.parse(raw.requestReceivedTimestamp);
  if (!Number.isFinite(receivedAt)) return null;
  const uri = raw.requestURI ?? '';
  const target = raw.objectRef?.resource
    ? raw.objectRef.resource + (raw.objectRef.subresource ? `/${raw.objectRef.subresource}` : '')
    : (uri.split('?')[0] ?? '');
  return {
    auditID: raw.auditID,
    stage: raw.stage ?? '',
    verb: raw.verb ?? '',
    requestURI: uri,
    user: raw.user?.username ?? '',
    userAgent: raw.userAgent ?? '',
    sourceIPs: raw.sourceIPs ?? [],
    receivedAt,
    target,
    code: raw.responseStatus?.code ?? null,
  };
}

/** Every event in a log text, one per auditID (the first stage seen). */
export function parseAuditLog(text: string): AuditEvent[] {
  const seen = new Set<string>();
  const out: AuditEvent[] = [];
  for (const line of text.split('\n')) {
    const e = parseAuditLine(line);
    if (!e || seen.has(e.auditID)) continue;
    seen.add(e.auditID);
    out.push(e);
  }
  return out;
}

export const WRITE_VERBS: ReadonlySet<string> = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);

export interface AuditCount {
  total: number;
  writes: number;
  /** By "verb target", e.g. "update leases", "get /livez". */
  byKind: Record<string, number>;
  /** By client: the user agent's first word (e.g. "node", "curl/7.88.1", "kube-vip/v0.0.0"). */
  byClient: Record<string, number>;
}

/** Requests received in [from, to) that `match` accepts. */
export function countRequests(events: readonly AuditEvent[], from: number, to: number, match: (e: AuditEvent) => boolean): AuditCount {
  const byKind: Record<string, number> = {};
  const byClient: Record<string, number> = {};
  let total = 0;
  let writes = 0;
  for (const e of events) {
    if (e.receivedAt < from || e.receivedAt >= to || !match(e)) continue;
    total++;
    if (WRITE_VERBS.has(e.verb)) writes++;
    const k = `${e.verb} ${e.target}`;
    byKind[k] = (byKind[k] ?? 0) + 1;
    const c = e.userAgent.split(' ')[0] || '(none)';
    byClient[c] = (byClient[c] ?? 0) + 1;
  }
  return { total, writes, byKind, byClient };
}

/** Per minute over a window of `ms`, to 0.1. */
export function perMinute(count: number, ms: number): number {
  return ms <= 0 ? 0 : Math.round((count / (ms / 60_000)) * 10) / 10;
}

/** Users the API servers themselves use (loopback client, controllers inside kube-apiserver). */
export function isServerInternal(e: AuditEvent): boolean {
  return e.user === 'system:apiserver' || e.user.startsWith('system:kube-');
}
