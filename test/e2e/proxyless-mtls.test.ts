// A real @grpc/grpc-js-xds client over mTLS (gRFC A29): `tessera certs` writes its
// certificate files, its bootstrap names them as the `tessera` certificate provider,
// and the control plane's cluster for a STRICT service tells it to use them. The
// server is a real Envoy sidecar in STRICT. (Its own file: grpc-js-xds reads one
// bootstrap per process.)
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { grpcBootstrap } from '../../sidecar/bootstrap/bootstrap.ts';
import { EchoService, startEchoServer } from '../../examples/demo/echo-grpc.ts';
import { envoyTest, requireEnvoy, startControlPlaneProcess, tempDir, tesseraBin } from '../support/mesh.ts';
import { waitFor } from '../support/processes.ts';
import { startSidecar } from '../support/sidecar.ts';

const run = promisify(execFile);

function echo(client: grpc.Client): Promise<{ backend: string }> {
  return new Promise((resolve, reject) =>
    (client as any).Echo({ message: 'hi' }, { deadline: Date.now() + 5000 }, (err: Error | null, reply: { backend: string }) => (err ? reject(err) : resolve(reply))),
  );
}

envoyTest.serial('a grpc-js-xds client calls a STRICT service over mTLS with certificates from `tessera certs`; without them it is refused', async (t) => {
  if (!requireEnvoy(t)) return;
  const dir = tempDir(t);
  fs.writeFileSync(
    path.join(dir, 'mesh.yaml'),
    `apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  ports: [{name: grpc, port: 50051, appProtocol: grpc}]
---
apiVersion: tessera.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  mtls: {mode: STRICT}
`,
  );
  const cp = await startControlPlaneProcess(t, { configDir: dir, readyTimeoutMs: 60_000 });
  const token = async (serviceAccount: string) => {
    const { stdout } = await run(process.execPath, [tesseraBin, 'join-token', 'create', '--service-account', serviceAccount, '--admin', cp.adminUrl]);
    const file = path.join(tempDir(t, 'tessera-token-'), 'token');
    fs.writeFileSync(file, stdout.trim(), { mode: 0o600 });
    return file;
  };
  const app = await startEchoServer('echo-1', 0);
  t.teardown(() => app.close());
  const server = await startSidecar(t, { service: 'echo', appPort: app.port, controlPlane: cp, extraArgs: ['--join-token-file', await token('echo')] });
  await server.waitReady(60_000);

  const certDir = path.join(tempDir(t, 'tessera-certs-'), 'certs');
  await run(process.execPath, [tesseraBin, 'certs', '--once', '--cert-dir', certDir, '--join-token-file', await token('client'), '--control-plane', cp.adminUrl]);
  t.is(fs.statSync(path.join(certDir, 'key.pem')).mode & 0o777, 0o600);
  const { stdout: bootstrap } = await run(process.execPath, [tesseraBin, 'bootstrap', '--grpc', '--node-id', 'grpc-client', '--xds', `127.0.0.1:${cp.xdsPort}`, '--cert-dir', certDir]);
  t.deepEqual(JSON.parse(bootstrap), grpcBootstrap({ nodeId: 'grpc-client', xds: [{ host: '127.0.0.1', port: cp.xdsPort }], certDir }));
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = bootstrap;
  const xds = await import('@grpc/grpc-js-xds');
  xds.register();

  const secure = new EchoService('xds:///echo', new xds.XdsChannelCredentials(grpc.credentials.createInsecure()));
  t.teardown(() => secure.close());
  await waitFor('an RPC over mTLS through xDS', () => echo(secure).catch(() => undefined), 30_000, 200);
  for (let i = 0; i < 20; i++) t.is((await echo(secure)).backend, 'echo-1');

  // The same channel without xDS credentials ignores the security config and speaks
  // plaintext, which the STRICT sidecar refuses.
  const plaintext = new EchoService('xds:///echo', grpc.credentials.createInsecure());
  t.teardown(() => plaintext.close());
  const err = await t.throwsAsync(echo(plaintext));
  t.is((err as grpc.ServiceError).code, grpc.status.UNAVAILABLE);

  const { proxies } = await cp.api<{ proxies: { nodeId: string; types: Record<string, { lastNack?: unknown }> }[] }>('/api/v1/proxies');
  const me = proxies.find((p) => p.nodeId === 'grpc-client');
  t.truthy(me);
  t.false(Object.values(me!.types).some((s) => s.lastNack), 'grpc-js-xds accepted every resource');
});
