// "Was my change applied?" answered per change, with real Envoys and a real
// grpc-js-xds client connected: which proxies a change reached, and whether each
// ACKed it or NACKed it with its own error; `tessera status --wait` for pipelines.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { request } from 'undici';
import { startEchoServer } from '../../examples/demo/echo-grpc.ts';
import { grpcBootstrap } from '../../sidecar/bootstrap/bootstrap.ts';
import { repoRoot, requireEnvoy, serviceWithInstance, startBackend, startControlPlaneProcess, startEnvoy, tally, tempDir, tesseraBin, type ControlPlaneProcess } from '../support/mesh.ts';
import { freePort, waitFor } from '../support/processes.ts';

const run = promisify(execFile);

interface ChangeView {
  version: string;
  kind: string;
  services: string[];
  note?: { configVersion?: string };
  affected: number;
  acked: number;
  nacked: number;
  pending: number;
  proxies: { nodeId: string; status: string; types: Record<string, { status: string; error?: string; latencyMs?: number }> }[];
}

function webRoute(rules: string) {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{kind: Service, name: web}]
  rules:
${rules}`;
}

/** The newest change once it is one of `kind` newer than `after`. */
async function nextChange(cp: ControlPlaneProcess, after: number, kind: string): Promise<ChangeView> {
  return waitFor(`a ${kind} change after ${after}`, async () => {
    const { changes } = await cp.api<{ changes: ChangeView[] }>('/api/v1/changes');
    const c = changes.find((x) => Number(x.version) > after && x.kind === kind);
    return c && cp.api<ChangeView>(`/api/v1/changes/${c.version}`);
  });
}

async function latestVersion(cp: ControlPlaneProcess): Promise<number> {
  const { changes } = await cp.api<{ changes: ChangeView[] }>('/api/v1/changes');
  return Number(changes[0]?.version ?? 0);
}

async function status(cp: ControlPlaneProcess, version: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [tesseraBin, 'status', version, '--wait', '--timeout', '10s', '--admin', cp.adminUrl]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test.serial('each change names the proxies it reached and their ACK or NACK; status --wait fails naming the proxy that NACKed', async (t) => {
  if (!requireEnvoy(t)) return;
  const v1 = await startBackend(t, 'web-v1');
  const v2 = await startBackend(t, 'web-v2');
  const echo = await startEchoServer('echo', await freePort());
  t.teardown(() => echo.close());
  const dir = tempDir(t);
  fs.writeFileSync(
    path.join(dir, 'services.yaml'),
    [
      serviceWithInstance('web', { port: 80, targetPort: v1.port }),
      serviceWithInstance('web-v1', { port: 80, targetPort: v1.port }),
      serviceWithInstance('web-v2', { port: 80, targetPort: v2.port }),
      serviceWithInstance('echo', { port: echo.port, targetPort: echo.port, appProtocol: 'grpc' }),
      `apiVersion: v1\nkind: Service\nmetadata: {name: spare}\nspec:\n  ports: [{name: http, port: 80, appProtocol: http}]\n`,
    ].join('---\n'),
  );
  fs.writeFileSync(path.join(dir, 'routes.yaml'), webRoute('  - backendRefs: [{name: web-v1, port: 80}]\n'));
  const cp = await startControlPlaneProcess(t, { configDir: dir });

  // Two Envoys that differ in one runtime limit (as two Envoy versions might), and a
  // proxyless client that holds only the echo service.
  const lenient = await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'delta', nodeId: 'envoy-lenient', runtime: { 're2.max_program_size.error_level': 100000 } });
  const strict = await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'sotw', nodeId: 'envoy-strict' });
  const env = { ...process.env, HOLD: '1', GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(grpcBootstrap({ nodeId: 'grpc-echo-client', xds: [{ host: '127.0.0.1', port: cp.xdsPort }] })) };
  const grpcClient = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'test/support/grpc-once.ts'), 'echo', '1'], { env, cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => grpcClient.kill('SIGKILL'));
  let grpcOut = '';
  grpcClient.stdout!.on('data', (c) => (grpcOut += c));
  await waitFor('the gRPC client to make its call', () => grpcOut.includes('"echo":1'), 20_000);
  await waitFor('all three proxies connected', async () => (await cp.api<{ proxies: unknown[] }>('/api/v1/proxies')).proxies.length === 3);

  // 1. A route edit: both Envoys hold the route table; the gRPC client does not.
  let after = await latestVersion(cp);
  fs.writeFileSync(path.join(dir, 'routes.yaml'), webRoute('  - backendRefs: [{name: web-v2, port: 80}]\n'));
  const edit = await nextChange(cp, after, 'config');
  await waitFor('every affected proxy to ACK the route edit', async () => (await cp.api<ChangeView>(`/api/v1/changes/${edit.version}`)).pending === 0);
  const editDone = await cp.api<ChangeView>(`/api/v1/changes/${edit.version}`);
  t.deepEqual(editDone.proxies.map((p) => `${p.nodeId}:${p.status}`).sort(), ['envoy-lenient:acked', 'envoy-strict:acked']);
  for (const p of editDone.proxies) for (const [type, d] of Object.entries(p.types)) t.true(d.latencyMs! < 1000, `${p.nodeId} ${type} ACKed after ${d.latencyMs} ms`);
  t.deepEqual(await tally(strict.outboundPort, 'web', 10), { 'web-v2': 10 });
  t.is((await status(cp, edit.version)).code, 0);

  // 2. A change only one Envoy rejects: a regex beyond its default RE2 program size.
  after = await latestVersion(cp);
  fs.writeFileSync(
    path.join(dir, 'routes.yaml'),
    webRoute('  - matches: [{path: {type: RegularExpression, value: "^/items/[a-z0-9]{1,40}/[a-z0-9]{1,40}$"}}]\n    backendRefs: [{name: web-v1, port: 80}]\n  - backendRefs: [{name: web-v2, port: 80}]\n'),
  );
  const rejected = await nextChange(cp, after, 'config');
  const result = await status(cp, rejected.version);
  t.is(result.code, 1, result.stdout + result.stderr);
  t.regex(result.stderr, /envoy-strict \(nacked\)/);
  t.notRegex(result.stderr, /envoy-lenient/);
  t.regex(result.stdout, /NACKED\s+RDS\s+RDS: .*program size/i, 'the table shows Envoy\'s own error');
  const view = await cp.api<ChangeView>(`/api/v1/changes/${rejected.version}`);
  t.is(view.proxies.find((p) => p.nodeId === 'envoy-lenient')?.status, 'acked');
  t.is(view.nacked, 1);

  // 3. Registry changes count only the proxies that hold the service.
  after = await latestVersion(cp);
  const spare = await startBackend(t, 'spare');
  const put = await request(`${cp.adminUrl}/api/v1/services/spare/instances/spare-1`, { method: 'PUT', body: JSON.stringify({ address: '127.0.0.1', port: spare.port }) });
  t.is(put.statusCode, 201, await put.body.text());
  const reg = await nextChange(cp, after, 'endpoints');
  t.deepEqual(reg.services, ['spare.default']);
  await waitFor('the Envoys to ACK the new endpoint', async () => (await cp.api<ChangeView>(`/api/v1/changes/${reg.version}`)).pending === 0);
  const regDone = await cp.api<ChangeView>(`/api/v1/changes/${reg.version}`);
  t.deepEqual(regDone.proxies.map((p) => p.nodeId).sort(), ['envoy-lenient', 'envoy-strict'], 'the gRPC client holds no spare endpoints');
  t.deepEqual(Object.keys(regDone.proxies[0].types), ['EDS']);

  after = await latestVersion(cp);
  const echo2 = await startEchoServer('echo', await freePort());
  t.teardown(() => echo2.close());
  await request(`${cp.adminUrl}/api/v1/services/echo/instances/echo-2`, { method: 'PUT', body: JSON.stringify({ address: '127.0.0.1', port: echo2.port }) }).then((r) => r.body.dump());
  const echoChange = await nextChange(cp, after, 'endpoints');
  await waitFor('echo change answered', async () => (await cp.api<ChangeView>(`/api/v1/changes/${echoChange.version}`)).pending === 0);
  const echoDone = await cp.api<ChangeView>(`/api/v1/changes/${echoChange.version}`);
  t.deepEqual(echoDone.proxies.map((p) => `${p.nodeId}:${p.status}`).sort(), ['envoy-lenient:acked', 'envoy-strict:acked', 'grpc-echo-client:acked']);
  t.is(lenient.nodeId, 'envoy-lenient');

  const metrics = await (await request(`${cp.adminUrl}/metrics`)).body.text();
  t.regex(metrics, /tessera_changes_total\{kind="config"\} [1-9]/);
  t.regex(metrics, /tessera_changes_total\{kind="endpoints"\} [1-9]/);
  t.regex(metrics, /tessera_change_applied_seconds_count\{kind="endpoints"\} [1-9]/, 'changes every proxy ACKed are timed');
  t.regex(metrics, /tessera_change_proxies\{status="acked"\} 3/, 'the latest change: all three ACKed');
});
