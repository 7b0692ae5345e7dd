// Registered instances, health-checked by the control plane, followed by a real Envoy.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { request } from 'undici';
import { envoyTest, envoyHosts, REGISTRY_API_CONFIG, requireEnvoy, startBackend, startControlPlaneProcess, startEnvoy, tally, tempDir, type Backend } from '../support/mesh.ts';
import { freePort, waitFor } from '../support/processes.ts';


async function put(adminUrl: string, service: string, id: string, body: unknown) {
  const res = await request(`${adminUrl}/api/v1/services/${service}/instances/${id}`, { method: 'PUT', body: JSON.stringify(body) });
  const text = await res.body.text();
  if (res.statusCode >= 300) throw new Error(`register ${id}: ${res.statusCode} ${text}`);
}

function configDir(t: ExecutionContext) {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'api.yaml'), REGISTRY_API_CONFIG);
  return dir;
}

/** A server that can be killed and brought back on the same port. */
async function restartable(t: ExecutionContext, name: string) {
  const port = await freePort();
  let hits = 0;
  let server: http.Server | undefined;
  const up = async () => {
    server = http.createServer((_req, res) => {
      hits++;
      res.writeHead(200, { 'x-backend': name }).end();
    });
    await new Promise<void>((r) => server!.listen(port, '127.0.0.1', r));
  };
  const down = async () => {
    await new Promise<void>((r) => {
      server!.close(() => r());
      server!.closeAllConnections();
    });
  };
  t.teardown(() => server?.listening && down());
  await up();
  return { port, up, down, hits: () => hits };
}

envoyTest.serial('a killed backend leaves Envoy within interval × threshold + 1 s with no client error, and comes back', async (t) => {
  if (!requireEnvoy(t)) return;
  const cp = await startControlPlaneProcess(t, { configDir: configDir(t) });
  const a = await startBackend(t, 'a');
  const b = await restartable(t, 'b');
  const check = { http: '/', interval: '200ms', timeout: '200ms', unhealthyThreshold: 2 };
  await put(cp.adminUrl, 'api', 'a', { address: '127.0.0.1', port: a.port, check });
  await put(cp.adminUrl, 'api', 'b', { address: '127.0.0.1', port: b.port, check });
  const envoy = await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'delta' });
  const cluster = 'outbound|80||api.default';
  await waitFor('both instances in Envoy', async () => (await envoyHosts(envoy, cluster)).length === 2);

  const failures: string[] = [];
  let loading = true;
  const load = (async () => {
    while (loading) {
      const res = await request(`http://127.0.0.1:${envoy.outboundPort}/`, { headers: { host: 'api' } });
      await res.body.dump();
      if (res.statusCode !== 200) failures.push(`status ${res.statusCode}`);
    }
  })();
  await new Promise((r) => setTimeout(r, 300));
  const killedAt = Date.now();
  await b.down();
  const gone = await waitFor('b to leave Envoy', async () => !(await envoyHosts(envoy, cluster)).includes(`127.0.0.1:${b.port}`) && Date.now(), 5000, 20);
  t.log(`b left Envoy ${gone - killedAt} ms after it died`);
  t.true(gone - killedAt <= 200 * 2 + 1000 + 200, `took ${gone - killedAt} ms`);
  const health = (await cp.api<{ instances: { id: string; health: string }[] }>('/api/v1/services/api')).instances;
  t.is(health.find((i) => i.id === 'b')?.health, 'unhealthy');

  await b.up();
  await waitFor('b to come back', async () => (await envoyHosts(envoy, cluster)).includes(`127.0.0.1:${b.port}`), 5000);
  const before = b.hits();
  await new Promise((r) => setTimeout(r, 500));
  loading = false;
  await load;
  t.true(b.hits() > before, 'traffic returned to b');
  t.deepEqual(failures, [], 'retries hid the dead backend from clients');
});

envoyTest.serial('a TTL instance without heartbeats expires from Envoy; heartbeats keep it', async (t) => {
  if (!requireEnvoy(t)) return;
  const cp = await startControlPlaneProcess(t, { configDir: configDir(t) });
  const a = await startBackend(t, 'a');
  await put(cp.adminUrl, 'api', 'job', { address: '127.0.0.1', port: a.port, check: { ttl: '1s' } });
  const envoy = await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'sotw' });
  const cluster = 'outbound|80||api.default';
  t.deepEqual(await envoyHosts(envoy, cluster), [], 'unknown until the first heartbeat');
  const beat = async () => (await request(`${cp.adminUrl}/api/v1/services/api/instances/job/heartbeat`, { method: 'POST' })).body.dump();
  await beat();
  await waitFor('the instance to join', async () => (await envoyHosts(envoy, cluster)).length === 1, 3000);
  for (let i = 0; i < 4; i++) {
    await new Promise((r) => setTimeout(r, 400));
    await beat();
    t.is((await envoyHosts(envoy, cluster)).length, 1, 'kept while heartbeats come');
  }
  const lastBeat = Date.now();
  await waitFor('the instance to expire', async () => (await envoyHosts(envoy, cluster)).length === 0, 4000);
  t.true(Date.now() - lastBeat >= 900);
});

envoyTest.serial('restarting the control plane on a file store keeps every instance, and Envoy never loses its endpoints', async (t) => {
  if (!requireEnvoy(t)) return;
  const dir = configDir(t);
  const store = path.join(tempDir(t), 'registry.json');
  const xdsPort = await freePort();
  const adminPort = await freePort();
  const opts = { configDir: dir, xdsPort, adminPort, extraArgs: ['--store', `file:${store}`] };
  const first = await startControlPlaneProcess(t, opts);
  const backends: Backend[] = [];
  for (const name of ['a', 'b', 'c']) {
    const b = await startBackend(t, name);
    backends.push(b);
    await put(first.adminUrl, 'api', name, { address: '127.0.0.1', port: b.port });
  }
  const envoy = await startEnvoy(t, { xdsPorts: [xdsPort], mode: 'delta' });
  await waitFor('three instances in Envoy', async () => (await envoyHosts(envoy, 'outbound|80||api.default')).length === 3);

  const failures: string[] = [];
  let served = 0;
  let loading = true;
  const load = (async () => {
    while (loading) {
      const res = await request(`http://127.0.0.1:${envoy.outboundPort}/`, { headers: { host: 'api' } });
      await res.body.dump();
      if (res.statusCode === 200) served++;
      else failures.push(`status ${res.statusCode}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  await first.process.stop();
  await new Promise((r) => setTimeout(r, 500));
  const servedWhileDown = served;
  const second = await startControlPlaneProcess(t, opts);
  const ids = (await second.api<{ instances: { id: string }[] }>('/api/v1/services/api')).instances.map((i) => i.id);
  t.deepEqual(ids, ['a', 'b', 'c']);
  await waitFor('Envoy to reconnect', async () => (await second.api<{ proxies: unknown[] }>('/api/v1/proxies')).proxies.length === 1, 15_000, 200);
  await new Promise((r) => setTimeout(r, 500));
  loading = false;
  await load;
  t.true(servedWhileDown > 0, 'traffic flowed while the control plane was down');
  t.deepEqual(failures, []);
  t.deepEqual(await envoyHosts(envoy, 'outbound|80||api.default'), backends.map((b) => `127.0.0.1:${b.port}`).sort());
});

envoyTest.serial('a sidecar prefers instances in its own zone and fails over to another zone when they fail', async (t) => {
  if (!requireEnvoy(t)) return;
  const cp = await startControlPlaneProcess(t, { configDir: configDir(t) });
  const near = await restartable(t, 'near');
  const far = await startBackend(t, 'far');
  const check = { http: '/', interval: '200ms', timeout: '200ms', unhealthyThreshold: 1 };
  await put(cp.adminUrl, 'api', 'near', { address: '127.0.0.1', port: near.port, zone: 'zone-a', check });
  await put(cp.adminUrl, 'api', 'far', { address: '127.0.0.1', port: far.port, zone: 'zone-b', check });
  const envoy = await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'delta', zone: 'zone-a' });
  await waitFor('both zones in Envoy', async () => (await envoyHosts(envoy, 'outbound|80||api.default')).length === 2);

  const counts = await tally(envoy.outboundPort, 'api', 200);
  t.deepEqual(counts, { near: 200 }, 'all traffic stays in the proxy\'s zone');

  await near.down();
  await waitFor('the local instance to leave', async () => (await envoyHosts(envoy, 'outbound|80||api.default')).length === 1, 3000);
  t.deepEqual(await tally(envoy.outboundPort, 'api', 100), { far: 100 }, 'failed over to the other zone');
  await near.up();
  await waitFor('traffic back home', async () => (await tally(envoy.outboundPort, 'api', 20)).near === 20, 5000, 100);
  t.pass();
});
