/**
 * docs/settings.md, written from the settings table (src/config/settings.ts) so the page cannot
 * disagree with `vipd run --help` or the parser. A test fails when the checked-in page is stale.
 */
import { KUBE_VIP_INERT, SETTINGS, settingDef, type Group, type SettingKey } from '../config/settings.js';
import { OUR_PREFIXES } from '../config/index.js';

const GROUP_TITLES: Record<Group, string> = {
  vip: 'The VIP and how it is announced',
  election: 'Election',
  lease: 'Kubernetes Lease and API access',
  health: 'Local API server health (control-plane mode)',
  peers: 'Peer voting',
  services: 'LoadBalancer Services',
  bgp: 'BGP through FRR',
  observe: 'State, metrics and logs',
};

function cell(s: string): string {
  return s.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

function kebab(s: string): string {
  return s.replace(/_/g, '-').replace(/([a-z])([A-Z])/g, '$1-$2').toLowerCase();
}

export function settingsMarkdown(): string {
  const out: string[] = [
    '<!-- Generated from src/config/settings.ts by `npm run docs:settings`; do not edit by hand. -->',
    '# Settings',
    '',
    'Every setting can be given as an environment variable (kube-vip\'s name where kube-vip has the',
    'setting) or as a flag to `vipd run` / `vipd manifest`. **Flags beat the environment** (kube-vip has',
    'it the other way round). Each setting also answers to `--<env name>` and its kebab-case form, for',
    'example `--vip_leaseduration=5` or `--vip-leaseduration=5`. A bad value stops vipd with exit code 2',
    'and one line naming the setting, the value and the rule; nothing on the host is touched.',
    '',
    'The manifests (`vipd manifest pod|daemonset`) write these settings into the container\'s',
    'environment under the names below. "kube-vip" marks settings kube-vip reads under the same name.',
  ];
  let group: Group | undefined;
  for (const key of Object.keys(SETTINGS) as SettingKey[]) {
    const def = settingDef(key);
    if (def.group !== group) {
      group = def.group;
      out.push('', `## ${GROUP_TITLES[group]}`, '', '| environment | flags | default | kube-vip | meaning |', '| --- | --- | --- | --- | --- |');
    }
    const envNames = [def.env, ...(def.aliases ?? [])].map((n) => `\`${n}\``).join(', ');
    const flagSet = new Set([def.env, kebab(def.env), ...(def.flags ?? [])]);
    const flags = [...flagSet].map((f) => `\`--${f}\``).join(' ');
    out.push(`| ${envNames} | ${flags} | ${def.defaultText === undefined ? '—' : `\`${cell(def.defaultText)}\``} | ${def.kubeVip ? 'yes' : ''} | ${cell(def.help)} |`);
  }
  out.push(
    '',
    '## kube-vip settings vipd does not have',
    '',
    'A kube-vip manifest can be reused as it is while these hold their inert value; any other value is',
    'refused at start (exit 2) instead of being silently ignored. Any other unknown variable starting',
    `with ${OUR_PREFIXES.map((p) => `\`${p}\``).join(', ')} is refused too.`,
    '',
    '| environment | accepted values |',
    '| --- | --- |',
  );
  for (const [name, values] of Object.entries(KUBE_VIP_INERT)) {
    out.push(`| \`${name}\` | ${values.map((v) => (v === '' ? 'empty' : `\`${v}\``)).join(', ')} |`);
  }
  out.push('');
  return out.join('\n');
}
