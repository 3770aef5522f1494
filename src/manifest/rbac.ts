/**
 * RBAC for the vipd agent's ServiceAccount. This is the source of manifests/rbac.yaml, which the
 * lab harness applies before every test that talks to Kubernetes, so the tests run with exactly
 * the permissions users grant. Least privilege: a rule is here because some code path needs it.
 */
import type { Config } from '../config/index.js';
import { commented, type YamlDocument } from './yaml.js';

export const SERVICE_ACCOUNT = { name: 'vipd', namespace: 'kube-system' } as const;
/** Where vipd keeps the pool ConfigMap (kube-vip's `kubevip`) and, by default, its Lease. */
const HOME_NAMESPACE = 'kube-system';

const HEADER = [
  'RBAC for the vipd agent: the exact permissions users grant, and the ones every test that talks to',
  'Kubernetes runs with (lab/apiserver.ts applies this file and hands out a token of this',
  'ServiceAccount). Least privilege: anything not listed here is refused, and tests assert that.',
  '',
  'Namespaced things (Leases, the pool ConfigMap) are granted in kube-system, where vipd keeps them.',
  'With cp_namespace set to another namespace, `vipd manifest rbac` adds a Role `vipd-lease` there.',
];

// Every object vipd's manifests or chart make carries this label, so `kubectl get -l` finds them all.
const LABELS = { 'app.kubernetes.io/name': 'vipd' };

const subjects = [{ kind: 'ServiceAccount', name: SERVICE_ACCOUNT.name, namespace: SERVICE_ACCOUNT.namespace }];

const leaseRule = commented(
  ['Leader election for the control-plane VIP: read, take over,', 'renew. No delete: a leaving holder releases by updating the Lease, which keeps its history.'],
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch'] },
);

function roleAndBinding(name: string, namespace: string, rules: YamlDocument['body'][string]): YamlDocument[] {
  return [
    { body: { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace, labels: LABELS }, rules: rules ?? [] } },
    {
      body: {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name, namespace, labels: LABELS },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
        subjects,
      },
    },
  ];
}

/**
 * ServiceAccount, ClusterRole + binding, and the Role + binding in kube-system. A Lease kept in
 * another namespace (cp_namespace) gets its own Role `vipd-lease` there.
 */
export function rbacDocuments(config: Pick<Config, 'leaseNamespace'>, generatedBy: readonly string[]): YamlDocument[] {
  const docs: YamlDocument[] = [
    {
      comment: [...HEADER, ...(generatedBy.length ? ['', ...generatedBy] : [])],
      body: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: SERVICE_ACCOUNT.name, namespace: SERVICE_ACCOUNT.namespace, labels: LABELS } },
    },
    {
      body: {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: 'vipd', labels: LABELS },
        rules: [
          commented('Services mode: watch Services of type LoadBalancer across all namespaces.', { apiGroups: [''], resources: ['services'], verbs: ['get', 'list', 'watch'] }),
          commented(
            ['Services mode: write the allocated address into status.loadBalancer.ingress. Only the status', "subresource, so vipd cannot change a Service's spec."],
            { apiGroups: [''], resources: ['services/status'], verbs: ['update', 'patch'] },
          ),
          commented(
            ['externalTrafficPolicy: Local (only nodes with ready local endpoints announce), and the', "`kubernetes` Service's slice, which lists the addresses of the live API servers."],
            { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
          ),
          commented('Same information for clusters or tools that still read the legacy Endpoints object.', { apiGroups: [''], resources: ['endpoints'], verbs: ['get', 'list', 'watch'] }),
          commented("Node labels, for MetalLB L2Advertisements' nodeSelectors (which nodes may announce a pool's addresses). Read only.", { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] }),
          commented(
            [
              "Migration from MetalLB: read its IPAddressPool and L2Advertisement objects as address pools. Read only;",
              "cluster-wide because MetalLB's namespace may not exist when vipd is installed (no rule fails then).",
            ],
            { apiGroups: ['metallb.io'], resources: ['ipaddresspools', 'l2advertisements'], verbs: ['get', 'list', 'watch'] },
          ),
          commented("Namespace labels, for MetalLB pools' serviceAllocation.namespaceSelectors. Read only.", { apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list', 'watch'] }),
          commented(
            [
              'Events on Services and the Lease: who took or dropped a VIP, address conflicts. Events live in',
              'the namespace of the object they describe, hence cluster-wide; create/patch only (patch is how',
              "a repeated event's count is bumped), never read, update or delete.",
            ],
            { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
          ),
          { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
          commented(
            [
              'Services mode: the ServiceAnnouncement records (manifests/vipd-crds.yaml) of which node announces',
              "which address: each node lists, writes and deletes its own, in the Service's namespace.",
            ],
            { apiGroups: ['vipd.io'], resources: ['serviceannouncements'], verbs: ['list', 'create', 'update', 'delete'] },
          ),
        ],
      },
    },
    {
      body: {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: 'vipd', labels: LABELS },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'vipd' },
        subjects,
      },
    },
    ...roleAndBinding('vipd', HOME_NAMESPACE, [
      leaseRule,
      commented("The address pools (kube-vip's `kubevip` ConfigMap format). Read only.", { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }),
    ]),
  ];
  if (config.leaseNamespace !== HOME_NAMESPACE) {
    docs.push(...roleAndBinding('vipd-lease', config.leaseNamespace, [leaseRule]));
  }
  return docs;
}
