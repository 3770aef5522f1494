/**
 * The operator docs say things the code decides; these tests hold them to it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, formatListenAddress, loadConfig } from '../../src/config/index.js';
import { KUBE_VIP_INERT, SETTINGS, settingDef, type SettingKey } from '../../src/config/settings.js';
import { DOCUMENTED_ARGS, EXAMPLE_MANIFESTS } from '../../src/manifest/files.js';
import { DEFAULT_FRR_IMAGE, DEFAULT_FRR_VTY_GID, defaultManifestOptions, frrStartScript, generateManifest } from '../../src/manifest/generate.js';

const ROOT = join(import.meta.dirname, '../..');
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');
const base = { address: '192.0.2.10', vip_nodename: 'cp1' };

const envNames = new Set((Object.keys(SETTINGS) as SettingKey[]).flatMap((k) => [settingDef(k).env, ...(settingDef(k).aliases ?? [])]));

function refusal(env: Record<string, string>, argv: string[] = []): ConfigError | undefined {
  try {
    loadConfig({ ...base, ...env }, argv);
    return undefined;
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
}

/** Rows of the "theirs → ours" table: kube-vip variables, and vipd's answer. */
function migrationRows(): Array<{ theirs: string[]; ours: string }> {
  const md = read('docs/migration-from-kube-vip.md');
  const section = md.slice(md.indexOf('## Settings, theirs'), md.indexOf('## What behaves differently'));
  return section
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .map((l) => {
      const cells = l.split(' | ');
      const theirs = [...(cells[0] ?? '').replace(/\(.*\)/, '').matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
      return { theirs, ours: cells[1] ?? '' };
    });
}

describe('docs/migration-from-kube-vip.md', () => {
  const rows = migrationRows();

  it('has a row for every kube-vip setting vipd reads under the same name', () => {
    const covered = new Set(rows.flatMap((r) => r.theirs));
    for (const key of Object.keys(SETTINGS) as SettingKey[]) {
      const def = settingDef(key);
      if (def.kubeVip) expect(covered, def.env).toContain(def.env);
    }
    for (const name of Object.keys(KUBE_VIP_INERT)) expect(covered, name).toContain(name);
  });

  it('says the truth about each kube-vip variable: vipd setting, inert, refused or ignored', () => {
    expect(rows.length).toBeGreaterThan(25);
    for (const { theirs, ours } of rows) {
      for (const name of theirs) {
        if (ours.startsWith('`')) {
          expect(envNames, `${name} is read by vipd`).toContain(name);
          for (const m of ours.matchAll(/`([^`]+)`/g)) expect(envNames).toContain(m[1]);
        } else if (ours === 'inert') {
          expect(KUBE_VIP_INERT[name], `${name} is inert`).toBeDefined();
          expect(refusal({ [name]: KUBE_VIP_INERT[name]![0]! }), name).toBeUndefined();
        } else if (ours === 'refused') {
          expect(refusal({ [name]: 'true' })?.setting, `${name} is refused`).toBe(name);
        } else if (ours === 'ignored') {
          expect(envNames.has(name) || name in KUBE_VIP_INERT).toBe(false);
          expect(loadConfig({ ...base, [name]: 'anything' }, [])).toEqual(loadConfig(base, []));
        } else {
          throw new Error(`unexpected answer ${JSON.stringify(ours)} for ${name}`);
        }
      }
    }
  });

  it('the kube-vip flags it calls refused are refused; kube-vip\'s flag spellings and vipd\'s work', () => {
    for (const f of ['--services', '--leaderElectionType=etcd', '-n']) {
      expect(refusal({}, [f]), f).toBeInstanceOf(ConfigError);
    }
    const k = loadConfig(base, ['--log=-4', '--leaderElection', '--leaseRenewDuration=9', '--leaseRetry=3', '--prometheusHTTPServer=:2114']);
    expect([k.logLevel, k.renewDeadline, k.retryPeriod, formatListenAddress(k.metricsAddress)]).toEqual(['debug', 9, 3, ':2114']);
    const c = loadConfig(base, ['--leaseDuration=20', '--renewDeadline=12', '--retryPeriod=3', '--namespace=infra', '--prometheus_server=:2113', '--leaderElection']);
    expect([c.leaseDuration, c.renewDeadline, c.retryPeriod, c.leaseNamespace, formatListenAddress(c.metricsAddress)]).toEqual([20, 12, 3, 'infra', ':2113']);
  });

  it('vip_address and address with different values are refused, kube-vip\'s defaults are vipd\'s', () => {
    expect(refusal({ vip_address: '192.0.2.11' })).toBeInstanceOf(ConfigError);
    const c = loadConfig(base, []);
    expect({ port: c.port, lease: c.leaseName, ns: c.leaseNamespace, timers: [c.leaseDuration, c.renewDeadline, c.retryPeriod], rate: c.arpRate, metrics: formatListenAddress(c.metricsAddress), kubeconfig: c.kubeconfig }).toEqual({
      port: 6443,
      lease: 'plndr-cp-lock',
      ns: 'kube-system',
      timers: [15, 10, 2],
      rate: 3000,
      metrics: ':2112',
      kubeconfig: '/etc/kubernetes/admin.conf',
    });
  });
});

describe('docs/troubleshooting.md', () => {
  it('quotes the configuration errors as vipd prints them', () => {
    const md = read('docs/troubleshooting.md');
    const quoted = [...md.matchAll(/^vipd: (invalid setting .*)$/gm)].map((m) => m[1]!);
    expect(quoted).toHaveLength(3);
    expect(refusal({ vip_arpRate: '100' })?.message).toBe(quoted[0]);
    expect(refusal({ vip_bgp: 'true' })?.message).toBe(quoted[1]);
    expect(refusal({ vip_nodename: 'cp3', vip_peers: 'cp1=192.0.2.11:7946,cp2=192.0.2.12:7946', vip_peer_key_file: '/k' })?.message).toBe(quoted[2]);
  });
});

describe('docs/quickstart-kubeadm.md', () => {
  it('names the flags the checked-in manifests are generated with', () => {
    const md = read('docs/quickstart-kubeadm.md');
    expect(md).toContain(`\`${DOCUMENTED_ARGS.pod.join(' ')}\``);
    expect(DOCUMENTED_ARGS.daemonset).toEqual(DOCUMENTED_ARGS.pod);
  });

  it('its settings are valid for the first node, the others, and the DaemonSet', () => {
    const md = read('docs/quickstart-kubeadm.md');
    const block = /settings=\(\n([\s\S]*?)\n\)/.exec(md)![1]!;
    const args = block.split(/\s+/).filter(Boolean);
    expect(refusal({}, [...args, '--image=x'].filter((a) => !a.startsWith('--image')))).toBeUndefined();
    expect(refusal({}, [...args.filter((a) => !a.startsWith('--image')), '--vip_peer_bootstrap=true'])).toBeUndefined();
  });
});

describe('docs/bgp.md', () => {
  const md = read('docs/bgp.md');
  const section = md.slice(md.indexOf('## Deploying: the FRR sidecar'));
  const frr = () => {
    const { yaml } = generateManifest('pod', {}, [...EXAMPLE_MANIFESTS[0]!.args, '--vip_nodename=cp1'], defaultManifestOptions());
    return yaml;
  };

  it('keeps the headings others fill, and the deployment section', () => {
    expect(md.split('\n').filter((l) => l.startsWith('## '))).toEqual(['## How it works', '## Numbers', '## Deploying: the FRR sidecar']);
  });

  it('names the example manifest with the flags it is generated from, the default image and gid', () => {
    expect(section).toContain(`vipd manifest pod ${EXAMPLE_MANIFESTS[0]!.args.join(' ')}`);
    expect(section).toContain(EXAMPLE_MANIFESTS[0]!.path);
    expect(section).toContain(`\`${DEFAULT_FRR_IMAGE}\``);
    expect(section).toContain(`supplementalGroups: [${DEFAULT_FRR_VTY_GID}]`);
  });

  it('explains exactly the capabilities the FRR container gets', () => {
    const table = section.slice(section.indexOf('| capability |'), section.indexOf('| everything else |'));
    const documented = [...table.matchAll(/^\| ((?:`[A-Z_]+`(?:, )?)+) \|/gm)].flatMap((m) => [...m[1]!.matchAll(/`([A-Z_]+)`/g)].map((x) => x[1]!));
    const add = /- name: frr\n[\s\S]*?capabilities:\n\s+add: \[([^\]]*)\]/.exec(frr())![1]!.split(', ').map((c) => JSON.parse(c) as string);
    expect(documented).toEqual(add);
  });

  it('shows the daemons file the sidecar writes, and its gid refusal as printed', () => {
    const script = frrStartScript(DEFAULT_FRR_VTY_GID);
    for (const opt of ['-P 0', 'bgpd `-p 0`', 'bgpd `-n`', 'zebra `-s 90000000`']) expect(section).toContain(opt);
    expect(script).toContain('bgpd_options="-P 0 -p 0 -n"');
    const refusal = /^vipd: group frrvty .*$/m.exec(section)![0];
    expect(refusal).toBe('vipd: group frrvty is gid 106 in this image, but the pod gives vipd gid 102 to reach the vty sockets: generate the manifest with --frr-vty-gid=106');
    expect(script).toContain('echo "vipd: group frrvty is gid ${gid:-(none)} in this image, but the pod gives vipd gid 102 to reach the vty sockets: generate the manifest with --frr-vty-gid=${gid:-N}" >&2');
  });
});

describe('docs/migration-from-metallb.md', () => {
  const md = read('docs/migration-from-metallb.md');
  const section = md.slice(md.indexOf('## Fields and annotations, theirs'), md.indexOf('## What behaves differently'));
  const theirs = section.split('\n').filter((l) => l.startsWith('| `')).map((l) => /`([^`]+)`/.exec(l)![1]!);
  const crds = read('manifests/metallb-crds.yaml');

  it('has a row for each field of the CRD file and names the annotations the code reads', async () => {
    const model = await import('../../src/services/logic/model.js');
    for (const a of [model.ANNOTATION_METALLB_LB_IPS, model.ANNOTATION_METALLB_SHARED_IP, model.ANNOTATION_METALLB_POOL]) expect(theirs).toContain(a);
    for (const row of theirs.filter((t) => t.includes('.spec.'))) {
      const field = row.split('.').at(-1)!;
      expect(crds, row).toMatch(new RegExp(`\\b${field}:`));
    }
    expect(theirs.filter((t) => t.includes('.spec.'))).toHaveLength(11);
  });
});
