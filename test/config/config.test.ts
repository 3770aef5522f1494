import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, toEnv } from '../../src/config/index.js';
import { agentOptions } from '../../src/app/options.js';

const base = { address: '198.18.0.100', vip_nodename: 'cp1' };

function error(env: Record<string, string>, argv: string[] = []): ConfigError {
  try {
    loadConfig(env, argv);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  it('takes kube-vip environment names and defaults', () => {
    const c = loadConfig({ vip_address: '198.18.0.100', vip_interface: 'eth0', vip_arp: 'true', vip_nodename: 'CP1' }, []);
    expect(c.vips).toEqual([{ ip: '198.18.0.100', family: 4, prefix: 32 }]);
    expect(c.interface).toBe('eth0');
    expect(c.nodeName).toBe('cp1');
    expect(c.arpRate).toBe(3000);
    expect([c.leaseDuration, c.renewDeadline, c.retryPeriod]).toEqual([15, 10, 2]);
    expect(c.responder).toBe('agent');
    expect(c.apiEndpoint).toBe('https://127.0.0.1:6443');
  });

  it('a worker outside vip_peers announces Services only, a member of the peers\' grants that never allocates', () => {
    const env = { vip_nodename: 'w1', svc_enable: 'true', cp_enable: 'false', vip_interface: 'eth0', vip_peers: 'cp1=198.18.0.11:7946,cp2=198.18.0.12:7946,cp3=198.18.0.13:7946', vip_peer_key_file: '/k' };
    const c = loadConfig(env, []);
    expect(c.serviceMemberOnly).toBe(true);
    const o = agentOptions(c);
    expect(o.election).toBe('standalone');
    expect(o.peers).toBeUndefined();
    expect(o.grantMember?.voters).toEqual({ cp1: { host: '198.18.0.11', port: 7947 }, cp2: { host: '198.18.0.12', port: 7947 }, cp3: { host: '198.18.0.13', port: 7947 } });
    expect(o.services).toMatchObject({ membership: 'peers', allocator: 'none' });
    // With a VIP of its own, or the member Leases asked for, it must be one of the peers.
    expect(error({ ...env, address: '198.18.0.100', cp_enable: 'true' }).message).toMatch(/vip_peers="cp1,cp2,cp3": must include this node \(vip_nodename=w1\), unless it only announces Services/);
    expect(error({ ...env, svc_membership: 'lease' }).message).toMatch(/must include this node/);
    expect(error({ ...env, vip_leaderelection: 'true' }).message).toBe('invalid setting vip_leaderelection="true": must be false on a Services-only member outside vip_peers (vip_nodename=w1): the control-plane Lease is for the peers, and its holder allocates the Service addresses');
  });

  it('gives /32 and /128 by default and honours vip_cidr / vip_subnet per address', () => {
    expect(loadConfig({ ...base, address: '198.18.0.100,2001:db8::100' }, []).vips.map((v) => v.prefix)).toEqual([32, 128]);
    expect(loadConfig({ ...base, vip_cidr: '24' }, []).vips[0]!.prefix).toBe(24);
    expect(loadConfig({ ...base, address: '198.18.0.100,2001:db8::100', vip_subnet: '24,64' }, []).vips.map((v) => v.prefix)).toEqual([24, 64]);
  });

  it('flags beat the environment, in every spelling', () => {
    expect(loadConfig(base, ['--vip_interface=eth1']).interface).toBe('eth1');
    expect(loadConfig(base, ['--interface', 'eth2']).interface).toBe('eth2');
    expect(loadConfig(base, ['--vip-arp-rate=1000']).arpRate).toBe(1000);
    expect(loadConfig(base, ['--leaderElection']).leaderElection).toBe(true);
  });

  it.each([
    [{ address: 'not-an-ip' }, [], /^invalid setting address="not-an-ip": "not-an-ip" is not an IPv4 or IPv6 address/],
    [{ address: '198.18.0.300' }, [], /address="198.18.0.300"/],
    [{ address: 'fe80::100%eth0' }, [], /address="fe80::100%eth0": "fe80::100%eth0" is not an IPv4 or IPv6 address/],
    [{}, [], /^invalid setting address: is required/],
    [{ ...base, vip_subnet: '33' }, [], /^invalid setting vip_subnet="33": prefix length for 198.18.0.100 \(IPv4\) must be from 1 to 32$/],
    [{ ...base, address: '2001:db8::100', vip_subnet: '129' }, [], /must be from 1 to 128/],
    [{ ...base, vip_subnet: 'abc' }, [], /vip_subnet="abc": must be a prefix length/],
    [{ ...base, vip_bogus: '1' }, [], /^invalid setting vip_bogus="1": unknown setting/],
    [base, ['--no-such-flag=1'], /^invalid setting --no-such-flag: unknown setting/],
    [{ ...base, vip_arpRate: '10' }, [], /vip_arpRate="10": must be a whole number from 500 to 600000 ms/],
    [{ ...base, vip_arp: 'false' }, [], /vip_arp="false": needs bgp_enable=true/],
    [{ ...base, vip_interface: 'eth0/x' }, [], /vip_interface="eth0\/x": must be a network interface name/],
    [{ ...base, vip_leaderelection: 'true', vip_leaseduration: '5', vip_renewdeadline: '10' }, [], /vip_leaseduration="5": must be greater than vip_renewdeadline \(10000 ms\)/],
    [{ ...base, vip_leaderelection: 'true', vip_renewdeadline: '2', vip_retryperiod: '2' }, [], /vip_renewdeadline="2": must be greater than 1.2 × vip_retryperiod/],
    [{ ...base, vip_leaderelection: 'true', vip_responder: 'kernel', vip_address_lifetime: '5' }, [], /^invalid setting vip_leaseduration="15": must be greater than vip_renewdeadline \+ vip_retryperiod \+ linger \+ skew margin \(10000 \+ 2000 \+ 6000 \+ 300 = 18300 ms\), or another node could take the Lease while this one still answers for the VIP$/],
    [{ ...base, vip_peers: 'cp2=198.18.0.12:7946' }, [], /vip_peers="cp2": must include this node/],
    [{ ...base, vip_peers: 'cp1=198.18.0.11:7946' }, [], /vip_peer_key_file: is required/],
    [{ ...base, vip_peers: 'cp1=198.18.0.11:7946', vip_peer_key_file: '/k', vip_peer_election_timeout_ms: '90' }, [], /^invalid setting vip_peer_election_timeout_ms="90": is too short for vip_peer_heartbeat_ms=50 and linger 0 ms/],
    [{ ...base, vip_peers: 'cp1=198.18.0.11:7946', vip_peer_key_file: '/k', vip_responder: 'kernel' }, [], /^invalid setting vip_peer_election_timeout_ms="200": is too short for vip_peer_heartbeat_ms=50 and linger 2000 ms/],
    [{ ...base, vip_peer_bootstrap: 'true' }, [], /^invalid setting vip_peer_bootstrap="true": needs vip_peers/],
    [{ ...base, svc_enable: 'true', svc_membership: 'peers' }, [], /^invalid setting svc_membership="peers": needs vip_peers and vip_peer_key_file/],
    [{ ...base, svc_membership: 'fast' }, [], /svc_membership="fast": must be one of auto, peers, lease/],
    [{ ...base, svc_grant_port: '70000' }, [], /svc_grant_port="70000": must be a whole number from 1 to 65535/],
    [{ ...base, vip_peers: 'cp1=nope' }, [], /vip_peers="cp1=nope": must be a comma list/],
    [{ ...base, vip_ddns: 'true' }, [], /vip_ddns="true": is a kube-vip feature vipd does not have/],
    [{ ...base, vip_responder: 'magic' }, [], /vip_responder="magic": must be one of agent, kernel/],
    [{ ...base, address: '198.18.0.100', vip_address: '198.18.0.101' }, [], /conflicts with/],
  ])('rejects bad input with one line naming the setting: %j %j', (env, argv, message) => {
    const err = error(env as Record<string, string>, argv as string[]);
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain('\n');
  });

  it('services only: no address needed, but then the interface must be named', () => {
    expect(loadConfig({ vip_nodename: 'cp1', svc_enable: 'true', vip_interface: 'eth0' }, []).vips).toEqual([]);
    expect(() => loadConfig({ vip_nodename: 'cp1', svc_enable: 'true' }, [])).toThrow(/^invalid setting vip_interface: is required with svc_enable=true and no address/);
  });

  it('accepts inert kube-vip settings so kube-vip manifests can be reused', () => {
    expect(() => loadConfig({ ...base, vip_ddns: 'false', dns_mode: 'first', svc_election: 'false' }, [])).not.toThrow();
  });

  it('round-trips through the environment it generates', () => {
    const c = loadConfig({ ...base, address: '198.18.0.100,2001:db8::100', vip_leaderelection: 'true', vip_peers: 'cp1=198.18.0.11:7946,cp2=[2001:db8::12]:7946', vip_peer_key_file: '/etc/vipd/key' }, []);
    expect(loadConfig(toEnv(c), [])).toEqual(c);
  });
});
