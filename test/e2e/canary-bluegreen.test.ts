// A/B by header and BlueGreen (mirror) against real parts: a real Envoy client sidecar,
// the demo HTTP service as stable (reviews-v1) and canary (reviews-v2), the control
// plane as a process judging the canary from the metrics its sidecar streams.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';
import { request } from 'undici';
import { startHttpService, type DemoBehaviour } from '../../examples/demo/http-service.ts';
import type { CanaryView } from '../../control-plane/delivery/canary.ts';
import { envoyTest, requireEnvoy, reviewsCanary, serviceWithInstance, startControlPlaneProcess, startEnvoy, tally, tempDir, tesseraBin, type ControlPlaneProcess } from '../support/mesh.ts';
import { freePort, waitFor } from '../support/processes.ts';
import { steadyLoad } from '../support/sidecar.ts';

const run = promisify(execFile);
const tessera = async (cp: ControlPlaneProcess, ...args: string[]) => (await run(process.execPath, [tesseraBin, ...args, '--admin', cp.adminUrl])).stdout;

const REVIEWS = `apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  ports: [{name: http, port: 9080, appProtocol: http}]
`;

function canaryYaml(mode: string, o: { interval: string; iterations: number; analysis: string }) {
  return reviewsCanary(`${mode}
  iterations: ${o.iterations}
  interval: ${o.interval}
  analysis: ${o.analysis}
`);
}

/** The Host header of every request a demo server received, in order. */
function watchHosts(server: http.Server): string[] {
  const hosts: string[] = [];
  server.on('request', (req: http.IncomingMessage) => hosts.push(String(req.headers.host)));
  return hosts;
}

async function mesh(t: ExecutionContext, opts: { canary: string; v2?: DemoBehaviour; extraArgs?: string[] }) {
  const [v1Port, v2Port] = [await freePort(), await freePort()];
  const v1 = await startHttpService('reviews-v1', v1Port);
  const v2 = await startHttpService('reviews-v2', v2Port, '127.0.0.1', opts.v2);
  t.teardown(() => {
    v1.close();
    v2.close();
  });
  const seen = { v1: watchHosts(v1), v2: watchHosts(v2) };
  const dir = tempDir(t);
  const files = [REVIEWS, serviceWithInstance('reviews-v1', { port: 9080, targetPort: v1Port }), serviceWithInstance('reviews-v2', { port: 9080, targetPort: v2Port })];
  fs.writeFileSync(path.join(dir, 'services.yaml'), files.join('---\n'));
  fs.writeFileSync(path.join(dir, 'canary.yaml'), opts.canary);
  const cp = await startControlPlaneProcess(t, { configDir: dir, extraArgs: opts.extraArgs });
  const envoy = await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'sotw', service: 'productpage', statsFlushIntervalMs: 1000 });
  await waitFor('reviews to be routed', async () => (await tally(envoy.outboundPort, 'reviews', 4))['reviews-v1'] === 4, 20_000);
  return { cp, envoy, seen, dir };
}

const canaryOf = async (cp: Pick<ControlPlaneProcess, 'api'>) => (await cp.api<{ canaries: CanaryView[] }>('/api/v1/canaries')).canaries[0];

/** Polls the Canary, recording each weight and iteration it takes, until `done` holds. */
async function follow(cp: Pick<ControlPlaneProcess, 'api'>, done: (c: CanaryView) => boolean, timeoutMs: number) {
  const weights: number[] = [];
  const iterations: number[] = [];
  const last = await waitFor(
    'the canary to finish',
    async () => {
      const c = await canaryOf(cp);
      if (weights[weights.length - 1] !== c.weight) weights.push(c.weight);
      if (iterations[iterations.length - 1] !== c.iteration) iterations.push(c.iteration ?? -1);
      return done(c) ? c : undefined;
    },
    timeoutMs,
    100,
  );
  return { last, weights, iterations };
}

/** Like steadyLoad, with headers: one request every `everyMs`, outcomes recorded. */
function headerLoad(port: number, headers: Record<string, string>, everyMs = 50) {
  const outcomes: { status: number | string; backend?: string }[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const res = await request(`http://127.0.0.1:${port}/`, { headers: { host: 'reviews', ...headers }, headersTimeout: 10_000, bodyTimeout: 10_000 });
        await res.body.dump();
        outcomes.push({ status: res.statusCode, backend: res.headers['x-backend'] as string | undefined });
      } catch (err) {
        outcomes.push({ status: (err as Error).message });
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    outcomes,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

const ANALYSIS = '{successRate: {min: 99}, latencyP99: {max: 1s}, minRequests: 5, failureLimit: 2}';

envoyTest.serial('A/B: requests with the header reach only v2, the others only v1; after 3 passing intervals all traffic reaches v2', async (t) => {
  if (!requireEnvoy(t)) return;
  const { cp, envoy, seen } = await mesh(t, {
    canary: canaryYaml('  strategy: Canary\n  match: [{headers: [{name: x-canary, value: "yes"}]}]', { interval: '3s', iterations: 3, analysis: ANALYSIS }),
  });
  const testers = headerLoad(envoy.outboundPort, { 'x-canary': 'yes' });
  const others = steadyLoad(envoy.outboundPort, 'reviews', 20);
  t.teardown(() => Promise.all([testers.stop(), others.stop()]));
  // While judged: the header decides, for every request.
  t.deepEqual(await tally(envoy.outboundPort, 'reviews', 20, { headers: { 'x-canary': 'yes' } }), { 'reviews-v2': 20 });
  t.deepEqual(await tally(envoy.outboundPort, 'reviews', 20, { headers: { 'x-canary': 'no' } }), { 'reviews-v1': 20 });
  t.deepEqual(await tally(envoy.outboundPort, 'reviews', 20), { 'reviews-v1': 20 });
  const judged = await canaryOf(cp);
  t.like(judged, { mode: 'A/B', phase: 'Progressing', weight: 0, iterations: 3, testing: true });
  // The CLI shows the mode, the iteration k/N and, after an analysis, its numbers.
  await waitFor('a first analysis', async () => (await canaryOf(cp)).lastAnalysis !== undefined, 20_000);
  t.regex(await tessera(cp, 'get', 'canaries'), /NAME\s+TARGET\s+MODE\s+PHASE\s+STEP\s+WEIGHT\s+FAILURES\s+LAST ANALYSIS\n.*default\/reviews\s+reviews\s+A\/B\s+Progressing\s+[12]\/3\s+0% \+ match\s+0\/2\s+passed \d+ req, 100% ok/);
  const status = await tessera(cp, 'canary', 'status', 'reviews');
  t.regex(status, /mode A\/B, phase Progressing, iteration [12]\/3, 0% \+ match to reviews-v2, failures 0\/2, interval 3s/);
  t.regex(status, /test traffic: requests with x-canary=yes to reviews-v2/);
  t.regex(status, /last analysis .* at iteration [12]\/3: passed\n {2}reviews-v2: \d+ matching requests, 0 5xx, success rate 100%/);

  const { last, weights, iterations } = await follow(cp, (c) => c.phase !== 'Progressing', 60_000);
  t.is(last.phase, 'Promoted', last.message);
  t.deepEqual(weights, [0, 100], 'no weight in between');
  t.deepEqual(iterations.filter((i) => i > 0), [1, 2, 3], 'promoted only after three passing intervals, one at a time');
  t.like(last.lastAnalysis, { result: 'passed', test: 'match', step: 3 });
  t.true((last.lastAnalysis?.requests ?? 0) >= 5);
  // Promoted: everything reaches v2, with or without the header.
  await waitFor('every request to go to reviews-v2', async () => (await tally(envoy.outboundPort, 'reviews', 20))['reviews-v2'] === 20, 10_000);
  t.deepEqual(await tally(envoy.outboundPort, 'reviews', 20, { headers: { 'x-canary': 'yes' } }), { 'reviews-v2': 20 });
  await Promise.all([testers.stop(), others.stop()]);
  t.deepEqual(others.failures(), []);
  t.true(testers.outcomes.every((o) => o.status === 200 && o.backend === 'reviews-v2'), 'the testers only ever reached v2');
  t.true(seen.v2.length > 0);
  const { changes } = await cp.api<{ changes: { kind: string; note?: Record<string, unknown> }[] }>('/api/v1/changes');
  t.like(changes.find((c) => c.kind === 'canary')?.note, { canary: 'default/reviews', mode: 'A/B', phase: 'Promoted', iteration: 3, weight: 100 });
});

envoyTest.serial('BlueGreen with mirror: callers get only v1 while v2 sees the mirrored requests and the analysis counts them; then 100% to v2 at once', async (t) => {
  if (!requireEnvoy(t)) return;
  const { cp, envoy, seen } = await mesh(t, {
    canary: canaryYaml('  strategy: BlueGreen\n  mirror: true', { interval: '3s', iterations: 2, analysis: ANALYSIS }),
  });
  const load = steadyLoad(envoy.outboundPort, 'reviews', 20);
  t.teardown(() => load.stop());
  t.deepEqual(await tally(envoy.outboundPort, 'reviews', 20), { 'reviews-v1': 20 }, 'callers get v1 answers only');
  await waitFor('v2 to see mirrored requests', async () => seen.v2.length >= 10, 10_000);
  // Envoy marks the copies by appending -shadow to the host.
  t.true(seen.v2.every((h) => h === 'reviews-shadow'), JSON.stringify([...new Set(seen.v2)]));
  const judged = await waitFor('a passing analysis of the mirrored requests', async () => {
    const c = await canaryOf(cp);
    return c.lastAnalysis?.result === 'passed' || c.phase !== 'Progressing' ? c : undefined;
  }, 30_000);
  t.like(judged.lastAnalysis, { result: 'passed', test: 'mirror', successRate: 100 });
  t.true((judged.lastAnalysis?.requests ?? 0) >= 5, `the sidecar's stats count the mirrored requests: ${judged.lastAnalysis?.requests}`);

  const { last, weights } = await follow(cp, (c) => c.phase !== 'Progressing', 60_000);
  t.is(last.phase, 'Promoted', last.message);
  t.deepEqual(weights, [0, 100], 'switched at once');
  const v2Before = seen.v2.length;
  await waitFor('every request to go to reviews-v2', async () => (await tally(envoy.outboundPort, 'reviews', 20))['reviews-v2'] === 20, 10_000);
  await load.stop();
  t.deepEqual(load.failures(), []);
  // Until the switch, every answer came from v1; after it, v2 answers directly (its own host, no copies).
  const byStart = [...load.outcomes].sort((a, b) => a.at - b.at);
  const switchedAt = byStart.find((o) => o.backend === 'reviews-v2')!.at;
  t.true(byStart[0].backend === 'reviews-v1', 'v1 answered before the switch');
  const lateV1 = byStart.filter((o) => o.backend === 'reviews-v1' && o.at > switchedAt + 1000);
  t.deepEqual(lateV1, [], 'after the switch (each Envoy worker takes the new routes within moments) only v2 answers');
  t.true(seen.v2.slice(v2Before).some((h) => h === 'reviews'), 'v2 now gets the real requests');
  const { changes } = await cp.api<{ changes: { kind: string; note?: Record<string, unknown> }[] }>('/api/v1/changes');
  t.deepEqual(changes.filter((c) => c.kind === 'canary').map((c) => c.note?.weight), [100]);
});

envoyTest.serial('BlueGreen whose green answers 5xx on mirrored traffic is rolled back; callers never saw an error and the mirror stops', async (t) => {
  if (!requireEnvoy(t)) return;
  const { cp, envoy, seen } = await mesh(t, {
    canary: canaryYaml('  strategy: BlueGreen\n  mirror: true', { interval: '2s', iterations: 3, analysis: '{successRate: {min: 99}, minRequests: 5, failureLimit: 1}' }),
    v2: { errorPercent: 100 },
  });
  const load = steadyLoad(envoy.outboundPort, 'reviews', 20);
  t.teardown(() => load.stop());
  const { last, weights } = await follow(cp, (c) => c.phase !== 'Progressing', 30_000);
  t.is(last.phase, 'RolledBack', last.message);
  t.deepEqual(weights, [0]);
  t.regex(last.message, /success rate 0% < 99%.*a mirror of live traffic no longer goes to reviews-v2/);
  t.like(last.lastAnalysis, { result: 'failed', test: 'mirror', successRate: 0 });
  t.is(last.lastAnalysis!.stable.successRate, 100);
  t.true(seen.v2.length >= 5, 'v2 got the mirrored requests');
  // The mirror is removed: once Envoy has the new routes, v2 gets nothing more.
  await waitFor('the mirror to be removed', async () => {
    const before = seen.v2.length;
    await tally(envoy.outboundPort, 'reviews', 10);
    await new Promise((r) => setTimeout(r, 200));
    return seen.v2.length === before;
  }, 10_000);
  await load.stop();
  t.true(load.outcomes.length > 50);
  t.deepEqual(load.failures(), [], 'no caller saw an error');
  t.true(load.outcomes.every((o) => o.backend === 'reviews-v1'));
  const res = await request(`${cp.adminUrl}/api/v1/canaries/default/reviews`);
  t.like(await res.body.json(), { mode: 'BlueGreen', phase: 'RolledBack', testing: false, mirror: true });
});

envoyTest.serial('BlueGreen with match survives a control-plane restart (file store): the iteration resumes, the header still selects green, then it is promoted', async (t) => {
  if (!requireEnvoy(t)) return;
  const extraArgs = ['--store', `file:${path.join(tempDir(t), 'registry.json')}`];
  const { cp, envoy, dir } = await mesh(t, {
    canary: canaryYaml('  strategy: BlueGreen\n  match: [{headers: [{name: x-env, value: green}]}]', { interval: '3s', iterations: 4, analysis: ANALYSIS }),
    extraArgs,
  });
  const testers = headerLoad(envoy.outboundPort, { 'x-env': 'green' });
  t.teardown(() => testers.stop());
  const { last: before } = await follow(cp, (c) => (c.iteration ?? 0) >= 2, 30_000);
  t.like(before, { mode: 'BlueGreen', phase: 'Progressing', weight: 0 });
  await new Promise((r) => setTimeout(r, 300)); // the iteration's state reaches the file
  await cp.process.stop();
  const again = await startControlPlaneProcess(t, { configDir: dir, extraArgs, xdsPort: cp.xdsPort, adminPort: cp.adminPort });
  const resumed = await canaryOf(again);
  t.like(resumed, { mode: 'BlueGreen', phase: 'Progressing', testing: true });
  t.true(resumed.iteration! >= before.iteration!, `resumed at iteration ${resumed.iteration}, had reached ${before.iteration}`);
  // Envoy reconnects to the new process and is served the same test routing.
  await waitFor('the routes again', async () => (await tally(envoy.outboundPort, 'reviews', 10, { headers: { 'x-env': 'green' } }))['reviews-v2'] === 10, 15_000);
  t.deepEqual(await tally(envoy.outboundPort, 'reviews', 20), { 'reviews-v1': 20 });
  const { last, iterations } = await follow(again, (c) => c.phase !== 'Progressing', 60_000);
  t.is(last.phase, 'Promoted', last.message);
  t.false(iterations.includes(0) || iterations.includes(1), `never started over: ${iterations}`);
  await waitFor('every request to go to reviews-v2', async () => (await tally(envoy.outboundPort, 'reviews', 20))['reviews-v2'] === 20, 10_000);
  await testers.stop();
  t.true(testers.outcomes.every((o) => o.backend === 'reviews-v2' || typeof o.status === 'string'), 'the testers only reached green (or the sidecar had no control plane for a moment)');
});
