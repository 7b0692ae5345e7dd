// The analysis of one interval (pure) and the overlay that serves a split (pure).
import test from 'ava';
import { analyze } from '../../control-plane/delivery/analysis.ts';
import { applySplits, splitTakesEffect, type TrafficSplit } from '../../control-plane/delivery/overlay.ts';
import type { MeshModel, Route } from '../../control-plane/model/types.ts';
import { emptyTotals, type Totals } from '../../control-plane/telemetry/traffic.ts';

const BOUNDS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000];
function totals(ok: number, errors: number, latencyMs?: number): Totals {
  const t = emptyTotals();
  t.requests = ok + errors;
  t.status['2xx'] = ok;
  t.status['5xx'] = errors;
  if (latencyMs !== undefined) t.latency = { bounds: BOUNDS, cumulative: BOUNDS.map((b) => (b >= latencyMs ? t.requests : 0)), count: t.requests };
  return t;
}
const criteria = { successRateMin: 99, latencyP99MaxMs: 500, minRequests: 20, failureLimit: 2 };

test('below minRequests the analysis waits, with the numbers', (t) => {
  const a = analyze(criteria, totals(3, 0, 3));
  t.is(a.result, 'waiting');
  t.is(a.message, 'waiting for traffic: 3/20 requests');
  t.is(analyze(criteria, emptyTotals()).successRate, null);
});

test('a success rate under the minimum fails, saying by how much', (t) => {
  const a = analyze(criteria, totals(80, 20, 3));
  t.is(a.result, 'failed');
  t.is(a.successRate, 80);
  t.is(a.errors5xx, 20);
  t.is(a.message, 'success rate 80% < 99% (100 requests)');
});

test('a p99 over the maximum fails', (t) => {
  const a = analyze(criteria, totals(100, 0, 800));
  t.is(a.result, 'failed');
  t.regex(a.message, /^p99 [\d.]+ ms > 500 ms \(100 requests\)$/);
  t.true(a.p99Ms! > 500);
});

test('both failing are both named; passing names what passed', (t) => {
  t.regex(analyze(criteria, totals(50, 50, 800)).message, /success rate 50% < 99%; p99 .* > 500 ms/);
  const a = analyze(criteria, totals(100, 0, 3));
  t.is(a.result, 'passed');
  t.regex(a.message, /success rate 100% >= 99%; p99 [\d.]+ ms <= 500 ms \(100 requests\)/);
});

test('requests without a latency histogram yet wait rather than fail', (t) => {
  t.is(analyze(criteria, totals(100, 0)).result, 'waiting');
  t.is(analyze({ ...criteria, latencyP99MaxMs: undefined }, totals(100, 0)).result, 'passed');
});

test('with something to judge, zero requests wait even when minRequests is 0; with nothing to judge, time alone passes', (t) => {
  t.is(analyze({ ...criteria, minRequests: 0 }, emptyTotals()).message, 'waiting for traffic: 0/1 requests');
  t.is(analyze({ minRequests: 0, failureLimit: 1 }, emptyTotals()).result, 'passed');
});

// ---- overlay ----

const ref = (service: string) => ({ service, namespace: 'default' });
const svc = (name: string, port = 9080) => ({ name, namespace: 'default', ports: [{ port, targetPort: port, appProtocol: 'http' as const }] });
const split = (canaryWeight: number): TrafficSplit => ({ name: 'reviews', namespace: 'default', target: ref('reviews'), stable: ref('reviews-v1'), canary: ref('reviews-v2'), canaryWeight });
const model = (routes: Route[] = []): MeshModel => ({ services: [svc('reviews'), svc('reviews-v1'), svc('reviews-v2')], routes, policies: [], endpoints: [] });
const route: Route = {
  kind: 'HTTPRoute',
  name: 'reviews',
  namespace: 'default',
  parents: [{ service: 'reviews', namespace: 'default', port: 9080 }],
  rules: [
    { matches: [{ headers: [{ type: 'Exact', name: 'x-canary', value: 'true' }], queryParams: [] }], backends: [{ ...ref('reviews-v2'), port: 9080, weight: 1 }], filters: [] },
    { matches: [], backends: [{ ...ref('reviews-v1'), port: 9080, weight: 80 }, { ...ref('reviews-v2'), port: 9080, weight: 20 }], filters: [], timeouts: { requestMs: 2000 } },
  ],
};

test('without a route for the target, a route with the split is added', (t) => {
  const served = applySplits(model(), [split(25)]);
  t.is(served.routes.length, 1);
  t.like(served.routes[0], { kind: 'HTTPRoute', name: 'canary-reviews', parents: [{ service: 'reviews', namespace: 'default' }] });
  t.deepEqual(served.routes[0].rules[0].backends, [{ ...ref('reviews-v1'), weight: 75 }, { ...ref('reviews-v2'), weight: 25 }]);
});

test('rules that send to the stable backend take the split; a rule naming only the canary is left; the rest of the rule stays', (t) => {
  const config = model([route]);
  const served = applySplits(config, [split(5)]);
  t.deepEqual(served.routes[0].rules[0], route.rules[0]);
  t.deepEqual(served.routes[0].rules[1].backends, [{ ...ref('reviews-v1'), port: 9080, weight: 95 }, { ...ref('reviews-v2'), port: 9080, weight: 5 }]);
  t.deepEqual(served.routes[0].rules[1].timeouts, { requestMs: 2000 });
  t.deepEqual(config.routes[0], route, 'the config model is not touched');
});

test('0% and 100% leave the unused backend out instead of weighting it 0', (t) => {
  t.deepEqual(applySplits(model([route]), [split(0)]).routes[0].rules[1].backends, [{ ...ref('reviews-v1'), port: 9080, weight: 100 }]);
  t.deepEqual(applySplits(model([route]), [split(100)]).routes[0].rules[1].backends, [{ ...ref('reviews-v2'), port: 9080, weight: 100 }]);
});

test('a canary without the stable backend\'s port gets its own first port', (t) => {
  const m = model([{ ...route, rules: [{ matches: [], backends: [{ ...ref('reviews-v1'), port: 9080, weight: 1 }], filters: [] }] }]);
  m.services[2] = svc('reviews-v2', 8080);
  t.deepEqual(applySplits(m, [split(50)]).routes[0].rules[0].backends, [{ ...ref('reviews-v1'), port: 9080, weight: 50 }, { ...ref('reviews-v2'), weight: 50 }]);
});

test('a split that no rule can take is told apart', (t) => {
  const self: Route = { ...route, rules: [{ matches: [], backends: [{ ...ref('reviews'), weight: 1 }], filters: [] }] };
  t.false(splitTakesEffect(model([self]), split(5)));
  t.true(splitTakesEffect(model([route]), split(5)));
  t.true(splitTakesEffect(model(), split(5)));
});
