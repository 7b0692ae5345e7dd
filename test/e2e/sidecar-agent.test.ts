// `tessera sidecar` with a real control plane and real Envoys: the startup gate,
// graceful drain under load, and Envoy restarted after SIGKILL.
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { request } from 'undici';
import { envoyTest, REGISTRY_API_CONFIG, requireEnvoy, startBackend, startControlPlaneProcess, tally, tempDir } from '../support/mesh.ts';
import { freePort, waitFor } from '../support/processes.ts';
import { startSidecar, steadyLoad } from '../support/sidecar.ts';

async function meshWithApi(t: any) {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'api.yaml'), REGISTRY_API_CONFIG);
  return startControlPlaneProcess(t, { configDir: dir, readyTimeoutMs: 60_000 });
}

/** The client's Envoy's view of the api cluster (address:port of each host). */
async function clientHosts(adminUrl: string): Promise<string[]> {
  const text = await (await request(`${adminUrl}/clusters`)).body.text();
  return [...new Set(text.split('\n').filter((l) => l.startsWith('outbound|80||api.default::') && l.includes('::cx_total::')).map((l) => l.split('::')[1]))].sort();
}

envoyTest.serial('startup gate: a new instance registers only once its Envoy is ready, its app gets no traffic before, and clients see no error', async (t) => {
  if (!requireEnvoy(t)) return;
  const cp = await meshWithApi(t);
  const client = await startSidecar(t, { service: 'client', appPort: await freePort(), inbound: false, controlPlane: cp, extraArgs: ['--no-register', '--health-check', 'none'] });
  const app1 = await startBackend(t, 'api-1');
  const side1 = await startSidecar(t, { service: 'api', appPort: app1.port, controlPlane: cp });
  await Promise.all([client.waitReady(), side1.waitReady()]);
  await waitFor('api-1 to serve through the client sidecar', async () => (await tally(client.outboundPort, 'api', 1))['api-1'] === 1, 20_000);

  const load = steadyLoad(client.outboundPort, 'api');
  const app2 = await startBackend(t, 'api-2');
  const side2 = await startSidecar(t, { service: 'api', appPort: app2.port, controlPlane: cp });
  // Sample, in this order, the app's hits, the registry, then the agent's /ready:
  // a hit or a registration seen before /ready says 200 breaks the gate.
  const violations: string[] = [];
  let sawNotReady = false;
  await waitFor('api-2 to get traffic', async () => {
    const hits = app2.hits;
    const api = await cp.api<{ instances: { id: string }[] }>('/api/v1/services/api');
    const registered = api.instances.some((i) => i.id === side2.instanceId);
    const ready = await side2.readyStatus();
    if (ready !== 200) {
      sawNotReady = true;
      if (hits > 0) violations.push(`app got ${hits} requests while /ready was ${ready}`);
      if (registered) violations.push(`instance registered while /ready was ${ready}`);
    }
    return hits > 20;
  }, 40_000, 25);
  await load.stop();
  t.true(sawNotReady, 'the agent was observed before its proxy was ready');
  t.deepEqual(violations, []);
  t.deepEqual(load.failures(), [], 'no client request failed while the instance started');
  t.true(load.outcomes.length > 50, `${load.outcomes.length} requests sent`);
});

envoyTest.serial('drain: SIGTERM under ~50 req/s loses no request, the instance gets nothing new once clients dropped it, and the agent exits 0 in time', async (t) => {
  if (!requireEnvoy(t)) return;
  const cp = await meshWithApi(t);
  const client = await startSidecar(t, { service: 'client', appPort: await freePort(), inbound: false, controlPlane: cp, extraArgs: ['--no-register', '--health-check', 'none'] });
  const app1 = await startBackend(t, 'api-1');
  const app2 = await startBackend(t, 'api-2');
  // Slow answers keep requests in flight when the drain starts.
  app2.behaviour = () => ({ delayMs: 150 });
  const side1 = await startSidecar(t, { service: 'api', appPort: app1.port, controlPlane: cp });
  const side2 = await startSidecar(t, { service: 'api', appPort: app2.port, controlPlane: cp, extraArgs: ['--drain-timeout', '8s'] });
  await Promise.all([client.waitReady(), side1.waitReady(), side2.waitReady()]);
  await waitFor('both instances to serve', async () => {
    const counts = await tally(client.outboundPort, 'api', 10);
    return counts['api-1'] > 0 && counts['api-2'] > 0;
  }, 30_000);

  const load = steadyLoad(client.outboundPort, 'api', 20);
  await new Promise((r) => setTimeout(r, 1500));
  const hitsBefore = app2.hits;
  const sigtermAt = Date.now();
  side2.process.child.kill('SIGTERM');
  const side2Host = `127.0.0.1:${side2.inboundPort}`;
  await waitFor('the registry to drop api-2', async () => {
    const api = await cp.api<{ instances: { id: string }[] }>('/api/v1/services/api');
    return !api.instances.some((i) => i.id === side2.instanceId);
  }, 5000, 20);
  await waitFor('the client sidecar to drop api-2', async () => !(await clientHosts(client.adminUrl)).includes(side2Host), 5000, 20);
  const hitsAtRemoval = app2.hits;
  const exit = await side2.exited;
  await new Promise((r) => setTimeout(r, 500));
  await load.stop();

  t.true(hitsBefore > 0, 'api-2 was serving before the drain');
  t.is(app2.hits, hitsAtRemoval, 'no new request reached api-2 after the client sidecar dropped it');
  t.deepEqual(load.failures(), [], 'no request failed');
  const sentPerSecond = load.outcomes.length / ((load.outcomes.at(-1)!.at - load.outcomes[0].at) / 1000);
  t.log(`${load.outcomes.length} requests at ${sentPerSecond.toFixed(0)}/s; agent exited ${exit.code} after ${exit.at - sigtermAt} ms`);
  t.true(sentPerSecond > 25, 'the load was roughly 50 req/s');
  t.is(exit.code, 0);
  t.true(exit.at - sigtermAt < 8000 + 2000, 'within the drain timeout (+ slack for stopping Envoy)');
  t.true(load.outcomes.filter((o) => o.at > exit.at).every((o) => o.backend === 'api-1'));
});

envoyTest.serial('the app probes on the probe port come from the app; Envoy killed with SIGKILL is restarted, /ready comes back and traffic recovers; a killed agent takes Envoy with it', async (t) => {
  if (!requireEnvoy(t)) return;
  const cp = await meshWithApi(t);
  const client = await startSidecar(t, { service: 'client', appPort: await freePort(), inbound: false, controlPlane: cp, extraArgs: ['--no-register', '--health-check', 'none'] });
  const app = await startBackend(t, 'api-1');
  const probes = { '/app-health/api/livez': { httpGet: { path: '/healthz', port: app.port } }, '/app-health/api/readyz': { tcpSocket: { port: app.port } } };
  const side = await startSidecar(t, { service: 'api', appPort: app.port, controlPlane: cp, env: { TESSERA_APP_PROBES: JSON.stringify(probes) } });
  await Promise.all([client.waitReady(), side.waitReady()]);
  await waitFor('api-1 to serve', async () => (await tally(client.outboundPort, 'api', 1))['api-1'] === 1, 20_000);
  // The app's rewritten probes answer on the probe port, from the app itself.
  app.behaviour = (req) => (req.url === '/healthz' ? { status: 503 } : undefined);
  const probe = async (p: string) => {
    const res = await request(side.probeUrl + p);
    await res.body.dump();
    return res.statusCode;
  };
  t.deepEqual([await probe('/app-health/api/livez'), await probe('/app-health/api/readyz'), await probe('/app-health/api/startupz')], [503, 200, 404]);
  app.behaviour = () => undefined;
  t.is(await probe('/app-health/api/livez'), 200);

  const before = await side.status();
  t.truthy(before.envoyPid);
  process.kill(before.envoyPid!, 'SIGKILL');
  const after = await waitFor('a new Envoy', async () => {
    const s = await side.status();
    return s.envoyPid && s.envoyPid !== before.envoyPid && s.phase === 'ready' ? s : undefined;
  }, 30_000);
  t.is(after.envoyRestarts, 1);
  t.is(await side.readyStatus(), 200);
  const counts = await waitFor('traffic to recover', async () => {
    const c = await tally(client.outboundPort, 'api', 20, { concurrency: 2 });
    return c['api-1'] === 20 ? c : undefined;
  }, 30_000, 250);
  t.deepEqual(counts, { 'api-1': 20 });
  t.is(side.process.child.exitCode, null, 'the agent itself kept running');

  // The other way round: an agent killed outright takes its Envoy with it.
  side.process.child.kill('SIGKILL');
  await waitFor('the orphaned Envoy to exit', () => {
    try {
      process.kill(after.envoyPid!, 0);
      return false;
    } catch {
      return true;
    }
  }, 10_000);
  t.pass();
});

envoyTest.serial('the stats port serves Envoy\'s Prometheus text to GET /stats/prometheus and refuses the writable admin paths; Envoy keeps running', async (t) => {
  if (!requireEnvoy(t)) return;
  const cp = await meshWithApi(t);
  const side = await startSidecar(t, { service: 'client', appPort: await freePort(), inbound: false, controlPlane: cp, extraArgs: ['--no-register', '--health-check', 'none'] });
  await side.waitReady();
  const { envoyPid } = await side.status();

  const scrape = await request(`${side.statsUrl}/stats/prometheus`);
  const text = await scrape.body.text();
  t.is(scrape.statusCode, 200);
  t.regex(String(scrape.headers['content-type']), /^text\/plain/);
  t.regex(text, /^envoy_server_live(\{[^}]*\})? 1$/m, 'Envoy\'s own Prometheus text');
  t.regex(text, /# TYPE envoy_cluster_manager_cds_update_success counter/);
  const usedOnly = await request(`${side.statsUrl}/stats/prometheus?usedonly`);
  t.is(usedOnly.statusCode, 200, 'a query string passes');
  t.regex(await usedOnly.body.text(), /envoy_server_/);

  // Everything else is answered by the listener itself: 404 for other paths, 405 for
  // another method on the stats path; none of it reaches the admin interface.
  const refused: [string, string, number][] = [
    ['POST', '/quitquitquit', 404],
    ['GET', '/quitquitquit', 404],
    ['POST', '/drain_listeners?graceful', 404],
    ['POST', '/runtime_modify?upstream.use_http2=false', 404],
    ['POST', '/healthcheck/fail', 404],
    ['GET', '/config_dump', 404],
    ['GET', '/clusters', 404],
    ['GET', '/', 404],
    ['GET', '/stats', 404],
    ['GET', '/stats/prometheus/../../config_dump', 404],
    ['GET', '/stats/prometheus%2F..%2F..%2Fconfig_dump', 404],
    ['POST', '/stats/prometheus', 405],
    ['PUT', '/stats/prometheus', 405],
    ['DELETE', '/stats/prometheus', 405],
  ];
  for (const [method, path, status] of refused) {
    const res = await request(`${side.statsUrl}${path}`, { method: method as 'GET' });
    const body = await res.body.text();
    t.is(res.statusCode, status, `${method} ${path}`);
    t.notRegex(body, /configs|envoy_server|OK/, `${method} ${path} answered from the admin interface`);
    if (status === 405) t.is(res.headers.allow, 'GET');
  }

  // Envoy is still up, the same process, and its admin (loopback) still answers.
  const adminReady = await request(`${side.adminUrl}/ready`);
  t.is(adminReady.statusCode, 200);
  t.is((await adminReady.body.text()).trim(), 'LIVE');
  t.is(await side.readyStatus(), 200);
  const after = await side.status();
  t.is(after.envoyPid, envoyPid);
  t.is(after.envoyRestarts, 0);
  const again = await request(`${side.statsUrl}/stats/prometheus`);
  t.is(again.statusCode, 200);
  // Our scrapes went through the stats listener's HCM, not around it.
  t.regex(await again.body.text(), /envoy_http_downstream_rq_xx\{envoy_response_code_class="4",envoy_http_conn_manager_prefix="tessera_prometheus_stats"\} [1-9]/);
});

test('bad flags are refused with every mistake named and exit code 2', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const { tesseraBin } = await import('../support/mesh.ts');
  const res = spawnSync(process.execPath, [tesseraBin, 'sidecar', '--app-port', 'http', '--drain-timeout', 'soon', '--xds-mode', 'rest'], { encoding: 'utf8', env: { ...process.env, TESSERA_SERVICE: '' } });
  t.is(res.status, 2);
  t.regex(res.stderr, /--service \(or TESSERA_SERVICE\) is required/);
  t.regex(res.stderr, /--app-port \(or TESSERA_APP_PORT\) must be a port number, got "http"/);
  t.regex(res.stderr, /--drain-timeout .* must be a duration like 10s, got "soon"/);
  t.regex(res.stderr, /--xds-mode must be sotw or delta/);
});

test('an Envoy that dies at every start is restarted with backoff, then the agent gives up with exit code 3 and never reports ready', async (t) => {
  const appPort = await freePort();
  const side = await startSidecar(t, { service: 'api', appPort, controlPlane: { adminPort: await freePort(), xdsPort: await freePort() }, extraArgs: ['--envoy', '/bin/false'] });
  let everReady = false;
  const poll = setInterval(async () => (everReady ||= (await side.readyStatus()) === 200), 100);
  const exit = await side.exited;
  clearInterval(poll);
  t.is(exit.code, 3);
  t.false(everReady);
  const out = side.process.output();
  t.is(out.match(/restarting in \d+ ms/g)?.length, 4, 'four restarts before giving up on the fifth death');
  t.regex(out, /restarting in 200 ms[\s\S]*restarting in 400 ms[\s\S]*restarting in 800 ms[\s\S]*restarting in 1600 ms/);
  t.regex(out, /giving up: envoy exited 5 times in a row before becoming ready/);
});
