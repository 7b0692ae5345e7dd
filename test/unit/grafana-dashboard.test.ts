// The example Grafana dashboard queries only metrics the control plane exports: a
// renamed metric would leave a panel silently empty.
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { Metrics } from '../../control-plane/admin/metrics.ts';
import { ComparatorServer, registerParallelRunMetrics } from '../../control-plane/delivery/parallel-run.ts';
import { MetricsIngest } from '../../control-plane/telemetry/metrics-service.ts';
import { registerTrafficMetrics } from '../../control-plane/telemetry/routes.ts';
import { TrafficStore } from '../../control-plane/telemetry/traffic.ts';
import { repoRoot } from '../support/mesh.ts';

test('every metric the example Grafana dashboard queries is one the control plane exports', async (t) => {
  const dashboard = JSON.parse(fs.readFileSync(path.join(repoRoot, 'examples/grafana/tessera-control-plane.json'), 'utf8'));
  const exprs: string[] = dashboard.panels.flatMap((p: { targets: { expr: string }[] }) => p.targets.map((x) => x.expr));
  t.true(exprs.length >= 20);
  // Registered as main.ts does: some collectors read live state at scrape time.
  const metrics = new Metrics();
  metrics.watchAuthorities(() => []);
  const store = new TrafficStore();
  registerTrafficMetrics(metrics.registry, store, new MetricsIngest({ store, identify: () => ({ service: 'productpage', namespace: 'default' }) }));
  registerParallelRunMetrics(metrics.registry, new ComparatorServer({ instances: () => [], log: () => {} }));
  const exported = new Set((await metrics.registry.getMetricsAsJSON()).map((m) => m.name));
  for (const expr of exprs) {
    const names = [...expr.matchAll(/\b(tessera_[a-z0-9_]+)/g)].map((m) => m[1].replace(/_(bucket|count|sum)$/, ''));
    t.true(names.length > 0, expr);
    for (const name of names) t.true(exported.has(name), `${name} (in ${expr}) is not exported`);
  }
});
