// The read-side CLI and metrics against a running control plane and a real Envoy.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { request } from 'undici';
import { envoyTest, repoRoot, requireEnvoy, startBackend, startControlPlaneProcess, startEnvoy, tesseraBin } from '../support/mesh.ts';
import { waitFor } from '../support/processes.ts';
import path from 'node:path';

const run = promisify(execFile);
const tessera = (args: string[]) => run(process.execPath, [tesseraBin, ...args]).then((r) => r.stdout);

envoyTest.serial('get services, get proxies, proxy-status, config-dump and /metrics show a live mesh', async (t) => {
  if (!requireEnvoy(t)) return;
  const cp = await startControlPlaneProcess(t, { configDir: path.join(repoRoot, 'examples/mesh') });
  const backend = await startBackend(t, 'extra');
  await (await request(`${cp.adminUrl}/api/v1/services/extra/instances/e1`, {
    method: 'PUT',
    body: JSON.stringify({ address: '127.0.0.1', port: backend.port, zone: 'z1', check: { tcp: true, interval: '200ms' } }),
  })).body.dump();
  const envoy = await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'delta', nodeId: 'cli-envoy', service: 'frontend' });
  const admin = ['--admin', cp.adminUrl];

  const services = await waitFor('the instance to be checked', async () => {
    const out = await tessera(['get', 'services', ...admin]);
    return /extra\s+e1\s+127\.0\.0\.1:\d+\s+z1\s+healthy/.test(out) && out;
  });
  t.regex(services, /^SERVICE\s+INSTANCE\s+ADDRESS\s+ZONE\s+HEALTH\s+LAST CHECK/);
  t.regex(services, /reviews-v1\s+reviews-v1-1-127\.0\.0\.1:19081\s+127\.0\.0\.1:19081\s+local-a\s+healthy\s+\(file\)/);
  const json = JSON.parse(await tessera(['get', 'services', '-o', 'json', ...admin]));
  t.deepEqual(json.map((s: { name: string }) => s.name), ['extra', 'frontend', 'ratings', 'reviews', 'reviews-v1', 'reviews-v2']);

  const status = await waitFor('the Envoy to be synced', async () => {
    const out = await tessera(['proxy-status', ...admin]);
    return /cli-envoy\s+frontend\s+delta\s+SYNCED\s+SYNCED\s+SYNCED\s+SYNCED/.test(out) && out;
  });
  t.regex(status, /^NODE\s+SERVICE\s+XDS\s+CDS\s+LDS\s+EDS\s+RDS/);
  t.is(await tessera(['get', 'proxies', ...admin]), status);

  const dump = JSON.parse(await tessera(['config-dump', 'cli-envoy', ...admin]));
  t.true(dump.resources.CDS.some((c: { name: string }) => c.name === `outbound|${backend.port}||extra.default`), 'a registered service got a cluster on the instance port');
  t.true(dump.resources.LDS.some((l: { name: string }) => l.name === 'outbound_http'));
  const missing = await run(process.execPath, [tesseraBin, 'config-dump', 'nobody', ...admin]).catch((e) => e);
  t.regex(missing.stderr, /404 no connected proxy has node id "nobody"/);

  const routes = await tessera(['get', 'routes', ...admin]);
  t.regex(routes, /HTTPRoute\s+default\/reviews\s+reviews:9080\s+reviews-v2=1 \| reviews-v1=80\/reviews-v2=20\s+routes\.yaml:4/);

  const metrics = await (await request(`${cp.adminUrl}/metrics`)).body.text();
  t.regex(metrics, /tessera_xds_connected_proxies\{protocol="delta"\} 1/);
  t.regex(metrics, /tessera_xds_pushes_total\{type="CDS"\} [1-9]/);
  t.regex(metrics, /tessera_xds_push_to_ack_seconds_count\{type="EDS"\} [1-9]/);
  t.regex(metrics, /tessera_xds_nacks_total/);
  t.regex(metrics, /tessera_config_reloads_total\{result="applied"\} 1/);
  t.is((await request(`${cp.adminUrl}/readyz`)).statusCode, 200);
  t.is(envoy.nodeId, 'cli-envoy');
});
