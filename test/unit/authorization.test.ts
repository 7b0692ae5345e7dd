// AuthorizationPolicy: loading (every refusal at its file:line) and translation to
// Envoy RBAC (which policies reach which sidecar, Istio's DENY-then-ALLOW order, and
// the encoded listener decoding back to what was meant). Behaviour through a real
// Envoy is in test/e2e/authorization.test.ts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { analyze } from '../../control-plane/config/analyze.ts';
import { loadConfigDir } from '../../control-plane/config/load.ts';
import type { ProxyContext } from '../../control-plane/model/types.ts';
import { translate } from '../../control-plane/translate/index.ts';
import { decodeAny, encodeAny } from '../../control-plane/xds/resources/codec.ts';
import { TypeUrl } from '../../control-plane/xds/resources/type-urls.ts';
import { goldenCases } from '../golden/cases.ts';

function dir(t: ExecutionContext, files: Record<string, string>): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-authz-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(d, name), text);
  return d;
}

const services = `apiVersion: v1
kind: Service
metadata: {name: ratings}
spec:
  ports: [{name: http, port: 80, targetPort: 9080, appProtocol: http}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  ports:
  - {name: http, port: 80, targetPort: 8080, appProtocol: http}
  - {name: tcp, port: 5432, appProtocol: tcp}
`;

const policy = (spec: string, name = 'p') => `apiVersion: tessera.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: ${name}}
spec:
${spec}`;

/** Loads `policies.yaml` beside the services and returns its errors as `line: message`. */
function errorsOf(t: ExecutionContext, text: string): string[] {
  const { errors } = loadConfigDir(dir(t, { 'services.yaml': services, 'policies.yaml': text }));
  for (const e of errors) t.is(e.file, 'policies.yaml', `${e.file}:${e.line}: ${e.message}`);
  return errors.map((e) => `${e.line}: ${e.message}`);
}

test("DESIGN.md's example policy loads, with service accounts resolved in the policy's namespace", (t) => {
  const d = dir(t, {
    'services.yaml': services,
    'policies.yaml': policy(`  targetRefs: [{group: "", kind: Service, name: ratings}]
  action: ALLOW
  rules:
  - from: [{serviceAccounts: [reviews-v1, other/reviews-v2], namespaces: [default]}]
    to: [{methods: [GET], paths: ["/ratings/*"]}]
    when: [{key: "request.headers[X-Team]", values: [ratings]}]
`),
  });
  const { errors, model } = loadConfigDir(d);
  t.deepEqual(errors, []);
  const [p] = model.authorizationPolicies ?? [];
  t.is(p.action, 'ALLOW');
  t.deepEqual(p.targets, [{ service: 'ratings', namespace: 'default' }]);
  t.deepEqual(p.rules[0].from, [
    {
      serviceAccounts: [
        { name: 'reviews-v1', namespace: 'default' },
        { name: 'reviews-v2', namespace: 'other' },
      ],
      namespaces: ['default'],
    },
  ]);
  t.deepEqual(p.rules[0].to[0].methods, ['GET']);
  t.is(p.rules[0].when[0].header, 'x-team', 'header names are matched lowercase, as Envoy stores them');
});

test('the trust domain defaults to tessera.local (DESIGN.md)', (t) => {
  const d = dir(t, { 'mesh.yaml': 'apiVersion: tessera.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {}\n' });
  t.is(loadConfigDir(d).model.meshConfig?.trustDomain, 'tessera.local');
});

// Each refusal: the policy text, the line the error must be on, and what it must say.
const refusals: [string, string, number, RegExp][] = [
  ['an unknown field', `  targetRefs: [{name: ratings}]\n  rules:\n  - to: [{methods: [GET], hosts: [x]}]\n`, 7, /unknown field 'spec\.rules\[0\]\.to\[0\]\.hosts'/],
  ["Istio's selector (workloads are chosen by targetRefs here)", `  selector: {matchLabels: {app: ratings}}\n`, 5, /unknown field 'spec\.selector'/],
  ['a CUSTOM action', `  action: CUSTOM\n`, 5, /spec\.action must be one of "ALLOW", "DENY"/],
  ['a targetRef to a kind other than Service', `  targetRefs: [{kind: Deployment, name: ratings}]\n`, 5, /spec\.targetRefs\[0\]\.kind must be "Service"/],
  ['a targetRef to an unknown Service', `  targetRefs: [{kind: Service, name: ratigns}]\n`, 5, /targetRef 'ratigns' names no Service in namespace default \(declared: ratings, db\)/],
  ['a targetRef into another namespace', `  targetRefs: [{name: ratings, namespace: prod}]\n`, 5, /targetRefs must name Services in the policy's own namespace \(default\), not prod/],
  ['an empty list', `  rules:\n  - to: [{methods: []}]\n`, 6, /methods must NOT have fewer than 1 items/],
  ['an empty from entry', `  rules:\n  - from: [{}]\n`, 6, /a from entry needs at least one of principals, serviceAccounts, namespaces/],
  ['an unknown method', `  rules:\n  - to: [{methods: [get]}]\n`, 6, /methods\[0\] must be one of "GET"/],
  ['a path with * in the middle', `  rules:\n  - to: [{paths: ["/a/*/b"]}]\n`, 6, /path "\/a\/\*\/b" puts \* in the middle/],
  ['a path not starting with /', `  rules:\n  - to: [{paths: ["ratings"]}]\n`, 6, /path "ratings" must start with \//],
  ['a principal that is not a SPIFFE ID', `  rules:\n  - from: [{principals: ["cluster.local/ns/default/sa/x"]}]\n`, 6, /is not a SPIFFE ID; write spiffe:\/\/TRUST_DOMAIN/],
  ['a principal prefix without the spiffe:// scheme', `  rules:\n  - from: [{principals: ["cluster.local/ns/*"]}]\n`, 6, /principal "cluster\.local\/ns\/\*" is not a SPIFFE ID/],
  ['a malformed service account', `  rules:\n  - from: [{serviceAccounts: ["a/b/c"]}]\n`, 6, /service account "a\/b\/c" must be NAME .* or NAMESPACE\/NAME/],
  ['a when key other than request.headers', `  rules:\n  - when: [{key: source.ip, values: [10.0.0.1]}]\n`, 6, /when key "source\.ip" is not supported; the supported key is request\.headers\[NAME\]/],
  ['a when with neither values nor notValues', `  rules:\n  - when: [{key: "request.headers[x]"}]\n`, 6, /needs values or notValues/],
  [
    'methods on a Service with a tcp port',
    `  targetRefs: [{name: db}]\n  rules:\n  - from: [{namespaces: [default]}]\n    to:\n    - methods: [GET]\n`,
    9,
    /methods can only be checked on HTTP, but Service default\/db port 5432 \(instance port 5432\) has appProtocol tcp/,
  ],
  [
    'a header condition on a Service with a tcp port',
    `  targetRefs: [{name: db}]\n  rules:\n  - when:\n    - {key: "request.headers[x-user]", values: [a]}\n`,
    8,
    /when on request\.headers\[x-user\] can only be checked on HTTP/,
  ],
  [
    'paths in a namespace-wide policy of a namespace with a tcp port',
    `  action: DENY\n  rules:\n  - to: [{paths: ["/admin*"]}]\n`,
    7,
    /paths can only be checked on HTTP, but Service default\/db port 5432/,
  ],
  [
    'a service port where the instance port is meant',
    `  targetRefs: [{name: ratings}]\n  rules:\n  - to: [{ports: [80]}]\n`,
    7,
    /port 80 is no instance port of its targets \(9080\); 80 is the port clients dial, the sidecar receives on instance port 9080/,
  ],
];

for (const [what, spec, line, message] of refusals) {
  test(`an AuthorizationPolicy with ${what} is refused at its line`, (t) => {
    const errors = errorsOf(t, policy(spec));
    t.true(
      errors.some((e) => e.startsWith(`${line}: `) && message.test(e)),
      `expected line ${line} matching ${message}, got:\n${errors.join('\n')}`,
    );
  });
}

test('methods limited to the HTTP ports of a Service that also has a tcp port are accepted', (t) => {
  t.deepEqual(errorsOf(t, policy(`  targetRefs: [{name: db}]\n  rules:\n  - to: [{methods: [GET], ports: [8080]}]\n`)), []);
});

test('two AuthorizationPolicies with one name in one namespace are refused', (t) => {
  const errors = errorsOf(t, `${policy('  action: DENY\n', 'twin')}---\n${policy('  action: ALLOW\n', 'twin')}`);
  t.true(errors.some((e) => /^9: AuthorizationPolicy default\/twin is declared twice \(first at policies\.yaml:3\)/.test(e)), errors.join('\n'));
});

test('analyze warns about an ALLOW naming a service account no known workload runs as, at its file:line', (t) => {
  const text = [
    policy('  targetRefs: [{name: ratings}]\n  rules:\n  - from: [{serviceAccounts: [db, reveiws]}]\n', 'typo'),
    policy('  action: DENY\n  rules:\n  - from: [{serviceAccounts: [nobody]}]\n', 'deny-nobody'),
  ].join('---\n');
  const { model, errors } = loadConfigDir(dir(t, { 'services.yaml': services, 'policies.yaml': text }));
  t.deepEqual(errors, []);
  const findings = analyze({ model }).filter((f) => f.code === 'unknown-service-account');
  t.is(findings.length, 1, 'db is a known workload; a DENY naming nobody locks nobody out');
  t.like(findings[0], { file: 'policies.yaml', line: 3 });
  t.regex(findings[0].message, /AuthorizationPolicy default\/typo allows service account default\/reveiws, which no known workload runs as/);
  t.is(analyze({ model, registry: [{ id: 'r', service: 'reveiws', namespace: 'default', address: '10.0.0.1', port: 1, labels: {}, health: 'healthy', source: 'registry' }] }).filter((f) => f.code === 'unknown-service-account').length, 0, 'a registered service counts as a workload');
});

// ---- translation ----

const sidecar = (service: string, namespace = 'default'): ProxyContext => ({
  kind: 'sidecar',
  service,
  namespace,
  outbound: { address: '127.0.0.1', port: 15001 },
  inbound: { address: '127.0.0.1', port: 9080, appPort: 19080, appAddress: '127.0.0.1' },
});

/** The inbound listener's HTTP connection manager config, for `proxy`. */
function inboundManager(t: ExecutionContext, text: string, proxy: ProxyContext): any {
  const { model, errors } = loadConfigDir(dir(t, { 'services.yaml': services, 'policies.yaml': text }));
  t.deepEqual(errors, []);
  const listeners = translate({ model, endpoints: [], proxy })[TypeUrl.Listener] ?? [];
  return (listeners.find((l) => l.name === 'inbound_9080')!.resource as any).filter_chains[0].filters[0].typed_config;
}

const filterNames = (hcm: any): string[] => hcm.http_filters.map((f: { name: string }) => f.name);

test("a sidecar enforces its own service's policies and its namespace's untargeted ones, DENY before ALLOW before the router", (t) => {
  const text = [
    policy('  targetRefs: [{name: ratings}]\n  action: ALLOW\n  rules: [{to: [{methods: [GET]}]}]\n', 'ratings-allow'),
    policy('  action: DENY\n  rules: [{to: [{paths: ["/admin*"], ports: [9080]}]}]\n', 'ns-deny'),
  ].join('---\n');
  const ratings = inboundManager(t, text, sidecar('ratings'));
  t.deepEqual(filterNames(ratings), ['envoy.filters.http.rbac.deny', 'envoy.filters.http.rbac.allow', 'envoy.filters.http.router']);
  t.deepEqual(ratings.normalize_path, { value: true }, 'paths are normalized where a policy applies');
  t.deepEqual(filterNames(inboundManager(t, text, sidecar('db'))), ['envoy.filters.http.rbac.deny', 'envoy.filters.http.router'], 'db gets only the namespace-wide DENY');
  const other = inboundManager(t, text, sidecar('ratings', 'other'));
  t.deepEqual(filterNames(other), ['envoy.filters.http.router'], 'another namespace gets nothing');
  t.is(other.normalize_path, undefined, 'and its paths reach the app as sent');
});

test('an ALLOW policy with no rules allows nothing: an ALLOW filter with no policies', (t) => {
  const hcm = inboundManager(t, policy('  targetRefs: [{name: ratings}]\n'), sidecar('ratings'));
  t.deepEqual(filterNames(hcm), ['envoy.filters.http.rbac.allow', 'envoy.filters.http.router']);
  t.deepEqual(hcm.http_filters[0].typed_config.rules, { action: 'ALLOW', policies: {} });
});

test('the golden RBAC listeners encode and decode back unchanged (no field or Any lost)', (t) => {
  const c = goldenCases().find((g) => g.name === '08-authorization')!;
  const listeners = translate(c.input)[TypeUrl.Listener]!;
  t.true(listeners.some((l) => JSON.stringify(l.resource).includes('envoy.extensions.filters.network.rbac.v3.RBAC')));
  for (const l of listeners) {
    const plain = JSON.parse(JSON.stringify(l.resource));
    t.deepEqual(decodeAny(encodeAny(TypeUrl.Listener, plain)), plain, l.name);
  }
});
