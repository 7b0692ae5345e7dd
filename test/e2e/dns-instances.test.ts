// An instance registered by DNS name, with a real Envoy: the control plane resolves
// it, so Envoy gets an IP address (no NACK) and the traffic is served.
import fs from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import { envoyTest, envoyHosts, REGISTRY_API_CONFIG, requireEnvoy, startBackend, startControlPlaneProcess, startEnvoy, tally, tempDir } from '../support/mesh.ts';
import { waitFor } from '../support/processes.ts';

const CLUSTER = 'outbound|80||api.default';

envoyTest.serial('an instance registered as localhost is served through Envoy with no NACK, and an unresolvable name gets 400', async (t) => {
  if (!requireEnvoy(t)) return;
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'api.yaml'), REGISTRY_API_CONFIG);
  const cp = await startControlPlaneProcess(t, { configDir: dir });
  const envoy = await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'sotw' });
  const backend = await startBackend(t, 'by-name');
  const put = async (id: string, address: string) => {
    const res = await request(`${cp.adminUrl}/api/v1/services/api/instances/${id}`, {
      method: 'PUT',
      body: JSON.stringify({ address, port: backend.port, check: { http: '/', interval: '200ms' } }),
    });
    return { status: res.statusCode, json: (await res.body.json()) as { error?: string } };
  };
  t.is((await put('named', 'localhost')).status, 201);
  await waitFor('Envoy to get the resolved address', async () => (await envoyHosts(envoy, CLUSTER)).includes(`127.0.0.1:${backend.port}`), 10_000);
  t.deepEqual(await tally(envoy.outboundPort, 'api', 20), { 'by-name': 20 });

  const bad = await put('nowhere', 'no-such-host.invalid');
  t.is(bad.status, 400);
  t.regex(bad.json.error ?? '', /address "no-such-host\.invalid" does not resolve here/);

  const { proxies } = await cp.api<{ proxies: { nodeId: string; types: Record<string, { lastNack?: unknown }> }[] }>('/api/v1/proxies');
  const mine = proxies.find((p) => p.nodeId === envoy.nodeId)!;
  t.deepEqual(Object.entries(mine.types).filter(([, s]) => s.lastNack).map(([type]) => type), [], 'no type was NACKed');
  // Envoy's own counters (the cluster name has regex characters: read the whole list).
  const stats = await (await request(`${envoy.handle.adminUrl}/stats`)).body.text();
  const stat = (name: string) => {
    const line = stats.split('\n').find((l) => l.startsWith(`${name}: `));
    t.truthy(line, `Envoy has the stat ${name}`);
    return Number(line?.split(': ')[1]);
  };
  t.is(stat('cluster_manager.cds.update_rejected'), 0);
  t.is(stat(`cluster.${CLUSTER}.update_rejected`), 0, 'EDS was not rejected');
  t.true(stat(`cluster.${CLUSTER}.update_success`) >= 1, 'EDS updates were taken');
});
