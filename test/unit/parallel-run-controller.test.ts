// ParallelRun in the Canary controller (fake clock, fake comparator) and in what the
// sidecars are served: the target's stable rules mirror to the comparator cluster,
// the candidate gets no weight, and the mirror goes away once the run is over.
import test from 'ava';
import { CanaryController } from '../../control-plane/delivery/canary.ts';
import type { ParallelRunComparator, ParallelRunStatus, ParallelRunTarget } from '../../control-plane/delivery/parallel-run.ts';
import type { CanarySpec, MeshModel, ProxyContext } from '../../control-plane/model/types.ts';
import { MemoryStore } from '../../control-plane/registry/store.ts';
import { TrafficStore } from '../../control-plane/telemetry/traffic.ts';
import { translate } from '../../control-plane/translate/index.ts';
import { decodeAny, encodeAny } from '../../control-plane/xds/resources/codec.ts';
import { TypeUrl } from '../../control-plane/xds/resources/type-urls.ts';

const ref = (service: string) => ({ service, namespace: 'default' });
const spec = (analysis: CanarySpec['analysis'] = { maxMismatchPercent: 5, minRequests: 50, failureLimit: 1 }): CanarySpec => ({
  name: 'reviews',
  namespace: 'default',
  target: ref('reviews'),
  stable: ref('reviews-v1'),
  canary: ref('reviews-v2'),
  steps: [],
  intervalMs: 10_000,
  strategy: 'ParallelRun',
  parallelRun: { methods: ['GET'], headers: ['content-type'], percent: 100 },
  analysis,
});
const model = (canaries: CanarySpec[]): MeshModel => ({
  services: ['reviews', 'reviews-v1', 'reviews-v2'].map((name) => ({ name, namespace: 'default', ports: [{ port: 80, targetPort: 80, appProtocol: 'http' as const }] })),
  routes: [],
  policies: [],
  endpoints: [],
  canaries,
});

function harness() {
  let now = 1_000_000;
  let status: ParallelRunStatus | undefined;
  const runs: { targets: ParallelRunTarget[]; retain: string[] }[] = [];
  const comparator: ParallelRunComparator = {
    address: { address: '10.0.0.9', port: 18081 },
    setRuns: (targets, retain = []) => runs.push({ targets, retain }),
    status: () => status,
  };
  const published: Record<string, unknown>[] = [];
  const controller = new CanaryController({
    traffic: new TrafficStore(),
    publish: (note) => published.push(note),
    store: new MemoryStore(),
    log: () => {},
    parallelRuns: comparator,
    now: () => now,
    tickMs: 3_600_000,
  });
  return {
    controller,
    runs,
    published,
    report(compared: number, mismatchPercent: number) {
      status = { compared, mismatched: Math.round((compared * mismatchPercent) / 100), mismatchPercent, routes: [], comparing: true, skipped: {}, dropped: {}, startedAt: new Date(now).toISOString() };
    },
    tick() {
      now += 10_001;
      controller.tick();
    },
  };
}

const sidecar: ProxyContext = { kind: 'sidecar', namespace: 'default', outbound: { address: '127.0.0.1', port: 15001 } };

function served(h: ReturnType<typeof harness>, m: MeshModel, proxy: ProxyContext = sidecar) {
  const resources = translate({ model: h.controller.overlay(m), endpoints: [], proxy });
  const routes = (resources[TypeUrl.RouteConfiguration] ?? []) as any[];
  const host = routes[0]?.resource.virtual_hosts?.find((v: any) => v.name === 'reviews.default:80');
  return { clusters: (resources[TypeUrl.Cluster] ?? []).map((c) => c.name), route: host?.routes[0]?.route };
}

test('a ParallelRun sends all traffic to stable and mirrors it to the comparator (Host kept); proxyless clients get no mirror', (t) => {
  const h = harness();
  const m = model([spec()]);
  h.controller.sync(m);
  t.deepEqual(h.runs.at(-1)!.targets.map((r) => [r.key, r.stable.service, r.candidate.service, r.methods]), [['default/reviews', 'reviews-v1', 'reviews-v2', ['GET']]]);
  const { clusters, route } = served(h, m);
  t.true(clusters.includes('tessera_comparator'));
  t.is(route.cluster, 'outbound|80||reviews-v1.default', 'the candidate gets no weight');
  t.deepEqual(route.request_mirror_policies, [{ cluster: 'tessera_comparator', disable_shadow_host_suffix_append: true }]);
  const proxyless = served(h, m, { kind: 'proxyless' });
  t.false(proxyless.clusters.includes('tessera_comparator'));
  t.is(h.controller.list()[0].phase, 'Progressing');
  t.is(h.controller.list()[0].weight, 0);
});

test('a ParallelRun waits for minRequests, then promotes under the bound: the mirror goes, the candidate gets all traffic', (t) => {
  const h = harness();
  const m = model([spec()]);
  h.controller.sync(m);
  h.report(10, 0);
  h.tick();
  t.regex(h.controller.list()[0].message, /waiting for traffic: 10\/50 compared requests/);
  h.report(200, 1);
  h.tick();
  const v = h.controller.list()[0];
  t.is(v.phase, 'Promoted', v.message);
  t.is(v.weight, 100);
  t.is(v.lastAnalysis?.mismatchPercent, 1);
  t.deepEqual(h.runs.at(-1), { targets: [], retain: ['default/reviews'] }, 'the comparator stops comparing but keeps the report');
  const { clusters, route } = served(h, m);
  t.false(clusters.includes('tessera_comparator'));
  t.is(route.cluster, 'outbound|80||reviews-v2.default');
  t.is(route.request_mirror_policies, undefined);
  t.is(h.published.length, 1);
});

test('a ParallelRun over the bound is rolled back: the mirror goes and stable keeps all traffic', (t) => {
  const h = harness();
  const m = model([spec()]);
  h.controller.sync(m);
  h.report(100, 12);
  h.tick();
  const v = h.controller.list()[0];
  t.is(v.phase, 'RolledBack', v.message);
  t.regex(v.message, /mismatch 12% > 5%/);
  t.is(v.weight, 0);
  t.is(h.published.length, 1, 'the weight did not move, the mirror did: published');
  const { clusters, route } = served(h, m);
  t.false(clusters.includes('tessera_comparator'));
  t.is(route.cluster, 'outbound|80||reviews-v1.default');
  t.is(route.request_mirror_policies, undefined);
});

test('a report-only ParallelRun never moves on its own; promote by hand works', (t) => {
  const h = harness();
  const m = model([spec({ minRequests: 0, failureLimit: 1 })]);
  h.controller.sync(m);
  h.report(1000, 50);
  h.tick();
  h.tick();
  const v = h.controller.list()[0];
  t.is(v.phase, 'Progressing');
  t.regex(v.message, /reporting: 50% of 1000 compared requests differ/);
  t.is(h.controller.act('default', 'reviews', 'promote').weight, 100);
});

test('without a comparator a ParallelRun mirrors nothing and says why', (t) => {
  let now = 0;
  const controller = new CanaryController({ traffic: new TrafficStore(), publish: () => {}, store: new MemoryStore(), log: () => {}, now: () => now, tickMs: 3_600_000 });
  const m = model([spec()]);
  controller.sync(m);
  const resources = translate({ model: controller.overlay(m), endpoints: [], proxy: sidecar });
  t.false((resources[TypeUrl.Cluster] ?? []).some((c) => c.name === 'tessera_comparator'));
  now = 20_000;
  controller.tick();
  t.regex(controller.list()[0].message, /no comparator: start the control plane with --comparator-port/);
});

test('the mirrored route and the comparator cluster survive encoding (no field dropped on the way to Envoy)', (t) => {
  const h = harness();
  const m = model([spec()]);
  h.controller.sync(m);
  const resources = translate({ model: h.controller.overlay(m), endpoints: [], proxy: sidecar });
  for (const type of [TypeUrl.RouteConfiguration, TypeUrl.Cluster] as const) {
    for (const r of resources[type] ?? []) t.deepEqual(decodeAny(encodeAny(type, r.resource)), JSON.parse(JSON.stringify(r.resource)), r.name);
  }
  const decoded = JSON.stringify(decodeAny(encodeAny(TypeUrl.RouteConfiguration, resources[TypeUrl.RouteConfiguration]![0].resource)));
  t.true(decoded.includes('"disable_shadow_host_suffix_append":true'));
  const cluster = resources[TypeUrl.Cluster]!.find((c) => c.name === 'tessera_comparator')!;
  t.true(JSON.stringify(decodeAny(encodeAny(TypeUrl.Cluster, cluster.resource))).includes('"address":"10.0.0.9"'));
});
