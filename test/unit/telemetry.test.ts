// The Telemetry kind: what the loader accepts and refuses (with file:line), how a
// targeted document overrides the mesh-wide one, and what the translator emits.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { formatProblem, HEADER_COMMANDS, PLAIN_COMMANDS } from '../../control-plane/config/access-log-format.ts';
import { loadConfigDir } from '../../control-plane/config/load.ts';
import { effectiveTelemetry } from '../../control-plane/model/telemetry.ts';
import type { ProxyContext } from '../../control-plane/model/types.ts';
import { dependencyKey, translate } from '../../control-plane/translate/index.ts';
import { OTLP_COLLECTOR_CLUSTER } from '../../control-plane/translate/names.ts';
import { normalize } from '../../control-plane/xds/resources/codec.ts';
import { TypeUrl } from '../../control-plane/xds/resources/type-urls.ts';

function dir(t: ExecutionContext, files: Record<string, string>): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-telemetry-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(d, name), text);
  return d;
}

const services = `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports: [{name: http, port: 80, appProtocol: http}]
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  ports: [{name: http, port: 80, appProtocol: http}]
`;

const meshWide = `apiVersion: tessera.dev/v1alpha1
kind: Telemetry
metadata: {name: mesh}
spec:
  accessLog:
    path: /var/log/envoy/access.log
    fields: {user: "%REQ(X-USER)%"}
  tracing:
    otlp: {address: "otel-collector:4317"}
    samplingPercent: 10
`;

const sidecar = (service?: string): ProxyContext => ({
  kind: 'sidecar',
  service,
  namespace: 'default',
  outbound: { address: '127.0.0.1', port: 15001 },
  inbound: service ? { address: '127.0.0.1', port: 9080, appPort: 8080, appAddress: '127.0.0.1' } : undefined,
});

test('a mesh-wide Telemetry and a targeted override load, and merge field by field', (t) => {
  const d = dir(t, {
    'services.yaml': services,
    'telemetry.yaml': `${meshWide}---
apiVersion: tessera.dev/v1alpha1
kind: Telemetry
metadata: {name: web}
spec:
  targetRefs: [{group: "", kind: Service, name: web}]
  accessLog: {fields: {route: "%ROUTE_NAME%"}}
  tracing: {samplingPercent: 100, serviceName: web-frontend}
---
apiVersion: tessera.dev/v1alpha1
kind: Telemetry
metadata: {name: api-quiet}
spec:
  targetRefs: [{kind: Service, name: api}]
  accessLog: {disabled: true}
`,
  });
  const { errors, model } = loadConfigDir(d);
  t.deepEqual(errors, []);
  t.deepEqual(effectiveTelemetry(model, 'web', 'default'), {
    accessLog: { path: '/var/log/envoy/access.log', fields: { user: '%REQ(X-USER)%', route: '%ROUTE_NAME%' } },
    tracing: { otlpAddress: 'otel-collector:4317', samplingPercent: 100, serviceName: 'web-frontend' },
  });
  t.deepEqual(effectiveTelemetry(model, 'api', 'default'), { tracing: { otlpAddress: 'otel-collector:4317', samplingPercent: 10 } });
  // An outbound-only sidecar (no service) gets the mesh-wide settings.
  t.deepEqual(effectiveTelemetry(model, undefined, 'default').accessLog?.path, '/var/log/envoy/access.log');
});

test('bad Telemetry values are refused, each at its file:line', (t) => {
  const d = dir(t, {
    'services.yaml': services,
    'bad.yaml': `apiVersion: tessera.dev/v1alpha1
kind: Telemetry
metadata: {name: mesh}
spec:
  accessLog:
    path: relative/access.log
    fields:
      ok: "%RESPONSE_CODE%"
      typo: "%RESPONSE_CODES%"
      stray: "100%"
      bad name: "%PROTOCOL%"
      req: "%REQ%"
  tracing:
    otlp: {address: "collector"}
    samplingPercent: 150
    colour: blue
---
apiVersion: tessera.dev/v1alpha1
kind: Telemetry
metadata: {name: second-mesh}
spec:
  tracing: {otlp: {address: "10.0.0.300:4317"}}
---
apiVersion: tessera.dev/v1alpha1
kind: Telemetry
metadata: {name: nowhere}
spec:
  targetRefs: [{kind: Service, name: missing}]
  accessLog: {path: /dev/stdout}
`,
  });
  const { errors } = loadConfigDir(d);
  const lines = errors.map((e) => `${e.file}:${e.line}: ${e.message}`);
  t.log(lines.join('\n'));
  const has = (line: number, pattern: RegExp) => t.true(errors.some((e) => e.line === line && pattern.test(e.message)), `${line}: ${pattern} in\n${lines.join('\n')}`);
  // Schema errors come first and stop the document's conversion.
  has(15, /samplingPercent must be <= 100/);
  has(16, /unknown field 'spec.tracing.colour'/);
  has(22, /10\.0\.0\.300.*not an IPv4 address/);
  has(28, /targetRef 'missing' names no Service/);
  t.true(errors.every((e) => e.file === 'bad.yaml'));
});

test('access-log format strings: known commands pass, anything else is refused with the reason', (t) => {
  const d = dir(t, {
    'services.yaml': services,
    'bad.yaml': `apiVersion: tessera.dev/v1alpha1
kind: Telemetry
metadata: {name: mesh}
spec:
  accessLog:
    path: relative/access.log
    fields:
      ok: "%RESPONSE_CODE% took %DURATION% ms"
      typo: "%RESPONSE_CODES%"
      stray: "100%"
      bad name: "%PROTOCOL%"
      req: "%REQ%"
  tracing:
    otlp: {address: "collector"}
`,
  });
  const { errors } = loadConfigDir(d);
  const at = (line: number) => errors.filter((e) => e.line === line).map((e) => e.message).join(' | ');
  t.regex(at(6), /must be absolute/);
  t.is(at(8), '');
  t.regex(at(9), /unknown command %RESPONSE_CODES%/);
  t.regex(at(10), /a '%' at position 3 starts no command/);
  t.regex(at(11), /field name "bad name"/);
  t.regex(at(12), /%REQ% needs a header name/);
  t.regex(at(14), /"collector" is not HOST:PORT/);
  for (const c of PLAIN_COMMANDS) t.is(formatProblem(`x %${c}% y`), undefined, c);
  for (const c of HEADER_COMMANDS) t.is(formatProblem(`%${c}(X-A?X-B):12%`), undefined, c);
  t.is(formatProblem('%START_TIME(%Y-%m-%dT%H:%M:%S)%'), undefined);
  t.regex(formatProblem('%DURATION(1)%') ?? '', /takes no argument/);
  t.regex(formatProblem('%REQ(bad header)%') ?? '', /not a header name/);
});

test('an override needs what the mesh-wide Telemetry does not give, and one Service takes one Telemetry', (t) => {
  const d = dir(t, {
    'services.yaml': services,
    't.yaml': `apiVersion: tessera.dev/v1alpha1
kind: Telemetry
metadata: {name: web-tracing}
spec:
  targetRefs: [{kind: Service, name: web}]
  tracing: {samplingPercent: 50}
---
apiVersion: tessera.dev/v1alpha1
kind: Telemetry
metadata: {name: web-logs}
spec:
  targetRefs: [{kind: Service, name: web}]
  accessLog: {fields: {x: "%PROTOCOL%"}}
---
apiVersion: tessera.dev/v1alpha1
kind: Telemetry
metadata: {name: mesh-a}
spec: {accessLog: {disabled: true}}
---
apiVersion: tessera.dev/v1alpha1
kind: Telemetry
metadata: {name: mesh-b}
spec: {}
`,
  });
  const messages = loadConfigDir(d).errors.map((e) => `${e.line}: ${e.message}`);
  const has = (pattern: RegExp) => t.true(messages.some((m) => pattern.test(m)), `${pattern} in\n${messages.join('\n')}`);
  has(/^3: .*web-tracing: tracing needs otlp\.address/);
  has(/^10: .*web-logs: accessLog needs a path/);
  has(/^10: .*Service default\/web is already targeted by Telemetry default\/web-tracing at t\.yaml:3/);
  has(/^22: .*mesh-b: only one Telemetry may be mesh-wide .*mesh-a at t\.yaml:17/);
});

// ---- translation ----

function loadModel(t: ExecutionContext, telemetry: string) {
  const { errors, model } = loadConfigDir(dir(t, { 'services.yaml': services, 'telemetry.yaml': telemetry }));
  t.deepEqual(errors, []);
  return model;
}

type Any = Record<string, any>;

function hcms(resources: ReturnType<typeof translate>): Any[] {
  return (resources[TypeUrl.Listener] ?? []).flatMap((l) => {
    const r = l.resource as Any;
    if (r.api_listener) return [r.api_listener.api_listener];
    return r.filter_chains.flatMap((c: Any) => c.filters.map((f: Any) => f.typed_config));
  });
}

test('sidecar HCMs get the access log and tracer, and the collector cluster exists; proxyless clients get neither', (t) => {
  const model = loadModel(t, meshWide);
  const out = translate({ model, endpoints: [], proxy: sidecar('web') });
  const managers = hcms(out);
  t.is(managers.length, 2, 'outbound and inbound');
  for (const hcm of managers) {
    t.is(hcm.access_log[0].typed_config.path, '/var/log/envoy/access.log');
    t.is(hcm.tracing.provider.typed_config.grpc_service.envoy_grpc.cluster_name, OTLP_COLLECTOR_CLUSTER);
    t.is(hcm.tracing.provider.typed_config.service_name, 'web');
    t.deepEqual(hcm.tracing.random_sampling, { value: 10 });
  }
  const collector = out[TypeUrl.Cluster]?.find((c) => c.name === OTLP_COLLECTOR_CLUSTER)?.resource as Any;
  t.is(collector.type, 'STRICT_DNS');
  // What Envoy would see on the wire keeps every field (the codec refuses unknown ones).
  const listener = out[TypeUrl.Listener]![0];
  const wire = JSON.stringify(normalize(TypeUrl.Listener, listener.resource));
  for (const s of ['"json_format"', '"%RESPONSE_FLAGS%"', '"%REQ(X-USER)%"', 'OpenTelemetryConfig', '"random_sampling"']) t.true(wire.includes(s), s);
  normalize(TypeUrl.Cluster, collector);

  const proxyless = translate({ model, endpoints: [], proxy: { kind: 'proxyless' } });
  t.true(hcms(proxyless).length > 0);
  for (const hcm of hcms(proxyless)) t.deepEqual([hcm.access_log, hcm.tracing], [undefined, undefined]);
  t.false((proxyless[TypeUrl.Cluster] ?? []).some((c) => c.name === OTLP_COLLECTOR_CLUSTER));
  // Byte for byte what a proxyless client gets without any Telemetry.
  t.is(JSON.stringify(proxyless), JSON.stringify(translate({ model: { ...model, telemetry: [] }, endpoints: [], proxy: { kind: 'proxyless' } })));
});

test('an IP collector is a STATIC cluster; /dev/stdout uses Envoy\'s stdout logger; no Telemetry, no trace of it', (t) => {
  const model = loadModel(t, `apiVersion: tessera.dev/v1alpha1
kind: Telemetry
metadata: {name: mesh}
spec:
  accessLog: {path: /dev/stdout}
  tracing: {otlp: {address: "127.0.0.1:4317"}, samplingPercent: 0}
`);
  const out = translate({ model, endpoints: [], proxy: sidecar('web') });
  const collector = out[TypeUrl.Cluster]?.find((c) => c.name === OTLP_COLLECTOR_CLUSTER)?.resource as Any;
  t.is(collector.type, 'STATIC');
  t.deepEqual(collector.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address, { address: '127.0.0.1', port_value: 4317 });
  const [hcm] = hcms(out);
  t.is(hcm.access_log[0].name, 'envoy.access_loggers.stdout');
  t.deepEqual(hcm.tracing.random_sampling, { value: 0 });

  const plain = translate({ model: { ...model, telemetry: [] }, endpoints: [], proxy: sidecar('web') });
  t.false(JSON.stringify(plain).includes('access_log'));
  t.false(JSON.stringify(plain).includes(OTLP_COLLECTOR_CLUSTER));
});

test('the collector cluster depends only on what the cluster key keeps', (t) => {
  // Two sidecars of one service that differ only in their outbound port share CDS;
  // their clusters (collector included) must then be equal.
  const model = loadModel(t, meshWide);
  const a = sidecar('web');
  const b = { ...sidecar('web'), outbound: { address: '127.0.0.1', port: 25001 } } as ProxyContext;
  t.is(dependencyKey(a, TypeUrl.Cluster), dependencyKey(b, TypeUrl.Cluster));
  t.deepEqual(translate({ model, endpoints: [], proxy: a })[TypeUrl.Cluster], translate({ model, endpoints: [], proxy: b })[TypeUrl.Cluster]);
});
