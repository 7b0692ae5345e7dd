// ParallelRun against real parts: a real Envoy client sidecar mirrors the target's
// requests to the control plane's comparator, which compares two stable instances
// (whose JSON carries a random timestamp: noise) with a candidate that differs in one
// field on 10% of requests and is 300 ms slower. Callers only ever see stable.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';
import { Agent, request } from 'undici';
import type { CanaryView } from '../../control-plane/delivery/canary.ts';
import { envoyHosts, envoyTest, requireEnvoy, reviewsCanary, startControlPlaneProcess, startEnvoy, tempDir, tesseraBin } from '../support/mesh.ts';
import { makeCa, makeServerCert } from '../support/certs.ts';
import { freePort, waitFor } from '../support/processes.ts';
import { startSidecar } from '../support/sidecar.ts';
import { createKeyAndCsr } from '../../sidecar/agent/identity.ts';

const run = promisify(execFile);

interface App {
  port: number;
  hits: number;
  /** The x-forwarded-client-cert of each request (set by an mTLS inbound sidecar). */
  callers: string[];
}

/** A JSON app: `{id, rating, timestamp}`; `rating` comes from `rating(n)` for its n-th request. */
async function app(t: ExecutionContext, name: string, opts: { rating?: (n: number) => number; delayMs?: number } = {}): Promise<App> {
  const a: App = { port: 0, hits: 0, callers: [] };
  const server = http.createServer((req, res) => {
    const n = ++a.hits;
    a.callers.push(String(req.headers['x-forwarded-client-cert'] ?? ''));
    const body = JSON.stringify({ id: req.url?.split('/').pop(), rating: opts.rating?.(n) ?? 5, timestamp: Date.now() + Math.random() });
    const reply = () => res.writeHead(200, { 'content-type': 'application/json', 'x-backend': name }).end(body);
    if (opts.delayMs) setTimeout(reply, opts.delayMs);
    else reply();
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  a.port = (server.address() as { port: number }).port;
  t.teardown(() => {
    server.close();
    server.closeAllConnections();
  });
  return a;
}

const service = (name: string, ports: number[]) =>
  [
    `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}}\nspec:\n  ports: [{name: http, port: 9080, appProtocol: http}]\n`,
    ...ports.map(
      (p, i) =>
        `apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: ${name}-${i + 1}\n  labels: {kubernetes.io/service-name: ${name}}\naddressType: IPv4\nports: [{name: http, port: ${p}}]\nendpoints: [{addresses: ["127.0.0.1"]}]\n`,
    ),
  ].join('---\n');

const parallelRun = (analysis: string) => reviewsCanary(`  strategy: ParallelRun
  interval: 1s
${analysis}`);

async function mesh(t: ExecutionContext, canary: string) {
  const stable = [await app(t, 'reviews-v1'), await app(t, 'reviews-v1')];
  // Every tenth request the candidate answers a different rating.
  const candidate = await app(t, 'reviews-v2', { rating: (n) => (n % 10 === 0 ? 4 : 5), delayMs: 300 });
  const dir = tempDir(t);
  const files = [service('reviews', []), service('reviews-v1', stable.map((s) => s.port)), service('reviews-v2', [candidate.port])];
  fs.writeFileSync(path.join(dir, 'services.yaml'), files.join('---\n'));
  fs.writeFileSync(path.join(dir, 'canary.yaml'), canary);
  const comparatorPort = await freePort();
  const cp = await startControlPlaneProcess(t, { configDir: dir, extraArgs: ['--comparator-port', String(comparatorPort)] });
  const envoy = await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'sotw', service: 'productpage' });
  await waitFor('the comparator cluster to reach the sidecar', async () => (await envoyHosts(envoy, 'tessera_comparator')).includes(`127.0.0.1:${comparatorPort}`), 20_000);
  await waitFor('reviews to be routed', async () => {
    const res = await request(`http://127.0.0.1:${envoy.outboundPort}/reviews/0`, { headers: { host: 'reviews' } });
    await res.body.dump();
    return res.statusCode === 200;
  }, 20_000);
  return { cp, envoy, stable, candidate };
}

const canaryOf = async (cp: { api: <T>(p: string) => Promise<T> }) => (await cp.api<{ canaries: CanaryView[] }>('/api/v1/canaries')).canaries[0];

/** `count` GETs through the sidecar, `concurrency` at a time: who answered and how long it took. */
async function send(port: number, count: number, concurrency = 8) {
  const answers: { backend: string; status: number; ms: number }[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const started = performance.now();
      const res = await request(`http://127.0.0.1:${port}/reviews/${i}`, { headers: { host: 'reviews' } });
      await res.body.dump();
      answers.push({ backend: String(res.headers['x-backend']), status: res.statusCode, ms: performance.now() - started });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return answers;
}

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

envoyTest.serial('a parallel run reports the candidate\'s 10% rating mismatch, ignores the stables\' timestamp noise, and callers only see stable, at stable speed', async (t) => {
  if (!requireEnvoy(t)) return;
  const { cp, stable, candidate, envoy } = await mesh(t, parallelRun(''));
  const N = 300;
  const answers = await send(envoy.outboundPort, N);
  // Every caller was answered 200 by a stable instance, never by the candidate.
  t.is(answers.length, N);
  t.deepEqual([...new Set(answers.map((a) => `${a.status} ${a.backend}`))], ['200 reviews-v1']);
  // The candidate's 300 ms never reached the caller.
  const p90 = quantile(answers.map((a) => a.ms), 0.9);
  const median = quantile(answers.map((a) => a.ms), 0.5);
  t.true(p90 < 150, `caller p90 ${p90.toFixed(1)} ms (median ${median.toFixed(1)} ms)`);
  t.log(`caller latency: median ${median.toFixed(1)} ms, p90 ${p90.toFixed(1)} ms, max ${Math.max(...answers.map((a) => a.ms)).toFixed(1)} ms`);

  // The comparator catches up on every mirrored request (the waitFor above sent one more).
  const view = await waitFor('every mirrored request to be compared', async () => {
    const c = await canaryOf(cp);
    const p = c.parallelRun;
    return p && p.compared + Object.values(p.dropped).reduce((a, b) => a + (b ?? 0), 0) >= N ? c : undefined;
  }, 60_000, 200);
  const p = view.parallelRun!;
  t.deepEqual(p.dropped, {}, 'nothing dropped');
  // No certificate and no STRICT Service: the sidecar mirrors in plaintext, and that is accepted.
  t.deepEqual(Object.keys(p.mirroredBy ?? {}), ['(plaintext)']);
  t.true(p.compared >= N, `${p.compared} compared`);
  t.true(p.mismatchPercent! >= 5 && p.mismatchPercent! <= 16, `mismatch ${p.mismatchPercent}%`);
  const route = p.routes.find((r) => r.route === 'GET /reviews/{id}')!;
  t.truthy(route, JSON.stringify(p.routes.map((r) => r.route)));
  t.deepEqual(route.fields.map((f) => f.field), ['body.rating'], 'the one differing field is named, and only it');
  t.false(JSON.stringify(route.fields).includes('timestamp'), 'the timestamp (noise between the two stables) is not reported');
  t.deepEqual(route.noisyFields, ['body.timestamp']);
  t.deepEqual(route.fields[0].examples[0].primary, '5');
  t.deepEqual(route.fields[0].examples[0].candidate, '4');
  // The candidate was reached only by the comparator, once per compared request.
  await waitFor('the candidate hits to equal the comparisons', async () => candidate.hits === (await canaryOf(cp)).parallelRun!.compared, 5000);
  t.true(stable.every((s) => s.hits > 0), 'both stable instances served (primary and secondary)');
  // Report only: no analysis bound, so it stays in progress with the candidate at 0%.
  t.is(view.phase, 'Progressing');
  t.is(view.weight, 0);
  t.is(view.strategy, 'ParallelRun');

  // The same through the CLI and /metrics.
  const admin = ['--admin', cp.adminUrl];
  const status = (await run(process.execPath, [tesseraBin, 'canary', 'status', 'reviews', ...admin])).stdout;
  t.regex(status, /parallel run, reviews answered by reviews-v1, reviews-v2 compared on mirrored requests/);
  t.regex(status, /GET \/reviews\/\{id\}: \d+ compared, \d+ differ \([\d.]+%\); noise ignored: body.timestamp/);
  t.regex(status, /body.rating: \d+ \([\d.]+%\)\n\s+GET \/reviews\/\d+: stable 5, candidate 4/);
  const list = (await run(process.execPath, [tesseraBin, 'get', 'canaries', ...admin])).stdout;
  t.regex(list, /default\/reviews\s+reviews\s+ParallelRun\s+Progressing\s+parallel\s+0%/);
  const metrics = await (await request(`${cp.adminUrl}/metrics`)).body.text();
  t.regex(metrics, /tessera_parallel_run_compared\{canary="default\/reviews",route="GET \/reviews\/\{id\}"\} \d+/);
  t.regex(metrics, /tessera_parallel_run_mismatch_ratio\{canary="default\/reviews"\} 0\.\d+/);
});

envoyTest.serial('a parallel run over its mismatch bound is rolled back: mirroring stops and the candidate gets nothing more', async (t) => {
  if (!requireEnvoy(t)) return;
  const { cp, candidate, envoy } = await mesh(t, parallelRun('  analysis: {maxMismatchPercent: 2, minRequests: 50, failureLimit: 1}\n'));
  await send(envoy.outboundPort, 120);
  const view = await waitFor('the run to be judged', async () => {
    const c = await canaryOf(cp);
    return c.phase !== 'Progressing' ? c : undefined;
  }, 30_000, 200);
  t.is(view.phase, 'RolledBack', view.message);
  t.is(view.weight, 0);
  t.regex(view.message, /mismatch [\d.]+% > 2%/);
  t.regex(view.message, /body\.rating/);
  t.false(view.parallelRun!.comparing);
  // The sidecar stops mirroring: the comparator cluster is gone and the candidate is not called again.
  await waitFor('the comparator cluster to leave the sidecar', async () => (await envoyHosts(envoy, 'tessera_comparator')).length === 0, 20_000);
  await new Promise((r) => setTimeout(r, 1000));
  const hits = candidate.hits;
  const answers = await send(envoy.outboundPort, 40);
  t.true(answers.every((a) => a.backend === 'reviews-v1'));
  await new Promise((r) => setTimeout(r, 700));
  t.is(candidate.hits, hits);
});

async function joinTokenFile(t: ExecutionContext, adminUrl: string, serviceAccount: string): Promise<string> {
  const res = await request(`${adminUrl}/api/v1/join-tokens`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ serviceAccount }) });
  const json = (await res.body.json()) as { token: string };
  t.is(res.statusCode, 201);
  const file = path.join(tempDir(t, 'tessera-token-'), 'token');
  fs.writeFileSync(file, json.token, { mode: 0o600 });
  return file;
}

envoyTest.serial('under STRICT mTLS the sidecar mirrors to the comparator over mTLS and the comparator reaches stable and candidate with its own mesh certificate; plaintext and foreign certificates are refused, and a mesh identity the stable\'s ALLOW policy does not admit is dropped as denied_by_policy', async (t) => {
  if (!requireEnvoy(t)) return;
  const stableApp = await app(t, 'reviews-v1');
  const candidateApp = await app(t, 'reviews-v2', { rating: (n) => (n % 10 === 0 ? 4 : 5), delayMs: 300 });
  const dir = tempDir(t);
  const declared = ['reviews', 'reviews-v1', 'reviews-v2'].map((n) => service(n, []));
  fs.writeFileSync(path.join(dir, 'services.yaml'), declared.join('---\n'));
  fs.writeFileSync(path.join(dir, 'mesh.yaml'), 'apiVersion: tessera.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  mtls: {mode: STRICT}\n');
  fs.writeFileSync(path.join(dir, 'canary.yaml'), parallelRun(''));
  // Stable admits the client sidecars and the comparator (which calls it as itself), no one else.
  fs.writeFileSync(
    path.join(dir, 'authz.yaml'),
    `apiVersion: tessera.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: reviews-v1-readers}
spec:
  targetRefs: [{group: "", kind: Service, name: reviews-v1}]
  action: ALLOW
  rules:
  - from: [{serviceAccounts: [productpage, productpage-v2]}, {principals: ["spiffe://tessera.local/ns/tessera-system/sa/tessera-comparator"]}]
`,
  );
  const comparatorPort = await freePort();
  const cp = await startControlPlaneProcess(t, { configDir: dir, readyTimeoutMs: 60_000, extraArgs: ['--comparator-port', String(comparatorPort), '--ca-rotation-grace', '1s'] });
  // A short trust-bundle refresh: after the root rotation below, the servers trust the new root soon.
  const sidecar = async (name: string, appPort: number, extra: string[] = []) =>
    startSidecar(t, { service: name, appPort, controlPlane: cp, extraArgs: ['--join-token-file', await joinTokenFile(t, cp.adminUrl, name), '--trust-bundle-refresh', '1s', ...extra] });
  const stable = await sidecar('reviews-v1', stableApp.port);
  const candidate = await sidecar('reviews-v2', candidateApp.port);
  const client = await startSidecar(t, {
    service: 'productpage',
    appPort: await freePort(),
    inbound: false,
    controlPlane: cp,
    extraArgs: ['--no-register', '--health-check', 'none', '--join-token-file', await joinTokenFile(t, cp.adminUrl, 'productpage')],
  });
  await Promise.all([stable.waitReady(60_000), candidate.waitReady(60_000), client.waitReady(60_000)]);
  await waitFor('reviews to answer through the client sidecar', async () => {
    const res = await request(`http://127.0.0.1:${client.outboundPort}/reviews/0`, { headers: { host: 'reviews' } });
    await res.body.dump();
    return res.statusCode === 200;
  }, 30_000, 100);
  // STRICT indeed: the stable sidecar's inbound port refuses plaintext.
  const plaintext = await request(`http://127.0.0.1:${stable.inboundPort}/`).then(async (r) => (await r.body.dump(), r.statusCode), (err: Error) => err.message);
  t.not(plaintext, 200);

  const N = 100;
  const answers = await send(client.outboundPort, N, 4);
  t.deepEqual([...new Set(answers.map((a) => `${a.status} ${a.backend}`))], ['200 reviews-v1']);
  const view = await waitFor('the mirrored requests to be compared', async () => {
    const c = await canaryOf(cp);
    const p = c.parallelRun;
    return p && p.compared + Object.values(p.dropped).reduce((a, b) => a + (b ?? 0), 0) >= N ? c : undefined;
  }, 60_000, 200);
  const p = view.parallelRun!;
  t.deepEqual(p.dropped, {}, 'nothing dropped: the comparator got through mTLS');
  t.true(p.mismatchPercent! >= 5 && p.mismatchPercent! <= 16, `mismatch ${p.mismatchPercent}%`);
  t.deepEqual(p.routes[0].fields.map((f) => f.field), ['body.rating']);
  // The apps saw the comparator's SPIFFE identity (the inbound sidecar's XFCC).
  const comparatorId = 'spiffe://tessera.local/ns/tessera-system/sa/tessera-comparator';
  t.true(stableApp.callers.some((x) => x.includes(comparatorId)), 'stable was called by the comparator over mTLS');
  t.true(candidateApp.callers.length > 0 && candidateApp.callers.every((x) => x.includes(comparatorId)), 'the candidate was called only by the comparator, over mTLS');
  // The mirrors came over mTLS, from the client sidecar's certificate.
  t.deepEqual(Object.keys(p.mirroredBy ?? {}), ['spiffe://tessera.local/ns/default/sa/productpage']);

  // Straight to the comparator's port, bypassing the sidecars: refused, nothing forwarded.
  await new Promise((r) => setTimeout(r, 500));
  const hits = () => stableApp.hits + candidateApp.hits;
  const before = hits();
  const plain = await request(`http://127.0.0.1:${comparatorPort}/reviews/7`, { headers: { host: 'reviews' } });
  t.is(plain.statusCode, 403);
  t.regex(await plain.body.text(), /default\/reviews compares STRICT services: mirrors must come over mTLS/);
  // A TLS client whose certificate (with a SPIFFE ID of this trust domain) comes from another CA.
  const certs = tempDir(t, 'tessera-foreign-');
  const foreignCa = makeCa(certs, 'foreign-ca');
  const foreign = makeServerCert(certs, 'intruder', foreignCa, ['URI:spiffe://tessera.local/ns/default/sa/productpage']);
  const intruder = new Agent({ connect: { key: fs.readFileSync(foreign.key), cert: fs.readFileSync(foreign.cert), rejectUnauthorized: false } });
  t.teardown(() => intruder.close());
  const tls = await request(`https://127.0.0.1:${comparatorPort}/reviews/8`, { headers: { host: 'reviews' }, dispatcher: intruder }).then(
    async (r) => `${r.statusCode} ${await r.body.text()}`,
    (err: Error) => `TLS failure: ${err.message}`,
  );
  t.regex(tls, /^403 client certificate not of this mesh/);
  // A workload of the mesh (a certificate of this CA, by a join token) whose identity the
  // stable's ALLOW policy does not admit: accepted (202), but forwarded to no instance.
  const { keyPem, csrPem } = await createKeyAndCsr();
  const joinToken = fs.readFileSync(await joinTokenFile(t, cp.adminUrl, 'ratings'), 'utf8');
  const issued = await request(`${cp.adminUrl}/api/v1/certificates`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ csr: csrPem, joinToken }) });
  const cert = (await issued.body.json()) as { certificateChain: string };
  t.is(issued.statusCode, 200);
  const ratings = new Agent({ connect: { key: keyPem, cert: cert.certificateChain, rejectUnauthorized: false } });
  t.teardown(() => ratings.close());
  const deputy = await request(`https://127.0.0.1:${comparatorPort}/reviews/9`, { headers: { host: 'reviews' }, dispatcher: ratings });
  await deputy.body.dump();
  t.is(deputy.statusCode, 202, 'never an error for the caller');
  await waitFor('the mirror to be dropped as denied_by_policy', async () => ((await canaryOf(cp)).parallelRun!.dropped.denied_by_policy ?? 0) === 1, 10_000, 100);
  await new Promise((r) => setTimeout(r, 1000));
  t.is(hits(), before, 'no instance was called for a refused or denied mirror');
  const after = (await canaryOf(cp)).parallelRun!;
  t.is(after.compared, p.compared);
  t.deepEqual(after.dropped, { mtls_required: 1, untrusted_client: 1, denied_by_policy: 1 });
  t.is(after.mirroredBy?.['spiffe://tessera.local/ns/default/sa/ratings'], 1);
  const metrics = await (await request(`${cp.adminUrl}/metrics`)).body.text();
  t.regex(metrics, /tessera_parallel_run_dropped_total\{reason="mtls_required"\} 1/);
  t.regex(metrics, /tessera_parallel_run_dropped_total\{reason="denied_by_policy"\} 1/);
  // What the comparator would have lent it: the stable's sidecar refuses that identity itself.
  const direct = await request(`https://127.0.0.1:${stable.inboundPort}/reviews/9`, { headers: { host: 'reviews-v1' }, dispatcher: ratings });
  await direct.body.dump();
  t.is(direct.statusCode, 403, 'the stable sidecar refuses ratings directly');

  // Root rotation: a sidecar whose certificate the new root signed still mirrors over
  // mTLS (the comparator reloaded its trust bundle), and its mirrors are compared.
  const rotate = await request(`${cp.adminUrl}/api/v1/ca/rotate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  t.is(rotate.statusCode, 202, await rotate.body.text());
  await new Promise((r) => setTimeout(r, 2000));
  const bundle = await (await request(`${cp.adminUrl}/api/v1/trust-bundle`)).body.text();
  t.is(bundle.split('-----BEGIN CERTIFICATE-----').length - 1, 2, 'old and new root trusted');
  const rotated = await startSidecar(t, {
    service: 'productpage-v2',
    appPort: await freePort(),
    inbound: false,
    controlPlane: cp,
    extraArgs: ['--no-register', '--health-check', 'none', '--trust-bundle-refresh', '1s', '--join-token-file', await joinTokenFile(t, cp.adminUrl, 'productpage-v2')],
  });
  await rotated.waitReady(60_000);
  await waitFor('reviews to answer through the new-root sidecar', async () => {
    const res = await request(`http://127.0.0.1:${rotated.outboundPort}/reviews/0`, { headers: { host: 'reviews' } });
    await res.body.dump();
    return res.statusCode === 200;
  }, 30_000, 200);
  await send(rotated.outboundPort, 20, 4);
  const newRootId = 'spiffe://tessera.local/ns/default/sa/productpage-v2';
  const final = await waitFor('the new-root sidecar\'s mirrors to be compared', async () => {
    const q = (await canaryOf(cp)).parallelRun!;
    return (q.mirroredBy?.[newRootId] ?? 0) >= 20 && q.compared >= after.compared + 20 ? q : undefined;
  }, 30_000, 200);
  t.deepEqual(final.dropped, { mtls_required: 1, untrusted_client: 1, denied_by_policy: 1 }, 'no mirror of the new-root sidecar was refused');
});
