// Metrics from the sidecars themselves: a real Envoy streams its stats to the control
// plane (envoy.stat_sinks.metrics_service on the xDS port), which shows them per edge
// and per destination in GET /api/v1/traffic and in /metrics.
import fs from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import { startHttpService } from '../../examples/demo/http-service.ts';
import { envoyTest, requireEnvoy, serviceWithInstance, startControlPlaneProcess, startEnvoy, tally, tempDir } from '../support/mesh.ts';
import { freePort, waitFor } from '../support/processes.ts';
import { startSidecar } from '../support/sidecar.ts';

interface TrafficView {
  windowSeconds: number;
  edges: { from: { service: string; namespace: string }; to: { service: string; namespace: string }; requests: number; errors5xx: number; p99Ms: number | null; status: Record<string, number> }[];
  services: { service: string; namespace: string; requests: number; status: Record<string, number>; successRate: number | null; p50Ms: number | null; p99Ms: number | null }[];
}

envoyTest('requests through a real Envoy sidecar appear in /api/v1/traffic with their counts, status classes and latency', async (t) => {
  if (!requireEnvoy(t)) return;
  const [okPort, flakyPort, slowPort] = [await freePort(), await freePort(), await freePort()];
  const servers = [
    await startHttpService('ok', okPort),
    await startHttpService('flaky', flakyPort, '127.0.0.1', { errorPercent: 20 }),
    await startHttpService('slow', slowPort, '127.0.0.1', { delayMs: 300 }),
  ];
  t.teardown(() => {
    for (const s of servers) s.close();
  });
  const dir = tempDir(t);
  fs.writeFileSync(
    path.join(dir, 'mesh.yaml'),
    [serviceWithInstance('ok', { port: 80, targetPort: okPort }), serviceWithInstance('flaky', { port: 80, targetPort: flakyPort }), serviceWithInstance('slow', { port: 80, targetPort: slowPort })].join('---\n'),
  );
  const cp = await startControlPlaneProcess(t, { configDir: dir });
  const envoy = await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'sotw', service: 'frontend', statsFlushIntervalMs: 1000 });
  await waitFor('routes to all three services', async () => (await tally(envoy.outboundPort, 'slow', 1)).slow === 1, 20_000);

  const okCounts = await tally(envoy.outboundPort, 'ok', 100);
  const flakyCounts = await tally(envoy.outboundPort, 'flaky', 50);
  await tally(envoy.outboundPort, 'slow', 20, { concurrency: 4 });
  t.is(okCounts.ok, 100);
  t.is(flakyCounts['status 503'], 10, 'the demo service fails every fifth request');

  const view = await waitFor(
    'the traffic to show every request',
    async () => {
      const v = await cp.api<TrafficView>('/api/v1/traffic');
      const to = (s: string) => v.edges.find((e) => e.from.service === 'frontend' && e.to.service === s);
      return to('ok')?.requests === 100 && to('flaky')?.requests === 50 && (to('slow')?.requests ?? 0) >= 20 ? v : undefined;
    },
    20_000,
    250,
  );
  t.is(view.windowSeconds, 60);
  const edge = (s: string) => view.edges.find((e) => e.to.service === s)!;
  t.deepEqual(edge('ok').from, { service: 'frontend', namespace: 'default' });
  t.deepEqual(edge('ok').to, { service: 'ok', namespace: 'default' });
  t.is(edge('ok').errors5xx, 0);
  t.is(edge('flaky').errors5xx, 10);
  t.is(edge('flaky').status['2xx'], 40);
  const flaky = view.services.find((s) => s.service === 'flaky')!;
  t.is(flaky.successRate, 80);
  const slowP99 = edge('slow').p99Ms!;
  const okP99 = edge('ok').p99Ms!;
  t.true(slowP99 >= 250 && slowP99 <= 1000, `slow p99 ${slowP99} ms is about 300 ms (bucket 250-500, unless the machine is loaded)`);
  t.true(okP99 < slowP99, `ok p99 ${okP99} ms is below the slow service's`);

  const metrics = await (await request(`${cp.adminUrl}/metrics`)).body.text();
  t.regex(metrics, /tessera_mesh_requests_total\{source="frontend",source_namespace="default",destination="flaky",destination_namespace="default",code_class="5xx"\} 10\b/);
  t.regex(metrics, /tessera_telemetry_streams 1\b/);
  t.regex(metrics, /tessera_mesh_request_duration_p99_ms\{destination="slow",destination_namespace="default",quantile="0.99"\} \d+/);
  // The stats the agent and operators read are still there (stats_matcher keeps them).
  t.true((await envoy.stat('cluster_manager.cds.update_success')) >= 1);
  const stats = await (await request(`${envoy.handle.adminUrl}/stats?filter=${encodeURIComponent('^cluster\\.outbound\\|80\\|\\|ok\\.default\\.upstream_rq_2xx$')}`)).body.text();
  t.true(Number(/: (\d+)/.exec(stats)?.[1]) >= 100, stats);
});

envoyTest('a `tessera sidecar` agent passes --stats-flush-interval to its Envoy, whose traffic is reported under the agent\'s service', async (t) => {
  if (!requireEnvoy(t)) return;
  const [okPort, appPort] = [await freePort(), await freePort()];
  const servers = [await startHttpService('ok', okPort), await startHttpService('frontend', appPort)];
  t.teardown(() => {
    for (const s of servers) s.close();
  });
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'mesh.yaml'), serviceWithInstance('ok', { port: 80, targetPort: okPort }));
  const cp = await startControlPlaneProcess(t, { configDir: dir });
  const sidecar = await startSidecar(t, { service: 'frontend', appPort, inbound: false, controlPlane: cp, extraArgs: ['--stats-flush-interval', '1s', '--no-register'] });
  await sidecar.waitReady();
  t.is((await tally(sidecar.outboundPort, 'ok', 30)).ok, 30);
  const edge = await waitFor(
    'the agent\'s Envoy to report the requests',
    async () => (await cp.api<TrafficView>('/api/v1/traffic')).edges.find((e) => e.from.service === 'frontend' && e.to.service === 'ok' && e.requests === 30),
    15_000,
    250,
  );
  t.is(edge.errors5xx, 0);
  // What Envoy itself says it was started with.
  const dump = (await (await request(`${sidecar.adminUrl}/config_dump`)).body.json()) as { configs: { '@type': string; bootstrap?: { stats_flush_interval: string; stats_sinks: { name: string }[] } }[] };
  const bootstrap = dump.configs.find((c) => c['@type'].endsWith('BootstrapConfigDump'))?.bootstrap;
  t.is(bootstrap?.stats_flush_interval, '1s');
  t.is(bootstrap?.stats_sinks[0].name, 'envoy.stat_sinks.metrics_service');
});
