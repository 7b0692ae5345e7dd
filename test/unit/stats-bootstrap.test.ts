// The sidecar bootstrap streams stats to the control plane: sink, flush interval and
// the stats_matcher that keeps the messages small; the flags that set the interval; and
// the read-only Prometheus stats listener (15090) beside the writable admin port.
import test from 'ava';
import { RE2 } from 're2-wasm';
import { ADMIN_CLUSTER, DEFAULT_STATS_FLUSH_INTERVAL_MS, envoyBootstrap, STATS_INCLUSION, STATS_LISTENER, XDS_CLUSTER } from '../../sidecar/bootstrap/bootstrap.ts';
import { AgentConfigError, parseSidecarArgs } from '../../sidecar/agent/options.ts';

const base = { nodeId: 'n1', service: 'reviews', xds: [{ host: '127.0.0.1', port: 18000 }], mode: 'sotw' as const, adminPort: 15000, outbound: { address: '127.0.0.1', port: 15001 } };

test('the bootstrap sends stats to the xDS cluster over the metrics service, as deltas, histograms only', (t) => {
  const b = envoyBootstrap(base) as Record<string, any>;
  t.is(b.stats_flush_interval, `${DEFAULT_STATS_FLUSH_INTERVAL_MS / 1000}s`);
  t.deepEqual(b.stats_sinks, [
    {
      name: 'envoy.stat_sinks.metrics_service',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.config.metrics.v3.MetricsServiceConfig',
        transport_api_version: 'V3',
        grpc_service: { envoy_grpc: { cluster_name: XDS_CLUSTER } },
        report_counters_as_deltas: true,
        emit_tags_as_labels: false,
        histogram_emit_mode: 'HISTOGRAM',
      },
    },
  ]);
  t.is((envoyBootstrap({ ...base, statsFlushIntervalMs: 1500 }) as Record<string, any>).stats_flush_interval, '1.5s');
});

test('the stats_matcher keeps what the agent, tests and the analysis read, and drops the bulk of outbound cluster stats', (t) => {
  // Envoy's StringMatcher safe_regex is a full match (RE2).
  const regexes = STATS_INCLUSION.map((p) => new RE2(`^(?:${p.safe_regex.regex})$`, 'u'));
  const kept = (name: string) => regexes.some((r) => r.test(name));
  for (const name of [
    'cluster_manager.cds.update_success',
    'listener_manager.lds.update_rejected',
    'http.inbound_9080.downstream_rq_active',
    'server.live',
    'cluster.tessera_xds.upstream_cx_active',
    'cluster.inbound|9080.upstream_rq_2xx',
    'cluster.outbound|9080||reviews-v1.default.upstream_rq_2xx',
    'cluster.outbound|9080||reviews-v1.default.upstream_rq_5xx',
    'cluster.outbound|9080||reviews-v1.default.upstream_rq_time',
    'cluster.outbound|9080||reviews-v1.default.update_rejected',
    'cluster.outbound|9080||reviews-v1.default.membership_healthy',
  ]) {
    t.true(kept(name), name);
  }
  for (const name of [
    'cluster.outbound|9080||reviews-v1.default.upstream_cx_tx_bytes_total',
    'cluster.outbound|9080||reviews-v1.default.upstream_rq_503',
    'cluster.outbound|9080||reviews-v1.default.circuit_breakers.default.rq_open',
    'cluster.outbound|9080||reviews-v1.default.lb_recalculate_zone_structures',
  ]) {
    t.false(kept(name), name);
  }
});

test('--stats-flush-interval (or TESSERA_STATS_FLUSH_INTERVAL) sets the interval; a bad one is refused by name', (t) => {
  const args = ['--service', 'a', '--app-port', '8080'];
  t.is(parseSidecarArgs([...args, '--stats-flush-interval', '2s'], {}).statsFlushIntervalMs, 2000);
  t.is(parseSidecarArgs(args, { TESSERA_STATS_FLUSH_INTERVAL: '10s' }).statsFlushIntervalMs, 10_000);
  t.is(parseSidecarArgs(args, {}).statsFlushIntervalMs, undefined);
  const err = t.throws(() => parseSidecarArgs([...args, '--stats-flush-interval', '5'], {}), { instanceOf: AgentConfigError });
  t.regex(err!.message, /--stats-flush-interval \(or TESSERA_STATS_FLUSH_INTERVAL\) must be a duration from 100ms to 1h, got "5"/);
});

const statsListenerOf = (b: Record<string, any>) => (b.static_resources.listeners ?? []).find((l: any) => l.name === STATS_LISTENER);

test('the stats listener is there by default, on 0.0.0.0:15090, and routes to a cluster of the admin address', (t) => {
  const b = envoyBootstrap(base) as Record<string, any>;
  const listener = statsListenerOf(b);
  t.truthy(listener);
  t.deepEqual(listener.address, { socket_address: { address: '0.0.0.0', port_value: 15090 } });
  t.deepEqual(b.static_resources.listeners.map((l: any) => l.name), [STATS_LISTENER], 'the only static listener');
  const admin = b.static_resources.clusters.find((c: any) => c.name === ADMIN_CLUSTER);
  t.deepEqual(admin.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address, { socket_address: { address: '127.0.0.1', port_value: 15000 } });
  t.deepEqual(b.admin.address, { socket_address: { address: '127.0.0.1', port_value: 15000 } }, 'admin stays on loopback');

  const moved = envoyBootstrap({ ...base, adminPort: 15500, statsListener: { address: '127.0.0.1', port: 9102 } }) as Record<string, any>;
  t.deepEqual(statsListenerOf(moved).address, { socket_address: { address: '127.0.0.1', port_value: 9102 } });
  t.is(moved.static_resources.clusters.find((c: any) => c.name === ADMIN_CLUSTER).load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value, 15500);
});

test('statsListener: false leaves out the listener and the admin cluster', (t) => {
  const b = envoyBootstrap({ ...base, statsListener: false }) as Record<string, any>;
  t.is(b.static_resources.listeners, undefined);
  t.false(b.static_resources.clusters.some((c: any) => c.name === ADMIN_CLUSTER));
  t.throws(() => envoyBootstrap({ ...base, adminPort: 0 }), { message: /admin port, which must be fixed/ });
});

test('the stats listener forwards only GET /stats/prometheus; the rest is answered 405 or 404 by Envoy itself', (t) => {
  const hcm = statsListenerOf(envoyBootstrap(base) as Record<string, any>).filter_chains[0].filters[0].typed_config;
  t.is(hcm.rds, undefined, 'an inline route config, nothing the control plane can change');
  t.deepEqual(hcm.http_filters.map((f: any) => f.name), ['envoy.filters.http.router']);
  const { virtual_hosts } = hcm.route_config;
  t.is(virtual_hosts.length, 1);
  const routes = virtual_hosts[0].routes;
  const forwarding = routes.filter((r: any) => r.route);
  t.is(forwarding.length, 1, 'one route goes upstream');
  // `path` is an exact match on the path without its query string (?usedonly passes).
  t.deepEqual(forwarding[0].match, { path: '/stats/prometheus', headers: [{ name: ':method', string_match: { exact: 'GET' } }] });
  t.is(forwarding[0].route.cluster, ADMIN_CLUSTER);
  t.deepEqual(routes.slice(1).map((r: any) => [r.match, r.direct_response?.status]), [
    [{ path: '/stats/prometheus' }, 405],
    [{ prefix: '/' }, 404],
  ]);
  // Nothing else in the bootstrap routes to the admin cluster.
  const b = envoyBootstrap(base);
  t.is(JSON.stringify(b).split(`"cluster":"${ADMIN_CLUSTER}"`).length - 1, 1);
});

test('--stats-port sets the port; 0 and none turn the listener off', (t) => {
  const args = ['--service', 'a', '--app-port', '8080'];
  t.is(parseSidecarArgs([...args, '--stats-port', '9102'], {}).statsPort, 9102);
  t.is(parseSidecarArgs([...args, '--stats-port', 'none'], {}).statsPort, undefined);
  t.is(parseSidecarArgs([...args, '--stats-port', '0'], {}).statsPort, undefined);
  t.is(parseSidecarArgs(args, {}).statsPort, 15090);
});
