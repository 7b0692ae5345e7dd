// Injection against a real kube-apiserver on a real etcd: the webhook (a real `tessera
// injector` process over TLS) registered with the example MutatingWebhookConfiguration,
// Pods and workloads created through the API, and what the API server stores asserted.
// No kubelet or controllers run here: pods are stored, never started, and the pods a
// Deployment or Job would make are created the way their controllers create them.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { Agent, request } from 'undici';
import YAML from 'yaml';
import { makeCa, makeServerCert } from '../support/certs.ts';
import { createDefaultServiceAccount, createNamespace, findKubeApiserver, KubeApiError, kubeTest, requireKubeApiserver, startKubeApiserver, type KubeClient, type KubeObject } from '../support/kube-apiserver.ts';
import { repoRoot, tempDir, tesseraBin } from '../support/mesh.ts';
import { freePort, startProcess, waitFor, type Owner, type Started } from '../support/processes.ts';


/** Cleanups shared by this file's tests (ava allows t.teardown only inside a test). */
const cleanups: (() => unknown)[] = [];
const scope: Owner = { teardown: (fn) => void cleanups.push(fn) };
test.after.always(async () => {
  for (const fn of cleanups.reverse()) await fn();
});

const examplesDir = path.join(repoRoot, 'examples/kubernetes');
let kube: KubeClient;
let injector: Started;
let startError: Error | undefined;

const readyPromise = (async () => {
  if (!findKubeApiserver()) return;
  try {
    const api = await startKubeApiserver(scope);
    kube = api.client;
    const dir = tempDir(scope, 'tessera-kube-webhook-');
    const ca = makeCa(dir, 'injector-ca');
    const cert = makeServerCert(dir, 'injector', ca, ['IP:127.0.0.1']);
    const port = await freePort();
    injector = startProcess(scope, process.execPath, [tesseraBin, 'injector', '--listen', `127.0.0.1:${port}`, '--tls-cert-file', cert.cert, '--tls-key-file', cert.key, '--image', 'tessera:kube-e2e']);
    const dispatcher = new Agent({ connect: { ca: fs.readFileSync(ca.cert) } });
    cleanups.push(() => dispatcher.close());
    await waitFor('the injector', async () => {
      if (injector.child.exitCode !== null) throw new Error(`injector exited: ${injector.output()}`);
      return (await request(`https://127.0.0.1:${port}/healthz`, { dispatcher })).statusCode === 200;
    }, 30_000, 200);
    // The example's MutatingWebhookConfiguration, as shipped, except that the API server
    // reaches the injector by URL (no Service routing without kube-proxy) with its CA.
    const config = exampleDocs('injector.yaml').find((d) => d.kind === 'MutatingWebhookConfiguration')!;
    for (const webhook of config.webhooks as { clientConfig: Record<string, unknown> }[]) {
      webhook.clientConfig = { url: `https://127.0.0.1:${port}/inject`, caBundle: fs.readFileSync(ca.cert).toString('base64') };
    }
    config.metadata!.name = 'tessera-injector-e2e'; // the example's own is dry-run-created below
    await kube.create(config);
    await createNamespace(kube, 'meshed', { 'tessera.dev/inject': 'enabled' });
    await createNamespace(kube, 'plain');
    await createDefaultServiceAccount(kube, 'kube-system');
    // Labelled like a meshed namespace: only the exclusion of kube-system keeps pods out.
    const kubeSystem = await kube.get({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'kube-system' } });
    kubeSystem.metadata.labels = { ...kubeSystem.metadata.labels, 'tessera.dev/inject': 'enabled' };
    const put = await kube.call('PUT', '/api/v1/namespaces/kube-system', kubeSystem);
    if (put.status !== 200) throw new Error(`labelling kube-system: ${JSON.stringify(put.body)}`);
    // The webhook configuration is read by the API server's informer: wait until a probe pod is injected.
    await waitFor('the API server to call the webhook', async () => {
      const probe = await createPod('meshed', { metadata: { generateName: 'webhook-probe-' } });
      return probe.spec.initContainers?.some((c: { name: string }) => c.name === 'tessera-proxy');
    }, 60_000, 500);
  } catch (err) {
    startError = err as Error;
  }
})();

function exampleDocs(file: string): KubeObject[] {
  return YAML.parseAllDocuments(fs.readFileSync(path.join(examplesDir, file), 'utf8')).map((d) => d.toJS() as KubeObject);
}

async function ready(t: ExecutionContext): Promise<boolean> {
  if (!requireKubeApiserver(t)) return false;
  t.timeout(300_000, 'starting etcd, kube-apiserver and the injector'); // the first test waits for all of them
  await readyPromise;
  t.timeout(120_000);
  if (startError) throw startError;
  return true;
}

interface PodInput {
  metadata?: Record<string, unknown>;
  spec?: Record<string, unknown>;
}

function appPod(input: PodInput = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: 'web-', labels: { app: 'web' }, ...input.metadata },
    spec: {
      initContainers: [{ name: 'migrate', image: 'migrate:1' }],
      containers: [
        {
          name: 'web',
          image: 'web:1',
          ports: [{ name: 'http', containerPort: 8080 }, { name: 'grpc', containerPort: 9090 }],
          livenessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 7 },
          readinessProbe: { tcpSocket: { port: 8080 } },
          startupProbe: { grpc: { port: 9090 } },
        },
      ],
      ...input.spec,
    },
  };
}

async function createPod(namespace: string, input: PodInput = {}): Promise<any> {
  const pod = appPod(input);
  (pod.metadata as Record<string, unknown>).namespace = namespace;
  const created = await kube.create(pod);
  // Assert on what is stored, not on the create response.
  return kube.get({ apiVersion: 'v1', kind: 'Pod', metadata: { namespace, name: created.metadata.name } });
}

const names = (list?: { name: string }[]) => (list ?? []).map((c) => c.name);
const envOf = (c: { env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[] }) =>
  Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom?.fieldRef?.fieldPath]));

function assertUnchanged(t: ExecutionContext, stored: any, what: string) {
  t.deepEqual(names(stored.spec.initContainers), ['migrate'], what);
  t.deepEqual(names(stored.spec.containers), ['web'], what);
  t.is(stored.metadata.annotations?.['tessera.dev/status'], undefined, what);
  t.like(stored.spec.containers[0].livenessProbe, { httpGet: { path: '/healthz', port: 'http' } }, what);
}

kubeTest.serial('a Pod in a namespace labelled tessera.dev/inject: enabled is stored with the native sidecar, tessera-init and rewritten probes', async (t) => {
  if (!(await ready(t))) return;
  const stored = await createPod('meshed');
  t.deepEqual(names(stored.spec.initContainers), ['tessera-init', 'tessera-proxy', 'migrate']);
  const [init, proxy] = stored.spec.initContainers;
  t.is(proxy.restartPolicy, 'Always');
  t.like(proxy.startupProbe, { httpGet: { path: '/ready', port: 15021, scheme: 'HTTP' }, periodSeconds: 1 });
  t.is(proxy.image, 'tessera:kube-e2e');
  t.deepEqual(init.securityContext.capabilities, { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] });
  t.deepEqual(init.args.slice(0, 3), ['capture', '--inbound-ports', '8080,9090']);
  const web = stored.spec.containers[0];
  t.like(web.livenessProbe, { httpGet: { path: '/app-health/web/livez', port: 15020 }, periodSeconds: 7 });
  t.like(web.readinessProbe, { httpGet: { path: '/app-health/web/readyz', port: 15020 } });
  t.like(web.startupProbe, { httpGet: { path: '/app-health/web/startupz', port: 15020 } });
  t.is(web.readinessProbe.tcpSocket, undefined);
  const env = envOf(proxy);
  t.like(env, { TESSERA_SERVICE: 'web', TESSERA_NAMESPACE: 'metadata.namespace', TESSERA_INSTANCE_ID: 'metadata.name', TESSERA_INSTANCE_ADDRESS: 'status.podIP', TESSERA_SERVICE_ACCOUNT: 'spec.serviceAccountName' });
  t.deepEqual(JSON.parse(env.TESSERA_APP_PROBES!), {
    '/app-health/web/livez': { httpGet: { path: '/healthz', port: 8080 } },
    '/app-health/web/readyz': { tcpSocket: { port: 8080 } },
    '/app-health/web/startupz': { grpc: { port: 9090 } },
  });
  t.like(JSON.parse(stored.metadata.annotations['tessera.dev/status']), { mode: 'native', initContainers: ['tessera-init', 'tessera-proxy'] });
});

kubeTest.serial('pods in an unlabelled namespace, opted out, in kube-system or with hostNetwork are stored unchanged', async (t) => {
  if (!(await ready(t))) return;
  assertUnchanged(t, await createPod('plain'), 'unlabelled namespace');
  assertUnchanged(t, await createPod('meshed', { metadata: { annotations: { 'tessera.dev/inject': 'false' } } }), 'annotation "false"');
  assertUnchanged(t, await createPod('meshed', { metadata: { labels: { app: 'web', 'tessera.dev/inject': 'disabled' } } }), 'label disabled');
  assertUnchanged(t, await createPod('kube-system', { metadata: { labels: { app: 'web', 'tessera.dev/inject': 'enabled' } } }), 'kube-system');
  assertUnchanged(t, await createPod('meshed', { spec: { hostNetwork: true } }), 'hostNetwork');
});

kubeTest.serial('a pod labelled tessera.dev/inject: enabled is injected in an unlabelled namespace', async (t) => {
  if (!(await ready(t))) return;
  const stored = await createPod('plain', { metadata: { labels: { app: 'web', 'tessera.dev/inject': 'enabled' } } });
  t.deepEqual(names(stored.spec.initContainers), ['tessera-init', 'tessera-proxy', 'migrate']);
});

kubeTest.serial('a pod with a bad tessera.dev annotation is refused with a message naming it', async (t) => {
  if (!(await ready(t))) return;
  const err = await t.throwsAsync(createPod('meshed', { metadata: { annotations: { 'tessera.dev/exclude-outbound-ports': '5432,postgres' } } }), { instanceOf: KubeApiError });
  t.is(err!.status, 400);
  t.regex(err!.message, /Tessera cannot inject pod meshed\/web-\*: metadata\.annotations\["tessera\.dev\/exclude-outbound-ports"\]: "postgres" is not a port number/);
});

kubeTest.serial("a Deployment's and a Job's pods get the native sidecar, named after their workload", async (t) => {
  if (!(await ready(t))) return;
  const [deployment, job] = exampleDocs('demo-app.yaml').filter((d) => d.kind === 'Deployment' || d.kind === 'Job');
  for (const workload of [deployment, job]) workload.metadata!.namespace = 'meshed';
  await kube.create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'reviews', namespace: 'meshed' } });
  const storedDeployment = await kube.create(deployment);
  const storedJob = await kube.create(job);

  // What the ReplicaSet controller sends: the template, a generateName and its owner.
  const hash = '7c9d5f';
  const rsPod = await kube.create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...(storedDeployment.spec.template.metadata as object),
      namespace: 'meshed',
      generateName: `reviews-${hash}-`,
      labels: { ...storedDeployment.spec.template.metadata.labels, 'pod-template-hash': hash },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `reviews-${hash}`, uid: '6b1c0e43-0000-4000-8000-000000000001', controller: true }],
    },
    spec: storedDeployment.spec.template.spec,
  });
  t.deepEqual(names(rsPod.spec.initContainers), ['tessera-init', 'tessera-proxy']);
  t.like(envOf(rsPod.spec.initContainers[1]), { TESSERA_SERVICE: 'reviews', TESSERA_DRAIN_TIMEOUT: '20s', TESSERA_APP_PORT: '9080' });

  // What the Job controller sends.
  const jobPod = await kube.create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...(storedJob.spec.template.metadata as object),
      namespace: 'meshed',
      generateName: `${storedJob.metadata.name}-`,
      ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: storedJob.metadata.name, uid: storedJob.metadata.uid, controller: true, blockOwnerDeletion: true }],
    },
    spec: storedJob.spec.template.spec,
  });
  const stored = await kube.get({ apiVersion: 'v1', kind: 'Pod', metadata: { namespace: 'meshed', name: jobPod.metadata.name } });
  t.deepEqual(names(stored.spec.initContainers), ['tessera-init', 'tessera-proxy']);
  t.is(stored.spec.initContainers[1].restartPolicy, 'Always', 'a native sidecar, so the Job can complete');
  t.deepEqual(names(stored.spec.containers), ['curl']);
  t.is(stored.spec.restartPolicy, 'Never');
  t.true(stored.spec.initContainers[0].args.includes('169.254.169.254/32'));
  t.is(envOf(stored.spec.initContainers[1]).TESSERA_SERVICE, 'reviews-smoke-test');
});

kubeTest.serial('tessera inject output of every example manifest is accepted by the API server, and injecting it again changes nothing', async (t) => {
  if (!(await ready(t))) return;
  const files = fs.readdirSync(examplesDir).filter((f) => f.endsWith('.yaml')).sort();
  t.true(files.length >= 3);
  for (const file of files) {
    const once = execFileSync(process.execPath, [tesseraBin, 'inject', '-q', '-f', path.join(examplesDir, file)], { encoding: 'utf8' });
    const twice = execFileSync(process.execPath, [tesseraBin, 'inject', '-q', '-f', '-'], { input: once, encoding: 'utf8' });
    t.is(twice, once, `${file}: a second injection changes nothing`);
    for (const object of YAML.parseAllDocuments(once).map((d) => d.toJS() as KubeObject)) {
      // The webhook configuration would send this API server's pods to a Service that
      // cannot be reached here: check it with a server-side dry run; create the rest.
      const dryRun = object.kind === 'MutatingWebhookConfiguration';
      const created = await kube.create(object, { dryRun });
      t.truthy(created.metadata?.uid ?? created.metadata?.name, `${file}: ${object.kind} accepted`);
      if (object.kind === 'Deployment' || object.kind === 'Job') {
        const stored = await kube.get(object);
        const template = stored.spec.template;
        if (template.metadata?.annotations?.['tessera.dev/inject'] === 'false') {
          t.deepEqual(names(template.spec.initContainers), [], `${file}: ${object.metadata!.name} opted out`);
        } else {
          t.deepEqual(names(template.spec.initContainers), ['tessera-init', 'tessera-proxy'], `${file}: ${object.metadata!.name} injected`);
          // Stored as sent: the API server kept the native sidecar's restartPolicy and probe.
          t.is(template.spec.initContainers[1].restartPolicy, 'Always');
          t.like(template.spec.initContainers[1].startupProbe, { httpGet: { path: '/ready', port: 15021 } });
        }
      }
    }
  }
});

kubeTest.serial('with the injector down and failurePolicy Ignore, pods are still created (without a sidecar)', async (t) => {
  if (!(await ready(t))) return;
  const config = await kube.get({ apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', metadata: { name: 'tessera-injector-e2e' } });
  t.true(config.webhooks.every((w: { failurePolicy: string }) => w.failurePolicy === 'Ignore'));
  await injector.stop();
  assertUnchanged(t, await createPod('meshed'), 'webhook down');
});
