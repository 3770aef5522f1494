/**
 * keepalived.conf for the benchmark's peer systems. Pure.
 *
 * Choices (bench/README.md says why):
 * - All nodes start as BACKUP with the same priority and `nopreempt`: whoever wins keeps the VIP
 *   until it fails, as with a Lease (vipd, kube-vip). Equal priorities tie-break on the higher
 *   primary IP (RFC 5798 §6.4.3), which only matters at the first election.
 * - Multicast VRRP on the lab bridge (keepalived's default); `unicast` lists the peers instead.
 * - The health check asks the local API server's /livez, like vipd's control-plane gate: every
 *   `interval` s, `fall` failures put the instance in FAULT (weight 0), which releases the VIP and
 *   sends a priority-0 advert; `rise` successes bring it back.
 * - `vrrpVersion` 3 is needed for sub-second adverts (v2 takes whole seconds only).
 */

export interface KeepalivedProfile {
  /** Row name, e.g. 'keepalived-default'. */
  name: string;
  vrrpVersion: 2 | 3;
  /** Seconds; v2: whole seconds ≥ 1; v3: multiples of 0.01 in [0.01, 40.95]. */
  advertInt: number;
  /** Priorities by node index (0-based); the last one repeats for extra nodes. */
  priorities: readonly number[];
  nopreempt: boolean;
  unicast: boolean;
  check: { interval: number; timeout: number; fall: number; rise: number };
}

export const KEEPALIVED_DEFAULT: KeepalivedProfile = {
  name: 'keepalived-default',
  vrrpVersion: 2,
  advertInt: 1,
  priorities: [100],
  nopreempt: true,
  unicast: false,
  check: { interval: 1, timeout: 1, fall: 3, rise: 1 },
};

/** The practical floor (reference anchors §1): 0.1 s adverts, v3; the health check stays at 1 s (curl in a fork costs more below that). */
export const KEEPALIVED_FAST: KeepalivedProfile = {
  name: 'keepalived-fast',
  vrrpVersion: 3,
  advertInt: 0.1,
  priorities: [100],
  nopreempt: true,
  unicast: false,
  check: { interval: 1, timeout: 1, fall: 3, rise: 1 },
};

export interface KeepalivedNode {
  /** Lab node name ('n1'); also keepalived's router_id. */
  name: string;
  ipv4: string;
  /** 0-based position among the nodes (picks the priority). */
  index: number;
}

export interface KeepalivedConfInput {
  profile: KeepalivedProfile;
  node: KeepalivedNode;
  /** All nodes, this one included (unicast peers are the others). */
  nodes: readonly KeepalivedNode[];
  vip: string;
  /** Prefix length of the VIP on the interface; default 32. */
  vipPrefix?: number;
  iface: string;
  vrid: number;
  /** Health command: an absolute path and its arguments (keepalived runs it without a shell). */
  checkCommand: readonly string[];
}

export class KeepalivedConfError extends Error {
  override name = 'KeepalivedConfError';
}

/** advert_int in keepalived's syntax, validated for the VRRP version. */
export function advertIntText(p: Pick<KeepalivedProfile, 'vrrpVersion' | 'advertInt'>): string {
  const a = p.advertInt;
  if (p.vrrpVersion === 2) {
    if (!Number.isInteger(a) || a < 1 || a > 255) throw new KeepalivedConfError(`advert_int ${a}: VRRP v2 takes whole seconds 1..255`);
    return String(a);
  }
  const cs = Math.round(a * 100);
  if (Math.abs(cs - a * 100) > 1e-6 || cs < 1 || cs > 4095) throw new KeepalivedConfError(`advert_int ${a}: VRRP v3 takes multiples of 0.01 s in 0.01..40.95`);
  return (cs / 100).toFixed(2).replace(/0$/, '').replace(/\.0?$/, '');
}

/**
 * Master_Down_Interval (RFC 3768 §6.1, RFC 5798 §6.1): 3 × advert + skew, skew = (256 − prio)/256 s
 * in v2 and (256 − prio) × advert / 256 in v3. The crash failover a backup waits for.
 */
export function masterDownSeconds(p: Pick<KeepalivedProfile, 'vrrpVersion' | 'advertInt'>, priority: number): number {
  const skew = p.vrrpVersion === 2 ? (256 - priority) / 256 : ((256 - priority) * p.advertInt) / 256;
  return 3 * p.advertInt + skew;
}

function quoteArg(a: string): string {
  if (/^[A-Za-z0-9_./:=,@%+-]+$/.test(a)) return a;
  if (a.includes("'")) throw new KeepalivedConfError(`health command argument ${JSON.stringify(a)} contains a single quote`);
  return `'${a}'`;
}

export function priorityOf(profile: KeepalivedProfile, index: number): number {
  const ps = profile.priorities;
  if (ps.length === 0) throw new KeepalivedConfError('priorities must not be empty');
  const p = ps[Math.min(index, ps.length - 1)]!;
  if (!Number.isInteger(p) || p < 1 || p > 254) throw new KeepalivedConfError(`priority ${p} must be 1..254 (255 is the address owner)`);
  return p;
}

export function keepalivedConf(i: KeepalivedConfInput): string {
  const { profile: p, node } = i;
  if (!Number.isInteger(i.vrid) || i.vrid < 1 || i.vrid > 255) throw new KeepalivedConfError(`virtual_router_id ${i.vrid} must be 1..255`);
  const cmd = i.checkCommand;
  if (cmd.length === 0 || !cmd[0]!.startsWith('/')) throw new KeepalivedConfError('the health command needs an absolute path');
  const c = p.check;
  if (!(c.interval >= 1) || !(c.timeout >= 1) || !(c.fall >= 1) || !(c.rise >= 1)) throw new KeepalivedConfError('check interval/timeout ≥ 1 s, fall/rise ≥ 1');
  const advert = advertIntText(p);
  const prio = priorityOf(p, node.index);
  const peers = i.nodes.filter((n) => n.name !== node.name);
  const lines = [
    `# ${p.name} for ${node.name}; generated by bench/lib/keepalived-conf.ts`,
    'global_defs {',
    `  router_id ${node.name}`,
    '  script_user root',
    '  enable_script_security',
    `  vrrp_version ${p.vrrpVersion}`,
    '}',
    '',
    'vrrp_script chk_apiserver {',
    `  script "${cmd.map(quoteArg).join(' ')}"`,
    `  interval ${c.interval}`,
    `  timeout ${c.timeout}`,
    `  fall ${c.fall}`,
    `  rise ${c.rise}`,
    '  weight 0',
    '}',
    '',
    'vrrp_instance VI_1 {',
    '  state BACKUP',
    ...(p.nopreempt ? ['  nopreempt'] : []),
    `  interface ${i.iface}`,
    `  virtual_router_id ${i.vrid}`,
    `  priority ${prio}`,
    `  advert_int ${advert}`,
    ...(p.unicast ? [`  unicast_src_ip ${node.ipv4}`, '  unicast_peer {', ...peers.map((n) => `    ${n.ipv4}`), '  }'] : []),
    '  virtual_ipaddress {',
    `    ${i.vip}/${i.vipPrefix ?? 32} dev ${i.iface}`,
    '  }',
    '  track_script {',
    '    chk_apiserver',
    '  }',
    '}',
    '',
  ];
  return lines.join('\n');
}
