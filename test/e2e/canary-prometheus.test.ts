// A Canary judged through a real Prometheus: a real Envoy client sidecar under steady
// load, the demo HTTP service as stable (reviews-v1) and canary (reviews-v2), a real
// Prometheus scraping that sidecar's stats listener (GET /stats/prometheus) every second, and the
// control plane as a process asking that Prometheus for the numbers of each interval.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';
import type { CanaryView } from '../../control-plane/delivery/canary.ts';
import { startHttpService, type DemoBehaviour } from '../../examples/demo/http-service.ts';
import { requireEnvoy, reviewsCanary, serviceWithInstance, startControlPlaneProcess, startEnvoy, tally, tempDir, tesseraBin, type ControlPlaneProcess } from '../support/mesh.ts';
import { freePort, waitFor } from '../support/processes.ts';
import { prometheusEnvoyTest, requirePrometheus, startPrometheus } from '../support/prometheus.ts';
import { steadyLoad } from '../support/sidecar.ts';

const REVIEWS = `apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  ports: [{name: http, port: 9080, appProtocol: http}]
`;

function canaryYaml(prometheus: string, analysis: string, queries = '') {
  return reviewsCanary(`  strategy: Canary
  steps: [50, 100]
  interval: 4s
  analysis:
    ${analysis}
    provider:
      prometheus:
        address: "${prometheus}"
        timeout: 2s
${queries}`);
}

/** Prometheus first (it scrapes the sidecar's stats listener, its port picked up front), then the
 *  control plane with the Canary pointing at it, then the sidecar. */
async function mesh(t: ExecutionContext, opts: { analysis: string; v2?: DemoBehaviour; queries?: string }) {
  const [v1Port, v2Port, statsPort] = [await freePort(), await freePort(), await freePort()];
  const servers = [await startHttpService('reviews-v1', v1Port), await startHttpService('reviews-v2', v2Port, '127.0.0.1', opts.v2)];
  t.teardown(() => {
    for (const s of servers) s.close();
  });
  const prometheus = await startPrometheus(t, { targets: [`127.0.0.1:${statsPort}`], scrapeIntervalSeconds: 1 });
  const dir = tempDir(t);
  const files = [REVIEWS, serviceWithInstance('reviews-v1', { port: 9080, targetPort: v1Port }), serviceWithInstance('reviews-v2', { port: 9080, targetPort: v2Port })];
  fs.writeFileSync(path.join(dir, 'services.yaml'), files.join('---\n'));
  fs.writeFileSync(path.join(dir, 'canary.yaml'), canaryYaml(prometheus.address, opts.analysis, opts.queries));
  const cp = await startControlPlaneProcess(t, { configDir: dir });
  const envoy = await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'sotw', service: 'productpage', statsFlushIntervalMs: 1000, statsPort });
  await waitFor('reviews to be routed', async () => Object.keys(await tally(envoy.outboundPort, 'reviews', 4)).every((k) => k.startsWith('reviews-v')), 20_000);
  await prometheus.targetsUp();
  return { cp, envoy, prometheus };
}

const canaryOf = async (cp: Pick<ControlPlaneProcess, 'api'>) => (await cp.api<{ canaries: CanaryView[] }>('/api/v1/canaries')).canaries[0];

async function follow(cp: Pick<ControlPlaneProcess, 'api'>, done: (c: CanaryView) => boolean, timeoutMs: number) {
  const weights: number[] = [];
  const seen: CanaryView[] = [];
  const last = await waitFor(
    'the canary to finish',
    async () => {
      const c = await canaryOf(cp);
      seen.push(c);
      if (weights[weights.length - 1] !== c.weight) weights.push(c.weight);
      return done(c) ? c : undefined;
    },
    timeoutMs,
    100,
  );
  return { last, weights, seen };
}

prometheusEnvoyTest.serial('a healthy canary judged through Prometheus is promoted; the status and the CLI name the provider', async (t) => {
  if (!requireEnvoy(t) || !requirePrometheus(t)) return;
  const { cp, envoy, prometheus } = await mesh(t, { analysis: 'successRate: {min: 99}\n    latencyP99: {max: 1s}\n    minRequests: 5\n    failureLimit: 2' });
  const load = steadyLoad(envoy.outboundPort, 'reviews', 20);
  t.teardown(() => load.stop());
  const { last, weights, seen } = await follow(cp, (c) => c.phase !== 'Progressing', 60_000);
  t.is(last.phase, 'Promoted', last.message);
  t.deepEqual(weights, [50, 100]);
  t.deepEqual(last.provider, { kind: 'prometheus', address: prometheus.address, timeoutMs: 2000 });
  const judged = seen.map((c) => c.lastAnalysis).filter((a) => a?.result === 'passed');
  t.true(judged.length >= 2, JSON.stringify(seen.map((c) => c.message)));
  for (const a of judged) {
    t.is(a!.provider, 'prometheus');
    t.true(a!.requests >= 5, `${a!.requests} canary requests`);
    t.is(a!.successRate, 100);
    t.true(a!.p99Ms !== null && a!.p99Ms <= 1000, `p99 ${a!.p99Ms}`);
    // At 50% the stable backend had the other half, measured over the same window (at 100%, none).
    if (a!.weight === 50) t.true(a!.stable.requests > 0, 'the stable backend was measured over the same window');
  }
  // Prometheus holds what the control plane judged: the canary's clusters by Envoy's own names.
  t.true(((await prometheus.query('sum(envoy_cluster_default_upstream_rq_xx{envoy_cluster_name="outbound|9080||reviews-v2"})')) ?? 0) > 0);
  await waitFor('every request to go to reviews-v2', async () => (await tally(envoy.outboundPort, 'reviews', 20))['reviews-v2'] === 20, 10_000);
  await load.stop();
  t.deepEqual(load.failures(), []);
  const { stdout } = await promisify(execFile)(process.execPath, [tesseraBin, 'canary', 'status', 'reviews', '--admin', cp.adminUrl]);
  t.regex(stdout, new RegExp(`metrics: prometheus at ${prometheus.address.replace(/\./g, '\\.')} \\(each query bounded by 2000 ms\\)`));
  t.regex(stdout, /last analysis .* from prometheus at step 2 \(100%\): passed/);
});

prometheusEnvoyTest.serial('a canary answering 5xx on 30% of requests, judged through Prometheus, is rolled back', async (t) => {
  if (!requireEnvoy(t) || !requirePrometheus(t)) return;
  const { cp, envoy } = await mesh(t, { analysis: 'successRate: {min: 95}\n    minRequests: 5\n    failureLimit: 1', v2: { errorPercent: 30 } });
  const load = steadyLoad(envoy.outboundPort, 'reviews', 20);
  t.teardown(() => load.stop());
  const { last, weights } = await follow(cp, (c) => c.phase !== 'Progressing', 40_000);
  t.is(last.phase, 'RolledBack', last.message);
  t.deepEqual(weights, [50, 0]);
  t.regex(last.message, /rolled back after 1\/1 failed analyses: success rate [\d.]+% < 95%/);
  t.is(last.lastAnalysis!.provider, 'prometheus');
  t.true(last.lastAnalysis!.successRate! < 95 && last.lastAnalysis!.successRate! > 40, `canary success rate ${last.lastAnalysis!.successRate}`);
  t.true(last.lastAnalysis!.errors5xx > 0);
  t.is(last.lastAnalysis!.stable.successRate, 100, 'the stable backend, measured over the same window, was fine');
  await waitFor('every request to go to reviews-v1', async () => (await tally(envoy.outboundPort, 'reviews', 20))['reviews-v1'] === 20, 10_000);
  await load.stop();
  t.true(load.failures().every((f) => f.status === 503 && f.backend === 'reviews-v2'), JSON.stringify(load.failures().slice(0, 5)));
});

prometheusEnvoyTest.serial('with Prometheus killed, the analysis waits and says why, even for a failing canary', async (t) => {
  if (!requireEnvoy(t) || !requirePrometheus(t)) return;
  // The canary fails half its requests: judged from the sidecars it would be rolled back at once.
  const { cp, envoy, prometheus } = await mesh(t, { analysis: 'successRate: {min: 99}\n    minRequests: 5\n    failureLimit: 1', v2: { errorPercent: 50 } });
  await prometheus.process.stop();
  const load = steadyLoad(envoy.outboundPort, 'reviews', 20);
  t.teardown(() => load.stop());
  const waited = await waitFor('two analyses to have waited on prometheus', async () => {
    const c = await canaryOf(cp);
    return c.lastAnalysis?.providerError && c.lastAnalysis.at !== undefined ? c : undefined;
  }, 20_000, 100);
  await new Promise((r) => setTimeout(r, 4500)); // one more interval
  const later = await canaryOf(cp);
  await load.stop();
  t.true(load.failures().length > 0, 'the canary did fail requests meanwhile');
  for (const c of [waited, later]) {
    t.is(c.phase, 'Progressing', c.message);
    t.is(c.weight, 50);
    t.is(c.failures, 0);
    t.is(c.lastAnalysis?.result, 'waiting');
    t.is(c.lastAnalysis?.provider, 'prometheus');
    const where = prometheus.address.replace(/[.]/g, '\\.');
    t.regex(c.message, new RegExp(`^step 1/2 at 50%: waiting, no metrics: prometheus at ${where}: unreachable: .*ECONNREFUSED`));
  }
  t.not(later.lastAnalysis!.at, waited.lastAnalysis!.at, 'a later interval waited too');
});

/** The user's own queries, over the same Envoy metrics written another way: a success rate
 *  in percent (no 5xx series at all counts as none failed) and a p99 from rate(). */
const OWN_QUERIES = `        successRateQuery: '100 * (1 - ((sum(increase(envoy_cluster_{{namespace}}_upstream_rq_xx{envoy_cluster_name=~".*[|]{{backend}}",envoy_response_code_class="5"}[{{interval}}])) or vector(0)) / sum(increase(envoy_cluster_{{namespace}}_upstream_rq_xx{envoy_cluster_name=~".*[|]{{backend}}"}[{{interval}}]))))'
        latencyP99Query: 'histogram_quantile(0.99, sum by (le) (rate(envoy_cluster_{{namespace}}_upstream_rq_time_bucket{envoy_cluster_name=~".*[|]{{backend}}"}[{{interval}}])))'
`;

prometheusEnvoyTest.serial('with its own queries, a canary 300 ms slower at p99 is rolled back on latency; its own success rate says 100%', async (t) => {
  if (!requireEnvoy(t) || !requirePrometheus(t)) return;
  const { cp, envoy } = await mesh(t, { analysis: 'successRate: {min: 99}\n    latencyP99: {max: 200ms}\n    minRequests: 5\n    failureLimit: 1', v2: { delayMs: 300 }, queries: OWN_QUERIES });
  const load = steadyLoad(envoy.outboundPort, 'reviews', 20);
  t.teardown(() => load.stop());
  const { last } = await follow(cp, (c) => c.phase !== 'Progressing', 40_000);
  await load.stop();
  t.is(last.phase, 'RolledBack', last.message);
  t.like(last.provider, { kind: 'prometheus', successRateQuery: expect('successRateQuery'), latencyP99Query: expect('latencyP99Query') });
  t.regex(last.message, /p99 [\d.]+ ms > 200 ms/);
  t.is(last.lastAnalysis!.provider, 'prometheus');
  t.true(last.lastAnalysis!.p99Ms! >= 250, `canary p99 ${last.lastAnalysis!.p99Ms}`);
  t.true(last.lastAnalysis!.stable.p99Ms! < 200, `stable p99 ${last.lastAnalysis!.stable.p99Ms} ms, over the same window`);
  t.is(last.lastAnalysis!.successRate, 100);
  t.is(last.lastAnalysis!.stable.successRate, 100);
  t.deepEqual(load.failures(), []);
});

/** A template of OWN_QUERIES as the config holds it. */
function expect(field: string): string {
  const m = new RegExp(`${field}: '(.*)'`).exec(OWN_QUERIES);
  if (!m) throw new Error(`no ${field} in OWN_QUERIES`);
  return m[1];
}
