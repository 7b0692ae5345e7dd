// Telemetry through real Envoys: one JSON access-log line per request (with Envoy's
// response flags), spans of every hop reaching a real OTLP/gRPC receiver under one
// trace id, sampling, and hot reload (a removed Telemetry stops logging, no request lost).
import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { request } from 'undici';
import { startHttpService } from '../../examples/demo/http-service.ts';
import {
  envoyTest,
  requireEnvoy,
  serviceWithInstance,
  startBackend,
  startControlPlaneProcess,
  startEnvoy,
  tally,
  tempDir,
  type ControlPlaneProcess,
  type EnvoyProcess,
} from '../support/mesh.ts';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver.ts';
import { freePort, waitFor } from '../support/processes.ts';
import { startSidecar, steadyLoad } from '../support/sidecar.ts';

function telemetryDoc(spec: string): string {
  return `apiVersion: tessera.dev/v1alpha1
kind: Telemetry
metadata: {name: mesh}
spec:
${spec.replace(/^/gm, '  ')}
`;
}

/** A Service with no instance at all: Envoy answers 503 with response flag UH. */
const deadService = `apiVersion: v1
kind: Service
metadata: {name: dead}
spec:
  ports: [{name: http, port: 80, appProtocol: http}]
`;

type LogLine = Record<string, any>;

function readLog(file: string): LogLine[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l));
}

/** Envoy's listeners as it runs them (config_dump), as text. */
async function activeListeners(envoy: EnvoyProcess): Promise<string> {
  return (await request(`${envoy.handle.adminUrl}/config_dump?resource=dynamic_listeners`)).body.text();
}

async function get(port: number, host: string, urlPath = '/', headers: Record<string, string> = {}) {
  const res = await request(`http://127.0.0.1:${port}${urlPath}`, { headers: { host, ...headers } });
  return { status: res.statusCode, body: await res.body.text(), headers: res.headers };
}

async function accessLogMesh(t: ExecutionContext) {
  const dir = tempDir(t, 'tessera-config-');
  const logDir = tempDir(t, 'tessera-logs-');
  const logFile = path.join(logDir, 'access.log');
  const web = await startBackend(t, 'web');
  fs.writeFileSync(path.join(dir, 'services.yaml'), `${serviceWithInstance('web', { port: 80, targetPort: web.port })}---\n${deadService}`);
  fs.writeFileSync(path.join(dir, 'telemetry.yaml'), telemetryDoc(`accessLog:\n  path: ${logFile}\n  fields: {user: "%REQ(X-USER)%"}`));
  const cp = await startControlPlaneProcess(t, { configDir: dir });
  const envoy = await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'delta', service: 'client' });
  await waitFor('web to serve through the sidecar', async () => (await tally(envoy.outboundPort, 'web', 1, { path: '/warmup' })).web === 1, 20_000);
  return { dir, logFile, cp, envoy, web };
}

envoyTest.serial('access log: one JSON line per request through Envoy, with path, status, response flags and the extra field', async (t) => {
  if (!requireEnvoy(t)) return;
  const { logFile, envoy, cp } = await accessLogMesh(t);
  const metrics = await (await request(`${cp.adminUrl}/metrics`)).body.text();
  t.regex(metrics, /^tessera_telemetry_services\{feature="access_log"\} 2$/m, 'web and dead log');
  t.regex(metrics, /^tessera_telemetry_services\{feature="tracing"\} 0$/m);
  t.regex(metrics, /^tessera_telemetry_mesh_wide\{feature="access_log"\} 1$/m);
  const N = 12;
  for (let i = 0; i < N; i++) t.is((await get(envoy.outboundPort, 'web', `/hello/${i}`, { 'x-user': `u${i}` })).status, 200);
  for (let i = 0; i < 3; i++) t.is((await get(envoy.outboundPort, 'dead', '/nobody-home')).status, 503);

  // Envoy flushes its log file about once a second.
  const lines = await waitFor('the access log to hold every request', () => {
    const all = readLog(logFile);
    return all.filter((l) => l.path !== '/warmup').length >= N + 3 && all;
  }, 15_000);
  const hello = lines.filter((l) => String(l.path).startsWith('/hello/'));
  t.is(hello.length, N, 'exactly one line per request');
  t.deepEqual(hello.map((l) => l.path).sort(), Array.from({ length: N }, (_, i) => `/hello/${i}`).sort());
  for (const l of hello) {
    t.is(l.response_code, 200);
    t.is(l.method, 'GET');
    t.is(l.authority, 'web');
    t.is(l.response_flags, '-');
    t.is(l.direction, 'outbound');
    t.is(l.upstream_cluster, 'outbound|80||web.default');
    t.regex(String(l.upstream_host), /^127\.0\.0\.1:\d+$/);
    t.regex(String(l.request_id), /^[0-9a-f-]{36}$/);
    t.regex(String(l.start_time), /^\d{4}-\d\d-\d\dT/);
    t.is(typeof l.duration_ms, 'number');
    t.true(l.bytes_sent > 0);
  }
  t.deepEqual(hello.map((l) => l.user).sort(), Array.from({ length: N }, (_, i) => `u${i}`).sort());
  const dead = lines.filter((l) => l.path === '/nobody-home');
  t.is(dead.length, 3);
  for (const l of dead) {
    t.is(l.response_code, 503);
    t.is(l.response_flags, 'UH', 'no healthy upstream');
  }
});

envoyTest.serial('hot reload: removing the Telemetry file turns logging off, and no request fails meanwhile', async (t) => {
  if (!requireEnvoy(t)) return;
  const { dir, logFile, envoy, cp } = await accessLogMesh(t);
  const load = steadyLoad(envoy.outboundPort, 'web', 20);
  await new Promise((r) => setTimeout(r, 1000));
  fs.rmSync(path.join(dir, 'telemetry.yaml'));
  await waitFor('Envoy to run listeners without an access log', async () => !(await activeListeners(envoy)).includes('access_log'), 20_000);
  // Let requests already in flight on the old listener finish and the log flush.
  await new Promise((r) => setTimeout(r, 1500));
  await load.stop();
  t.deepEqual(load.failures(), [], 'no request failed across the reload');
  t.true(load.outcomes.length > 40, `${load.outcomes.length} requests sent`);

  const before = readLog(logFile).length;
  t.true(before > 0, 'requests were logged while the Telemetry existed');
  for (let i = 0; i < 5; i++) t.is((await get(envoy.outboundPort, 'web', '/after-removal')).status, 200);
  // Longer than Envoy's 1 s flush interval: a line written now would be on disk.
  await new Promise((r) => setTimeout(r, 2500));
  const after = readLog(logFile);
  t.is(after.length, before, 'nothing more is logged');
  t.false(after.some((l) => l.path === '/after-removal'));
  t.regex(await (await request(`${cp.adminUrl}/metrics`)).body.text(), /^tessera_telemetry_mesh_wide\{feature="access_log"\} 0$/m);
});

envoyTest.serial('access log to /dev/stdout: the sidecar agent prints plain JSON lines on its stdout', async (t) => {
  if (!requireEnvoy(t)) return;
  const dir = tempDir(t, 'tessera-config-');
  const web = await startBackend(t, 'web');
  fs.writeFileSync(path.join(dir, 'services.yaml'), serviceWithInstance('web', { port: 80, targetPort: web.port }));
  fs.writeFileSync(path.join(dir, 'telemetry.yaml'), telemetryDoc('accessLog: {path: /dev/stdout}'));
  const cp = await startControlPlaneProcess(t, { configDir: dir });
  const client = await startSidecar(t, { service: 'client', appPort: await freePort(), inbound: false, controlPlane: cp, extraArgs: ['--no-register', '--health-check', 'none'] });
  await client.waitReady();
  await waitFor('web to serve through the agent', async () => (await tally(client.outboundPort, 'web', 1, { path: '/via-agent' })).web === 1, 20_000);
  const stdoutLines = () =>
    client.process
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as LogLine);
  const line = await waitFor('the access log line on the agent stdout', () => stdoutLines().find((l) => l.path === '/via-agent'), 15_000);
  t.is(line.response_code, 200);
  t.is(line.authority, 'web');
});

// ---- tracing ----

interface TraceMesh {
  dir: string;
  cp: ControlPlaneProcess;
  otlp: OtlpReceiver;
  client: EnvoyProcess;
  frontend: EnvoyProcess;
  reviews: EnvoyProcess;
}

/** client sidecar -> frontend sidecar -> frontend app (the demo service, which calls
 *  reviews through its own sidecar, passing trace headers on) -> reviews sidecar ->
 *  reviews app. */
async function traceMesh(t: ExecutionContext, samplingPercent: number): Promise<TraceMesh> {
  const otlp = await startOtlpReceiver(t);
  const dir = tempDir(t, 'tessera-config-');
  const [frontendIn, frontendApp, frontendOut, reviewsIn, reviewsApp] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  fs.writeFileSync(
    path.join(dir, 'services.yaml'),
    `${serviceWithInstance('frontend', { port: 80, targetPort: frontendIn })}---\n${serviceWithInstance('reviews', { port: 80, targetPort: reviewsIn })}`,
  );
  fs.writeFileSync(path.join(dir, 'telemetry.yaml'), telemetryDoc(`tracing:\n  otlp: {address: "${otlp.address}"}\n  samplingPercent: ${samplingPercent}`));
  const servers: http.Server[] = [
    await startHttpService('frontend', frontendApp, '127.0.0.1', { calls: { outbound: { address: '127.0.0.1', port: frontendOut }, services: ['reviews'] } }),
    await startHttpService('reviews', reviewsApp),
  ];
  t.teardown(() => {
    for (const s of servers) s.close();
  });
  const cp = await startControlPlaneProcess(t, { configDir: dir });
  const [client, frontend, reviews] = await Promise.all([
    startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'delta', service: 'client' }),
    startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'delta', service: 'frontend', outboundPort: frontendOut, inbound: { port: frontendIn, appPort: frontendApp } }),
    startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'sotw', service: 'reviews', inbound: { port: reviewsIn, appPort: reviewsApp } }),
  ]);
  await waitFor('frontend -> reviews to answer through every sidecar', async () => (await get(client.outboundPort, 'frontend', '/warmup')).status === 200, 30_000);
  return { dir, cp, otlp, client, frontend, reviews };
}

envoyTest.serial('tracing: every hop of one request reports a span to the OTLP receiver, under one trace id, with its service name', async (t) => {
  if (!requireEnvoy(t)) return;
  const mesh = await traceMesh(t, 100);
  const res = await get(mesh.client.outboundPort, 'frontend', '/traced');
  t.is(res.status, 200);
  const body = JSON.parse(res.body);
  t.is(body.upstream[0].service, 'reviews');
  t.is(body.upstream[0].status, 200);

  // Envoy exports in batches, at least every 5 s.
  const spans = await waitFor('4 spans of /traced (client out, frontend in, frontend out, reviews in)', () => {
    const traced = mesh.otlp.spans.filter((s) => JSON.stringify(s.attributes).includes('/traced'));
    return traced.length >= 4 && traced;
  }, 30_000);
  t.log(spans.map((s) => `${s.serviceName} ${s.kind} ${s.traceId}/${s.spanId} <- ${s.parentSpanId}`).join('\n'));
  t.is(spans.length, 4, 'one span per sidecar HCM on the way');
  t.is(new Set(spans.map((s) => s.traceId)).size, 1, 'one trace id across both hops');
  t.regex(spans[0].traceId, /^[0-9a-f]{32}$/);
  t.deepEqual(spans.map((s) => `${s.serviceName}/${s.kind}`).sort(), [
    'client/SPAN_KIND_CLIENT',
    'frontend/SPAN_KIND_CLIENT',
    'frontend/SPAN_KIND_SERVER',
    'reviews/SPAN_KIND_SERVER',
  ]);
  // Each span but the first has its parent among them: the chain is unbroken.
  const ids = new Set(spans.map((s) => s.spanId));
  t.is(spans.filter((s) => !ids.has(s.parentSpanId)).length, 1, 'exactly one root span');
  t.is(spans.find((s) => !ids.has(s.parentSpanId))?.serviceName, 'client');
});

envoyTest.serial('tracing: samplingPercent 0 sends no span, while a request its client asks to trace (x-client-trace-id) is traced on every hop', async (t) => {
  if (!requireEnvoy(t)) return;
  const mesh = await traceMesh(t, 0);
  for (let i = 0; i < 5; i++) t.is((await get(mesh.client.outboundPort, 'frontend', `/unsampled/${i}`)).status, 200);
  // Longer than Envoy's 5 s export interval.
  await new Promise((r) => setTimeout(r, 7000));
  t.deepEqual(mesh.otlp.spans.filter((s) => JSON.stringify(s.attributes).includes('/unsampled')), [], 'no span at 0%');

  // The tracer and the receiver work all the same: Envoy traces a request whose client
  // asks for it, and the decision travels in x-request-id, which the demo passes on.
  const res = await get(mesh.client.outboundPort, 'frontend', '/forced', { 'x-client-trace-id': 'test-forced-1' });
  t.is(res.status, 200);
  const spans = await waitFor('the forced spans', () => {
    const mine = mesh.otlp.spans.filter((s) => JSON.stringify(s.attributes).includes('/forced'));
    return mine.length >= 4 && mine;
  }, 30_000).catch(async (err) => {
    for (const e of [mesh.client, mesh.frontend]) t.log((await (await request(`${e.handle.adminUrl}/stats?filter=tracing`)).body.text()));
    t.log(mesh.otlp.spans.map((s) => `${s.serviceName} ${s.kind} ${s.traceId} ${JSON.stringify(s.attributes)}`).join('\n'));
    throw err;
  });
  t.is(spans.length, 4);
  t.is(new Set(spans.map((s) => s.traceId)).size, 1);
});
