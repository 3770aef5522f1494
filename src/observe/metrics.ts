import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { droppedLogLines } from './log.js';

/**
 * One registry for the process. Modules import the metric they update; the HTTP endpoint
 * (observe/http) serves `registry`. Label values are bounded sets (VIPs, reasons), never free text.
 */
export const registry = new Registry();
// The event-loop delay histogram samples on a timer: prom-client's default 10 ms wakes an idle
// agent 100 times a second (0.5 % of a core measured, bench/README.md). At 100 ms a stall still
// shows in max and the percentiles, but Node records the whole interval, so its
// vipd_process_nodejs_eventloop_lag_* read 0.1 s on an idle agent, and they cover the whole life
// of the process: vipd_event_loop_lag_seconds (below) is the one to graph and alert on.
collectDefaultMetrics({ register: registry, prefix: 'vipd_process_', eventLoopMonitoringPrecision: 100 });

export const metrics = {
  // node is this agent's vip_nodename: Prometheus labels a hostNetwork target by its node IP, and
  // panels per node join this on (`* on (instance) group_left (node) vipd_node_info`).
  nodeInfo: new Gauge({ name: 'vipd_node_info', help: '1, labelled with the node name this agent runs as (vip_nodename)', labelNames: ['node'], registers: [registry] }),
  holding: new Gauge({ name: 'vipd_vip_holding', help: '1 while this node holds the VIP', labelNames: ['vip'], registers: [registry] }),
  transitions: new Counter({ name: 'vipd_vip_transitions_total', help: 'Holder state changes', labelNames: ['vip', 'to', 'reason'], registers: [registry] }),
  takeoverSeconds: new Histogram({ name: 'vipd_takeover_seconds', help: 'From grant to first announcement sent', labelNames: ['vip'], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [registry] }),
  announcements: new Counter({ name: 'vipd_announcements_total', help: 'Gratuitous ARP / unsolicited NA frames sent', labelNames: ['vip', 'kind'], registers: [registry] }),
  answers: new Counter({ name: 'vipd_answers_total', help: 'ARP replies / solicited NAs sent by the agent', labelNames: ['vip'], registers: [registry] }),
  conflicts: new Counter({ name: 'vipd_conflicts_total', help: 'Another MAC seen claiming a VIP', labelNames: ['vip'], registers: [registry] }),
  // Observed by /healthz's stall watch (observe/http) on each of its ticks: how late the tick
  // fired, so a rate over a window gives that window's lag. Buckets bracket the peer defaults'
  // budget (a holder that stalls for more than about 145 ms loses its grant).
  eventLoopLag: new Histogram({
    name: 'vipd_event_loop_lag_seconds',
    help: 'How late the agent\'s 250 ms watch timer fired: time the event loop was blocked',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 5],
    registers: [registry],
  }),
  peerMessages: new Counter({ name: 'vipd_peer_messages_total', help: 'Peer messages by outcome', labelNames: ['outcome'], registers: [registry] }),
  grantMessages: new Counter({ name: 'vipd_service_grant_messages_total', help: 'Service-IP grant messages received, by role and outcome', labelNames: ['role', 'outcome'], registers: [registry] }),
  announcementWriteFailures: new Counter({
    name: 'vipd_service_announcement_write_failures_total',
    help: 'ServiceAnnouncement records (kubectl get svcann) this node could not list, create, update or delete',
    labelNames: ['op'],
    registers: [registry],
  }),
  servicesAssigned: new Gauge({ name: 'vipd_services_assigned', help: 'LoadBalancer Services with an address (allocator node only)', registers: [registry] }),
  servicesPending: new Gauge({ name: 'vipd_services_pending', help: 'LoadBalancer Services waiting for an address, by reason (allocator node only)', labelNames: ['reason'], registers: [registry] }),
  poolAddresses: new Gauge({ name: 'vipd_pool_addresses', help: 'Addresses in a pool (capped at 2^53), and how many are used', labelNames: ['pool', 'state'], registers: [registry] }),
  poolUnadvertised: new Gauge({ name: 'vipd_pool_unadvertised', help: '1 for a MetalLB IPAddressPool no L2Advertisement selects (MetalLB would hand out its addresses and announce nothing; vipd announces them on its services interface), 0 for one that is selected (allocator node only)', labelNames: ['pool'], registers: [registry] }),
  bgpFrrUp: new Gauge({ name: 'vipd_bgp_frr_up', help: '1 while FRR answers on its vty sockets and holds vipd\'s configuration', registers: [registry] }),
  bgpSessionUp: new Gauge({ name: 'vipd_bgp_session_up', help: '1 while the BGP session to the peer is Established', labelNames: ['peer'], registers: [registry] }),
  bgpAnnouncing: new Gauge({ name: 'vipd_bgp_announcing', help: '1 while the VIP is on lo and at least one BGP session is Established (the router hears it)', labelNames: ['vip'], registers: [registry] }),
  localApiHealthy: new Gauge({ name: 'vipd_local_api_healthy', help: "1 while this node's own API server passes the /livez health gate; 0 while the gate is closed and this node may not hold the VIP", registers: [registry] }),
  logLinesDropped: new Counter({
    name: 'vipd_log_lines_dropped_total',
    help: 'Log lines dropped because stderr was not being read (more than 1 MiB waiting)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(droppedLogLines());
    },
  }),
  apiErrors: new Counter({ name: 'vipd_api_errors_total', help: 'Kubernetes API call failures', labelNames: ['op'], registers: [registry] }),
};
