// `tessera injector` as a real process over TLS: health, AdmissionReviews, bad bodies.
import fs from 'node:fs';
import tls from 'node:tls';
import test, { type ExecutionContext } from 'ava';
import fastJsonPatch from 'fast-json-patch';
import { Agent, request } from 'undici';
import { makeCa, makeServerCert } from '../support/certs.ts';
import { tempDir, tesseraBin } from '../support/mesh.ts';
import { freePort, startProcess, waitFor } from '../support/processes.ts';

async function startInjector(t: ExecutionContext) {
  const dir = tempDir(t, 'tessera-injector-');
  const ca = makeCa(dir, 'ca');
  const cert = makeServerCert(dir, 'injector', ca, ['IP:127.0.0.1']);
  const port = await freePort();
  const proc = startProcess(t, process.execPath, [tesseraBin, 'injector', '--listen', `127.0.0.1:${port}`, '--tls-cert-file', cert.cert, '--tls-key-file', cert.key, '--image', 'tessera:e2e']);
  const dispatcher = new Agent({ connect: { ca: fs.readFileSync(ca.cert) } });
  t.teardown(() => dispatcher.close());
  const url = `https://127.0.0.1:${port}`;
  const call = async (method: string, path: string, body?: string) => {
    const res = await request(`${url}${path}`, { method: method as 'GET', dispatcher, body, headers: { 'content-type': 'application/json' } });
    return { status: res.statusCode, json: (await res.body.json()) as any };
  };
  await waitFor('the injector to answer /healthz', async () => {
    if (proc.child.exitCode !== null) throw new Error(`injector exited: ${proc.output()}`);
    return (await call('GET', '/healthz')).status === 200;
  }, 30_000, 200);
  return { call, proc, dir, ca, cert, port };
}

const admissionReview = (object: unknown) =>
  JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'abc', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace: 'shop', object } });

test('the injector answers a pod AdmissionReview over TLS with a JSONPatch adding the native sidecar', async (t) => {
  const { call } = await startInjector(t);
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'web:1', ports: [{ containerPort: 8080 }] }] } };
  const res = await call('POST', '/inject', admissionReview(pod));
  t.is(res.status, 200);
  t.like(res.json, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'abc', allowed: true, patchType: 'JSONPatch' } });
  const patched = fastJsonPatch.applyPatch(structuredClone(pod), JSON.parse(Buffer.from(res.json.response.patch, 'base64').toString())).newDocument as any;
  t.deepEqual(patched.spec.initContainers.map((c: { name: string }) => c.name), ['tessera-init', 'tessera-proxy']);
  t.is(patched.spec.initContainers[1].image, 'tessera:e2e');
  t.is(patched.spec.initContainers[1].restartPolicy, 'Always');
});

test('bad bodies get 400 with the reason and the injector keeps serving', async (t) => {
  const { call, proc } = await startInjector(t);
  const notJson = await call('POST', '/inject', '{"apiVersion": ');
  t.is(notJson.status, 400);
  t.is(notJson.json.code, 'TESSERA_ERR_BAD_JSON');
  const wrongVersion = await call('POST', '/inject', JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: 'x' } }));
  t.is(wrongVersion.status, 400);
  t.is(wrongVersion.json.code, 'TESSERA_ERR_ADMISSION_REVIEW');
  t.regex(wrongVersion.json.error, /admission.k8s.io\/v1/);
  const array = await call('POST', '/inject', '[1,2]');
  t.is(array.status, 400);
  const noContainers = await call('POST', '/inject', admissionReview({ metadata: {}, spec: { containers: 'web' } }));
  t.is(noContainers.status, 200);
  t.false(noContainers.json.response.allowed);
  t.is((await call('GET', '/inject')).status, 405);
  t.is((await call('GET', '/nowhere')).status, 404);
  t.is((await call('GET', '/healthz')).status, 200);
  t.is(proc.child.exitCode, null);
});

test('the injector picks up a rotated certificate without a restart', async (t) => {
  const { dir, ca, cert, port } = await startInjector(t);
  const fingerprint = () =>
    new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(ca.cert) }, () => {
        resolve(socket.getPeerCertificate().fingerprint256);
        socket.end();
      });
      socket.once('error', reject);
    });
  const before = await fingerprint();
  const next = makeServerCert(dir, 'injector-next', ca, ['IP:127.0.0.1']);
  fs.writeFileSync(cert.key, fs.readFileSync(next.key));
  fs.writeFileSync(cert.cert, fs.readFileSync(next.cert));
  const after = await waitFor('the new certificate to be served', async () => {
    const now = await fingerprint();
    return now !== before && now;
  }, 15_000, 200);
  t.not(after, before);
});

test('the injector refuses to start without TLS files', async (t) => {
  const proc = startProcess(t, process.execPath, [tesseraBin, 'injector', '--listen', '127.0.0.1:0']);
  await new Promise((resolve) => proc.child.once('exit', resolve));
  t.is(proc.child.exitCode, 2);
  t.regex(proc.output(), /--tls-cert-file and --tls-key-file are required/);
});
