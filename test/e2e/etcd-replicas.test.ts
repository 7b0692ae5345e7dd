// Two control-plane replicas on one real etcd, with real Envoys.
import fs from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import { etcdEnvoyTest, requireEtcd, startEtcd } from '../support/etcd.ts';
import { envoyHosts, REGISTRY_API_CONFIG, requireEnvoy, startBackend, startControlPlaneProcess, startEnvoy, tempDir, type ControlPlaneProcess } from '../support/mesh.ts';

const CLUSTER = 'outbound|80||api.default';
import { waitFor } from '../support/processes.ts';


async function connectedTo(cp: ControlPlaneProcess, nodeId: string): Promise<boolean> {
  const { proxies } = await cp.api<{ proxies: { nodeId: string }[] }>('/api/v1/proxies');
  return proxies.some((p) => p.nodeId === nodeId);
}

etcdEnvoyTest.serial('replicas on one etcd serve the same endpoints, and a dead replica\'s proxies and checks move to the other', async (t) => {
  if (!requireEnvoy(t) || !requireEtcd(t)) return;
  const etcd = await startEtcd(t);
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'api.yaml'), REGISTRY_API_CONFIG);
  const cpOptions = { configDir: dir, extraArgs: ['--store', `etcd://${etcd.endpoint}`] };
  process.env.TESSERA_ETCD_LEASE_TTL = '2';
  const replicas = [await startControlPlaneProcess(t, cpOptions), await startControlPlaneProcess(t, cpOptions)];

  // One Envoy names both replicas, and connects to one of them: that one will die.
  const both = await startEnvoy(t, { xdsPorts: replicas.map((r) => r.xdsPort), mode: 'delta', nodeId: 'both' });
  const doomed = await waitFor('the Envoy to show up on a replica', async () => {
    for (const r of replicas) if (await connectedTo(r, 'both')) return r;
    return undefined;
  });
  const survivor = replicas.find((r) => r !== doomed)!;
  const watcher = await startEnvoy(t, { xdsPorts: [survivor.xdsPort], mode: 'sotw', nodeId: 'watcher' });

  // Registered through the doomed replica, seen by an Envoy on the survivor within 1 s.
  const backends = [await startBackend(t, 'a'), await startBackend(t, 'b')];
  const check = { http: '/', interval: '200ms', timeout: '200ms', unhealthyThreshold: 2 };
  const registeredAt = Date.now();
  for (const b of backends) {
    const res = await request(`${doomed.adminUrl}/api/v1/services/api/instances/${b.name}`, {
      method: 'PUT',
      body: JSON.stringify({ address: '127.0.0.1', port: b.port, check }),
    });
    t.is(res.statusCode, 201, await res.body.text());
  }
  await waitFor('the survivor\'s Envoy to get both instances', async () => (await envoyHosts(watcher, CLUSTER)).length === 2, 3000, 20);
  const took = Date.now() - registeredAt;
  t.log(`registered on one replica, in an Envoy of the other after ${took} ms`);
  t.true(took <= 1500, `took ${took} ms`);
  await waitFor('both Envoys to agree', async () => (await envoyHosts(both, CLUSTER)).length === 2);

  // Kill the replica the first Envoy is on: it reconnects to the survivor; traffic flows.
  const failures: string[] = [];
  let served = 0;
  let loading = true;
  const load = (async () => {
    while (loading) {
      const res = await request(`http://127.0.0.1:${both.outboundPort}/`, { headers: { host: 'api' } });
      await res.body.dump();
      if (res.statusCode === 200) served++;
      else failures.push(`status ${res.statusCode}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  await new Promise((r) => setTimeout(r, 300));
  process.kill(doomed.process.child.pid!, 'SIGKILL');
  await waitFor('the Envoy to reconnect to the survivor', () => connectedTo(survivor, 'both'), 20_000, 100);

  // The survivor now checks every instance: a backend that dies turns unhealthy there.
  await new Promise((r) => setTimeout(r, 2500)); // the dead replica's lease runs out
  await backends[1].close();
  await waitFor('the survivor to find b unhealthy', async () => {
    const { instances } = await survivor.api<{ instances: { id: string; health: string }[] }>('/api/v1/services/api');
    return instances.find((i) => i.id === 'b')?.health === 'unhealthy';
  }, 5000, 50);
  await waitFor('b to leave both Envoys', async () => (await envoyHosts(both, CLUSTER)).length === 1 && (await envoyHosts(watcher, CLUSTER)).length === 1, 3000);
  loading = false;
  await load;
  t.true(served > 50, `${served} requests served`);
  t.deepEqual(failures, [], 'no request failed while the replica died');
});
