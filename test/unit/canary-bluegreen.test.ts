// A/B by header and BlueGreen as modes of the Canary kind: what loads, every refusal
// with its file:line, the overlay (which rules, backends and mirror policies are served,
// down to the Envoy routes), and the controller on a fake clock.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { loadConfigDir } from '../../control-plane/config/load.ts';
import { CanaryController } from '../../control-plane/delivery/canary.ts';
import { applySplits, type TrafficSplit } from '../../control-plane/delivery/overlay.ts';
import type { CanarySpec, MeshModel, ProxyContext, Route } from '../../control-plane/model/types.ts';
import { FileStore, MemoryStore } from '../../control-plane/registry/store.ts';
import { TrafficStore } from '../../control-plane/telemetry/traffic.ts';
import { translate } from '../../control-plane/translate/index.ts';
import { encodeAny } from '../../control-plane/xds/resources/codec.ts';
import { TypeUrl } from '../../control-plane/xds/resources/type-urls.ts';

type Obj = Record<string, any>;

const SERVICES = ['reviews', 'reviews-v1', 'reviews-v2']
  .map((n) => `apiVersion: v1\nkind: Service\nmetadata: {name: ${n}}\nspec:\n  ports: [{name: http, port: 9080, appProtocol: http}]\n`)
  .join('---\n');

/** A Canary document; each field on its own line, in this order (line 5 is targetRef). */
function canary(spec: Record<string, string>): string {
  const fields = {
    targetRef: '{group: "", kind: Service, name: reviews}',
    stable: '{name: reviews-v1}',
    canary: '{name: reviews-v2}',
    strategy: 'Canary',
    match: '[{headers: [{name: x-canary, value: "yes"}]}]',
    iterations: '3',
    interval: '30s',
    analysis: '{successRate: {min: 99}, minRequests: 20, failureLimit: 2}',
    ...spec,
  };
  const body = Object.entries(fields).filter(([, v]) => v !== '').map(([k, v]) => `  ${k}: ${v}`).join('\n');
  return `apiVersion: tessera.dev/v1alpha1\nkind: Canary\nmetadata: {name: reviews}\nspec:\n${body}\n`;
}

function load(t: ExecutionContext, files: Record<string, string>) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-bluegreen-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(d, name), text);
  return loadConfigDir(d);
}

const ref = (service: string) => ({ service, namespace: 'default' });
const X_CANARY = [{ headers: [{ type: 'Exact' as const, name: 'x-canary', value: 'yes' }], queryParams: [] }];

// ---- config ----

test('an A/B Canary (strategy Canary with match) loads with its header match and iterations, and no steps', (t) => {
  const result = load(t, { 'services.yaml': SERVICES, 'canary.yaml': canary({ match: '[{headers: [{name: x-canary, value: "yes"}, {name: x-user, value: "^qa-.*", type: RegularExpression}]}]' }) });
  t.deepEqual(result.errors, []);
  t.like(result.model.canaries?.[0], { steps: [], intervalMs: 30_000 });
  t.deepEqual(result.model.canaries?.[0].test, {
    mode: 'A/B',
    match: [{ headers: [{ type: 'Exact', name: 'x-canary', value: 'yes' }, { type: 'RegularExpression', name: 'x-user', value: '^qa-.*' }], queryParams: [] }],
    iterations: 3,
  });
});

test('a BlueGreen Canary loads with a mirror, or with a match', (t) => {
  const mirrored = load(t, { 'services.yaml': SERVICES, 'canary.yaml': canary({ strategy: 'BlueGreen', match: '', mirror: 'true', iterations: '2' }) });
  t.deepEqual(mirrored.errors, []);
  t.deepEqual(mirrored.model.canaries?.[0].test, { mode: 'BlueGreen', mirror: true, iterations: 2 });
  const matched = load(t, { 'services.yaml': SERVICES, 'canary.yaml': canary({ strategy: 'BlueGreen' }) });
  t.deepEqual(matched.errors, []);
  t.deepEqual(matched.model.canaries?.[0].test, { mode: 'BlueGreen', match: X_CANARY, iterations: 3 });
});

test('a weighted Canary has no test field, so its spec (and its stored state) is as before', (t) => {
  const result = load(t, { 'services.yaml': SERVICES, 'canary.yaml': canary({ match: '', iterations: '', steps: '[10, 100]' }) });
  t.deepEqual(result.errors, []);
  t.false('test' in (result.model.canaries?.[0] ?? {}));
});

const rejections: [string, Record<string, string>, RegExp, number][] = [
  ['A/B with steps', { steps: '[5, 50]' }, /steps and match exclude each other: with match \(A\/B\)/, 13],
  ['A/B without iterations', { iterations: '' }, /missing required field 'iterations' \(how many passing intervals before A\/B promotes/, 5],
  ['A/B with mirror', { mirror: 'true' }, /mirror is for strategy BlueGreen; strategy Canary with match sends the matching requests/, 13],
  ['BlueGreen with both match and mirror', { strategy: 'BlueGreen', mirror: 'true' }, /strategy BlueGreen takes exactly one of match and mirror: true, not both/, 13],
  ['BlueGreen with neither', { strategy: 'BlueGreen', match: '' }, /strategy BlueGreen needs exactly one of match \(header-selected test traffic\) and mirror: true/, 8],
  ['BlueGreen with mirror: false and no match', { strategy: 'BlueGreen', match: '', mirror: 'false' }, /strategy BlueGreen needs exactly one of match/, 12],
  ['BlueGreen with steps', { strategy: 'BlueGreen', steps: '[50, 100]' }, /strategy BlueGreen has no steps: the canary gets only test traffic until promoted, then 100% at once/, 13],
  ['weighted Canary with iterations', { match: '', steps: '[5, 100]' }, /iterations is for A\/B \(with match\) and BlueGreen/, 9],
  ['weighted Canary with mirror', { match: '', iterations: '', steps: '[5, 100]', mirror: 'true' }, /mirror is for strategy BlueGreen \(the canary judged on a copy of live traffic\)/, 12],
  ['weighted Canary with neither steps nor match', { match: '', iterations: '' }, /missing required field 'steps' \(strategy Canary moves traffic by weighted steps; for A\/B give match and iterations instead\)/, 5],
  ['an empty match list', { match: '[]' }, /spec.match must NOT have fewer than 1 items/, 9],
  ['a match without headers', { match: '[{headers: []}]' }, /spec.match\[0\].headers must NOT have fewer than 1 items/, 9],
  ['a match header type that does not exist', { match: '[{headers: [{name: x-canary, value: "yes", type: Prefix}]}]' }, /spec.match\[0\].headers\[0\].type must be one of "Exact", "RegularExpression"/, 9],
  ['a misspelt match field', { match: '[{header: [{name: x-canary, value: "yes"}]}]' }, /unknown field 'spec.match\[0\].header'/, 9],
  ['a regular expression that does not compile', { match: '[{headers: [{name: x-user, value: "qa-(", type: RegularExpression}]}]' }, /match header x-user/, 9],
  ['zero iterations', { iterations: '0' }, /spec.iterations must be >= 1/, 10],
  ['ParallelRun with a match', { strategy: 'ParallelRun' }, /match does not apply to strategy ParallelRun/, 9],
  ['ParallelRun with iterations', { strategy: 'ParallelRun', match: '' }, /iterations does not apply to strategy ParallelRun/, 9],
];

for (const [title, spec, message, line] of rejections) {
  test(`an A/B or BlueGreen Canary is refused at its line: ${title}`, (t) => {
    const { errors } = load(t, { 'services.yaml': SERVICES, 'canary.yaml': canary(spec) });
    const error = errors.find((e) => message.test(e.message));
    t.truthy(error, JSON.stringify(errors));
    t.is(error?.file, 'canary.yaml');
    t.is(error?.line, line, JSON.stringify(error));
  });
}

// ---- overlay ----

const model = (routes: Route[] = [], canaries: CanarySpec[] = []): MeshModel => ({
  services: ['reviews', 'reviews-v1', 'reviews-v2'].map((name) => ({ name, namespace: 'default', ports: [{ port: 9080, targetPort: 9080, appProtocol: 'http' as const }] })),
  routes,
  policies: [],
  endpoints: ['reviews-v1', 'reviews-v2'].map((service, i) => ({ id: `${service}-1`, service, namespace: 'default', address: '127.0.0.1', port: 9001 + i, labels: {}, health: 'healthy' as const, source: 'file' as const })),
  canaries,
});
const split = (over: Partial<TrafficSplit>): TrafficSplit => ({
  name: 'reviews',
  namespace: 'default',
  target: ref('reviews'),
  stable: ref('reviews-v1'),
  canary: ref('reviews-v2'),
  canaryWeight: 0,
  ...over,
});
/** A route of the user's: testers' header rule to the canary only, /api to stable with a timeout. */
const userRoute: Route = {
  kind: 'HTTPRoute',
  name: 'reviews',
  namespace: 'default',
  parents: [ref('reviews')],
  rules: [
    { matches: [{ headers: [{ type: 'Exact', name: 'x-tester', value: '1' }], queryParams: [] }], backends: [{ ...ref('reviews-v2'), weight: 1 }], filters: [] },
    { matches: [{ path: { type: 'PathPrefix', value: '/api' }, headers: [], queryParams: [] }], backends: [{ ...ref('reviews-v1'), port: 9080, weight: 1 }], filters: [], timeouts: { requestMs: 2000 } },
  ],
};
const backends = (r: { backends: { service: string; weight: number; port?: number }[] }) => r.backends.map((b) => `${b.service}=${b.weight}`);

test('A/B overlay without a route for the target: matching requests to the canary only, the rest to stable only', (t) => {
  const [route] = applySplits(model(), [split({ test: { match: X_CANARY } })]).routes;
  t.is(route.name, 'canary-reviews');
  t.deepEqual(route.rules.map((r) => ({ matches: r.matches, to: backends(r), filters: r.filters })), [
    { matches: X_CANARY, to: ['reviews-v2=1'], filters: [] },
    { matches: [], to: ['reviews-v1=100'], filters: [] },
  ]);
});

test('A/B overlay on a user route: each rule to stable gets a twin for matching requests (its matches AND the test headers); the rest of the rule stays', (t) => {
  const [route] = applySplits(model([userRoute]), [split({ test: { match: X_CANARY } })]).routes;
  t.deepEqual(route.rules.map(backends), [['reviews-v2=1'], ['reviews-v2=1'], ['reviews-v1=100']]);
  t.deepEqual(route.rules[0], userRoute.rules[0], "the testers' rule is left alone");
  t.deepEqual(route.rules[1].matches, [{ path: { type: 'PathPrefix', value: '/api' }, headers: [{ type: 'Exact', name: 'x-canary', value: 'yes' }], queryParams: [] }]);
  t.is(route.rules[1].backends[0].port, 9080, "the canary gets the stable's port, which it has");
  t.deepEqual(route.rules[1].timeouts, { requestMs: 2000 });
  t.deepEqual(route.rules[2].matches, userRoute.rules[1].matches);
});

test('BlueGreen mirror overlay: the rule keeps sending everything to stable and mirrors it to the canary', (t) => {
  const [route] = applySplits(model([userRoute]), [split({ test: { mirror: true } })]).routes;
  t.is(route.rules.length, 2);
  t.deepEqual(backends(route.rules[1]), ['reviews-v1=100']);
  t.deepEqual(route.rules[1].filters, [{ type: 'RequestMirror', requestMirror: { backend: { ...ref('reviews-v2'), port: 9080, weight: 1 } } }]);
});

test('promoted (weight 100, no test) and rolled back (weight 0, no test) serve no match twin and no mirror', (t) => {
  for (const [weight, expected] of [[100, ['reviews-v2=100']], [0, ['reviews-v1=100']]] as const) {
    const [route] = applySplits(model([userRoute]), [split({ canaryWeight: weight })]).routes;
    t.deepEqual(route.rules.map(backends), [['reviews-v2=1'], [...expected]]);
    t.deepEqual(route.rules[1].filters, []);
  }
});

const sidecar: ProxyContext = { kind: 'sidecar', namespace: 'default', outbound: { address: '127.0.0.1', port: 15001 } };
function envoyRoutes(m: MeshModel): Obj[] {
  const set = translate({ model: m, endpoints: m.endpoints, proxy: sidecar });
  const rc = set[TypeUrl.RouteConfiguration]?.find((r) => r.name === 'outbound_http');
  if (!rc) throw new Error('no outbound_http');
  mustEncode(rc.resource);
  return (rc.resource as Obj).virtual_hosts.find((v: Obj) => v.name === 'reviews.default:9080').routes;
}
/** Envoy NACKs what does not encode; every resource must survive the Any codec. */
function mustEncode(resource: unknown) {
  encodeAny(TypeUrl.RouteConfiguration, resource as object);
}

test('translated for Envoy: the A/B header route comes before the catch-all, and the mirror is a request_mirror_policies entry on the canary cluster', (t) => {
  const v1 = 'outbound|9080||reviews-v1.default';
  const v2 = 'outbound|9080||reviews-v2.default';
  const ab = envoyRoutes(applySplits(model(), [split({ test: { match: X_CANARY } })]));
  t.deepEqual(ab.map((r) => [r.match.headers?.map((h: Obj) => h.name) ?? [], r.route.cluster ?? r.route.weighted_clusters]), [
    [['x-canary'], v2],
    [[], v1],
  ]);
  t.like(ab[0].match.headers[0], { name: 'x-canary', string_match: { exact: 'yes' } });
  const mirrored = envoyRoutes(applySplits(model(), [split({ test: { mirror: true } })]));
  t.is(mirrored.length, 1);
  t.is(mirrored[0].route.cluster, v1);
  t.deepEqual(mirrored[0].route.request_mirror_policies, [{ cluster: v2 }]);
});

// ---- controller ----

const abSpec = (over: Partial<CanarySpec> = {}): CanarySpec => ({
  name: 'reviews',
  namespace: 'default',
  target: ref('reviews'),
  stable: ref('reviews-v1'),
  canary: ref('reviews-v2'),
  steps: [],
  test: { mode: 'A/B', match: X_CANARY, iterations: 3 },
  intervalMs: 10_000,
  analysis: { successRateMin: 99, minRequests: 20, failureLimit: 2 },
  ...over,
});
const mirrorSpec = (over: Partial<CanarySpec> = {}) => abSpec({ test: { mode: 'BlueGreen', mirror: true, iterations: 2 }, ...over });

function harness(store: ConstructorParameters<typeof CanaryController>[0]['store'] = new MemoryStore(), start = 1_000_000) {
  let now = start;
  const traffic = new TrafficStore();
  const published: Record<string, unknown>[] = [];
  const controller = new CanaryController({ traffic, publish: (note) => published.push(note), store, log: () => {}, now: () => now, tickMs: 3_600_000 });
  return {
    controller,
    published,
    interval(ok: number, errors = 0) {
      traffic.record(now + 1, ref('productpage'), ref('reviews-v2'), { classes: [0, 0, ok, 0, 0, errors] });
      traffic.record(now + 1, ref('productpage'), ref('reviews-v1'), { classes: [0, 0, 100] });
      now += 10_000;
      controller.tick();
      return controller.list()[0];
    },
    /** The rules served for the target (no user route: the synthetic one). */
    served: (m: MeshModel) =>
      controller.overlay(m).routes[0]?.rules.map((r) => `${r.matches.length ? 'match' : 'all'}:${backends(r).join(',')}${r.filters.some((f) => f.type === 'RequestMirror') ? '+mirror' : ''}`),
  };
}

test('A/B: matching requests go to the canary while judged; after N passing intervals all traffic at once, published with mode and iteration', (t) => {
  const h = harness();
  const m = model([], [abSpec()]);
  h.controller.sync(m);
  const start = h.controller.list()[0];
  t.like(start, { mode: 'A/B', phase: 'Progressing', iteration: 0, iterations: 3, weight: 0, testing: true, testTraffic: 'requests with x-canary=yes' });
  t.deepEqual(h.served(m), ['match:reviews-v2=1', 'all:reviews-v1=100']);
  t.like(h.interval(50), { phase: 'Progressing', iteration: 1, weight: 0 });
  t.like(h.interval(5), { iteration: 1 }, 'too few requests waits');
  t.like(h.interval(50), { iteration: 2 });
  t.deepEqual(h.published, [], 'nothing served changes while iterations pass');
  const done = h.interval(50);
  t.like(done, { phase: 'Promoted', iteration: 3, weight: 100, testing: false });
  t.regex(done.message, /promoted: all traffic to reviews-v2 \(iteration 3\/3 passed/);
  t.like(done.lastAnalysis, { result: 'passed', requests: 50, test: 'match', step: 3 });
  t.deepEqual(h.served(m), ['all:reviews-v2=100']);
  t.is(h.published.length, 1);
  t.like(h.published[0], { canary: 'default/reviews', mode: 'A/B', phase: 'Promoted', iteration: 3, iterations: 3, weight: 100, test: false });
});

test('BlueGreen mirror: stable gets everything and a mirror goes to the canary; never an intermediate weight', (t) => {
  const h = harness();
  const m = model([], [mirrorSpec()]);
  h.controller.sync(m);
  t.deepEqual(h.served(m), ['all:reviews-v1=100+mirror']);
  t.like(h.interval(50), { mode: 'BlueGreen', iteration: 1, weight: 0, mirror: true });
  t.like(h.interval(50), { phase: 'Promoted', weight: 100 });
  t.deepEqual(h.served(m), ['all:reviews-v2=100']);
  t.deepEqual(h.published.map((n) => n.weight), [100]);
});

test('BlueGreen failing its analysis is rolled back at failureLimit: the mirror is removed (a change is published though the weight stays 0)', (t) => {
  const h = harness();
  const m = model([], [mirrorSpec()]);
  h.controller.sync(m);
  const first = h.interval(80, 20);
  t.like(first, { phase: 'Progressing', failures: 1, iteration: 0 });
  t.regex(first.message, /iteration 0\/2: analysis failed \(1\/2\): success rate 80% < 99%/);
  t.deepEqual(h.published, []);
  const second = h.interval(80, 20);
  t.like(second, { phase: 'RolledBack', weight: 0, failures: 2, testing: false });
  t.regex(second.message, /rolled back after 2\/2 failed analyses: success rate 80% < 99% \(100 requests\); a mirror of live traffic no longer goes to reviews-v2/);
  t.deepEqual(h.served(m), ['all:reviews-v1=100']);
  t.is(h.published.length, 1);
  t.like(h.published[0], { mode: 'BlueGreen', phase: 'RolledBack', weight: 0, test: false });
  t.like(h.interval(100), { phase: 'RolledBack' }, 'a rolled-back canary stays so');
});

test('A/B by hand: pause keeps the test traffic, resume goes on, abort removes it; promote sends everything', (t) => {
  const h = harness();
  const m = model([], [abSpec()]);
  h.controller.sync(m);
  h.interval(50);
  const paused = h.controller.act('default', 'reviews', 'pause');
  t.like(paused, { phase: 'Paused', testing: true });
  t.is(paused.message, 'paused by hand at iteration 1/3');
  t.deepEqual(h.served(m), ['match:reviews-v2=1', 'all:reviews-v1=100']);
  t.like(h.interval(50), { phase: 'Paused', iteration: 1 }, 'no analysis while paused');
  t.like(h.controller.act('default', 'reviews', 'resume'), { phase: 'Progressing', message: 'resumed by hand at iteration 1/3' });
  t.like(h.controller.act('default', 'reviews', 'abort'), { phase: 'RolledBack', weight: 0 });
  t.deepEqual(h.served(m), ['all:reviews-v1=100']);
  t.like(h.published[0], { phase: 'RolledBack', reason: 'abort by hand' });

  const g = harness();
  g.controller.sync(m);
  t.like(g.controller.act('default', 'reviews', 'promote'), { phase: 'Promoted', weight: 100 });
  t.deepEqual(g.served(m), ['all:reviews-v2=100']);
});

test('A/B state survives a restart through the file store: the iteration resumes and the test traffic is served before the config is synced', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-bluegreen-state-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'registry.json');
  const first = new FileStore(file);
  await first.start({ put() {}, delete() {} });
  const h = harness(first);
  const m = model([], [abSpec()]);
  h.controller.sync(m);
  h.interval(50);
  h.interval(50);
  await first.close();
  h.controller.close();

  const second = new FileStore(file);
  await second.start({ put() {}, delete() {} });
  const later = harness(second, 5_000_000);
  await later.controller.load();
  t.deepEqual(later.served(m), ['match:reviews-v2=1', 'all:reviews-v1=100']);
  later.controller.sync(m);
  t.like(later.controller.list()[0], { phase: 'Progressing', iteration: 2, nextAnalysisAt: new Date(5_010_000).toISOString() });
  t.like(later.interval(50), { phase: 'Promoted', weight: 100 });
  later.controller.close();
});

test('changing a weighted Canary into BlueGreen starts over in the new mode', (t) => {
  const h = harness();
  const weighted = abSpec({ test: undefined, steps: [10, 100] });
  h.controller.sync(model([], [weighted]));
  h.interval(50);
  t.like(h.controller.list()[0], { mode: 'Canary', step: 2, weight: 100 });
  const m = model([], [mirrorSpec()]);
  h.controller.sync(m);
  t.like(h.controller.list()[0], { mode: 'BlueGreen', phase: 'Progressing', iteration: 0, weight: 0 });
  t.deepEqual(h.served(m), ['all:reviews-v1=100+mirror']);
});

test('BlueGreen with match serves the header twin like A/B while judged; a rollback removes it and a rolled-back Canary stays so', (t) => {
  const h = harness();
  const m = model([], [abSpec({ test: { mode: 'BlueGreen', match: X_CANARY, iterations: 2 }, analysis: { successRateMin: 99, minRequests: 20, failureLimit: 1 } })]);
  h.controller.sync(m);
  t.like(h.controller.list()[0], { mode: 'BlueGreen', testing: true, testTraffic: 'requests with x-canary=yes' });
  t.false('mirror' in h.controller.list()[0]);
  t.deepEqual(h.served(m), ['match:reviews-v2=1', 'all:reviews-v1=100']);
  const failed = h.interval(0, 30);
  t.like(failed, { phase: 'RolledBack', weight: 0, testing: false });
  t.regex(failed.message, /success rate 0% < 99% \(30 requests\); requests with x-canary=yes no longer go to reviews-v2/);
  t.deepEqual(h.served(m), ['all:reviews-v1=100']);
  t.throws(() => h.controller.act('default', 'reviews', 'resume'), { message: /is RolledBack: resume does not apply/ });
});
