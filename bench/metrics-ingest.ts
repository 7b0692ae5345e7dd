// Metric ingestion: N simulated sidecars (default 500) stream Envoy metrics-service
// messages to the control plane every 5 s (Envoy's default stats_flush_interval), each
// shaped like what a sidecar with Tessera's bootstrap sends (stats_matcher applied):
// ~90 server/listener/http stats plus, for each of 10 outbound clusters, its request
// classes, connection and membership stats and an upstream_rq_time histogram. Reports
// the control plane's CPU (own process), RSS, and what /api/v1/traffic then shows;
// then a rogue client sending endless new destinations, to show the memory bound.
import { fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { request } from 'undici';
import { metricsPackageDefinition } from '../protos/loader.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const BOUNDS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];
const CLUSTERS = 10;

interface Usage {
  cpuMs: number;
  rssMb: number;
  series: number;
  dropped: Record<string, number>;
}

const counter = (name: string, value: number) => ({ name, type: 'COUNTER', metric: [{ counter: { value }, timestamp_ms: Date.now() }] });
const gauge = (name: string, value: number) => ({ name, type: 'GAUGE', metric: [{ gauge: { value }, timestamp_ms: Date.now() }] });

/** One flush of one sidecar: about as many families as a busy Tessera sidecar sends. */
function flush(seed: number) {
  const families: unknown[] = [];
  for (let i = 0; i < 45; i++) families.push(counter(`server.synthetic_counter_${i}`, i));
  for (let i = 0; i < 45; i++) families.push(gauge(`http.outbound_http.synthetic_gauge_${i}`, i));
  for (let c = 0; c < CLUSTERS; c++) {
    const prefix = `cluster.outbound|80||svc-${c}.default.`;
    const ok = 40 + ((seed + c) % 20);
    families.push(counter(`${prefix}upstream_rq_2xx`, ok), counter(`${prefix}upstream_rq_4xx`, 1), counter(`${prefix}upstream_rq_5xx`, c === 0 ? 2 : 0));
    families.push(counter(`${prefix}upstream_rq_total`, ok + 1), counter(`${prefix}upstream_cx_total`, 1), counter(`${prefix}update_success`, 0));
    for (const g of ['upstream_rq_active', 'upstream_cx_active', 'membership_healthy', 'membership_total', 'version']) families.push(gauge(`${prefix}${g}`, 2));
    const count = ok + 1;
    families.push({
      name: `${prefix}upstream_rq_time`,
      type: 'HISTOGRAM',
      metric: [{ histogram: { sample_count: count, sample_sum: count * 3, bucket: BOUNDS.map((b) => ({ upper_bound: b, cumulative_count: b >= 5 ? count : b >= 1 ? Math.floor(count / 2) : 0 })) }, timestamp_ms: Date.now() }],
    });
  }
  return families;
}

const node = (i: number) => ({ id: `bench-${i}`, cluster: `src-${i % 50}`, user_agent_name: 'envoy', metadata: { fields: { tessera: { structValue: { fields: { mode: { stringValue: 'sidecar' }, service: { stringValue: `src-${i % 50}` } } } } } } });

function usage(child: ReturnType<typeof fork>): Promise<Usage> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as Usage));
    child.send('usage');
  });
}

export async function metricsIngest(sidecars: number, flushMs = 5000, seconds = Number(process.env.BENCH_METRICS_SECONDS ?? 30)) {
  const child = fork(path.join(here, 'metrics-server.ts'), [], { execArgv: ['--import', 'tsx'] });
  const { xdsPort, adminPort } = await new Promise<{ xdsPort: number; adminPort: number }>((resolve) => child.once('message', (m) => resolve(m as { xdsPort: number; adminPort: number })));
  const definition = grpc.loadPackageDefinition(metricsPackageDefinition());
  const Client = 'envoy.service.metrics.v3.MetricsService'.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], definition) as grpc.ServiceClientConstructor;
  const clients: grpc.Client[] = [];
  const streams: grpc.ClientWritableStream<unknown>[] = [];
  const timers: NodeJS.Timeout[] = [];
  let sent = 0;
  try {
    for (let i = 0; i < sidecars; i++) {
      // One connection per sidecar, as each Envoy has its own.
      const client = new Client(`127.0.0.1:${xdsPort}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
      clients.push(client);
      const stream = (client as unknown as { StreamMetrics: (cb: (err: unknown) => void) => grpc.ClientWritableStream<unknown> }).StreamMetrics(() => {});
      streams.push(stream);
      let first = true;
      const send = () => {
        stream.write({ ...(first ? { identifier: { node: node(i) } } : {}), envoy_metrics: flush(i + sent) });
        first = false;
        sent++;
      };
      // Spread over the interval, as independent Envoys are.
      const start = setTimeout(() => {
        send();
        timers.push(setInterval(send, flushMs));
      }, Math.floor((i / sidecars) * flushMs));
      timers.push(start);
    }
    await new Promise((r) => setTimeout(r, flushMs * 2)); // every stream open and sending
    const before = await usage(child);
    const sentBefore = sent;
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const after = await usage(child);
    const elapsed = Date.now() - t0;
    // The traffic API under that load: best of three (the first pays for warming up).
    let apiMs = Infinity;
    let view = { edges: [] as unknown[], services: [] as { service: string; requests: number; errors5xx: number; p99Ms: number | null }[] };
    for (let i = 0; i < 3; i++) {
      const apiStart = performance.now();
      const res = await request(`http://127.0.0.1:${adminPort}/api/v1/traffic`);
      view = (await res.body.json()) as typeof view;
      apiMs = Math.min(apiMs, performance.now() - apiStart);
    }
    const messages = sent - sentBefore;
    const familiesPerMessage = flush(0).length;
    const result = {
      sidecars,
      flushIntervalMs: flushMs,
      seconds: Math.round(elapsed / 1000),
      familiesPerMessage,
      messagesPerSecond: Math.round((messages / elapsed) * 1000),
      familiesPerSecond: Math.round(((messages * familiesPerMessage) / elapsed) * 1000),
      controlPlaneCpuPercentOfOneCore: Math.round(((after.cpuMs - before.cpuMs) / elapsed) * 1000) / 10,
      controlPlaneRssMb: after.rssMb,
      series: after.series,
      trafficApiMs: Math.round(apiMs * 10) / 10,
      trafficEdges: view.edges.length,
      svc0: view.services.find((s) => s.service === 'svc-0'),
      rogue: await rogue(Client, xdsPort, child),
    };
    return result;
  } finally {
    for (const t of timers) {
      clearTimeout(t);
      clearInterval(t);
    }
    for (const s of streams) s.end();
    for (const c of clients) c.close();
    child.kill('SIGKILL');
  }
}

/** One client sending 200 messages of 2,000 never-seen destinations each. */
async function rogue(Client: grpc.ServiceClientConstructor, xdsPort: number, child: ReturnType<typeof fork>) {
  const before = await usage(child);
  const client = new Client(`127.0.0.1:${xdsPort}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  const stream = (client as unknown as { StreamMetrics: (cb: (err: unknown) => void) => grpc.ClientWritableStream<unknown> }).StreamMetrics(() => {});
  for (let m = 0; m < 200; m++) {
    const families = Array.from({ length: 2000 }, (_, i) => counter(`cluster.outbound|80||rogue-${m}-${i}.default.upstream_rq_2xx`, 1));
    await new Promise<void>((resolve) => {
      if (stream.write({ ...(m === 0 ? { identifier: { node: node(99_999) } } : {}), envoy_metrics: families })) resolve();
      else stream.once('drain', () => resolve());
    });
  }
  await new Promise((r) => setTimeout(r, 3000));
  const after = await usage(child);
  stream.end();
  client.close();
  return { destinationsSent: 400_000, seriesAfter: after.series, droppedSeriesLimit: after.dropped.series_limit, rssMbBefore: before.rssMb, rssMbAfter: after.rssMb };
}
