// The sidecar bootstrap streams stats to the control plane: sink, flush interval and
// the stats_matcher that keeps the messages small; and the flags that set the interval.
import test from 'ava';
import { RE2 } from 're2-wasm';
import { DEFAULT_STATS_FLUSH_INTERVAL_MS, envoyBootstrap, STATS_INCLUSION, XDS_CLUSTER } from '../../sidecar/bootstrap/bootstrap.ts';
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
