// The Prometheus analysis provider: the PromQL it sends (Envoy's metric names as a real
// Envoy 1.40 exposes them), how answers are read, each query's timeout against a real
// HTTP server, the Canary fields with their refusals at file:line, and the controller
// judging from a provider that answers, fails, or answers too late.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { loadConfigDir } from '../../control-plane/config/load.ts';
import { CanaryController } from '../../control-plane/delivery/canary.ts';
import { judgeMeasured, type Measured } from '../../control-plane/delivery/analysis.ts';
import { buildQueries, instantQuery, measureFromPrometheus, parseQueryResult, PrometheusQueryError, renderTemplate } from '../../control-plane/delivery/prometheus.ts';
import type { CanarySpec, MeshModel, PrometheusProvider } from '../../control-plane/model/types.ts';
import { MemoryStore } from '../../control-plane/registry/store.ts';
import { TrafficStore, type ServiceRef } from '../../control-plane/telemetry/traffic.ts';

// ---- queries ----

test('the queries select every outbound cluster of the backend, with the namespace in the metric name as Envoy tags it', (t) => {
  const q = buildQueries({ service: 'reviews-v2', namespace: 'default' }, 30_000);
  const cluster = 'envoy_cluster_name=~"outbound\\\\|[0-9]+\\\\|\\\\|reviews-v2"';
  const rq = `envoy_cluster_default_upstream_rq_xx{${cluster}}`;
  const rq5 = `envoy_cluster_default_upstream_rq_xx{${cluster},envoy_response_code_class="5"}`;
  const bucket = `envoy_cluster_default_upstream_rq_time_bucket{${cluster}}`;
  t.is(q.requests, `sum(clamp_min(${rq} - ${rq} offset 30000ms, 0) or ${rq})`);
  t.is(q.errors5xx, `sum(clamp_min(${rq5} - ${rq5} offset 30000ms, 0) or ${rq5})`);
  t.is(q.p99, `histogram_quantile(0.99, sum by (le) (clamp_min(${bucket} - ${bucket} offset 30000ms, 0) or ${bucket}))`);
});

test('a namespace with a dash is written with an underscore in the metric name, as Envoy does', (t) => {
  const q = buildQueries({ service: 'reviews', namespace: 'shop-eu' }, 2500);
  t.true(q.requests.startsWith('sum(clamp_min(envoy_cluster_shop_eu_upstream_rq_xx{'), q.requests);
  t.true(q.requests.includes(' offset 2500ms, 0)'), q.requests);
});

test('a backend name that is not a Service name is refused rather than put into a regex', (t) => {
  t.throws(() => buildQueries({ service: 'a|b.*', namespace: 'default' }, 1000), { instanceOf: PrometheusQueryError, message: /is not a Service name/ });
});

test('a query template gets the backend, its namespace and the window', (t) => {
  t.is(
    renderTemplate('sum(rate(x{app="{{backend}}",ns="{{ namespace }}"}[{{interval}}])) / {{backend}}', { service: 'reviews-v2', namespace: 'shop' }, 4000),
    'sum(rate(x{app="reviews-v2",ns="shop"}[4000ms])) / reviews-v2',
  );
});

// ---- answers ----

const vector = (...values: string[]) => ({ status: 'success', data: { resultType: 'vector', result: values.map((v) => ({ metric: {}, value: [1733350000.123, v] })) } });

test('an answer with one sample gives its number; an empty vector gives nothing; NaN stays NaN', (t) => {
  t.is(parseQueryResult(vector('41.5')), 41.5);
  t.is(parseQueryResult(vector()), undefined);
  t.true(Number.isNaN(parseQueryResult(vector('NaN'))));
  t.is(parseQueryResult({ status: 'success', data: { resultType: 'scalar', result: [1, '3'] } }), 3);
});

const badAnswers: [string, unknown, RegExp][] = [
  ['an error status', { status: 'error', errorType: 'bad_data', error: 'parse error at char 5' }, /the query failed: bad_data: parse error at char 5/],
  ['a matrix', { status: 'success', data: { resultType: 'matrix', result: [] } }, /expected a vector, got "matrix"/],
  ['two series', vector('1', '2'), /expected one series, got 2/],
  ['a value that is not a number', vector('lots'), /not a number: "lots"/],
  ['a sample without a value', { status: 'success', data: { resultType: 'vector', result: [{ metric: {} }] } }, /a sample is not \[time, "value"\]/],
  ['no object', null, /not a JSON object/],
];
for (const [title, body, message] of badAnswers) {
  test(`an answer is refused: ${title}`, (t) => {
    t.throws(() => parseQueryResult(body), { instanceOf: PrometheusQueryError, message });
  });
}

// ---- HTTP, against a real server on port 0 ----

async function fakePrometheus(t: ExecutionContext, answer: (url: URL, res: http.ServerResponse) => void): Promise<{ address: string; urls: URL[] }> {
  const urls: URL[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    urls.push(url);
    answer(url, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { address: `http://127.0.0.1:${(server.address() as { port: number }).port}`, urls };
}

const json = (res: http.ServerResponse, body: unknown, status = 200) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

test('a query goes to /api/v1/query under the base path, with its time and timeout', async (t) => {
  const p = await fakePrometheus(t, (_url, res) => json(res, vector('7')));
  const value = await instantQuery({ address: `${p.address}/prom`, timeoutMs: 1500 }, 'sum(up)', 1_733_350_000_250);
  t.is(value, 7);
  t.is(p.urls[0].pathname, '/prom/api/v1/query');
  t.is(p.urls[0].searchParams.get('query'), 'sum(up)');
  t.is(p.urls[0].searchParams.get('time'), '1733350000.250');
  t.is(p.urls[0].searchParams.get('timeout'), '1500ms');
});

test('a Prometheus that does not answer in time fails the query within the timeout', async (t) => {
  const p = await fakePrometheus(t, () => {}); // never answers
  const started = Date.now();
  await t.throwsAsync(instantQuery({ address: p.address, timeoutMs: 300 }, 'sum(up)', Date.now()), { instanceOf: PrometheusQueryError, message: 'unreachable: no answer within 300 ms' });
  t.true(Date.now() - started < 2000, `${Date.now() - started} ms`);
});

test('a Prometheus error (HTTP 400 with its JSON), a non-JSON answer and a closed port are query failures', async (t) => {
  const p = await fakePrometheus(t, (url, res) => {
    if (url.searchParams.get('query') === 'html') {
      res.writeHead(502);
      res.end('<html>bad gateway</html>');
    } else json(res, { status: 'error', errorType: 'bad_data', error: 'invalid parameter "query"' }, 400);
  });
  await t.throwsAsync(instantQuery({ address: p.address, timeoutMs: 1000 }, 'sum(', Date.now()), { message: /bad_data: invalid parameter "query"/ });
  await t.throwsAsync(instantQuery({ address: p.address, timeoutMs: 1000 }, 'html', Date.now()), { message: /answered 502 with no JSON/ });
  await t.throwsAsync(instantQuery({ address: 'http://127.0.0.1:1', timeoutMs: 1000 }, 'sum(up)', Date.now()), { message: /unreachable: .*ECONNREFUSED/ });
});

test('a backend is measured by its three queries over the window; a failed one names the Prometheus', async (t) => {
  const p = await fakePrometheus(t, (url, res) => {
    const q = url.searchParams.get('query') ?? '';
    if (q.startsWith('histogram_quantile')) json(res, vector('123.456'));
    else if (q.includes('envoy_response_code_class="5"')) json(res, vector('2.04'));
    else json(res, vector('49.96'));
  });
  const provider: PrometheusProvider = { address: p.address, timeoutMs: 1000 };
  const m = await measureFromPrometheus(provider, { service: 'reviews-v2', namespace: 'default' }, 1_000_000, 1_010_000);
  t.deepEqual(m, { requests: 50, errors5xx: 2, p99Ms: 123.5 });
  t.is(p.urls.length, 3);
  t.true(p.urls.every((u) => u.searchParams.get('query')!.includes(' offset 10000ms, 0)') && u.searchParams.get('time') === '1010.000'));
  // No traffic: empty vectors and a NaN quantile.
  const quiet = await fakePrometheus(t, (url, res) => json(res, url.searchParams.get('query')!.startsWith('histogram') ? vector('NaN') : vector()));
  t.deepEqual(await measureFromPrometheus({ address: quiet.address, timeoutMs: 1000 }, { service: 'reviews-v2', namespace: 'default' }, 0, 5000), { requests: 0, errors5xx: 0, p99Ms: null });
  await t.throwsAsync(measureFromPrometheus({ address: 'http://127.0.0.1:1', timeoutMs: 500 }, { service: 'reviews-v2', namespace: 'default' }, 0, 5000), {
    message: /^prometheus at http:\/\/127\.0\.0\.1:1: unreachable: /,
  });
});

test('own queries replace the built-in success rate and p99; requests and 5xx stay built in', async (t) => {
  const rates: Record<string, string> = { 'reviews-v2': '90', 'reviews-v1': '250' };
  const p = await fakePrometheus(t, (url, res) => {
    const q = url.searchParams.get('query') ?? '';
    const own = /^own_(success|p99)\{b="([^"]+)",w="([^"]+)"\}$/.exec(q);
    if (own?.[1] === 'success') json(res, own[2] === 'reviews-v3' ? vector() : vector(rates[own[2]]));
    else if (own?.[1] === 'p99') json(res, vector(own[3] === '8000ms' ? '321' : '0'));
    else if (q.includes('envoy_response_code_class="5"')) json(res, vector('1'));
    else if (q.startsWith('histogram_quantile')) json(res, vector('1'));
    else json(res, vector('40'));
  });
  const provider: PrometheusProvider = { address: p.address, timeoutMs: 1000, successRateQuery: 'own_success{b="{{backend}}",w="{{interval}}"}', latencyP99Query: 'own_p99{b="{{backend}}",w="{{interval}}"}' };
  const m = await measureFromPrometheus(provider, { service: 'reviews-v2', namespace: 'default' }, 0, 8000);
  t.deepEqual(m, { requests: 40, errors5xx: 1, p99Ms: 321, successRate: 90 });
  t.false(p.urls.some((u) => u.searchParams.get('query')!.startsWith('histogram_quantile')), 'the built-in p99 query is not sent');
  // Judged on its own success rate (90%), not on the counts (39 of 40: 97.5%, which would pass).
  t.like(judgeMeasured({ successRateMin: 95, minRequests: 5, failureLimit: 1 }, m), { result: 'failed', successRate: 90, message: 'success rate 90% < 95% (40 requests)' });
  t.like(judgeMeasured({ successRateMin: 95, minRequests: 5, failureLimit: 1 }, { ...m, successRate: undefined }), { result: 'passed', successRate: 97.5 });
  // An answer that is not a percent, or none: the query fails, or the analysis waits.
  await t.throwsAsync(measureFromPrometheus(provider, { service: 'reviews-v1', namespace: 'default' }, 0, 8000), { message: /successRateQuery gave 250 for reviews-v1, not a percent/ });
  const none = await measureFromPrometheus(provider, { service: 'reviews-v3', namespace: 'default' }, 0, 8000);
  t.is(none.successRate, null);
  t.like(judgeMeasured({ successRateMin: 95, minRequests: 5, failureLimit: 1 }, none), { result: 'waiting', message: 'waiting for success-rate data (40 requests, successRateQuery gave no sample)' });
  // A failing own query says which one.
  const broken = await fakePrometheus(t, (url, res) => (url.searchParams.get('query')!.startsWith('own_') ? json(res, { status: 'error', errorType: 'bad_data', error: 'boom' }, 400) : json(res, vector('1'))));
  await t.throwsAsync(measureFromPrometheus({ ...provider, address: broken.address }, { service: 'reviews-v2', namespace: 'default' }, 0, 8000), { message: /: (successRateQuery|latencyP99Query): the query failed: bad_data: boom/ });
});

// ---- config ----

const SERVICES = ['reviews', 'reviews-v1', 'reviews-v2']
  .map((n) => `apiVersion: v1\nkind: Service\nmetadata: {name: ${n}}\nspec:\n  ports: [{name: http, port: 9080, appProtocol: http}]\n`)
  .join('---\n');

/** A Canary whose analysis is written in block style, so each provider field has its own line. */
function canaryWith(provider: string, extra = 'strategy: Canary\n  steps: [5, 50, 100]'): string {
  return `apiVersion: tessera.dev/v1alpha1
kind: Canary
metadata: {name: reviews}
spec:
  targetRef: {kind: Service, name: reviews}
  stable: {name: reviews-v1}
  canary: {name: reviews-v2}
  ${extra}
  interval: 30s
  analysis:
    successRate: {min: 99}
    provider:
${provider}
`;
}

function load(t: ExecutionContext, canaryYaml: string) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-canary-prom-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  fs.writeFileSync(path.join(d, 'services.yaml'), SERVICES);
  fs.writeFileSync(path.join(d, 'canary.yaml'), canaryYaml);
  return loadConfigDir(d);
}

test('analysis.provider.prometheus loads with its address and a 5s default timeout; without it there is no provider', (t) => {
  const r = load(t, canaryWith('      prometheus: {address: "http://prometheus.monitoring:9090/"}'));
  t.deepEqual(r.errors, []);
  t.deepEqual(r.model.canaries![0].analysis.provider, { prometheus: { address: 'http://prometheus.monitoring:9090', timeoutMs: 5000 } });
  const timed = load(t, canaryWith('      prometheus:\n        address: https://prom.example/api-root\n        timeout: 1500ms'));
  t.deepEqual(timed.errors, []);
  t.deepEqual(timed.model.canaries![0].analysis.provider, { prometheus: { address: 'https://prom.example/api-root', timeoutMs: 1500 } });
  const plain = load(t, canaryWith('      prometheus: {address: "http://p:9090"}').replace(/ {4}provider:\n.*\n/, ''));
  t.deepEqual(plain.errors, []);
  t.false('provider' in plain.model.canaries![0].analysis);
});

test('query templates load as written', (t) => {
  const r = load(t, canaryWith("      prometheus:\n        address: http://p:9090\n        successRateQuery: 'sum(rate(ok{svc=\"{{backend}}\"}[{{ interval }}]))'\n        latencyP99Query: 'max(p99{svc=\"{{backend}}\",ns=\"{{namespace}}\"})'"));
  t.deepEqual(r.errors, []);
  t.deepEqual(r.model.canaries![0].analysis.provider?.prometheus, {
    address: 'http://p:9090',
    timeoutMs: 5000,
    successRateQuery: 'sum(rate(ok{svc="{{backend}}"}[{{ interval }}]))',
    latencyP99Query: 'max(p99{svc="{{backend}}",ns="{{namespace}}"})',
  });
});

test('a BlueGreen Canary takes the provider too', (t) => {
  const r = load(t, canaryWith('      prometheus: {address: "http://p:9090"}', 'strategy: BlueGreen\n  mirror: true\n  iterations: 2'));
  t.deepEqual(r.errors, []);
  t.is(r.model.canaries![0].analysis.provider?.prometheus.address, 'http://p:9090');
});

// The line is that of the field's value (for a block mapping, the line below its key).
const refusals: [string, string, RegExp, number, string?][] = [
  ['a gRPC address', '      prometheus:\n        address: grpc://prometheus:9090', /address "grpc:\/\/prometheus:9090" has scheme grpc: only http and https are supported/, 15],
  ['HOST:PORT without a scheme', '      prometheus:\n        address: "prometheus:9090"', /has scheme prometheus: only http and https/, 15],
  ['not a URL', '      prometheus:\n        address: "just words"', /address "just words" is not a URL/, 15],
  ['credentials in the URL', '      prometheus:\n        address: "http://u:p@prom:9090"', /carries credentials, which are not supported/, 15],
  ['a query string', '      prometheus:\n        address: "http://prom:9090?x=1"', /has a query or fragment/, 15],
  ['a timeout over 60s', '      prometheus:\n        address: http://prom:9090\n        timeout: 2m', /timeout must be from 100ms to 60s, not 2m/, 16],
  ['no address', '      prometheus: {timeout: 1s}', /missing required field 'address'|must have required property 'address'/, 14],
  ['an unknown provider', '      datadog: {site: x}', /unknown field 'spec.analysis.provider.datadog'/, 14],
  ['a misspelt query field', '      prometheus:\n        address: http://prom:9090\n        successRateQueries: "sum(x)"', /unknown field 'spec.analysis.provider.prometheus.successRateQueries'/, 16],
  ['a placeholder that is not filled in', '      prometheus:\n        address: http://prom:9090\n        latencyP99Query: "max(x{svc=\\"{{backend}}\\"}[{{window}}])"', /latencyP99Query has \{\{window\}\}: only \{\{backend\}\}, \{\{namespace\}\}, \{\{interval\}\} are filled in/, 16],
  ['a query template without {{backend}}', '      prometheus:\n        address: http://prom:9090\n        successRateQuery: "sum(up) * 100"', /successRateQuery has no \{\{backend\}\}: the same query would judge the canary and stable alike/, 16],
  ['a provider on a ParallelRun', '      prometheus: {address: "http://p:9090"}', /analysis.provider does not apply to strategy ParallelRun/, 13, 'strategy: ParallelRun'],
];
for (const [title, provider, message, line, extra] of refusals) {
  test(`analysis.provider is refused at its line: ${title}`, (t) => {
    let yaml = canaryWith(provider, extra);
    if (extra) yaml = yaml.replace('    successRate: {min: 99}\n', '    maxMismatchPercent: 1\n');
    const { errors } = load(t, yaml);
    const error = errors.find((e) => message.test(e.message));
    t.truthy(error, JSON.stringify(errors));
    t.is(error?.file, 'canary.yaml');
    t.is(error?.line, line, JSON.stringify(error));
  });
}

// ---- the controller with a provider ----

const ref = (service: string): ServiceRef => ({ service, namespace: 'default' });
const PROVIDER: PrometheusProvider = { address: 'http://prom:9090', timeoutMs: 1000 };
const spec = (): CanarySpec => ({
  name: 'reviews',
  namespace: 'default',
  target: ref('reviews'),
  stable: ref('reviews-v1'),
  canary: ref('reviews-v2'),
  steps: [5, 50],
  intervalMs: 10_000,
  analysis: { successRateMin: 99, latencyP99MaxMs: 500, minRequests: 20, failureLimit: 1, provider: { prometheus: PROVIDER } },
});
const model = (): MeshModel => ({
  services: ['reviews', 'reviews-v1', 'reviews-v2'].map((name) => ({ name, namespace: 'default', ports: [{ port: 80, targetPort: 80, appProtocol: 'http' as const }] })),
  routes: [],
  policies: [],
  endpoints: [],
  canaries: [spec()],
});

function harness() {
  let now = 1_000_000;
  const asked: { backend: string; since: number; until: number }[] = [];
  let answer: (backend: ServiceRef) => Promise<Measured> = async () => ({ requests: 0, errors5xx: 0, p99Ms: null });
  let seen: PrometheusProvider | undefined;
  const traffic = new TrafficStore();
  const logs: string[] = [];
  const controller = new CanaryController({
    traffic,
    publish: () => {},
    store: new MemoryStore(),
    log: (l) => logs.push(l),
    now: () => now,
    tickMs: 3_600_000,
    prometheus: (provider, backend, since, until) => {
      seen = provider;
      asked.push({ backend: backend.service, since, until });
      return answer(backend);
    },
  });
  controller.sync(model());
  // The sidecars report a disaster: a provider Canary must not look at it.
  traffic.record(now + 1, ref('frontend'), ref('reviews-v2'), { classes: [0, 0, 0, 0, 0, 100] });
  return {
    controller,
    asked,
    logs,
    provider: () => seen,
    answer: (fn: typeof answer) => {
      answer = fn;
    },
    /** Moves the clock past the interval, ticks, and lets the queries settle. */
    async interval() {
      now += 10_000;
      controller.tick();
      await new Promise((r) => setTimeout(r, 20));
      return controller.list()[0];
    },
  };
}

const numbers = (canary: Measured, stable: Measured) => async (b: ServiceRef) => (b.service === 'reviews-v2' ? canary : stable);

test('a Canary with a provider is judged from it, not from the sidecars: passing numbers move it on', async (t) => {
  const h = harness();
  h.answer(numbers({ requests: 50, errors5xx: 0, p99Ms: 40 }, { requests: 950, errors5xx: 1, p99Ms: 30 }));
  const c = await h.interval();
  t.like(c, { phase: 'Progressing', step: 2, weight: 50, provider: { kind: 'prometheus', address: 'http://prom:9090', timeoutMs: 1000 } });
  t.like(c.lastAnalysis, { result: 'passed', provider: 'prometheus', requests: 50, successRate: 100, p99Ms: 40, stable: { requests: 950, successRate: 99.89, p99Ms: 30 } });
  t.deepEqual(h.asked, [
    { backend: 'reviews-v2', since: 1_000_000, until: 1_010_000 },
    { backend: 'reviews-v1', since: 1_000_000, until: 1_010_000 },
  ]);
  t.deepEqual(h.provider(), PROVIDER);
  t.like(await h.interval(), { phase: 'Promoted', weight: 100 });
});

test('failing numbers from the provider roll the canary back', async (t) => {
  const h = harness();
  h.answer(numbers({ requests: 50, errors5xx: 10, p99Ms: 40 }, { requests: 950, errors5xx: 0, p99Ms: 30 }));
  const c = await h.interval();
  t.like(c, { phase: 'RolledBack', weight: 0, failures: 1 });
  t.regex(c.message, /rolled back after 1\/1 failed analyses: success rate 80% < 99%/);
  t.is(c.lastAnalysis?.provider, 'prometheus');
});

test('a failing provider makes the analysis wait with the reason: no failure, no promotion', async (t) => {
  const h = harness();
  h.answer(async () => {
    throw new PrometheusQueryError('prometheus at http://prom:9090: unreachable: connect ECONNREFUSED 127.0.0.1:9090');
  });
  for (let i = 0; i < 3; i++) {
    const c = await h.interval();
    t.like(c, { phase: 'Progressing', step: 1, weight: 5, failures: 0 });
    t.is(c.message, 'step 1/2 at 5%: waiting, no metrics: prometheus at http://prom:9090: unreachable: connect ECONNREFUSED 127.0.0.1:9090');
    t.like(c.lastAnalysis, { result: 'waiting', provider: 'prometheus', providerError: 'prometheus at http://prom:9090: unreachable: connect ECONNREFUSED 127.0.0.1:9090', requests: 0 });
  }
  t.is(h.logs.filter((l) => l.includes('ECONNREFUSED')).length, 1, 'the same outage is logged once');
  // Prometheus is back: the next interval is judged.
  h.answer(numbers({ requests: 50, errors5xx: 0, p99Ms: 40 }, { requests: 950, errors5xx: 0, p99Ms: 30 }));
  t.like(await h.interval(), { step: 2, weight: 50 });
});

test('too little traffic in Prometheus waits like too little from the sidecars', async (t) => {
  const h = harness();
  h.answer(numbers({ requests: 3, errors5xx: 3, p99Ms: 40 }, { requests: 0, errors5xx: 0, p99Ms: null }));
  const c = await h.interval();
  t.like(c, { phase: 'Progressing', failures: 0 });
  t.is(c.message, 'step 1/2 at 5%: waiting for traffic: 3/20 requests');
});

test('an answer that arrives after the canary was aborted by hand is dropped', async (t) => {
  const h = harness();
  const releases: (() => void)[] = [];
  h.answer((b) => new Promise((resolve) => releases.push(() => resolve(b.service === 'reviews-v2' ? { requests: 50, errors5xx: 0, p99Ms: 1 } : { requests: 1, errors5xx: 0, p99Ms: 1 }))));
  t.like(await h.interval(), { phase: 'Progressing', step: 1 }, 'no verdict while the queries are out');
  h.controller.act('default', 'reviews', 'abort');
  for (const release of releases) release();
  await new Promise((r) => setTimeout(r, 20));
  const c = h.controller.list()[0];
  t.like(c, { phase: 'RolledBack', weight: 0 });
  t.is(c.lastAnalysis, undefined);
});

test('an answer that arrives after the controller closed is dropped', async (t) => {
  const h = harness();
  const releases: (() => void)[] = [];
  h.answer((b) => new Promise((resolve) => releases.push(() => resolve(b.service === 'reviews-v2' ? { requests: 50, errors5xx: 0, p99Ms: 1 } : { requests: 1, errors5xx: 0, p99Ms: 1 }))));
  await h.interval();
  h.controller.close();
  for (const release of releases) release();
  await new Promise((r) => setTimeout(r, 20));
  t.like(h.controller.list()[0], { phase: 'Progressing', step: 1, weight: 5, lastAnalysis: undefined });
});

test('a Canary without a provider says its numbers come from the sidecars', (t) => {
  const controller = new CanaryController({ traffic: new TrafficStore(), publish: () => {}, store: new MemoryStore(), log: () => {}, tickMs: 3_600_000 });
  t.teardown(() => controller.close());
  const plain = { ...model(), canaries: [{ ...spec(), analysis: { minRequests: 0, failureLimit: 1 } }] };
  controller.sync(plain);
  t.deepEqual(controller.list()[0].provider, { kind: 'sidecars' });
});
