// Aggregation of what sidecars report: histogram percentiles, the sliding window per
// edge and destination, the bounds on memory, and the reading of Envoy's stat names.
import test from 'ava';
import { quantile } from '../../control-plane/telemetry/histogram.ts';
import { MetricsIngest } from '../../control-plane/telemetry/metrics-service.ts';
import { trafficView } from '../../control-plane/telemetry/routes.ts';
import { TrafficStore } from '../../control-plane/telemetry/traffic.ts';

// Envoy's default histogram bounds (ms).
const BOUNDS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];
/** Buckets for samples given as [value, count] pairs. */
function buckets(samples: [number, number][]) {
  const cumulative = BOUNDS.map((b) => samples.filter(([v]) => v <= b).reduce((n, [, c]) => n + c, 0));
  return { bounds: [...BOUNDS], cumulative, count: samples.reduce((n, [, c]) => n + c, 0) };
}
const frontend = { service: 'frontend', namespace: 'default' };
const v1 = { service: 'reviews-v1', namespace: 'default' };
const v2 = { service: 'reviews-v2', namespace: 'default' };

test('percentiles interpolate inside the bucket that holds the rank', (t) => {
  t.is(quantile(buckets([[3, 100]]), 0.5), 1 + (5 - 1) * 0.5);
  // 98 fast requests and 2 at 300 ms: p99 lands in the 250-500 bucket.
  const p99 = quantile(buckets([[3, 98], [300, 2]]), 0.99)!;
  t.true(p99 > 250 && p99 <= 500, String(p99));
  t.is(quantile(buckets([]), 0.99), null);
  // Beyond the last bound: at least the last bound.
  t.is(quantile({ bounds: [1, 5], cumulative: [0, 0], count: 3 }, 0.5), 5);
});

test('the store adds reports per edge and slot, and a window sees only its slots', (t) => {
  const store = new TrafficStore();
  store.record(1000, frontend, v1, { classes: [0, 0, 90, 0, 5, 5], latency: buckets([[3, 100]]) });
  store.record(1500, frontend, v1, { classes: [0, 0, 10, 0, 0, 0], latency: buckets([[3, 10]]) });
  store.record(5000, frontend, v2, { classes: [0, 0, 8, 0, 0, 2], latency: buckets([[300, 10]]) });
  store.record(9000, { service: 'other', namespace: 'default' }, v1, { classes: [0, 0, 50] });
  const all = store.destination(v1, 0);
  t.is(all.requests, 160);
  t.deepEqual(all.status, { '1xx': 0, '2xx': 150, '3xx': 0, '4xx': 5, '5xx': 5 });
  t.is(all.latency?.count, 110);
  t.is(store.destination(v1, 2000).requests, 50, 'the first slot is outside the window');
  t.is(store.destination(v1, 0, 9000).requests, 110, 'until is exclusive');
  t.is(store.destination(v2, 0).status['5xx'], 2);

  const view = trafficView(store, 60_000, 9500);
  t.is(view.windowSeconds, 60);
  t.deepEqual(view.edges.find((e) => e.from.service === 'frontend' && e.to.service === 'reviews-v1'), {
    from: frontend,
    to: v1,
    requests: 110,
    errors5xx: 5,
    p99Ms: 5,
    p50Ms: 3,
    status: { '1xx': 0, '2xx': 100, '3xx': 0, '4xx': 5, '5xx': 5 },
  });
  const reviewsV1 = view.services.find((s) => s.service === 'reviews-v1')!;
  t.is(reviewsV1.requests, 160);
  t.is(reviewsV1.successRate, 96.88);
  const reviewsV2 = view.services.find((s) => s.service === 'reviews-v2')!;
  t.true(reviewsV2.p99Ms! > 250 && reviewsV2.p99Ms! <= 500);
});

test('slots older than the retention are dropped, and idle series are swept', (t) => {
  const store = new TrafficStore({ retentionMs: 10_000 });
  store.record(0, frontend, v1, { classes: [0, 0, 5] });
  store.record(20_000, frontend, v1, { classes: [0, 0, 1] });
  t.is(store.destination(v1, 0).requests, 1, 'the old slot went when a new one came');
  t.is(store.lifetime()[0].byClass['2xx'], 6, 'lifetime counters keep everything');
  store.record(20_000, frontend, v2, { classes: [0, 0, 1] });
  store.sweep(40_000);
  t.is(store.seriesCount, 0);
});

test('a client sending endless destinations cannot grow the store past its cap; drops are counted', (t) => {
  const store = new TrafficStore({ maxSeries: 100 });
  for (let i = 0; i < 10_000; i++) store.record(1000, frontend, { service: `s${i}`, namespace: 'default' }, { classes: [0, 0, 1] });
  t.is(store.seriesCount, 100);
  t.is(store.dropped.series_limit, 9900);
});

test('histograms with other bounds are not mixed in, and counted', (t) => {
  const store = new TrafficStore();
  store.record(1000, frontend, v1, { classes: [0, 0, 1], latency: buckets([[3, 1]]) });
  store.record(1000, frontend, v1, { classes: [0, 0, 1], latency: { bounds: [1, 2], cumulative: [1, 1], count: 1 } });
  t.is(store.destination(v1, 0).latency?.count, 1);
  t.is(store.dropped.histogram_bounds, 1);
});

test('ingest reads outbound cluster status classes and upstream_rq_time, and nothing else', (t) => {
  const store = new TrafficStore();
  const ingest = new MetricsIngest({ store, identify: () => frontend, now: () => 1000 });
  const counter = (name: string, value: number) => ({ name, type: 'COUNTER', metric: [{ counter: { value } }] });
  ingest.ingest(frontend, [
    counter('cluster.outbound|9080||reviews-v1.default.upstream_rq_2xx', 40),
    counter('cluster.outbound|9080||reviews-v1.default.upstream_rq_5xx', 2),
    counter('cluster.outbound|9080||reviews-v1.default.upstream_rq_503', 2), // the per-code counter is not a class
    counter('cluster.outbound|9080||reviews-v1.default.upstream_rq_total', 42),
    counter('cluster.inbound|9080.upstream_rq_2xx', 1000),
    counter('http.outbound_http.downstream_rq_2xx', 1000),
    {
      name: 'cluster.outbound|9080||reviews-v1.default.upstream_rq_time',
      type: 'HISTOGRAM',
      metric: [{ histogram: { sample_count: 42, bucket: BOUNDS.map((b) => ({ upper_bound: b, cumulative_count: b >= 5 ? 42 : 0 })) } }],
    },
  ]);
  const totals = store.destination(v1, 0);
  t.is(totals.requests, 42);
  t.is(totals.status['5xx'], 2);
  t.is(totals.latency?.count, 42);
  t.is(store.seriesCount, 1);
  t.is(ingest.messages, 1);
  t.is(ingest.families, 7);
});
