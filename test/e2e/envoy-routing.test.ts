// Real Envoy sidecars, in both xDS variants, following HTTPRoutes from a config dir.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { request } from 'undici';
import {
  envoyTest,
  requireEnvoy,
  serviceWithInstance,
  startBackend,
  startControlPlaneProcess,
  startEnvoy,
  tally,
  tempDir,
  type Backend,
  type ControlPlaneProcess,
  type EnvoyProcess,
} from '../support/mesh.ts';
import { waitFor } from '../support/processes.ts';

function webRoute(v1: number, v2: number) {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - matches:
    - headers: [{name: x-canary, value: "true"}]
    backendRefs: [{name: web-v2, port: 80}]
  - backendRefs:
    - {name: web-v1, port: 80, weight: ${v1}}
    - {name: web-v2, port: 80, weight: ${v2}}
`;
}

const otherRoutes = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: flaky}
spec:
  parentRefs: [{kind: Service, name: flaky}]
  rules:
  - backendRefs: [{name: flaky, port: 80}]
    retry: {attempts: 3, codes: [503]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: slow}
spec:
  parentRefs: [{kind: Service, name: slow}]
  rules:
  - backendRefs: [{name: slow, port: 80}]
    timeouts: {request: 500ms}
`;

/** What an HTTP_PROXY-configured client sends: the absolute URL as the request target. */
function proxyFormGet(port: number, url: string): Promise<{ status: number; backend: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: url }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, backend: String(res.headers['x-backend']) }));
    });
    req.on('error', reject);
  });
}

interface Mesh {
  dir: string;
  cp: ControlPlaneProcess;
  envoy: EnvoyProcess;
  backends: Record<string, Backend>;
}

async function startMesh(t: ExecutionContext, mode: 'sotw' | 'delta'): Promise<Mesh> {
  const backends: Record<string, Backend> = {};
  for (const name of ['web', 'web-v1', 'web-v2', 'flaky', 'slow']) backends[name] = await startBackend(t, name);
  backends.flaky.behaviour = (_req, n) => (n % 2 === 0 ? { status: 503 } : undefined);
  backends.slow.behaviour = () => ({ delayMs: 3000 });
  const dir = tempDir(t, 'tessera-config-');
  fs.writeFileSync(
    path.join(dir, 'services.yaml'),
    Object.entries(backends).map(([name, b]) => serviceWithInstance(name, { port: 80, targetPort: b.port })).join('---\n'),
  );
  fs.writeFileSync(path.join(dir, 'web-route.yaml'), webRoute(80, 20));
  fs.writeFileSync(path.join(dir, 'other-routes.yaml'), otherRoutes);
  const cp = await startControlPlaneProcess(t, { configDir: dir });
  const envoy = await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode, service: 'client' });
  await waitFor('the web route to serve', async () => (await tally(envoy.outboundPort, 'web', 1))['web-v1'] || (await tally(envoy.outboundPort, 'web', 1))['web-v2']);
  return { dir, cp, envoy, backends };
}

/** No NACK may appear in a run that sends only valid config. */
async function assertNoNacks(t: ExecutionContext, mesh: Mesh): Promise<void> {
  const { proxies } = await mesh.cp.api<{ proxies: { nodeId: string; types: Record<string, { lastNack?: unknown }> }[] }>('/api/v1/proxies');
  const mine = proxies.find((p) => p.nodeId === mesh.envoy.nodeId);
  t.truthy(mine, 'the sidecar is listed among connected proxies');
  for (const [type, status] of Object.entries(mine!.types)) t.falsy(status.lastNack, `${type} was NACKed: ${JSON.stringify(status.lastNack)}`);
  t.is(await mesh.envoy.stat('cluster_manager.cds.update_rejected'), 0);
  t.is(await mesh.envoy.stat('listener_manager.lds.update_rejected'), 0);
}

for (const mode of ['sotw', 'delta'] as const) {
  envoyTest.serial(`[${mode}] an 80/20 HTTPRoute split lands within ±5% over 2,000 requests`, async (t) => {
    if (!requireEnvoy(t)) return;
    const mesh = await startMesh(t, mode);
    const counts = await tally(mesh.envoy.outboundPort, 'web', 2000, { concurrency: 16 });
    t.log(counts);
    t.is((counts['web-v1'] ?? 0) + (counts['web-v2'] ?? 0), 2000, `every request succeeded: ${JSON.stringify(counts)}`);
    const share = counts['web-v1'] / 2000;
    t.true(share >= 0.75 && share <= 0.85, `web-v1 got ${(share * 100).toFixed(1)}%`);

    // A header match goes to its own backend.
    const canary = await tally(mesh.envoy.outboundPort, 'web', 100, { headers: { 'x-canary': 'true' } });
    t.deepEqual(canary, { 'web-v2': 100 });

    // Proxy-form requests (HTTP_PROXY=http://127.0.0.1:15001) reach the service too.
    const proxied = await proxyFormGet(mesh.envoy.outboundPort, 'http://web/hello');
    t.is(proxied.status, 200);
    t.regex(proxied.backend, /^web-v[12]$/);
    await assertNoNacks(t, mesh);
  });

  envoyTest.serial(`[${mode}] retries (3 attempts on 503) hide a backend that fails half its requests`, async (t) => {
    if (!requireEnvoy(t)) return;
    const mesh = await startMesh(t, mode);
    const counts = await tally(mesh.envoy.outboundPort, 'flaky', 200, { concurrency: 1 });
    t.deepEqual(counts, { flaky: 200 });
    t.true(mesh.backends.flaky.hits >= 300, `the backend saw the retries (${mesh.backends.flaky.hits} hits)`);

    // A request timeout answers 504 near the timeout.
    const started = Date.now();
    const res = await request(`http://127.0.0.1:${mesh.envoy.outboundPort}/`, { headers: { host: 'slow' } });
    await res.body.dump();
    const took = Date.now() - started;
    t.is(res.statusCode, 504);
    t.true(took >= 450 && took < 2500, `answered after ${took} ms`);
    await assertNoNacks(t, mesh);
  });

  envoyTest.serial(`[${mode}] editing the route to 100/0 is followed within 1 s with no failed request, and a broken edit keeps the last good`, async (t) => {
    if (!requireEnvoy(t)) return;
    const mesh = await startMesh(t, mode);
    const pidBefore = mesh.envoy.handle.child.pid;

    // Steady load during the change; every answer is recorded with its time.
    const answers: { at: number; who: string }[] = [];
    let loading = true;
    const load = (async () => {
      while (loading) {
        const res = await request(`http://127.0.0.1:${mesh.envoy.outboundPort}/`, { headers: { host: 'web' } });
        await res.body.dump();
        answers.push({ at: Date.now(), who: res.statusCode === 200 ? String(res.headers['x-backend']) : `status ${res.statusCode}` });
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    const editedAt = Date.now();
    fs.writeFileSync(path.join(mesh.dir, 'web-route.yaml'), webRoute(100, 0));
    await new Promise((r) => setTimeout(r, 1500));
    loading = false;
    await load;

    const failed = answers.filter((a) => a.who.startsWith('status'));
    t.deepEqual(failed, [], 'no request failed during the change');
    const lastV2 = Math.max(...answers.filter((a) => a.who === 'web-v2').map((a) => a.at));
    t.true(lastV2 - editedAt < 1000, `web-v2 still answered ${lastV2 - editedAt} ms after the edit`);
    t.true(answers.filter((a) => a.at > editedAt + 1000).length > 20, 'load kept flowing');
    t.is(mesh.envoy.handle.child.pid, pidBefore);
    t.is(mesh.envoy.handle.child.exitCode, null, 'Envoy was not restarted');

    // A broken edit: reported at file:line, and Envoy keeps serving the last good config.
    const applied = await mesh.cp.api<{ version: string }>('/api/v1/config');
    fs.writeFileSync(
      path.join(mesh.dir, 'web-route.yaml'),
      webRoute(50, 50).replace('backendRefs: [{name: web-v2, port: 80}]', 'backendRefs: [{name: web-v2, port: 80}]\n    retry: {attempts: 2, codez: [503]}'),
    );
    const config = await waitFor('the broken edit to be reported', async () => {
      const c = await mesh.cp.api<{ version: string; errors: { file: string; line: number; message: string }[] }>('/api/v1/config');
      return c.errors.length > 0 && c;
    }, 5000);
    t.is(config.version, applied.version, 'the last good config stays active');
    t.is(config.errors[0].file, 'web-route.yaml');
    t.is(config.errors[0].line, 10, "the line of the misspelt field");
    t.regex(config.errors[0].message, /codez/);
    const after = await tally(mesh.envoy.outboundPort, 'web', 100);
    t.deepEqual(after, { 'web-v1': 100 }, 'still the 100/0 split');
    await assertNoNacks(t, mesh);
  });
}

for (const mode of ['sotw', 'delta'] as const) {
  envoyTest.serial(`[${mode}] moving a route off a service and deleting that service in one edit fails no request`, async (t) => {
    if (!requireEnvoy(t)) return;
    const mesh = await startMesh(t, mode);
    const answers: string[] = [];
    let loading = true;
    const load = (async () => {
      while (loading) {
        const res = await request(`http://127.0.0.1:${mesh.envoy.outboundPort}/`, { headers: { host: 'web' } });
        await res.body.dump();
        answers.push(res.statusCode === 200 ? String(res.headers['x-backend']) : `status ${res.statusCode}`);
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    // One atomic change: web-v2 disappears and the route stops naming it.
    const services = Object.entries(mesh.backends)
      .filter(([name]) => name !== 'web-v2')
      .map(([name, b]) => serviceWithInstance(name, { port: 80, targetPort: b.port }))
      .join('---\n');
    const route = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{kind: Service, name: web}]
  rules:
  - backendRefs: [{name: web-v1, port: 80}]
`;
    const tmp = path.join(mesh.dir, '.next');
    fs.mkdirSync(tmp);
    fs.writeFileSync(path.join(tmp, 'services.yaml.new'), services);
    fs.writeFileSync(path.join(tmp, 'web-route.yaml.new'), route);
    fs.renameSync(path.join(tmp, 'web-route.yaml.new'), path.join(mesh.dir, 'web-route.yaml'));
    fs.renameSync(path.join(tmp, 'services.yaml.new'), path.join(mesh.dir, 'services.yaml'));
    await new Promise((r) => setTimeout(r, 1500));
    loading = false;
    await load;
    t.deepEqual(answers.filter((a) => a.startsWith('status')), []);
    t.is(answers.at(-1), 'web-v1');
    await assertNoNacks(t, mesh);
  });
}
