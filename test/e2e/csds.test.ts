// CSDS on the xDS port, read with a gRPC client of the real service definition while
// a real Envoy and a real grpc-js-xds client are connected: each client's resources
// with their versions and ACK/NACK state, and Envoy's error for what it rejected.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import { startEchoServer } from '../../examples/demo/echo-grpc.ts';
import { grpcPackageDefinition } from '../../protos/loader.ts';
import { decodeAny } from '../../control-plane/xds/resources/codec.ts';
import { TypeUrl } from '../../control-plane/xds/resources/type-urls.ts';
import { grpcBootstrap } from '../../sidecar/bootstrap/bootstrap.ts';
import { repoRoot, requireEnvoy, serviceWithInstance, startBackend, startControlPlaneProcess, startEnvoy, tempDir } from '../support/mesh.ts';
import { freePort, waitFor } from '../support/processes.ts';

interface GenericXdsConfig {
  type_url: string;
  name: string;
  version_info: string;
  xds_config?: { type_url: string; value: Buffer };
  config_status: string;
  client_status: string;
  error_state?: { details: string };
}
interface ClientStatusResponse {
  config: { node: { id: string }; generic_xds_configs?: GenericXdsConfig[] }[];
}

function csdsClient(port: number) {
  const definition = grpc.loadPackageDefinition(grpcPackageDefinition()) as any;
  const Csds = definition.envoy.service.status.v3.ClientStatusDiscoveryService as grpc.ServiceClientConstructor;
  const client = new Csds(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const fetch = (request: object) =>
    new Promise<ClientStatusResponse>((resolve, reject) =>
      (client as any).FetchClientStatus(request, (err: Error | null, res: ClientStatusResponse) => (err ? reject(err) : resolve(res))),
    );
  return { fetch, close: () => client.close() };
}

test.serial('CSDS reports every connected client with its resources, versions and ACK or NACK state', async (t) => {
  if (!requireEnvoy(t)) return;
  const web = await startBackend(t, 'web');
  const occupant = await startBackend(t, 'occupant');
  const echo = await startEchoServer('echo', await freePort());
  t.teardown(() => echo.close());
  const dir = tempDir(t);
  fs.writeFileSync(
    path.join(dir, 'services.yaml'),
    [serviceWithInstance('web', { port: 80, targetPort: web.port }), serviceWithInstance('echo', { port: echo.port, targetPort: echo.port, appProtocol: 'grpc' })].join('---\n'),
  );
  const cp = await startControlPlaneProcess(t, { configDir: dir });
  await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'delta', nodeId: 'csds-envoy' });
  // This one's inbound port is taken: Envoy NACKs its listeners.
  await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'sotw', nodeId: 'csds-clash', service: 'clash', inbound: { port: occupant.port, appPort: 1 } }).catch(() => undefined);
  const env = { ...process.env, HOLD: '1', GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(grpcBootstrap({ nodeId: 'csds-grpc', xds: [{ host: '127.0.0.1', port: cp.xdsPort }] })) };
  const grpcClient = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'test/support/grpc-once.ts'), 'echo', '1'], { env, cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => grpcClient.kill('SIGKILL'));
  let out = '';
  grpcClient.stdout!.on('data', (c) => (out += c));
  await waitFor('the gRPC client to make its call', () => out.includes('"echo":1'), 20_000);

  const csds = csdsClient(cp.xdsPort);
  t.teardown(() => csds.close());
  const all = await waitFor('CSDS to show all three clients settled', async () => {
    const res = await csds.fetch({});
    const settled = res.config.length === 3 && res.config.every((c) => (c.generic_xds_configs ?? []).every((g) => g.config_status !== 'STALE'));
    return settled && res;
  });
  const byNode = new Map(all.config.map((c) => [c.node.id, c.generic_xds_configs ?? []]));

  const envoy = byNode.get('csds-envoy')!;
  const cluster = envoy.find((g) => g.type_url === TypeUrl.Cluster && g.name === 'outbound|80||web.default');
  t.truthy(cluster, JSON.stringify(envoy.map((g) => g.name)));
  t.is(cluster!.config_status, 'SYNCED');
  t.is(cluster!.client_status, 'ACKED');
  t.is(decodeAny(cluster!.xds_config!).name, 'outbound|80||web.default', 'the resource itself, decodable');
  t.true(envoy.some((g) => g.type_url === TypeUrl.ClusterLoadAssignment && g.config_status === 'SYNCED'));

  const grpcConfigs = byNode.get('csds-grpc')!;
  t.deepEqual(
    grpcConfigs.filter((g) => g.type_url === TypeUrl.Listener).map((g) => `${g.name}:${g.client_status}`),
    ['echo:ACKED'],
    'a proxyless client holds only what it asked for',
  );

  const clash = byNode.get('csds-clash')!;
  const listener = clash.find((g) => g.type_url === TypeUrl.Listener && g.name === `inbound_${occupant.port}`);
  t.is(listener?.config_status, 'ERROR');
  t.is(listener?.client_status, 'NACKED');
  t.regex(listener?.error_state?.details ?? '', new RegExp(`${occupant.port}|address already in use`, 'i'));

  const one = await csds.fetch({ node_matchers: [{ node_id: { exact: 'csds-grpc' } }], exclude_resource_contents: true });
  t.deepEqual(one.config.map((c) => c.node.id), ['csds-grpc']);
  t.true((one.config[0].generic_xds_configs ?? []).every((g) => !g.xds_config));
  const err = await t.throwsAsync(csds.fetch({ node_matchers: [{ node_id: { safe_regex: { regex: '.*' } } }] }));
  t.regex(err!.message, /not supported/);
});
