import { lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { loadYaml } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  LABEL_NODE,
  LABEL_SERVICE,
  announcementName,
  announcementWrites,
  announcerChangedNote,
  desiredAnnouncements,
  labelValue,
  type Announcement,
  type DesiredInput,
  type ObservedAnnouncement,
} from '../../../src/services/logic/announcements.js';

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const REASON = 'service IP granted by a majority of the voters';

const services: Record<string, { namespace: string; name: string; uid: string }> = {
  'a/web': { namespace: 'a', name: 'web', uid: 'u-web' },
  'a/dns': { namespace: 'a', name: 'dns', uid: 'u-dns' },
  'b/dual': { namespace: 'b', name: 'dual', uid: 'u-dual' },
};

const input = (over: Partial<DesiredInput> = {}): DesiredInput => ({
  node: 'n2',
  iface: 'eth0',
  held: [{ ip: '198.18.0.130', reason: REASON, since: '2026-12-03T12:00:00.000Z' }],
  servicesOn: new Map([
    ['198.18.0.130', ['a/dns', 'a/web']],
    ['198.18.0.131', ['b/dual']],
    ['2001:db8::131', ['b/dual']],
  ]),
  service: (k) => services[k],
  ...over,
});

const observedOf = (a: Announcement, rv = '7'): ObservedAnnouncement => JSON.parse(JSON.stringify({ ...a, metadata: { ...a.metadata, resourceVersion: rv } })) as ObservedAnnouncement;

describe('announcement names', () => {
  it('service.node, lowercase, a DNS subdomain', () => {
    expect(announcementName('web', 'n2')).toBe('web.n2');
    expect(announcementName('web', 'Node_7.example.com')).toBe('web.node-7.example.com');
  });

  it('stable, at most 63 characters, and distinct for distinct (service, node) pairs', () => {
    const label = fc.stringMatching(/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/);
    const node = fc.stringMatching(/^[a-z0-9]([-a-z0-9.]{0,120}[a-z0-9])?$/);
    fc.assert(
      fc.property(label, node, label, node, (s1, n1, s2, n2) => {
        const a = announcementName(s1, n1);
        expect(a).toBe(announcementName(s1, n1));
        expect(a.length).toBeLessThanOrEqual(63);
        expect(a).toMatch(DNS_SUBDOMAIN);
        if (s1 !== s2 || n1 !== n2) expect(a).not.toBe(announcementName(s2, n2));
      }),
    );
  });

  it('a name that is too long is cut and keeps a hash of the whole', () => {
    const node = `${'x'.repeat(70)}.example.com`;
    const n = announcementName('web', node);
    expect(n).toHaveLength(63);
    expect(n.startsWith('web.xxxx')).toBe(true);
    expect(n).not.toBe(announcementName('web', `${'x'.repeat(70)}.example.org`));
    expect(labelValue(node)).toHaveLength(63);
    expect(labelValue('n2')).toBe('n2');
  });
});

describe('desired announcements', () => {
  it('one object per Service on a held address, owned by the Service, in its namespace', () => {
    const d = desiredAnnouncements(input());
    expect(d.map((a) => `${a.metadata.namespace}/${a.metadata.name}`)).toEqual(['a/dns.n2', 'a/web.n2']);
    const web = d[1]!;
    expect(web.apiVersion).toBe('vipd.io/v1alpha1');
    expect(web.kind).toBe('ServiceAnnouncement');
    expect(web.metadata.ownerReferences).toEqual([{ apiVersion: 'v1', kind: 'Service', name: 'web', uid: 'u-web' }]);
    expect(web.metadata.labels).toMatchObject({ [LABEL_SERVICE]: 'web', [LABEL_NODE]: 'n2', 'app.kubernetes.io/name': 'vipd' });
    expect(web.status).toEqual({
      node: 'n2',
      serviceName: 'web',
      serviceNamespace: 'a',
      interfaces: [{ name: 'eth0' }],
      addresses: ['198.18.0.130'],
      reason: REASON,
      since: '2026-12-03T12:00:00.000Z',
      announcements: [{ address: '198.18.0.130', reason: REASON, since: '2026-12-03T12:00:00.000Z' }],
    });
  });

  it('a dual-stack Service: both addresses in one object; since is the first, reason the latest', () => {
    const d = desiredAnnouncements(
      input({
        held: [
          { ip: '2001:db8::131', reason: 'later', since: '2026-12-03T12:05:00.000Z' },
          { ip: '198.18.0.131', reason: 'first', since: '2026-12-03T12:01:00.000Z' },
        ],
      }),
    );
    expect(d).toHaveLength(1);
    expect(d[0]!.status.addresses).toEqual(['198.18.0.131', '2001:db8::131']);
    expect(d[0]!.status.since).toBe('2026-12-03T12:01:00.000Z');
    expect(d[0]!.status.reason).toBe('later');
    expect(d[0]!.status.announcements.map((a) => a.address)).toEqual(['198.18.0.131', '2001:db8::131']);
  });

  it('each address names its own interface (L2Advertisement interfaces per pool); absent: the default one', () => {
    const d = desiredAnnouncements(
      input({
        held: [
          { ip: '2001:db8::131', reason: REASON, since: '2026-12-03T12:05:00.000Z' },
          { ip: '198.18.0.131', reason: REASON, since: '2026-12-03T12:01:00.000Z', iface: 'eth1' },
        ],
      }),
    );
    expect(d[0]!.status.interfaces).toEqual([{ name: 'eth0' }, { name: 'eth1' }]);
    const one = desiredAnnouncements(input({ held: [{ ip: '198.18.0.131', reason: REASON, since: 't', iface: 'eth1' }] }));
    expect(one[0]!.status.interfaces).toEqual([{ name: 'eth1' }]);
  });

  it('nothing for an address no Service is on, a Service not (yet) seen, or another namespace', () => {
    expect(desiredAnnouncements(input({ held: [{ ip: '198.18.0.99', reason: REASON, since: 't' }] }))).toEqual([]);
    expect(desiredAnnouncements(input({ service: () => undefined }))).toEqual([]);
    expect(desiredAnnouncements(input({ namespace: 'b' }))).toEqual([]);
    expect(desiredAnnouncements(input({ held: [] }))).toEqual([]);
  });
});

describe('writes from desired vs observed', () => {
  it('creates what is missing, leaves what matches, updates what differs, deletes the rest', () => {
    const [dns, web] = desiredAnnouncements(input());
    expect(announcementWrites([dns!, web!], []).map((w) => w.op)).toEqual(['create', 'create']);
    expect(announcementWrites([dns!, web!], [observedOf(dns!), observedOf(web!)])).toEqual([]);

    const moved = desiredAnnouncements(input({ held: [{ ip: '198.18.0.130', reason: REASON, since: '2026-12-03T13:00:00.000Z' }] }));
    const w = announcementWrites(moved, [observedOf(dns!, '11'), observedOf(web!, '12')]);
    expect(w.map((x) => x.op)).toEqual(['update', 'update']);
    expect(w[0]!.op === 'update' && w[0]!.body.metadata.resourceVersion).toBe('11');

    const stale: ObservedAnnouncement = { metadata: { namespace: 'b', name: 'dual.n2', resourceVersion: '3' }, status: { node: 'n2' } };
    expect(announcementWrites([web!], [observedOf(web!), stale])).toEqual([{ op: 'delete', namespace: 'b', name: 'dual.n2', resourceVersion: '3' }]);
    expect(announcementWrites([], [observedOf(web!, '5')])).toEqual([{ op: 'delete', namespace: 'a', name: 'web.n2', resourceVersion: '5' }]);
  });

  it('a changed owner (the Service was re-created with a new uid) or lost label is an update', () => {
    const [, web] = desiredAnnouncements(input());
    const old = observedOf(web!);
    old.metadata!.ownerReferences = [{ apiVersion: 'v1', kind: 'Service', name: 'web', uid: 'old' }];
    expect(announcementWrites([web!], [old]).map((w) => w.op)).toEqual(['update']);
    const unlabelled = observedOf(web!);
    unlabelled.metadata!.labels = {};
    expect(announcementWrites([web!], [unlabelled]).map((w) => w.op)).toEqual(['update']);
  });

  it('key order in what the API server returns does not matter', () => {
    const [, web] = desiredAnnouncements(input());
    const s = web!.status;
    const reordered: ObservedAnnouncement = {
      metadata: { ...web!.metadata, resourceVersion: '1' },
      status: { since: s.since, reason: s.reason, announcements: s.announcements, addresses: s.addresses, interfaces: s.interfaces, serviceNamespace: s.serviceNamespace, serviceName: s.serviceName, node: s.node },
    };
    expect(announcementWrites([web!], [reordered])).toEqual([]);
  });

  it('the Event note names the address, the node and the reason', () => {
    expect(announcerChangedNote('198.18.0.130', 'n2', REASON)).toBe(`198.18.0.130 announced by n2: ${REASON}`);
  });
});

describe('the CRD file and the code agree', () => {
  const ROOT = join(import.meta.dirname, '../../..');
  const chartFile = join(ROOT, 'charts/vipd/crds/vipd-crds.yaml');
  type Crd = {
    spec: {
      group: string;
      names: { kind: string; plural: string; shortNames: string[] };
      scope: string;
      versions: Array<{ name: string; additionalPrinterColumns: Array<{ name: string; jsonPath: string }>; schema: { openAPIV3Schema: { properties: { status: { properties: Record<string, unknown> } } } } }>;
    };
  };
  const crd = loadYaml<Crd>(readFileSync(chartFile, 'utf8'));

  it('manifests/vipd-crds.yaml is a link to the chart\'s crds/ file, so the two cannot drift', () => {
    const link = join(ROOT, 'manifests/vipd-crds.yaml');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe('../charts/vipd/crds/vipd-crds.yaml');
    expect(readFileSync(link, 'utf8')).toBe(readFileSync(chartFile, 'utf8'));
  });

  it('group, version, kind and short name are what the code writes; every status field is in the schema (nothing pruned)', () => {
    const [a] = desiredAnnouncements(input());
    expect(`${crd.spec.group}/${crd.spec.versions[0]!.name}`).toBe(a!.apiVersion);
    expect(crd.spec.names).toMatchObject({ kind: a!.kind, plural: 'serviceannouncements', shortNames: ['svcann'] });
    expect(crd.spec.scope).toBe('Namespaced');
    expect(Object.keys(crd.spec.versions[0]!.schema.openAPIV3Schema.properties.status.properties).sort()).toEqual(Object.keys(a!.status).sort());
    expect(crd.spec.versions[0]!.additionalPrinterColumns.map((c) => `${c.name}=${c.jsonPath}`)).toEqual([
      'Service=.status.serviceName',
      'Node=.status.node',
      'Addresses=.status.addresses',
      'Reason=.status.reason',
      'Since=.status.since',
    ]);
  });
});
