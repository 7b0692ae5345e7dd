// A real etcd killed under running control planes, and started again: the replicas
// stay up, Envoy keeps getting traffic to the last known endpoints, /readyz says why
// it is not ready, writes get 503 naming etcd, and everything resyncs when etcd returns.
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { request } from 'undici';
import { etcdEnvoyTest, requireEtcd, startEtcd } from '../support/etcd.ts';
import { envoyHosts, REGISTRY_API_CONFIG, requireEnvoy, startBackend, startControlPlaneProcess, startEnvoy, tempDir, type ControlPlaneProcess } from '../support/mesh.ts';
import { freePort, startProcess, waitFor } from '../support/processes.ts';
import { tesseraBin } from '../support/mesh.ts';

const CLUSTER = 'outbound|80||api.default';
// Short leases, so a long outage outlives them (the path that used to crash).
process.env.TESSERA_ETCD_LEASE_TTL = '2';

async function put(cp: ControlPlaneProcess, id: string, body: unknown) {
  const res = await request(`${cp.adminUrl}/api/v1/services/api/instances/${id}`, { method: 'PUT', body: JSON.stringify(body) });
  return { status: res.statusCode, json: (await res.body.json()) as { error?: string; code?: string } };
}

async function readyz(cp: ControlPlaneProcess) {
  const res = await request(`${cp.adminUrl}/readyz`);
  return { status: res.statusCode, text: await res.body.text() };
}

/** Requests through Envoy until stopped; every one must be served. */
function load(port: number) {
  const failures: string[] = [];
  let served = 0;
  let running = true;
  const done = (async () => {
    while (running) {
      try {
        const res = await request(`http://127.0.0.1:${port}/`, { headers: { host: 'api' } });
        await res.body.dump();
        if (res.statusCode === 200) served++;
        else failures.push(`status ${res.statusCode}`);
      } catch (err) {
        failures.push((err as Error).message);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return { failures, served: () => served, stop: async () => ((running = false), await done) };
}

async function outage(t: ExecutionContext, seconds: number, replicaCount: number) {
  if (!requireEnvoy(t) || !requireEtcd(t)) return;
  const etcd = await startEtcd(t);
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'api.yaml'), REGISTRY_API_CONFIG);
  const replicas: ControlPlaneProcess[] = [];
  for (let i = 0; i < replicaCount; i++) replicas.push(await startControlPlaneProcess(t, { configDir: dir, extraArgs: ['--store', `etcd://${etcd.endpoint}`] }));
  const [a, b] = [replicas[0], replicas[replicas.length - 1]];
  const backend = await startBackend(t, 'one');
  const check = { http: '/', interval: '200ms', timeout: '200ms' };
  t.is((await put(a, 'one', { address: '127.0.0.1', port: backend.port, check })).status, 201);
  const envoy = await startEnvoy(t, { xdsPorts: [b.xdsPort], mode: 'delta' });
  await waitFor('Envoy to get the instance', async () => (await envoyHosts(envoy, CLUSTER)).length === 1, 10_000);

  const traffic = load(envoy.outboundPort);
  await etcd.kill();
  const killedAt = Date.now();
  for (const r of replicas) {
    const notReady = await waitFor('/readyz to say etcd is unreachable', async () => {
      const res = await readyz(r);
      return res.status === 503 && res.text;
    }, 15_000, 100);
    t.regex(notReady, new RegExp(`not ready: registry store: etcd at ${etcd.endpoint} unreachable since `));
  }
  t.log(`not ready ${Date.now() - killedAt} ms after etcd died`);
  const refused = await put(a, 'two', { address: '127.0.0.1', port: backend.port + 1 });
  t.is(refused.status, 503);
  t.is(refused.json.code, 'TESSERA_ERR_STORE_UNAVAILABLE');
  t.regex(refused.json.error ?? '', new RegExp(`registration of api/two not stored: etcd at ${etcd.endpoint} unreachable`));

  await new Promise((r) => setTimeout(r, Math.max(0, seconds * 1000 - (Date.now() - killedAt))));
  for (const r of replicas) t.is(r.process.child.exitCode, null, 'the replica is still running');
  t.deepEqual(await envoyHosts(envoy, CLUSTER), [`127.0.0.1:${backend.port}`], 'the last known endpoint is still served');

  await etcd.restart();
  const restartedAt = Date.now();
  for (const r of replicas) await waitFor('the replica to be ready again', async () => (await readyz(r)).status === 200, 30_000, 100);
  t.log(`ready again ${Date.now() - restartedAt} ms after etcd came back`);
  const second = await startBackend(t, 'two');
  t.is((await put(a, 'two', { address: '127.0.0.1', port: second.port, check })).status, 201, 'writes work again');
  await waitFor('the new instance to reach Envoy through the other replica', async () => (await envoyHosts(envoy, CLUSTER)).length === 2, 15_000);
  await traffic.stop();
  t.true(traffic.served() > 50, `${traffic.served()} requests served`);
  t.deepEqual(traffic.failures, [], 'no request failed while etcd was away');
  for (const r of replicas) {
    t.is(r.process.child.exitCode, null);
    t.notRegex(r.process.output(), /Unhandled|UnhandledPromiseRejection|\n\s+at /, 'no crash or stack trace in the log');
  }
}

etcdEnvoyTest.serial('etcd killed for 5 s: the control plane serves on, reports not ready, refuses writes with 503, and resyncs', async (t) => {
  await outage(t, 5, 1);
});

etcdEnvoyTest.serial('etcd killed for 60 s under two replicas: both outlive their leases, keep serving, and converge when etcd returns', async (t) => {
  t.timeout(240_000);
  await outage(t, 60, 2);
});

test('starting while etcd is down fails with one clear line naming etcd, not a stack trace', async (t) => {
  const port = await freePort();
  const proc = startProcess(t, process.execPath, [tesseraBin, 'control-plane', '--address', '127.0.0.1', '--xds-port', String(await freePort()), '--admin-port', String(await freePort()), '--store', `etcd://127.0.0.1:${port}`]);
  const code = await new Promise<number | null>((r) => proc.child.once('exit', r));
  t.is(code, 1);
  t.regex(proc.output(), new RegExp(`tessera control-plane: cannot use etcd at 127\\.0\\.0\\.1:${port}: `));
  t.notRegex(proc.output(), /\n\s+at /);
});
