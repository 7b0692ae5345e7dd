// `GET /api/v1/traffic` and the Prometheus view of what the sidecars report.
import client from 'prom-client';
import { parseDuration, isDuration } from '../config/duration.ts';
import { HttpError, type AdminRoute } from '../admin/router.ts';
import type { MetricsIngest } from './metrics-service.ts';
import { mergeTotals, emptyTotals, percentileMs, type ServiceRef, type Totals, type TrafficStore } from './traffic.ts';

export const DEFAULT_TRAFFIC_WINDOW_MS = 60_000;

function summary(t: Totals) {
  return {
    requests: t.requests,
    status: t.status,
    errors5xx: t.status['5xx'],
    successRate: t.requests > 0 ? Math.round(((t.requests - t.status['5xx']) / t.requests) * 10_000) / 100 : null,
    p50Ms: percentileMs(t, 0.5),
    p99Ms: percentileMs(t, 0.99),
  };
}

export function trafficView(store: TrafficStore, windowMs: number, now = Date.now()) {
  const edges = store.edges(now - windowMs, now + 1);
  const byDestination = new Map<string, { to: ServiceRef; totals: Totals }>();
  for (const e of edges) {
    const key = `${e.to.service}.${e.to.namespace}`;
    let d = byDestination.get(key);
    if (!d) byDestination.set(key, (d = { to: e.to, totals: emptyTotals() }));
    mergeTotals(d.totals, e.totals);
  }
  return {
    windowSeconds: windowMs / 1000,
    edges: edges.map((e) => {
      const s = summary(e.totals);
      return { from: e.from, to: e.to, requests: s.requests, errors5xx: s.errors5xx, p99Ms: s.p99Ms, status: s.status, p50Ms: s.p50Ms };
    }),
    services: [...byDestination.values()].map((d) => ({ service: d.to.service, namespace: d.to.namespace, ...summary(d.totals) })),
  };
}

export function trafficRoutes(store: TrafficStore): AdminRoute[] {
  return [
    {
      method: 'GET',
      pattern: '/api/v1/traffic',
      handler: ({ url }) => {
        const raw = url.searchParams.get('window');
        let windowMs = DEFAULT_TRAFFIC_WINDOW_MS;
        if (raw !== null) {
          windowMs = isDuration(raw) ? parseDuration(raw) : NaN;
          if (!(windowMs >= 1000 && windowMs <= store.options.retentionMs)) {
            throw new HttpError(400, `window must be a duration from 1s to ${store.options.retentionMs / 1000}s (the retention), got ${JSON.stringify(raw)}`);
          }
        }
        return { status: 200, json: trafficView(store, windowMs) };
      },
    },
  ];
}

/** Registers the sidecar-reported traffic on a prom-client registry; values are read
 *  from the store at scrape time, so nothing here grows with what clients send. */
export function registerTrafficMetrics(registry: client.Registry, store: TrafficStore, ingest: MetricsIngest): void {
  new client.Counter({
    name: 'tessera_mesh_requests_total',
    help: 'Requests the sidecars reported, by source and destination service and status class (since this control plane started)',
    labelNames: ['source', 'source_namespace', 'destination', 'destination_namespace', 'code_class'],
    registers: [registry],
    collect() {
      this.reset();
      for (const e of store.lifetime()) {
        for (const [codeClass, n] of Object.entries(e.byClass)) {
          if (n > 0) this.inc({ source: e.from.service, source_namespace: e.from.namespace, destination: e.to.service, destination_namespace: e.to.namespace, code_class: codeClass }, n);
        }
      }
    },
  });
  new client.Gauge({
    name: 'tessera_mesh_request_duration_p99_ms',
    help: `p99 request time per destination service over the last ${DEFAULT_TRAFFIC_WINDOW_MS / 1000} s, from the sidecars' upstream_rq_time`,
    labelNames: ['destination', 'destination_namespace', 'quantile'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of trafficView(store, DEFAULT_TRAFFIC_WINDOW_MS).services) {
        if (s.p50Ms !== null) this.set({ destination: s.service, destination_namespace: s.namespace, quantile: '0.5' }, s.p50Ms);
        if (s.p99Ms !== null) this.set({ destination: s.service, destination_namespace: s.namespace, quantile: '0.99' }, s.p99Ms);
      }
    },
  });
  new client.Gauge({
    name: 'tessera_telemetry_streams',
    help: 'Open metrics-service streams from sidecars',
    registers: [registry],
    collect() {
      this.set(ingest.streams);
    },
  });
  new client.Gauge({
    name: 'tessera_telemetry_series',
    help: 'Source/destination pairs held for the traffic window',
    registers: [registry],
    collect() {
      this.set(store.seriesCount);
    },
  });
  new client.Counter({
    name: 'tessera_telemetry_messages_total',
    help: 'Metrics-service messages received from sidecars',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(ingest.messages);
    },
  });
  new client.Counter({
    name: 'tessera_telemetry_dropped_total',
    help: 'Reports not kept: series_limit (too many source/destination pairs), histogram_bounds (buckets that do not add up), stream_limit (streams refused)',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(store.dropped)) this.inc({ reason }, n);
      this.inc({ reason: 'stream_limit' }, ingest.rejectedStreams);
    },
  });
}
