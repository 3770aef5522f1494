/**
 * The API paths vipd reads and writes, in one place: group, version and plural of every resource
 * it uses. The request layer (client.ts) is plain JSON over HTTPS, so these paths are what the
 * generated typed API classes used to hold for us.
 */

/** A list response: the items and the resourceVersion to watch from. */
export interface List<T> {
  items: T[];
  metadata?: { resourceVersion?: string };
}

/** RFC 3339 with microseconds, the wire form of metav1.MicroTime (the API refuses any other precision). */
export function microTime(wallMs: number): string {
  return new Date(wallMs).toISOString().replace(/Z$/, '000Z');
}

const seg = encodeURIComponent;
const core = (namespace: string | undefined, plural: string): string => (namespace ? `/api/v1/namespaces/${seg(namespace)}/${plural}` : `/api/v1/${plural}`);
const group = (gv: string, namespace: string | undefined, plural: string): string =>
  namespace ? `/apis/${gv}/namespaces/${seg(namespace)}/${plural}` : `/apis/${gv}/${plural}`;

export const paths = {
  leases: (namespace: string) => group('coordination.k8s.io/v1', namespace, 'leases'),
  lease: (namespace: string, name: string) => `${paths.leases(namespace)}/${seg(name)}`,
  /** One namespace, or all with `undefined`. */
  services: (namespace?: string) => core(namespace, 'services'),
  serviceStatus: (namespace: string, name: string) => `${core(namespace, 'services')}/${seg(name)}/status`,
  /** One namespace, or all with `undefined`. */
  endpointSlices: (namespace?: string) => group('discovery.k8s.io/v1', namespace, 'endpointslices'),
  configMaps: (namespace: string) => core(namespace, 'configmaps'),
  /** Namespaces (their labels, for MetalLB namespaceSelectors). */
  namespaces: () => core(undefined, 'namespaces'),
  /** Nodes (their labels, for MetalLB L2Advertisement nodeSelectors). */
  nodes: () => core(undefined, 'nodes'),
  /** MetalLB's objects (an optional CRD); one namespace, or all with `undefined`. */
  ipAddressPools: (namespace?: string) => group('metallb.io/v1beta1', namespace, 'ipaddresspools'),
  l2Advertisements: (namespace?: string) => group('metallb.io/v1beta1', namespace, 'l2advertisements'),
  /** vipd.io ServiceAnnouncements (manifests/vipd-crds.yaml): one namespace, or all with `undefined`. */
  serviceAnnouncements: (namespace?: string) => group('vipd.io/v1alpha1', namespace, 'serviceannouncements'),
  serviceAnnouncement: (namespace: string, name: string) => `${paths.serviceAnnouncements(namespace)}/${seg(name)}`,
  events: (namespace: string) => group('events.k8s.io/v1', namespace, 'events'),
  event: (namespace: string, name: string) => `${paths.events(namespace)}/${seg(name)}`,
  /** core/v1 Events, for an API server without events.k8s.io/v1. */
  coreEvents: (namespace: string) => core(namespace, 'events'),
  coreEvent: (namespace: string, name: string) => `${paths.coreEvents(namespace)}/${seg(name)}`,
};
