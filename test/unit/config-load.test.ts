import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { loadConfigDir } from '../../control-plane/config/load.ts';
import { watchConfigDir } from '../../control-plane/config/watch.ts';
import { validateCommand } from '../../control-plane/cli/validate.ts';
import { repoRoot } from '../support/mesh.ts';

function dir(t: ExecutionContext, files: Record<string, string>): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-config-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(d, name)), { recursive: true });
    fs.writeFileSync(path.join(d, name), text);
  }
  return d;
}

const services = `apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  ports: [{name: http, port: 9080, appProtocol: http}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v1, namespace: default}
spec:
  ports: [{port: 9080, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: ratings}
spec:
  selector: {app: ratings}
  ports: [{name: grpc, port: 50051, appProtocol: grpc}]
`;

test('the example mesh loads with no errors', (t) => {
  const { errors, model } = loadConfigDir(path.join(repoRoot, 'examples/mesh'));
  t.deepEqual(errors, []);
  t.true(model.services.length >= 4);
});

test('every kind is read into the model', (t) => {
  const d = dir(t, {
    'services.yaml': services,
    'slices/reviews.yml': `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: reviews-v1-abc
  labels: {kubernetes.io/service-name: reviews-v1}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
- {addresses: ["10.0.0.1"], zone: a}
- {addresses: ["10.0.0.2"], conditions: {ready: false}}
`,
    'routes.yaml': `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews}
spec:
  parentRefs: [{kind: Service, name: reviews, port: 9080}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: x-user, value: "^a.*", type: RegularExpression}], method: GET}]
    backendRefs: [{name: reviews-v1, port: 9080, weight: 3}]
    timeouts: {request: 1m30s, backendRequest: 500ms}
    retry: {attempts: 2, codes: [502, 503], backoff: 25ms}
    filters:
    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}], remove: [c]}}
    - {type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /v1}}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: ratings}, percent: 10}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: ratings}
spec:
  parentRefs: [{kind: Service, name: ratings}]
  rules:
  - matches: [{method: {service: shop.Ratings, method: Get}}, {method: {service: shop.Ratings}}]
    backendRefs: [{name: ratings}]
`,
    'policy.yaml': `apiVersion: tessera.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: p}
spec:
  targetRefs: [{group: "", kind: Service, name: reviews-v1}]
  connectTimeout: 1s
  retry: {attempts: 2, retryOn: [reset], perTryTimeout: 500ms, backoff: {baseInterval: 25ms, maxInterval: 250ms}}
  connectionPool: {maxConnections: 10}
  outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
  loadBalancer: {policy: RingHash, hashOn: {header: x-user}}
  healthCheck: {http: /healthz, interval: 1s}
`,
  });
  const { model, errors, files } = loadConfigDir(d);
  t.deepEqual(errors, []);
  t.deepEqual(files, ['policy.yaml', 'routes.yaml', 'services.yaml', 'slices/reviews.yml']);
  t.deepEqual(model.services.find((s) => s.name === 'reviews-v1')!.ports, [{ name: undefined, port: 9080, targetPort: 8080, appProtocol: 'http' }]);
  t.deepEqual(
    model.endpoints.map((e) => [e.address, e.port, e.zone, e.health]),
    [['10.0.0.1', 8080, 'a', 'healthy'], ['10.0.0.2', 8080, undefined, 'unhealthy']],
  );
  const http = model.routes.find((r) => r.kind === 'HTTPRoute')!;
  const rule = http.rules[0];
  t.deepEqual(rule.matches[0], {
    path: { type: 'PathPrefix', value: '/api' },
    headers: [{ type: 'RegularExpression', name: 'x-user', value: '^a.*' }],
    queryParams: [],
    method: 'GET',
  });
  t.deepEqual(rule.timeouts, { requestMs: 90_000, backendRequestMs: 500 });
  t.deepEqual(rule.retry, { attempts: 2, codes: [502, 503], retryOn: ['connect-failure', 'refused-stream', 'reset'], backoff: { baseIntervalMs: 25 }, perTryTimeoutMs: 500 });
  t.deepEqual(rule.filters.map((f) => f.type), ['RequestHeaderModifier', 'URLRewrite', 'RequestMirror']);
  const grpc = model.routes.find((r) => r.kind === 'GRPCRoute')!;
  t.deepEqual(grpc.rules[0].matches.map((m) => m.path), [
    { type: 'Exact', value: '/shop.Ratings/Get' },
    { type: 'PathPrefix', value: '/shop.Ratings' },
  ]);
  const policy = model.policies[0];
  t.is(policy.connectTimeoutMs, 1000);
  t.deepEqual(policy.retry, { attempts: 2, retryOn: ['reset'], perTryTimeoutMs: 500, backoff: { baseIntervalMs: 25, maxIntervalMs: 250 } });
  t.deepEqual(policy.healthCheck, { http: '/healthz', tcp: undefined, grpc: undefined, intervalMs: 1000, timeoutMs: 1000, healthyThreshold: 1, unhealthyThreshold: 2 });
  t.deepEqual(http.source, { file: 'routes.yaml', line: 3 });
});

test('every error is reported at once, each with file, line and column', (t) => {
  const d = dir(t, {
    'a.yaml': services,
    'b.yaml': `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{kind: Service, name: reviewz}]
  rules:
  - matches: [{path: {type: RegularExpression, value: "/a(?=b)"}}]
    backendRefs: [{name: reviews-v1, port: 1234}]
`,
    'c.yaml': `apiVersion: tessera.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: p}
spec:
  targetRefs: [{name: reviews}]
  conectTimeout: 1s
  timeout: soon
`,
    'd.yaml': 'apiVersion: v1\nkind: Service\nmetadata: {name: x\n',
    'e.yaml': 'apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n',
  });
  const { errors } = loadConfigDir(d);
  const lines = errors.map((e) => `${e.file}:${e.line}:${e.column}: ${e.message}`);
  t.snapshot(lines);
  t.true(lines.some((l) => /^b\.yaml:5:\d+: .*parentRef 'reviewz' names no Service/.test(l)));
  t.true(lines.some((l) => /^b\.yaml:7:\d+: .*invalid regular expression/.test(l)));
  t.true(lines.some((l) => /^b\.yaml:8:\d+: .*has no port 1234/.test(l)));
  t.true(lines.some((l) => /^c\.yaml:6:\d+: .*unknown field 'spec\.conectTimeout'/.test(l)));
  t.true(lines.some((l) => /^c\.yaml:7:\d+: .*spec\.timeout is not a duration/.test(l)));
  t.true(lines.some((l) => /^d\.yaml:\d+:\d+: YAML:/.test(l)));
  t.true(lines.some((l) => /^e\.yaml:2:\d+: unknown kind "Pod"/.test(l)));
});

test('duplicate names, all-zero weights and slices of unknown services are errors', (t) => {
  const d = dir(t, {
    'a.yaml': services + '---\n' + services.split('---')[0],
    'b.yaml': `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{kind: Service, name: reviews}]
  rules:
  - backendRefs: [{name: reviews-v1, weight: 0}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: s, labels: {kubernetes.io/service-name: nope}}
addressType: IPv4
ports: [{port: 1}]
endpoints: [{addresses: ["10.0.0.300"]}]
`,
  });
  const messages = loadConfigDir(d).errors.map((e) => e.message);
  t.true(messages.some((m) => /Service default\/reviews is declared twice \(first at a\.yaml:3\)/.test(m)), messages.join('\n'));
  t.true(messages.some((m) => /every backendRef weight 0/.test(m)));
  t.true(messages.some((m) => /EndpointSlice default\/s 'nope' names no Service/.test(m)));
  t.true(messages.some((m) => /"10\.0\.0\.300" is not an IPv4 address/.test(m)));
});

test('the watcher reports a change once, and not a rewrite with the same content', async (t) => {
  const d = dir(t, { 'a.yaml': services });
  const seen: number[] = [];
  const w = watchConfigDir(d, (r) => seen.push(r.model.services.length), { debounceMs: 50, settleMs: 50, load: async (dir) => loadConfigDir(dir) });
  t.teardown(() => w.close());
  await new Promise((r) => setTimeout(r, 100));
  fs.writeFileSync(path.join(d, 'a.yaml'), services);
  await new Promise((r) => setTimeout(r, 500));
  t.deepEqual(seen, [], 'an identical rewrite is not a change');
  fs.writeFileSync(path.join(d, 'a.yaml'), services.split('---').slice(0, 2).join('---'));
  await new Promise((r) => setTimeout(r, 500));
  t.deepEqual(seen, [2]);
  // Editors that save by writing a temp file and renaming it over the original.
  fs.writeFileSync(path.join(d, '.a.yaml.swp'), services);
  fs.renameSync(path.join(d, '.a.yaml.swp'), path.join(d, 'a.yaml'));
  await new Promise((r) => setTimeout(r, 500));
  t.deepEqual(seen, [2, 3]);
});

test('tessera validate prints each error as file:line:column and exits 1; a good dir exits 0', async (t) => {
  const out: string[] = [];
  const err: string[] = [];
  const sink = (into: string[]) => ({ write: (s: string) => into.push(s) }) as unknown as NodeJS.WritableStream;
  t.is(await validateCommand([path.join(repoRoot, 'examples/mesh')], sink(out), sink(err)), 0);
  t.regex(out.join(''), /^ok: 5 services, 2 routes, 2 policies, 4 endpoints in 5 files/);
  const d = dir(t, { 'x.yaml': 'apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {portz: []}\n' });
  t.is(await validateCommand([d], sink(out), sink(err)), 1);
  t.regex(err.join(''), /x\.yaml:4:\d+: Service a: unknown field 'spec\.portz'/);
  t.is(await validateCommand([path.join(d, 'missing')], sink(out), sink(err)), 2);
});

test('MeshConfig: mesh-wide STRICT, per-Service overrides by targetRefs, and mistakes at their line', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-mtls-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const service = 'apiVersion: v1\nkind: Service\nmetadata: {name: legacy}\nspec: {ports: [{port: 80}]}\n---\n';
  const meshWide = 'apiVersion: tessera.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  mtls: {mode: STRICT}\n  certificateLifetime: 2m\n';
  const override = 'apiVersion: tessera.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: legacy-plaintext}\nspec:\n  targetRefs: [{kind: Service, name: legacy}]\n  mtls: {mode: DISABLE}\n';
  fs.writeFileSync(path.join(dir, 'mesh.yaml'), `${service}${meshWide}---\n${override}`);
  const good = loadConfigDir(dir);
  t.deepEqual(good.errors, []);
  t.like(good.model.meshConfig, { mtlsMode: 'STRICT', trustDomain: 'tessera.local', certificateLifetimeMs: 120_000 });
  t.deepEqual(good.model.mtlsOverrides?.map((o) => [o.name, o.mode, o.targets]), [['legacy-plaintext', 'DISABLE', [{ service: 'legacy', namespace: 'default' }]]]);

  // An override may not set mesh-wide fields; a second mesh-wide MeshConfig is refused;
  // a target that does not exist is named.
  const bad = override.replace('mtls: {mode: DISABLE}', 'mtls: {mode: DISABLE}\n  trustDomain: other.local').replace('name: legacy}]', 'name: nowhere}]');
  fs.writeFileSync(path.join(dir, 'mesh.yaml'), `${service}${meshWide}---\n${meshWide}---\n${bad}`);
  const messages = loadConfigDir(dir).errors.map((e) => `${e.line}: ${e.message}`);
  t.true(messages.some((m) => /^15: .*only one mesh-wide MeshConfig/.test(m)), messages.join('\n'));
  t.true(messages.some((m) => /^26: .*trustDomain is mesh-wide/.test(m)), messages.join('\n'));
  t.true(messages.some((m) => /^24: .*nowhere/.test(m)), messages.join('\n'));
  fs.writeFileSync(path.join(dir, 'mesh.yaml'), meshWide.replace('2m', '10s'));
  t.regex(loadConfigDir(dir).errors[0]?.message ?? '', /certificateLifetime must be between 1m and 2160h/);
});
