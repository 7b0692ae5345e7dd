// Canary against real parts: a real Envoy client sidecar under steady load, the demo
// HTTP service as stable (reviews-v1) and canary (reviews-v2), the control plane as a
// process judging the canary from the metrics its sidecar streams.
import fs from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { request } from 'undici';
import { startHttpService, type DemoBehaviour } from '../../examples/demo/http-service.ts';
import type { CanaryView } from '../../control-plane/delivery/canary.ts';
import { envoyTest, requireEnvoy, reviewsCanary, serviceWithInstance, startControlPlaneProcess, startEnvoy, tally, tempDir, type ControlPlaneProcess } from '../support/mesh.ts';
import { freePort, waitFor } from '../support/processes.ts';
import { steadyLoad } from '../support/sidecar.ts';

const REVIEWS = `apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  ports: [{name: http, port: 9080, appProtocol: http}]
`;

function canaryYaml(o: { interval: string; analysis: string; steps?: string }) {
  return reviewsCanary(`  strategy: Canary
  steps: ${o.steps ?? '[5, 25, 50, 100]'}
  interval: ${o.interval}
  analysis: ${o.analysis}
`);
}

async function mesh(t: ExecutionContext, opts: { canary: string; v2?: DemoBehaviour; store?: string }) {
  const [v1Port, v2Port] = [await freePort(), await freePort()];
  const servers = [await startHttpService('reviews-v1', v1Port), await startHttpService('reviews-v2', v2Port, '127.0.0.1', opts.v2)];
  t.teardown(() => {
    for (const s of servers) s.close();
  });
  const dir = tempDir(t);
  const files = [REVIEWS, serviceWithInstance('reviews-v1', { port: 9080, targetPort: v1Port }), serviceWithInstance('reviews-v2', { port: 9080, targetPort: v2Port })];
  fs.writeFileSync(path.join(dir, 'services.yaml'), files.join('---\n'));
  fs.writeFileSync(path.join(dir, 'canary.yaml'), opts.canary);
  const extraArgs = opts.store ? ['--store', opts.store] : [];
  const cp = await startControlPlaneProcess(t, { configDir: dir, extraArgs });
  const envoy = await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'sotw', service: 'productpage', statsFlushIntervalMs: 1000 });
  await waitFor('reviews to be routed', async () => Object.keys(await tally(envoy.outboundPort, 'reviews', 4)).every((k) => k.startsWith('reviews-v')), 20_000);
  return { cp, envoy, dir, extraArgs };
}

const canaryOf = async (cp: Pick<ControlPlaneProcess, 'api'>) => (await cp.api<{ canaries: CanaryView[] }>('/api/v1/canaries')).canaries[0];

/** Polls the Canary, recording each weight it takes, until `done` holds. */
async function follow(cp: Pick<ControlPlaneProcess, 'api'>, done: (c: CanaryView) => boolean, timeoutMs: number) {
  const weights: number[] = [];
  const last = await waitFor(
    'the canary to finish',
    async () => {
      const c = await canaryOf(cp);
      if (weights[weights.length - 1] !== c.weight) weights.push(c.weight);
      return done(c) ? c : undefined;
    },
    timeoutMs,
    100,
  );
  return { last, weights };
}

envoyTest.serial('a healthy canary goes 5 -> 25 -> 50 -> 100 and is promoted, each step in the changes feed', async (t) => {
  if (!requireEnvoy(t)) return;
  const { cp, envoy } = await mesh(t, {
    // p99 of a few requests is their slowest one: on a loaded test machine one request
    // can take 200 ms, so the healthy canary gets a generous latency bound and a second chance.
    canary: canaryYaml({ interval: '2s', analysis: '{successRate: {min: 99}, latencyP99: {max: 1s}, minRequests: 5, failureLimit: 2}' }),
  });
  const load = steadyLoad(envoy.outboundPort, 'reviews', 10);
  t.teardown(() => load.stop());
  const { last, weights } = await follow(cp, (c) => c.phase !== 'Progressing', 60_000);
  t.is(last.phase, 'Promoted', last.message);
  t.deepEqual(weights, [5, 25, 50, 100]);
  t.is(last.weight, 100);
  t.is(last.lastAnalysis?.result, 'passed');
  t.true((last.lastAnalysis?.requests ?? 0) >= 5);
  // All traffic now reaches the canary.
  await waitFor('every request to go to reviews-v2', async () => (await tally(envoy.outboundPort, 'reviews', 20))['reviews-v2'] === 20, 10_000);
  await load.stop();
  t.deepEqual(load.failures(), []);
  const { changes } = await cp.api<{ changes: { kind: string; note?: { canary: string; weight: number } }[] }>('/api/v1/changes');
  const steps = changes.filter((c) => c.kind === 'canary').map((c) => c.note?.weight);
  t.deepEqual([...steps].sort((a, b) => (a ?? 0) - (b ?? 0)), [25, 50, 100]);
});

envoyTest.serial('a canary answering 5xx on 20% of requests is rolled back within two intervals; only its own share of requests failed', async (t) => {
  if (!requireEnvoy(t)) return;
  const { cp, envoy } = await mesh(t, {
    canary: canaryYaml({ interval: '3s', analysis: '{successRate: {min: 99}, minRequests: 5, failureLimit: 1}' }),
    v2: { errorPercent: 20 },
  });
  const started = Date.now();
  const load = steadyLoad(envoy.outboundPort, 'reviews', 10);
  t.teardown(() => load.stop());
  const { last, weights } = await follow(cp, (c) => c.phase !== 'Progressing', 30_000);
  const elapsed = Date.now() - started;
  t.is(last.phase, 'RolledBack', last.message);
  t.is(last.weight, 0);
  t.deepEqual(weights, [5, 0]);
  t.true(elapsed <= 2 * 3000 + 2000, `rolled back ${elapsed} ms after the load started`);
  t.regex(last.message, /success rate [\d.]+% < 99%/);
  t.true(last.lastAnalysis!.successRate! < 99);
  t.is(last.lastAnalysis!.stable.successRate, 100, 'the stable backend was judged over the same window and was fine');
  // After the rollback, everything goes to the stable backend again.
  await waitFor('every request to go to reviews-v1', async () => (await tally(envoy.outboundPort, 'reviews', 20))['reviews-v1'] === 20, 10_000);
  await load.stop();
  const failures = load.failures();
  t.true(failures.length > 0, 'the canary did fail some requests while it had 5%');
  t.true(failures.every((f) => f.status === 503 && f.backend === 'reviews-v2'), JSON.stringify(failures.slice(0, 5)));
  // 20% of the canary's 5% share: about 1% of all requests, never more than a few.
  t.true(failures.length / load.outcomes.length < 0.03, `${failures.length} of ${load.outcomes.length} failed`);
});

envoyTest.serial('a canary with no traffic waits at its first step and says so', async (t) => {
  if (!requireEnvoy(t)) return;
  const { cp } = await mesh(t, {
    canary: canaryYaml({ interval: '1s', analysis: '{successRate: {min: 99}, minRequests: 20, failureLimit: 1}' }),
  });
  const c = await waitFor('an analysis to have run', async () => {
    const c = await canaryOf(cp);
    return c.lastAnalysis ? c : undefined;
  }, 15_000);
  await new Promise((r) => setTimeout(r, 2500));
  const later = await canaryOf(cp);
  for (const v of [c, later]) {
    t.is(v.phase, 'Progressing');
    t.is(v.step, 1);
    t.is(v.weight, 5);
    t.is(v.failures, 0);
    t.is(v.lastAnalysis?.result, 'waiting');
    t.regex(v.message, /waiting for traffic: \d+\/20 requests/);
  }
});

envoyTest.serial('a canary 300 ms slower at p99 is rolled back on latency', async (t) => {
  if (!requireEnvoy(t)) return;
  const { cp, envoy } = await mesh(t, {
    canary: canaryYaml({ interval: '3s', analysis: '{successRate: {min: 99}, latencyP99: {max: 200ms}, minRequests: 5, failureLimit: 1}' }),
    v2: { delayMs: 300 },
  });
  const load = steadyLoad(envoy.outboundPort, 'reviews', 10);
  t.teardown(() => load.stop());
  const { last } = await follow(cp, (c) => c.phase !== 'Progressing', 30_000);
  await load.stop();
  t.is(last.phase, 'RolledBack', last.message);
  t.regex(last.message, /p99 [\d.]+ ms > 200 ms/);
  t.true(last.lastAnalysis!.p99Ms! >= 250, `canary p99 ${last.lastAnalysis!.p99Ms}`);
  t.true(last.lastAnalysis!.stable.p99Ms! < last.lastAnalysis!.p99Ms!, `stable p99 ${last.lastAnalysis!.stable.p99Ms} ms, over the same window`);
  t.is(last.lastAnalysis!.successRate, 100);
  t.deepEqual(load.failures(), []);
});

envoyTest.serial('a control-plane restart mid-canary (file store) resumes at its step', async (t) => {
  if (!requireEnvoy(t)) return;
  const store = path.join(tempDir(t), 'registry.json');
  const { cp, envoy, dir, extraArgs } = await mesh(t, {
    canary: canaryYaml({ interval: '3s', analysis: '{successRate: {min: 99}, minRequests: 5, failureLimit: 1}' }),
    store: `file:${store}`,
  });
  const load = steadyLoad(envoy.outboundPort, 'reviews', 10);
  t.teardown(() => load.stop());
  await follow(cp, (c) => c.step >= 2, 30_000);
  await new Promise((r) => setTimeout(r, 300)); // the step's state reaches the file
  const before = await canaryOf(cp);
  t.is(before.phase, 'Progressing');
  await cp.process.stop();
  const again = await startControlPlaneProcess(t, { configDir: dir, extraArgs, xdsPort: cp.xdsPort, adminPort: cp.adminPort });
  const resumed = await canaryOf(again);
  t.is(resumed.phase, 'Progressing');
  // The step it had reached (or the next one, had that step passed in the moment before the stop).
  t.true(resumed.step === before.step || resumed.step === before.step + 1, `resumed at step ${resumed.step}, had reached ${before.step}`);
  t.true(resumed.step >= 2, 'not started over');
  t.is(resumed.weight, resumed.steps[resumed.step - 1]);
  // Envoy reconnects and keeps the split; the canary goes on to the end.
  const { last, weights } = await follow(again, (c) => c.phase !== 'Progressing', 60_000);
  t.is(last.phase, 'Promoted', last.message);
  t.false(weights.includes(5), `never went back to the first step: ${weights}`);
  const res = await request(`${again.adminUrl}/api/v1/canaries/default/reviews`);
  t.is(res.statusCode, 200);
  t.is(((await res.body.json()) as CanaryView).phase, 'Promoted');
});
