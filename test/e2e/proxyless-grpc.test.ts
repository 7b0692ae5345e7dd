// Real @grpc/grpc-js-xds clients dialing xds:///X, configured by GRPCRoutes.
// grpc-js-xds reads its bootstrap once per process: ava runs each test file in its own process.
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import { grpcBootstrap } from '../../sidecar/bootstrap/bootstrap.ts';
import { EchoService, startEchoServer, type EchoServer } from '../../examples/demo/echo-grpc.ts';
import { serviceWithInstance, startControlPlaneProcess, tempDir } from '../support/mesh.ts';
import { freePort, waitFor } from '../support/processes.ts';

const routes = `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: echo}
spec:
  parentRefs: [{kind: Service, name: echo}]
  rules:
  - backendRefs:
    - {name: echo-v1, weight: 80}
    - {name: echo-v2, weight: 20}
---
apiVersion: tessera.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: flaky}
spec:
  targetRefs: [{group: "", kind: Service, name: flaky}]
  retry: {attempts: 3, retryOn: [unavailable], backoff: {baseInterval: 10ms, maxInterval: 50ms}}
`;

function echo(client: grpc.Client): Promise<{ backend: string }> {
  return new Promise((resolve, reject) =>
    (client as any).Echo({ message: 'hi' }, { deadline: Date.now() + 5000 }, (err: Error | null, reply: { backend: string }) =>
      err ? reject(err) : resolve(reply),
    ),
  );
}

test.serial('grpc-js-xds clients follow an 80/20 GRPCRoute split within ±5% and honour a retry policy', async (t) => {
  const servers: Record<string, EchoServer> = {};
  for (const name of ['echo', 'echo-v1', 'echo-v2', 'flaky']) {
    servers[name] = await startEchoServer(name, await freePort());
    t.teardown(() => servers[name].close());
  }
  servers.flaky.failEvery = 2;
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'services.yaml'), Object.values(servers).map((s) => serviceWithInstance(s.name, { port: s.port, targetPort: s.port, appProtocol: 'grpc' })).join('---\n'));
  fs.writeFileSync(path.join(dir, 'routes.yaml'), routes);
  const cp = await startControlPlaneProcess(t, { configDir: dir });

  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify(grpcBootstrap({ nodeId: 'proxyless-test', xds: [{ host: '127.0.0.1', port: cp.xdsPort }] }));
  const xds = await import('@grpc/grpc-js-xds');
  xds.register();

  const client = new EchoService('xds:///echo', grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  await waitFor('the first RPC through xDS', () => echo(client), 15_000, 200);
  const counts: Record<string, number> = {};
  const batch = 50;
  for (let i = 0; i < 2000; i += batch) {
    const replies = await Promise.all(Array.from({ length: batch }, () => echo(client)));
    for (const r of replies) counts[r.backend] = (counts[r.backend] ?? 0) + 1;
  }
  t.log(counts);
  const share = (counts['echo-v1'] ?? 0) / 2000;
  t.true(share >= 0.75 && share <= 0.85, `echo-v1 got ${(share * 100).toFixed(1)}% (${JSON.stringify(counts)})`);
  t.is((counts['echo-v1'] ?? 0) + (counts['echo-v2'] ?? 0), 2000);

  // xds:///X:PORT resolves too, and retries hide a backend failing every other call.
  const flaky = new EchoService(`xds:///flaky:${servers.flaky.port}`, grpc.credentials.createInsecure());
  t.teardown(() => flaky.close());
  await waitFor('flaky to resolve', () => echo(flaky).catch(() => undefined), 15_000, 200);
  const callsBefore = servers.flaky.calls;
  for (let i = 0; i < 40; i++) t.is((await echo(flaky)).backend, 'flaky');
  t.true(servers.flaky.calls - callsBefore >= 55, `the server saw the retries (${servers.flaky.calls - callsBefore} calls for 40 RPCs)`);

  const { proxies } = await cp.api<{ proxies: { nodeId: string; types: Record<string, { lastNack?: unknown }> }[] }>('/api/v1/proxies');
  const me = proxies.find((p) => p.nodeId === 'proxyless-test');
  t.truthy(me);
  for (const [type, s] of Object.entries(me!.types)) t.falsy(s.lastNack, `${type} NACKed: ${JSON.stringify(s.lastNack)}`);
});
