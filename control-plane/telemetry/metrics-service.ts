// envoy.service.metrics.v3.MetricsService on the xDS port: every sidecar's
// `envoy.stat_sinks.metrics_service` streams its stats here each flush interval.
// Only outbound cluster request stats are read (status classes and upstream_rq_time);
// the rest is skipped. The stream is unauthenticated like xDS: streams are capped,
// and what a client sends can only land in the bounded TrafficStore.
import * as grpc from '@grpc/grpc-js';
import { metricsPackageDefinition } from '../../protos/loader.ts';
import type { XdsNode } from '../xds/server/types.ts';
import type { Buckets } from './histogram.ts';
import type { Report, ServiceRef, TrafficStore } from './traffic.ts';

const METRICS_SERVICE = 'envoy.service.metrics.v3.MetricsService';

interface Bucket {
  cumulative_count?: number;
  cumulative_count_float?: number;
  upper_bound?: number;
}
interface Metric {
  counter?: { value?: number };
  histogram?: { sample_count?: number; sample_count_float?: number; bucket?: Bucket[] };
}
interface MetricFamily {
  name?: string;
  type?: string;
  metric?: Metric[];
}
export interface StreamMetricsMessage {
  identifier?: { node?: XdsNode };
  envoy_metrics?: MetricFamily[];
}

/** `cluster.outbound|9080||reviews-v1.default.upstream_rq_2xx` (translate/names.ts). */
const OUTBOUND_STAT = /^cluster\.outbound\|\d+\|\|([^.|]+)\.([^.|]+)\.upstream_rq_(?:([1-5])xx|time)$/;

export interface MetricsServiceOptions {
  store: TrafficStore;
  /** The service a node fronts, from its node message (first message of a stream). */
  identify: (node: XdsNode) => ServiceRef;
  maxStreams?: number;
  now?: () => number;
}

export class MetricsIngest {
  streams = 0;
  messages = 0;
  families = 0;
  rejectedStreams = 0;
  private readonly maxStreams: number;
  private readonly now: () => number;

  constructor(private readonly options: MetricsServiceOptions) {
    this.maxStreams = options.maxStreams ?? 20_000;
    this.now = options.now ?? Date.now;
  }

  /** Adds the service to a gRPC server (the xDS server's, before it binds). */
  addTo(server: grpc.Server): void {
    const definition = grpc.loadPackageDefinition(metricsPackageDefinition());
    const service = METRICS_SERVICE.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], definition);
    server.addService((service as grpc.ServiceClientConstructor).service, {
      StreamMetrics: (call: grpc.ServerReadableStream<StreamMetricsMessage, unknown>, callback: grpc.sendUnaryData<unknown>) =>
        this.serve(call, callback),
    });
  }

  private serve(call: grpc.ServerReadableStream<StreamMetricsMessage, unknown>, callback: grpc.sendUnaryData<unknown>): void {
    if (this.streams >= this.maxStreams) {
      this.rejectedStreams++;
      callback({ code: grpc.status.RESOURCE_EXHAUSTED, details: `${this.maxStreams} metrics streams are open already` });
      return;
    }
    this.streams++;
    let source: ServiceRef | undefined;
    let done = false;
    const finish = (error?: grpc.ServiceError | Partial<grpc.StatusObject>) => {
      if (done) return;
      done = true;
      this.streams--;
      if (error) callback(error as grpc.ServiceError);
      else callback(null, {});
    };
    call.on('data', (m: StreamMetricsMessage) => {
      if (done) return;
      try {
        // The node comes in the first message only.
        if (!source) {
          const node = m.identifier?.node;
          if (!node) throw new Error('the first StreamMetricsMessage must carry identifier.node');
          source = this.options.identify(node);
        }
        this.ingest(source, m.envoy_metrics ?? []);
      } catch (err) {
        finish({ code: grpc.status.INVALID_ARGUMENT, details: (err as Error).message.slice(0, 500) });
        call.destroy();
      }
    });
    call.on('end', () => finish());
    call.on('error', () => finish());
    call.on('close', () => finish());
  }

  /** One message's families -> one report per destination. */
  ingest(source: ServiceRef, families: MetricFamily[]): void {
    this.messages++;
    this.families += families.length;
    const now = this.now();
    const reports = new Map<string, { to: ServiceRef; report: Report }>();
    for (const f of families) {
      const m = OUTBOUND_STAT.exec(f.name ?? '');
      if (!m) continue;
      const key = `${m[1]}.${m[2]}`;
      let entry = reports.get(key);
      if (!entry) reports.set(key, (entry = { to: { service: m[1], namespace: m[2] }, report: {} }));
      const metric = f.metric?.[0];
      if (!metric) continue;
      if (m[3] && f.type === 'COUNTER') {
        const classes = (entry.report.classes ??= [0, 0, 0, 0, 0, 0]);
        classes[Number(m[3])] += Number(metric.counter?.value ?? 0);
      } else if (!m[3] && f.type === 'HISTOGRAM' && metric.histogram) {
        entry.report.latency = bucketsOf(metric.histogram);
      }
    }
    for (const { to, report } of reports.values()) this.options.store.record(now, source, to, report);
  }
}

function bucketsOf(h: NonNullable<Metric['histogram']>): Buckets | undefined {
  const buckets = (h.bucket ?? []).filter((b) => Number.isFinite(b.upper_bound));
  if (buckets.length > 64) return undefined;
  const count = (h.sample_count_float ?? 0) > 0 ? h.sample_count_float! : Number(h.sample_count ?? 0);
  return {
    bounds: buckets.map((b) => Number(b.upper_bound)),
    cumulative: buckets.map((b) => ((b.cumulative_count_float ?? 0) > 0 ? b.cumulative_count_float! : Number(b.cumulative_count ?? 0))),
    count,
  };
}
