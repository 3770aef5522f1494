/**
 * `node dist/bench/lib/heartbeat-floor.js SELF HEARTBEAT_MS PEERS` (PEERS spelled as vip_peers;
 * bench:footprint starts three, one per lab node): what Node itself costs to carry vipd's peer traffic, and
 * nothing else. The first name listed is the leader: every HEARTBEAT_MS it sends a heartbeat to
 * each other node, and each answers with a heartbeat-resp, encoded, MAC'd, checked and replay-
 * filtered by vipd's own codec (src/election/peers/codec.ts). No election, Lease, health gate,
 * metrics, logging or ARP: the row it gives is the floor under vipd's idle CPU and RSS for the
 * same message rate, measured the same way. On SIGTERM it prints what it carried,
 * {"sent","accepted","dropped"}, so the bench can tell a floor from a silence.
 */
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { SETTINGS } from '../../src/config/settings.js';
import { PeerCodec, ReplayGuard } from '../../src/election/peers/codec.js';

const [self, heartbeatArg, peerList] = process.argv.slice(2);
const heartbeatMs = Number(heartbeatArg);
const addresses = new Map(SETTINGS.peers.parse(peerList, 'vip_peers').map((p) => [p.name, { host: p.host, port: p.port }]));
const me = self ? addresses.get(self) : undefined;
if (!self || !me || !(heartbeatMs > 0)) {
  process.stderr.write('usage: heartbeat-floor SELF HEARTBEAT_MS name=host:port,... (SELF among the names; the first name leads)\n');
  process.exit(2);
}
const peers = [...addresses.keys()];
const leader = peers[0]!;
const epoch = randomBytes(8).toString('hex');
const key = Buffer.alloc(32, 0x5a);
const codec = new PeerCodec({ self, peers, key, epoch });
const guard = new ReplayGuard({ peers });
const socket = createSocket('udp4');
const counts = { sent: 0, accepted: 0, dropped: 0 };
const send = (to: string, packet: Buffer): void => {
  const a = addresses.get(to)!;
  socket.send(packet, a.port, a.host);
  counts.sent++;
};

socket.on('message', (buf) => {
  const d = codec.decode(buf);
  if (!d.ok || !guard.admit(d.header, performance.now(), Date.now()).ok) {
    counts.dropped++;
    return;
  }
  counts.accepted++;
  if (d.msg.body.type === 'heartbeat') {
    send(d.msg.from, codec.encode({ from: self, to: d.msg.from, epoch, term: d.msg.term, body: { type: 'heartbeat-resp', granted: true, reason: 'none', reqEpoch: d.msg.epoch, round: d.msg.body.round, eligible: true, apiHealthy: true } }, Date.now()));
  }
});
socket.bind(me.port, me.host, () => {
  if (self !== leader) return;
  setInterval(() => {
    const round = performance.now();
    for (const to of peers) if (to !== self) send(to, codec.encode({ from: self, to, epoch, term: 1, body: { type: 'heartbeat', round, bootstrap: false } }, Date.now()));
  }, heartbeatMs);
});
process.once('SIGTERM', () => {
  process.stdout.write(`${JSON.stringify(counts)}\n`);
  process.exit(0);
});
