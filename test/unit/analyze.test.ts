// `tessera analyze`: a config that loads but probably does not do what was meant
// gets warnings naming file:line; the running config is analysed with the
// registry's health too.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { request } from 'undici';
import { startControlPlaneProcess, tempDir, tesseraBin } from '../support/mesh.ts';
import { waitFor } from '../support/processes.ts';
import { analyze } from '../../control-plane/config/analyze.ts';
import { loadConfigDir } from '../../control-plane/config/load.ts';

const run = promisify(execFile);

const CONFIG = `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports: [{name: http, port: 80, appProtocol: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-v1}
spec:
  ports: [{name: http, port: 80, appProtocol: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-v2}
spec:
  ports: [{name: http, port: 80, appProtocol: http}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-v1-a
  labels: {kubernetes.io/service-name: web-v1}
addressType: IPv4
ports: [{name: http, port: 80}]
endpoints: [{addresses: ["10.0.0.1"]}]
`;

const ROUTES = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{kind: Service, name: web}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: web-v1, port: 80, weight: 100}, {name: web-v2, port: 80, weight: 0}]
  - matches: [{path: {type: PathPrefix, value: /api/}}]
    backendRefs: [{name: web-v2, port: 80}]
---
apiVersion: tessera.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web-v2}
spec:
  targetRefs: [{group: "", kind: Service, name: web-v2}]
  connectTimeout: 1s
`;

function dir(t: any) {
  const d = tempDir(t);
  fs.writeFileSync(path.join(d, 'services.yaml'), CONFIG);
  fs.writeFileSync(path.join(d, 'routes.yaml'), ROUTES);
  return d;
}

test('analyze DIR warns about a zero weight, a shadowed match, and backends and policies with no instances, at file:line', async (t) => {
  const d = dir(t);
  const { stdout } = await run(process.execPath, [tesseraBin, 'analyze', d]);
  const lines = stdout.trim().split('\n');
  t.true(lines.some((l) => /routes\.yaml:\d+: warning \[zero-weight\]: HTTPRoute default\/web rule 1: backend web-v2 has weight 0/.test(l)), stdout);
  t.true(lines.some((l) => /warning \[shadowed-match\]: HTTPRoute default\/web rule 2 never matches: HTTPRoute default\/web rule 1 has the same match/.test(l)), stdout);
  t.true(lines.some((l) => /warning \[no-instances\]: HTTPRoute default\/web rule 2: backend web-v2 has no instances in any EndpointSlice/.test(l)), stdout);
  t.true(lines.some((l) => /routes\.yaml:\d+: warning \[policy-without-instances\]: TrafficPolicy default\/web-v2/.test(l)), stdout);
  t.false(lines.some((l) => /backend web-v1/.test(l) && /no-instances/.test(l)), 'web-v1 has an instance');
  t.is(lines.at(-1), '4 warnings');
  const strict = await run(process.execPath, [tesseraBin, 'analyze', d, '--strict']).catch((e) => e);
  t.is(strict.code, 1, '--strict fails on warnings');
});

test('analyze of a clean config says so and exits 0; a broken one prints its errors and exits 1', async (t) => {
  const clean = tempDir(t);
  fs.writeFileSync(path.join(clean, 'services.yaml'), CONFIG.split('---\n').slice(0, 2).join('---\n'));
  fs.appendFileSync(path.join(clean, 'services.yaml'), '---\n' + CONFIG.split('---\n')[3].replace('web-v1', 'web'));
  const { stdout } = await run(process.execPath, [tesseraBin, 'analyze', clean]);
  t.regex(stdout, /ok: no warnings/);
  const broken = tempDir(t);
  fs.writeFileSync(path.join(broken, 'x.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 0}]}\n');
  const err = await run(process.execPath, [tesseraBin, 'analyze', broken]).catch((e) => e);
  t.is(err.code, 1);
  t.regex(err.stderr, /x\.yaml:\d+(:\d+)?: error: /);
});

test('analyze --admin uses the registry: a backend whose only instance fails its check is reported', async (t) => {
  const d = dir(t);
  const cp = await startControlPlaneProcess(t, { configDir: d });
  const res = await request(`${cp.adminUrl}/api/v1/services/web-v2/instances/v2-a`, {
    method: 'PUT',
    body: JSON.stringify({ address: '127.0.0.1', port: 1, check: { tcp: true, interval: '200ms', timeout: '100ms', unhealthyThreshold: 1 } }),
  });
  t.is(res.statusCode, 201, await res.body.text());
  await waitFor('v2-a to fail its check', async () => (await cp.api<{ instances: { health: string }[] }>('/api/v1/services/web-v2')).instances[0]?.health === 'unhealthy');
  const { stdout } = await run(process.execPath, [tesseraBin, 'analyze', '--admin', cp.adminUrl]);
  t.regex(stdout, /\[no-healthy-instances\]: HTTPRoute default\/web rule 2: backend web-v2 has no healthy instance/);
  t.notRegex(stdout, /policy-without-instances/, 'web-v2 has an instance now, if an unhealthy one');
});

test('analyze warns when a STRICT service has instances without a sidecar certificate, and not once they all have one', (t) => {
  const model = loadConfigDir(dir(t)).model;
  const strict = { ...model, meshConfig: { trustDomain: 'tessera.local', mtlsMode: 'STRICT' as const, certificateLifetimeMs: 86_400_000 } };
  const findings = analyze({ model: strict }).filter((f) => f.code === 'strict-without-sidecar');
  t.deepEqual(findings.map((f) => f.message.split(' is STRICT')[0]), ['Service default/web-v1']);
  t.regex(findings[0].message, /web-v1-a-\S+ \(10\.0\.0\.1:80, EndpointSlice\)/);
  t.true(findings[0].line > 0);
  const withSidecars = { ...strict, endpoints: strict.endpoints.map((e) => ({ ...e, labels: { ...e.labels, 'tessera.dev/tls-mode': 'mutual' } })) };
  t.deepEqual(analyze({ model: withSidecars }).filter((f) => f.code === 'strict-without-sidecar'), []);
  // A targeted DISABLE takes the service out of STRICT.
  const exempt = { ...strict, mtlsOverrides: [{ name: 'legacy', targets: [{ service: 'web-v1', namespace: 'default' }], mode: 'DISABLE' as const }] };
  t.deepEqual(analyze({ model: exempt }).filter((f) => f.code === 'strict-without-sidecar'), []);
});
