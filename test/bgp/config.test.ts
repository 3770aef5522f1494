import { describe, expect, it } from 'vitest';
import { agentOptions } from '../../src/app/options.js';
import { ConfigError, loadConfig, toEnv } from '../../src/config/index.js';

const base = { address: '198.18.0.100', vip_nodename: 'cp1', bgp_enable: 'true', bgp_as: '65001' };

function error(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env, []);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('BGP settings', () => {
  it('merges bgp_peeraddress and bgp_peers (kube-vip formats, IPv6 in brackets) and reads the BFD defaults', () => {
    const c = loadConfig({ ...base, bgp_peeraddress: '198.18.0.1', bgp_peeras: '65000', bgp_peerpass: 's3cret', bgp_peers: '[2001:db8::1]:65000::false,198.18.0.2:65002::true' }, []);
    expect(c.bgp).toEqual({
      asn: 65001,
      peers: [
        { address: '198.18.0.1', asn: 65000, password: 's3cret' },
        { address: '2001:db8::1', asn: 65000 },
        { address: '198.18.0.2', asn: 65002, multihop: true },
      ],
      bfd: { intervalMs: 100, multiplier: 3 },
      socketDir: '/var/run/frr',
      withdrawGraceMs: 200,
    });
    const again = loadConfig(toEnv(c), []);
    expect(again.bgp).toEqual(c.bgp);
  });

  it('every node with a healthy API server announces: the ecmp elector, the VIP on lo as a host route, no probe', () => {
    const o = agentOptions(loadConfig({ ...base, vip_subnet: '24', cp_enable: 'true', bgp_peers: '198.18.0.1:65000' }, []));
    expect(o.election).toBe('ecmp');
    expect(o.vips[0]!.prefix).toBe(32);
    expect(o.holder.probeMs).toBe(0);
    expect(o.holder.responder).toBe('agent');
    expect(o.api).toBeDefined();
    expect(o.lease).toBeUndefined();
    const noCp = agentOptions(loadConfig({ ...base, bgp_peers: '198.18.0.1:65000' }, []));
    expect(noCp.api).toBeUndefined();
  });

  it('refuses what cannot work, naming the setting', () => {
    expect(error(base).message).toMatch(/bgp_peers: is required with bgp_enable=true/);
    expect(error({ address: '198.18.0.100', vip_arp: 'false' }).message).toMatch(/vip_arp="false": needs bgp_enable=true/);
    expect(error({ ...base, bgp_peers: '198.18.0.1' }).setting).toBe('bgp_peers');
    expect(error({ ...base, bgp_peers: '198.18.0.1:65000,198.18.0.1:65001' }).message).toMatch(/same peer address twice/);
    expect(error({ ...base, bgp_peers: '198.18.0.1:65000', vip_responder: 'kernel' }).setting).toBe('vip_responder');
    expect(error({ ...base, bgp_peers: '198.18.0.1:65000', bgp_hold_time: '9' }).setting).toBe('bgp_keepalive_interval');
    expect(error({ ...base, bgp_peers: '198.18.0.1:65000', bgp_hold_time: '2', bgp_keepalive_interval: '1' }).setting).toBe('bgp_hold_time');
    expect(error({ ...base, bgp_peers: '198.18.0.1:65000', bgp_routerid: '2001:db8::1' }).setting).toBe('bgp_routerid');
    expect(error({ ...base, bgp_peers: '198.18.0.1:65000', bgp_as: '0' }).setting).toBe('bgp_as');
    expect(error({ ...base, bgp_peers: '198.18.0.1:65000', bgp_bfd_interval_ms: '5' }).setting).toBe('bgp_bfd_interval_ms');
  });

  it('Services in BGP mode: every eligible node announces, the allocator Lease picks one writer', () => {
    const o = agentOptions(loadConfig({ ...base, cp_enable: 'true', svc_enable: 'true', bgp_peers: '198.18.0.1:65000' }, []));
    expect(o.services?.membership).toBe('ecmp');
    expect(o.services?.allocator).toBe('own-lease');
  });

  it('timers are both or neither', () => {
    const c = loadConfig({ ...base, bgp_peers: '198.18.0.1:65000', bgp_hold_time: '9', bgp_keepalive_interval: '3', bgp_bfd: 'false' }, []);
    expect(c.bgp?.timers).toEqual({ keepaliveSec: 3, holdSec: 9 });
    expect(c.bgp?.bfd).toBe(false);
  });
});
