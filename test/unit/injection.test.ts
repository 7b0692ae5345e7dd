// The pure pod mutation, `tessera inject` over manifests and the AdmissionReview answer.
import test from 'ava';
import fastJsonPatch from 'fast-json-patch';
import YAML from 'yaml';
import { review } from '../../sidecar/injection/admission.ts';
import { AdmissionReviewError, InjectionError, ManifestError } from '../../sidecar/injection/errors.ts';
import type { Container, PodTemplate } from '../../sidecar/injection/kube-types.ts';
import { injectManifest } from '../../sidecar/injection/manifest.ts';
import { injectPodTemplate, workloadNameOfPod, type InjectOptions } from '../../sidecar/injection/mutate.ts';

const options: InjectOptions = { image: 'tessera:test', controlPlane: 'http://cp.tessera-system.svc:18080', xds: 'cp.tessera-system.svc:18000', proxyUid: 1337, legacySidecar: false };
const ctx = { namespace: 'shop', workloadName: 'reviews' };

function pod(extra: Partial<Container> = {}, meta: PodTemplate['metadata'] = {}, spec: Partial<PodTemplate['spec']> = {}): PodTemplate {
  return {
    metadata: { labels: { app: 'reviews' }, ...meta },
    spec: {
      initContainers: [{ name: 'migrate', image: 'migrate:1' }],
      containers: [{ name: 'web', image: 'web:1', ports: [{ name: 'http', containerPort: 9080 }], ...extra }],
      ...spec,
    },
  };
}

function injected(template: PodTemplate, opts = options, context = ctx): PodTemplate {
  const result = injectPodTemplate(template, context, opts);
  if (!result.injected) throw new Error(`not injected: ${result.reason}`);
  return result.template;
}

const env = (c: Container) => Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom?.fieldRef?.fieldPath]));
const problemsOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    if (err instanceof InjectionError) return err.problems;
    throw err;
  }
  throw new Error('expected an InjectionError');
};

test('the proxy is a native sidecar after tessera-init and before the user init containers', (t) => {
  const out = injected(pod());
  t.deepEqual(out.spec.initContainers!.map((c) => c.name), ['tessera-init', 'tessera-proxy', 'migrate']);
  t.deepEqual(out.spec.containers.map((c) => c.name), ['web']);
  const proxy = out.spec.initContainers![1];
  t.is(proxy.restartPolicy, 'Always');
  t.like(proxy.startupProbe, { httpGet: { path: '/ready', port: 15021 } });
  t.is(proxy.image, 'tessera:test');
  t.deepEqual(proxy.args, ['sidecar']);
});

test('the proxy declares the stats port 15090 and the pod gets the prometheus.io scrape annotations for it', (t) => {
  const out = injected(pod());
  const proxy = out.spec.initContainers![1];
  t.deepEqual(proxy.ports?.find((p) => p.containerPort === 15090), { name: 'http-envoy-prom', containerPort: 15090, protocol: 'TCP' });
  t.like(out.metadata!.annotations, { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '15090', 'prometheus.io/path': '/stats/prometheus' });
  const legacy = injected(pod(), { ...options, legacySidecar: true });
  t.truthy(legacy.spec.containers[0].ports?.some((p) => p.containerPort === 15090 && p.name === 'http-envoy-prom'));
  t.is(legacy.metadata!.annotations!['prometheus.io/port'], '15090');
});

test('a pod that names its own Prometheus scrape target keeps it: none of the three annotations is added or changed', (t) => {
  const own = injected(pod({}, { annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9100' } }));
  const annotations = own.metadata!.annotations!;
  t.is(annotations['prometheus.io/scrape'], 'true');
  t.is(annotations['prometheus.io/port'], '9100');
  t.false('prometheus.io/path' in annotations);
  const off = injected(pod({}, { annotations: { 'prometheus.io/scrape': 'false' } }));
  t.is(off.metadata!.annotations!['prometheus.io/scrape'], 'false');
  t.false('prometheus.io/port' in off.metadata!.annotations!);
});

test('an app container declaring 15090 is refused: the stats listener owns it', (t) => {
  const problems = problemsOf(() => injectPodTemplate(pod({ ports: [{ containerPort: 15090 }] }), ctx, options));
  t.deepEqual(problems.map((p) => p.path), ['spec.containers[0].ports[0].containerPort']);
  t.regex(problems[0].message, /port 15090 is reserved by the Tessera sidecar/);
});

test('tessera-init runs tessera capture with NET_ADMIN and NET_RAW only, from the annotations', (t) => {
  const out = injected(pod({}, { annotations: { 'tessera.dev/exclude-outbound-ports': '5432, 6379', 'tessera.dev/exclude-outbound-ip-ranges': '10.0.0.0/8,fd00::/8', 'tessera.dev/inbound-ports': '9080,9090' } }));
  const init = out.spec.initContainers![0];
  t.deepEqual(init.args, ['capture', '--inbound-ports', '9080,9090', '--exclude-outbound-ports', '5432,6379', '--exclude-outbound-ip-ranges', '10.0.0.0/8,fd00::/8', '--proxy-uid', '1337', '--outbound-port', '15001', '--inbound-capture-port', '15006']);
  t.deepEqual((init.securityContext as any).capabilities, { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] });
  t.is((init.securityContext as any).privileged, false);
});

test('the proxy gets the service, ports and pod identity from the downward API', (t) => {
  const out = injected(pod({}, { annotations: { 'tessera.dev/drain-timeout': '20s' } }, { terminationGracePeriodSeconds: 45 }));
  t.deepEqual(env(out.spec.initContainers![1]), {
    TESSERA_SERVICE: 'reviews',
    TESSERA_NAMESPACE: 'metadata.namespace',
    TESSERA_INSTANCE_ID: 'metadata.name',
    TESSERA_INSTANCE_ADDRESS: 'status.podIP',
    TESSERA_SERVICE_ACCOUNT: 'spec.serviceAccountName',
    TESSERA_CONTROL_PLANE: 'http://cp.tessera-system.svc:18080',
    TESSERA_XDS: 'cp.tessera-system.svc:18000',
    TESSERA_KUBE_TOKEN_FILE: '/var/run/secrets/tokens/tessera-token',
    TESSERA_APP_PORT: '9080',
    TESSERA_INBOUND_PORTS: '9080',
    TESSERA_DRAIN_TIMEOUT: '20s',
  });
});

test('the proxy proves its identity with a projected service-account token for the audience tessera; a volume of that name is refused', (t) => {
  const out = injected(pod());
  const proxy = out.spec.initContainers![1];
  t.deepEqual(proxy.volumeMounts, [{ name: 'tessera-token', mountPath: '/var/run/secrets/tokens', readOnly: true }]);
  t.deepEqual(out.spec.volumes?.find((v) => v.name === 'tessera-token'), {
    name: 'tessera-token',
    projected: { sources: [{ serviceAccountToken: { audience: 'tessera', expirationSeconds: 3600, path: 'tessera-token' } }] },
  });
  t.throws(() => injected(pod({}, {}, { volumes: [{ name: 'tessera-token', emptyDir: {} }] })), { message: /spec\.volumes\[0\]\.name: a volume named tessera-token exists/ });
});

test('the service name comes from the annotation, then the app labels, then the workload name', (t) => {
  const service = (tpl: PodTemplate) => env(injected(tpl).spec.initContainers![1]).TESSERA_SERVICE;
  t.is(service(pod({}, { labels: { app: 'a' }, annotations: { 'tessera.dev/service': 'ratings' } })), 'ratings');
  t.is(service(pod({}, { labels: { 'app.kubernetes.io/name': 'b', app: 'a' } })), 'b');
  t.is(service(pod({}, { labels: {} })), 'reviews');
});

test('HTTP, TCP and gRPC probes go through the agent on 15020 and the originals travel in TESSERA_APP_PROBES', (t) => {
  const out = injected(
    pod({
      livenessProbe: { httpGet: { path: '/healthz', port: 'http', httpHeaders: [{ name: 'x-probe', value: '1' }] }, periodSeconds: 7, failureThreshold: 4 },
      readinessProbe: { tcpSocket: { port: 9080 }, initialDelaySeconds: 2 },
      startupProbe: { grpc: { port: 9090, service: 'startup' } },
    }),
  );
  const web = out.spec.containers[0];
  t.deepEqual(web.livenessProbe, { httpGet: { path: '/app-health/web/livez', port: 15020, scheme: 'HTTP' }, periodSeconds: 7, failureThreshold: 4 });
  t.deepEqual(web.readinessProbe, { httpGet: { path: '/app-health/web/readyz', port: 15020, scheme: 'HTTP' }, initialDelaySeconds: 2 });
  t.deepEqual(web.startupProbe, { httpGet: { path: '/app-health/web/startupz', port: 15020, scheme: 'HTTP' } });
  t.deepEqual(JSON.parse(env(out.spec.initContainers![1]).TESSERA_APP_PROBES!), {
    '/app-health/web/livez': { httpGet: { path: '/healthz', port: 9080, httpHeaders: [{ name: 'x-probe', value: '1' }] } },
    '/app-health/web/readyz': { tcpSocket: { port: 9080 } },
    '/app-health/web/startupz': { grpc: { port: 9090, service: 'startup' } },
  });
});

test('exec probes and probes aimed at another host are left alone', (t) => {
  const out = injected(pod({ livenessProbe: { exec: { command: ['true'] } }, readinessProbe: { httpGet: { host: '10.0.0.1', path: '/', port: 80 } } }));
  t.deepEqual(out.spec.containers[0].livenessProbe, { exec: { command: ['true'] } });
  t.deepEqual(out.spec.containers[0].readinessProbe, { httpGet: { host: '10.0.0.1', path: '/', port: 80 } });
  t.false(env(out.spec.initContainers![1]).TESSERA_APP_PROBES !== undefined);
});

test('injection records its status and injecting again changes nothing', (t) => {
  const once = injected(pod({ readinessProbe: { tcpSocket: { port: 9080 } } }));
  const status = JSON.parse(once.metadata!.annotations!['tessera.dev/status']);
  t.like(status, { mode: 'native', initContainers: ['tessera-init', 'tessera-proxy'], containers: [], rewrittenProbes: ['/app-health/web/readyz'] });
  t.regex(status.version, /^\d+\.\d+\.\d+/);
  const twice = injectPodTemplate(once, ctx, options);
  t.false(twice.injected);
  t.regex((twice as { reason: string }).reason, /already injected/);
});

test('the original template is not modified', (t) => {
  const original = pod({ livenessProbe: { tcpSocket: { port: 9080 } } });
  const copy = structuredClone(original);
  injected(original);
  t.deepEqual(original, copy);
});

test('legacy mode and tessera.dev/native-sidecar: "false" inject a plain container first', (t) => {
  for (const out of [injected(pod(), { ...options, legacySidecar: true }), injected(pod({}, { annotations: { 'tessera.dev/native-sidecar': 'false' } }))]) {
    t.deepEqual(out.spec.initContainers!.map((c) => c.name), ['tessera-init', 'migrate']);
    t.deepEqual(out.spec.containers.map((c) => c.name), ['tessera-proxy', 'web']);
    t.is(out.spec.containers[0].restartPolicy, undefined);
    t.is(out.metadata!.annotations!['kubectl.kubernetes.io/default-container'], 'web');
    t.like(JSON.parse(out.metadata!.annotations!['tessera.dev/status']), { mode: 'legacy', containers: ['tessera-proxy'] });
  }
  const native = injected(pod({}, { annotations: { 'tessera.dev/native-sidecar': 'true' } }), { ...options, legacySidecar: true });
  t.is(native.spec.initContainers![1].restartPolicy, 'Always');
});

test('system namespaces, hostNetwork pods and opted-out pods are never injected', (t) => {
  for (const namespace of ['kube-system', 'kube-public', 'kube-node-lease']) {
    t.like(injectPodTemplate(pod(), { namespace }, options), { injected: false });
  }
  t.like(injectPodTemplate(pod({}, {}, { hostNetwork: true }), ctx, options), { injected: false });
  t.like(injectPodTemplate(pod({}, { annotations: { 'tessera.dev/inject': 'false' } }), ctx, options), { injected: false });
  t.like(injectPodTemplate(pod({}, { labels: { app: 'x', 'tessera.dev/inject': 'disabled' } }), ctx, options), { injected: false });
});

test('bad annotations are refused, each with its path and what to write instead', (t) => {
  const problems = problemsOf(() =>
    injectPodTemplate(
      pod({ livenessProbe: { httpGet: { path: '/', port: 'admin' } } }, {
        annotations: {
          'tessera.dev/inject': 'yes',
          'tessera.dev/inbound-ports': '80,http',
          'tessera.dev/exclude-outbound-ports': '70000',
          'tessera.dev/exclude-outbound-ip-ranges': '10.0.0.0/8,10.0.0.300/8,fd00::/129',
          'tessera.dev/drain-timeout': 'ten seconds',
          'tessera.dev/native-sidecar': 'no',
          'tessera.dev/servce': 'typo',
          'tessera.dev/service': 'Reviews_V1',
        },
      }),
      ctx,
      options,
    ),
  );
  const byPath = (p: string) => problems.filter((x) => x.path === p).map((x) => x.message).join(' | ');
  t.regex(byPath('metadata.annotations["tessera.dev/inject"]'), /only "false".*label the namespace or pod template tessera.dev\/inject: enabled/);
  t.regex(byPath('metadata.annotations["tessera.dev/inbound-ports"]'), /"http" is not a port number/);
  t.regex(byPath('metadata.annotations["tessera.dev/exclude-outbound-ports"]'), /"70000" is not a port number/);
  t.regex(byPath('metadata.annotations["tessera.dev/exclude-outbound-ip-ranges"]'), /"10.0.0.300\/8" is not a CIDR.*\| .*prefix length 129 is larger than 128/);
  t.regex(byPath('metadata.annotations["tessera.dev/drain-timeout"]'), /not a duration/);
  t.regex(byPath('metadata.annotations["tessera.dev/native-sidecar"]'), /must be "true" or "false"/);
  t.regex(byPath('metadata.annotations["tessera.dev/servce"]'), /unknown Tessera annotation/);
  t.regex(byPath('metadata.annotations["tessera.dev/service"]'), /"Reviews_V1" is not a valid service name/);
  t.regex(byPath('spec.containers[0].livenessProbe.httpGet.port'), /no port named "admin"/);
  t.is(problems.length, 10);
});

test('a drain timeout must fit in the termination grace period', (t) => {
  const problems = problemsOf(() => injectPodTemplate(pod({}, { annotations: { 'tessera.dev/drain-timeout': '1m' } }), ctx, options));
  t.regex(problems[0].message, /terminationGracePeriodSeconds \(30s\)/);
  t.true(injectPodTemplate(pod({}, { annotations: { 'tessera.dev/drain-timeout': '1m' } }, { terminationGracePeriodSeconds: 90 }), ctx, options).injected);
});

test('app ports the sidecar needs and containers already named tessera-* are refused', (t) => {
  const ports = problemsOf(() => injectPodTemplate(pod({ ports: [{ containerPort: 15001 }] }), ctx, options));
  t.deepEqual(ports.map((p) => p.path), ['spec.containers[0].ports[0].containerPort']);
  const names = problemsOf(() => injectPodTemplate({ spec: { containers: [{ name: 'tessera-proxy', image: 'x' }] } }, ctx, options));
  t.regex(names[0].message, /exists but the pod has no tessera.dev\/status/);
});

test('inbound ports default to the declared TCP ports; "*" captures every port', (t) => {
  const multi = injected(pod({ ports: [{ containerPort: 8080 }, { containerPort: 53, protocol: 'UDP' }, { containerPort: 9090 }] }));
  t.is(env(multi.spec.initContainers![1]).TESSERA_INBOUND_PORTS, '8080,9090');
  t.is(env(multi.spec.initContainers![1]).TESSERA_APP_PORT, '8080');
  const star = injected(pod({}, { annotations: { 'tessera.dev/inbound-ports': '*' } }));
  t.deepEqual(star.spec.initContainers![0].args!.slice(1, 3), ['--inbound-ports', '*']);
  const none = injected(pod({ ports: [] }));
  t.false(none.spec.initContainers![0].args!.includes('--inbound-ports'));
  t.is(env(none.spec.initContainers![1]).TESSERA_APP_PORT, undefined);
});

test('the workload name of a controller-made pod is its Deployment\'s or Job\'s name', (t) => {
  t.is(workloadNameOfPod({ labels: { 'pod-template-hash': '5d8f9c' }, ownerReferences: [{ kind: 'ReplicaSet', name: 'reviews-v1-5d8f9c', controller: true }] }), 'reviews-v1');
  t.is(workloadNameOfPod({ ownerReferences: [{ kind: 'Job', name: 'migrate', controller: true }] }), 'migrate');
  t.is(workloadNameOfPod({ generateName: 'web-' }), 'web');
});

// ---- tessera inject over manifests ----

const manifest = `# shop
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}   # untouched
data: {a: "1"}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: reviews
  namespace: shop
spec:
  selector: {matchLabels: {app: reviews}}
  template:
    metadata:
      labels: {app: reviews}
    spec:
      initContainers:
      - name: migrate   # keeps its comment
        image: migrate:1
      containers:
      - name: web
        image: web:1
        readinessProbe: {tcpSocket: {port: 9080}}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: run, image: job:1}]
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: solo, namespace: kube-system}
  spec: {containers: [{name: c, image: c:1}]}
- apiVersion: apps/v1
  kind: StatefulSet
  metadata: {name: db}
  spec: {serviceName: db, selector: {matchLabels: {app: db}}, template: {metadata: {labels: {app: db}}, spec: {containers: [{name: db, image: db:1}]}}}
---
apiVersion: example.com/v1
kind: Job
metadata: {name: not-batch}
spec: {template: {spec: {containers: [{name: x, image: x}]}}}
`;

test('tessera inject injects every pod template kind, keeps comments and other documents, and is idempotent', (t) => {
  const { output, report } = injectManifest(manifest, 'shop.yaml', { ...options, namespace: 'default' });
  const docs = YAML.parseAllDocuments(output).map((d) => d.toJS());
  t.is(docs.length, 5);
  t.deepEqual(docs[0], { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings' }, data: { a: '1' } });
  t.deepEqual(docs[1].spec.template.spec.initContainers.map((c: Container) => c.name), ['tessera-init', 'tessera-proxy', 'migrate']);
  t.deepEqual(docs[2].spec.jobTemplate.spec.template.spec.initContainers.map((c: Container) => c.name), ['tessera-init', 'tessera-proxy']);
  t.is(docs[3].items[0].spec.initContainers, undefined, 'kube-system pod untouched');
  t.deepEqual(docs[3].items[1].spec.template.spec.initContainers.map((c: Container) => c.name), ['tessera-init', 'tessera-proxy']);
  t.is(docs[4].spec.template.spec.initContainers, undefined, 'a Job of another API group is not a batch Job');
  t.true(output.startsWith('# shop\n'));
  t.regex(output, /metadata: \{name: settings\} # untouched/);
  t.regex(output, /- name: migrate # keeps its comment/);
  t.deepEqual(report, [
    'Deployment shop/reviews: injected (native sidecar, 1 probes rewritten)',
    'CronJob default/nightly: injected (native sidecar)',
    'Pod kube-system/solo: unchanged, pods in kube-system are never injected',
    'StatefulSet default/db: injected (native sidecar)',
  ]);
  const again = injectManifest(output, 'shop.yaml', { ...options, namespace: 'default' });
  t.is(again.output, output);
});

test('tessera inject reports every bad annotation with file and line, and outputs nothing', (t) => {
  const bad = `apiVersion: v1
kind: Pod
metadata:
  name: p
  annotations:
    tessera.dev/inbound-ports: "80,x"
spec:
  containers:
  - name: c
    image: c
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  template:
    metadata:
      annotations: {tessera.dev/drain-timeout: soon}
    spec: {containers: [{name: c, image: c}]}
`;
  const err = t.throws(() => injectManifest(bad, 'bad.yaml', { ...options, namespace: 'default' }), { instanceOf: ManifestError })!;
  t.deepEqual(err.messages, [
    'bad.yaml:6: Pod default/p: metadata.annotations["tessera.dev/inbound-ports"]: "x" is not a port number (1-65535); expected a comma-separated list such as 8080,9090',
    'bad.yaml:18: Deployment default/d: spec.template.metadata.annotations["tessera.dev/drain-timeout"]: "soon" is not a duration (examples: 500ms, 10s, 1m30s)',
  ]);
  const syntax = t.throws(() => injectManifest('a: [1\n', 'broken.yaml', { ...options, namespace: 'default' }), { instanceOf: ManifestError })!;
  t.regex(syntax.messages[0], /^broken\.yaml:\d+: /);
});

// ---- AdmissionReview ----

const reviewOf = (object: unknown, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: { uid: 'u-1', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace: 'shop', object, ...extra },
});

test('the webhook answers with a base64 JSONPatch that produces the injected pod', (t) => {
  const object = { apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'reviews-5d8f9c-', labels: { app: 'reviews', 'pod-template-hash': '5d8f9c' } }, ...pod({ readinessProbe: { tcpSocket: { port: 9080 } } }) } as any;
  object.metadata = { ...object.metadata, labels: { app: 'reviews', 'pod-template-hash': '5d8f9c' } };
  const { answer } = review(reviewOf(object), options);
  t.like(answer, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'u-1', allowed: true, patchType: 'JSONPatch' } });
  const patch = JSON.parse(Buffer.from(answer.response.patch!, 'base64').toString());
  const patched = fastJsonPatch.applyPatch(structuredClone(object), patch).newDocument;
  const expected = injectPodTemplate(object, { namespace: 'shop', workloadName: 'reviews' }, options);
  t.true(expected.injected);
  t.deepEqual(patched, (expected as { template: PodTemplate }).template);
});

test('the webhook lets pods it does not inject through unchanged, and refuses bad annotations with a message', (t) => {
  const skipped = review(reviewOf({ ...pod(), metadata: { annotations: { 'tessera.dev/inject': 'false' } } }), options);
  t.deepEqual(skipped.answer.response, { uid: 'u-1', allowed: true });
  const system = review(reviewOf(pod(), { namespace: 'kube-system' }), options);
  t.deepEqual(system.answer.response, { uid: 'u-1', allowed: true });
  const update = review(reviewOf(pod(), { operation: 'UPDATE' }), options);
  t.deepEqual(update.answer.response, { uid: 'u-1', allowed: true });
  const bad = review(reviewOf({ ...pod(), metadata: { name: 'p', annotations: { 'tessera.dev/inbound-ports': 'x' } } }), options);
  t.false(bad.answer.response.allowed);
  t.is(bad.answer.response.status!.code, 400);
  t.regex(bad.answer.response.status!.message, /Tessera cannot inject pod shop\/p: metadata.annotations\["tessera.dev\/inbound-ports"\]: "x" is not a port number/);
  const noSpec = review(reviewOf({ metadata: {} }), options);
  t.false(noSpec.answer.response.allowed);
});

test('bodies that are not an AdmissionReview v1 are errors naming what is wrong', (t) => {
  for (const [body, message] of [
    [null, /JSON object/],
    [{ kind: 'Pod' }, /kind must be AdmissionReview/],
    [{ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1beta1', request: {} }, /admissionReviewVersions/],
    [{ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1' }, /request is missing/],
    [{ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1', request: { uid: 3 } }, /request.uid/],
  ] as const) {
    t.throws(() => review(body, options), { instanceOf: AdmissionReviewError, message });
  }
});
