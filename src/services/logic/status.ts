/**
 * What vipd writes into a Service's status, as a pure function of the Service and its
 * allocation outcome. One merge patch carries the ingress list and vipd's record (the
 * `vipd.io/Allocated` condition) together, guarded by the Service's resourceVersion, so the two
 * never disagree and a stale writer gets 409 instead of overwriting a newer decision.
 *
 * Comparison ignores `ipMode` (an API server without the field drops it; comparing it would
 * rewrite forever) and condition timestamps.
 */
import type { Outcome, PendingReason } from './ipam.js';
import {
  ALLOCATED_PREFIX,
  CONDITION_TYPE,
  allocatedCondition,
  ingressIps,
  isoTime,
  recordedIps,
  type ConditionLike,
  type ServiceLike,
} from './model.js';

export const PENDING_REASONS: Record<PendingReason, string> = {
  exhausted: 'PoolExhausted',
  'requested-ip-out-of-pool': 'RequestedIPOutOfPool',
  'requested-ip-in-use': 'RequestedIPInUse',
  'no-pool-for-namespace': 'NoPoolForNamespace',
  'family-unavailable': 'IPFamilyUnavailable',
  'invalid-request': 'InvalidRequest',
};

export interface StatusPatch {
  metadata: { resourceVersion: string };
  status: {
    loadBalancer: { ingress: Array<{ ip: string; ipMode: 'VIP' }> | null };
    conditions: ConditionLike[] | null;
  };
}

function condition(svc: ServiceLike, status: 'True' | 'False', reason: string, message: string, now: Date): ConditionLike {
  const prev = allocatedCondition(svc);
  const lastTransitionTime = prev && prev.status === status && prev.lastTransitionTime ? isoTime(prev.lastTransitionTime) : now.toISOString();
  return {
    type: CONDITION_TYPE,
    status,
    reason,
    message: message.length > 1000 ? `${message.slice(0, 997)}...` : message,
    lastTransitionTime: lastTransitionTime.replace(/\.\d{3}Z$/, 'Z'),
    ...(svc.metadata?.generation !== undefined ? { observedGeneration: svc.metadata.generation } : {}),
  };
}

function otherConditions(svc: ServiceLike): ConditionLike[] {
  return (svc.status?.conditions ?? [])
    .filter((c) => c.type !== CONDITION_TYPE)
    .map((c) => ({ ...c, ...(c.lastTransitionTime !== undefined ? { lastTransitionTime: isoTime(c.lastTransitionTime).replace(/\.\d{3}Z$/, 'Z') } : {}) }));
}

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** The patch that makes a managed Service's status say `outcome`, or undefined if it already does. */
export function statusPatch(svc: ServiceLike, outcome: Outcome, now: Date): StatusPatch | undefined {
  const ips = outcome.kind === 'assigned' ? [...outcome.ips] : [];
  const want =
    outcome.kind === 'assigned'
      ? condition(svc, 'True', 'Allocated', `${ALLOCATED_PREFIX}${ips.join(',')}`, now)
      : condition(svc, 'False', PENDING_REASONS[outcome.reason], outcome.message, now);
  const have = allocatedCondition(svc);
  const ingressOk = sameList(ingressIps(svc), ips);
  const condOk = have !== undefined && have.status === want.status && have.reason === want.reason && have.message === want.message && have.observedGeneration === want.observedGeneration;
  if (ingressOk && condOk) return undefined;
  return {
    metadata: { resourceVersion: svc.metadata?.resourceVersion ?? '' },
    status: {
      loadBalancer: { ingress: ips.length > 0 ? ips.map((ip) => ({ ip, ipMode: 'VIP' as const })) : null },
      conditions: [...otherConditions(svc), want],
    },
  };
}

/**
 * For a Service vipd no longer manages (type changed, ignore annotation) that still carries its
 * record: drop the record, and the ingress entries vipd wrote (only if the ingress is still
 * exactly what vipd recorded; anything else belongs to whoever wrote it).
 */
export function releasePatch(svc: ServiceLike): StatusPatch | undefined {
  if (!allocatedCondition(svc)) return undefined;
  const ours = recordedIps(svc);
  const ingress = ingressIps(svc);
  const clearIngress = ingress.length > 0 && sameList(ingress, ours);
  const others = otherConditions(svc);
  const patch: StatusPatch = {
    metadata: { resourceVersion: svc.metadata?.resourceVersion ?? '' },
    status: { loadBalancer: { ingress: null }, conditions: others.length > 0 ? others : null },
  };
  if (!clearIngress) {
    // Leave the ingress list as it is: merge patch without the key.
    delete (patch.status as Partial<StatusPatch['status']>).loadBalancer;
  }
  return patch;
}
