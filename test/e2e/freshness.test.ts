// A proxy that (re)connects after a change made while no proxy of its group was
// connected gets the state after the change, never the snapshot from before it:
// a real Envoy restarted meanwhile, and new grpc-js-xds client processes.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { request } from 'undici';
import { startEchoServer } from '../../examples/demo/echo-grpc.ts';
import { grpcBootstrap } from '../../sidecar/bootstrap/bootstrap.ts';
import {
  envoyHosts,
  repoRoot,
  requireEnvoy,
  serviceWithInstance,
  startBackend,
  startControlPlaneProcess,
  startEnvoy,
  tally,
  tempDir,
  type ControlPlaneProcess,
} from '../support/mesh.ts';
import { freePort, waitFor } from '../support/processes.ts';

const run = promisify(execFile);

async function put(cp: ControlPlaneProcess, service: string, id: string, body: unknown) {
  const res = await request(`${cp.adminUrl}/api/v1/services/${service}/instances/${id}`, { method: 'PUT', body: JSON.stringify(body) });
  const text = await res.body.text();
  if (res.statusCode >= 300) throw new Error(`register ${service}/${id}: ${res.statusCode} ${text}`);
}

function route(service: string, backend: string) {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: ${service === 'echo' ? 'GRPCRoute' : 'HTTPRoute'}
metadata: {name: ${service}}
spec:
  parentRefs: [{kind: Service, name: ${service}}]
  rules:
  - backendRefs: [{name: ${backend}}]
`;
}

/** Waits until the control plane has applied a config whose routes mention `text`. */
async function applied(cp: ControlPlaneProcess, text: string) {
  await waitFor(`the config naming ${text} to be applied`, async () => {
    const config = await cp.api<{ errors: unknown[]; resources?: unknown; version?: string }>('/api/v1/config');
    return config.errors.length === 0 && JSON.stringify(config).includes(text);
  });
}

async function health(cp: ControlPlaneProcess, service: string, id: string): Promise<string | undefined> {
  const s = await cp.api<{ instances: { id: string; health: string }[] }>(`/api/v1/services/${service}`);
  return s.instances.find((i) => i.id === id)?.health;
}

/** An HTTP server that can be stopped, to fail its health check. */
async function stoppable(t: ExecutionContext, name: string) {
  const server = http.createServer((_req, res) => res.writeHead(200, { 'x-backend': name }).end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const stop = () => new Promise<void>((r) => {
    server.close(() => r());
    server.closeAllConnections();
  });
  t.teardown(() => (server.listening ? stop() : undefined));
  return { port: (server.address() as { port: number }).port, stop };
}

for (const mode of ['sotw', 'delta'] as const) {
  test.serial(`[${mode}] an Envoy restarted after a route edit, a failed check and a registration made while it was down gets all three at once`, async (t) => {
    if (!requireEnvoy(t)) return;
    const v1 = await startBackend(t, 'web-v1');
    const v2 = await startBackend(t, 'web-v2');
    const late = await startBackend(t, 'late');
    const dir = tempDir(t);
    fs.writeFileSync(
      path.join(dir, 'services.yaml'),
      [serviceWithInstance('web', { port: 80, targetPort: v1.port }), serviceWithInstance('web-v1', { port: 80, targetPort: v1.port }), serviceWithInstance('web-v2', { port: 80, targetPort: v2.port })]
        .join('---\n')
        .concat('---\napiVersion: v1\nkind: Service\nmetadata: {name: api}\nspec:\n  ports: [{name: http, port: 80, appProtocol: http}]\n'),
    );
    fs.writeFileSync(path.join(dir, 'routes.yaml'), route('web', 'web-v1'));
    const cp = await startControlPlaneProcess(t, { configDir: dir });
    const a = await stoppable(t, 'api-a');
    const b = await stoppable(t, 'api-b');
    const check = { http: '/', interval: '200ms', timeout: '200ms', unhealthyThreshold: 1 };
    await put(cp, 'api', 'a', { address: '127.0.0.1', port: a.port, check });
    await put(cp, 'api', 'b', { address: '127.0.0.1', port: b.port, check });
    await waitFor('both api instances healthy', async () => (await health(cp, 'api', 'a')) === 'healthy' && (await health(cp, 'api', 'b')) === 'healthy');

    const nodeId = `restarted-${mode}`;
    const first = await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode, nodeId });
    t.deepEqual(await tally(first.outboundPort, 'web', 10), { 'web-v1': 10 });
    await waitFor('both api instances in Envoy', async () => (await envoyHosts(first, 'outbound|80||api.default')).length === 2);
    await first.handle.stop();
    await waitFor('the proxy to be gone', async () => !(await cp.api<{ proxies: { nodeId: string }[] }>('/api/v1/proxies')).proxies.some((p) => p.nodeId === nodeId));

    // While no proxy of the group is connected:
    fs.writeFileSync(path.join(dir, 'routes.yaml'), route('web', 'web-v2'));
    await applied(cp, 'web-v2');
    await b.stop();
    await waitFor('api-b to fail its check', async () => (await health(cp, 'api', 'b')) === 'unhealthy');
    await put(cp, 'late', 'late-1', { address: '127.0.0.1', port: late.port });

    // The same bootstrap as before (same ports), so the same proxy group.
    const second = await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode, nodeId, adminPort: first.adminPort, outboundPort: first.outboundPort });
    // Ready means Envoy has its initial config: it must already be the current one.
    t.deepEqual(await tally(second.outboundPort, 'web', 10), { 'web-v2': 10 }, 'the route edit');
    t.deepEqual(await envoyHosts(second, 'outbound|80||api.default'), [`127.0.0.1:${a.port}`], 'the failed instance is not there');
    t.deepEqual(await tally(second.outboundPort, 'late', 5), { late: 5 }, 'the service registered meanwhile');
    t.is(await second.stat('cluster_manager.cds.update_rejected'), 0);
  });
}

test.serial('a new grpc-js-xds client gets a service registered, a route edited and a check failed while no client was connected', async (t) => {
  const servers = await Promise.all(['echo-v1', 'echo-v2', 'late'].map(async (name) => startEchoServer(name, await freePort())));
  for (const s of servers) t.teardown(() => s.close());
  const [v1, v2, lateServer] = servers;
  const dir = tempDir(t);
  fs.writeFileSync(
    path.join(dir, 'services.yaml'),
    [serviceWithInstance('echo', { port: v1.port, targetPort: v1.port, appProtocol: 'grpc' }), serviceWithInstance('echo-v1', { port: v1.port, targetPort: v1.port, appProtocol: 'grpc' }), serviceWithInstance('echo-v2', { port: v2.port, targetPort: v2.port, appProtocol: 'grpc' })].join('---\n'),
  );
  fs.writeFileSync(path.join(dir, 'routes.yaml'), route('echo', 'echo-v1'));
  const cp = await startControlPlaneProcess(t, { configDir: dir });
  const env = { ...process.env, GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(grpcBootstrap({ nodeId: 'fresh-client', xds: [{ host: '127.0.0.1', port: cp.xdsPort }] })) };
  const client = async (target: string) => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'test/support/grpc-once.ts'), target, '10'], { env, cwd: repoRoot, timeout: 30_000 });
    return JSON.parse(stdout.trim().split('\n').pop()!) as { counts: Record<string, number>; errors: string[] };
  };
  t.deepEqual(await client('echo'), { counts: { 'echo-v1': 10 }, errors: [] });
  await waitFor('the client to be gone', async () => (await cp.api<{ proxies: unknown[] }>('/api/v1/proxies')).proxies.length === 0);

  // Nobody connected: register a new service, then edit the route.
  await put(cp, 'late', 'late-1', { address: '127.0.0.1', port: lateServer.port });
  fs.writeFileSync(path.join(dir, 'routes.yaml'), route('echo', 'echo-v2'));
  await applied(cp, 'echo-v2');
  t.deepEqual(await client(`late:${lateServer.port}`), { counts: { late: 10 }, errors: [] }, 'the just-registered service is ready at once');
  t.deepEqual(await client('echo'), { counts: { 'echo-v2': 10 }, errors: [] }, 'the route edit');

  // A registered instance that fails its check is not given to a new client.
  const spare = await startEchoServer('late-spare', await freePort());
  t.teardown(() => spare.close());
  await put(cp, 'late', 'late-2', { address: '127.0.0.1', port: spare.port, check: { tcp: true, interval: '200ms', timeout: '200ms', unhealthyThreshold: 1 } });
  await waitFor('late-2 healthy', async () => (await health(cp, 'late', 'late-2')) === 'healthy');
  await spare.close();
  await waitFor('late-2 to fail its check', async () => (await health(cp, 'late', 'late-2')) === 'unhealthy');
  t.deepEqual(await client(`late:${lateServer.port}`), { counts: { late: 10 }, errors: [] });
});
