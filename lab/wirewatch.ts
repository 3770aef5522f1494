/**
 * The docs/design.md two-holder watch in one call: an ARP/NS prober in the client namespace asking for
 * each VIP every `intervalMs`, plus a capture of ARP on the bridge; `stop()` returns every
 * two-holder event found in both (twoholders.ts) and the prober's records.
 */
import { parseFrame } from '../src/net/frames.js';
import type { Lab, LabHost } from './netns.js';
import { Prober } from './prober.js';
import { findTwoHolderEvents, type ProbeRecord, type TwoHolderEvent } from './twoholders.js';

export interface WireWatch {
  prober: Prober;
  stop(): Promise<{ events: Array<TwoHolderEvent & { ip: string }>; records: Map<string, ProbeRecord[]> }>;
}

/** What the watch needs of a lab: the client and a capture on the bridge (the kubeadm cluster lab has the same). */
export type WatchedLab = Pick<Lab, 'capture' | 'ipv6Enabled'> & { client: Pick<LabHost, 'ns' | 'ipv4' | 'ipv6'> };

/** Another segment than the lab's own: the client's interface on it, its address there, and the bridge (switch namespace). IPv4 only. */
export interface Segment {
  ifname: string;
  srcIp4: string;
  bridge: string;
}

export async function watchWire(lab: WatchedLab, ips: readonly string[], intervalMs = 10, segment?: Segment): Promise<WireWatch> {
  const capture = await lab.capture({ filter: 'arp', ...(segment ? { iface: segment.bridge } : {}) });
  const from = segment ? { ifname: segment.ifname, srcIp4: segment.srcIp4 } : { ifname: 'eth0', srcIp4: lab.client.ipv4, ...(lab.ipv6Enabled ? { srcIp6: lab.client.ipv6 } : {}) };
  const prober = await Prober.open({ ...from, vips: ips, intervalMs, netns: lab.client.ns });
  prober.start();
  return {
    prober,
    async stop() {
      prober.stop();
      const frames = (await capture.stop()).map((r) => ({ time: r.time / 1000, frame: parseFrame(r.frame) }));
      const events = ips.flatMap((ip) => findTwoHolderEvents({ vip: ip, records: prober.records(ip), frames, claims: prober.claims(ip) }).map((e) => ({ ip, ...e })));
      const records = new Map<string, ProbeRecord[]>(ips.map((ip) => [ip, prober.records(ip)]));
      prober.close();
      return { events, records };
    },
  };
}
