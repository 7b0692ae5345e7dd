// The parallel run's comparator: JSON diff by field path, noise learned from two
// stable answers, per-route counts, and the bounds that keep it small.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { Agent, request } from 'undici';
import { CertificateAuthority } from '../../control-plane/identity/ca.ts';
import { createKeyAndCsr } from '../../sidecar/agent/identity.ts';
import { acceptMirror, uriSans } from '../../control-plane/delivery/mirror-acceptance.ts';
import { Comparison, diffAnswers, OTHER_ROUTE, routeKey, DEFAULT_COMPARATOR_LIMITS, type Answer } from '../../control-plane/delivery/comparator.ts';
import { checkSpiffeIdentity, ComparatorIdentity } from '../../control-plane/delivery/comparator-identity.ts';
import { ComparatorServer, judgeMismatch, type Instance } from '../../control-plane/delivery/parallel-run.ts';
import { comparatorInstances, mirrorAuthorized, mirrorNeedsMtls } from '../../control-plane/delivery/parallel-run-wiring.ts';
import { emptyModel, type AuthorizationPolicy, type Endpoint, type MeshModel } from '../../control-plane/model/types.ts';

const json = (body: unknown, status = 200, headers: Record<string, string> = {}): Answer => ({
  status,
  headers: { 'content-type': 'application/json', ...headers },
  body: Buffer.from(JSON.stringify(body)),
});

test('equal answers have no differences, whatever the key order of their objects', (t) => {
  t.deepEqual([...diffAnswers(json({ a: 1, b: { c: [1, 2] } }), json({ b: { c: [1, 2] }, a: 1 }), ['content-type'])], []);
});

test('nested fields are named by path, array elements share a path (items[].price)', (t) => {
  const a = json({ id: 7, items: [{ sku: 'x', price: 10 }, { sku: 'y', price: 20 }], meta: { tags: ['a'] } });
  const b = json({ id: 7, items: [{ sku: 'x', price: 10 }, { sku: 'y', price: 25 }], meta: { tags: ['a', 'b'] } });
  const d = diffAnswers(a, b, []);
  t.deepEqual([...d.keys()].sort(), ['body.items[].price', 'body.meta.tags.length']);
  t.deepEqual(d.get('body.items[].price'), [20, 25]);
  t.deepEqual(d.get('body.meta.tags.length'), [1, 2]);
});

test('status, selected headers, missing fields, type changes and non-JSON bodies are differences', (t) => {
  const d = diffAnswers(json({ a: 1, gone: true }, 200, { 'x-v': '1' }), json({ a: '1', added: null }, 404, { 'x-v': '2' }), ['content-type', 'x-v']);
  t.deepEqual([...d.keys()].sort(), ['body.a', 'body.added', 'body.gone', 'headers.x-v', 'status']);
  const text = (s: string): Answer => ({ status: 200, headers: { 'content-type': 'text/plain' }, body: Buffer.from(s) });
  t.deepEqual([...diffAnswers(text('hello'), text('world'), [])], [['body', ['hello', 'world']]]);
  t.deepEqual([...diffAnswers(text('same'), text('same'), [])], []);
});

test('routes are method + path pattern: ids and query strings do not split them', (t) => {
  t.is(routeKey('get', '/users/42/orders?page=2'), 'GET /users/{id}/orders');
  t.is(routeKey('GET', '/items/3f2a9c1e-0b7d-4c55-9e1a-2b3c4d5e6f70'), 'GET /items/{id}');
  t.is(routeKey('GET', '/blobs/deadbeef0042'), 'GET /blobs/{id}');
  t.is(routeKey('GET', '/reviews/latest'), 'GET /reviews/latest');
});

test('a field on which the two stable answers differ is noise: not reported, and its comparisons are not mismatches', (t) => {
  const c = new Comparison(['content-type']);
  for (let i = 0; i < 100; i++) {
    const stable = (ts: number) => json({ rating: 5, timestamp: ts });
    const candidate = json({ rating: i % 10 === 0 ? 4 : 5, timestamp: 3000 + i });
    c.add('GET /reviews', `GET /reviews?i=${i}`, stable(1000 + i), stable(2000 + i), candidate);
  }
  const r = c.report();
  t.is(r.compared, 100);
  t.is(r.mismatched, 10);
  t.is(r.mismatchPercent, 10);
  const [route] = r.routes;
  t.is(route.route, 'GET /reviews');
  t.deepEqual(route.fields.map((f) => f.field), ['body.rating']);
  t.deepEqual(route.noisyFields, ['body.timestamp']);
  t.is(route.fields[0].differences, 10);
  t.deepEqual(route.fields[0].examples[0], { request: 'GET /reviews?i=0', primary: '5', candidate: '4' });
});

test('noise learned later also clears the earlier comparisons it explains', (t) => {
  const c = new Comparison([]);
  // The candidate differs on `generatedAt` first; only later do the stables disagree on it too.
  c.add('GET /', 'GET /', json({ generatedAt: 1 }), json({ generatedAt: 1 }), json({ generatedAt: 2 }));
  t.is(c.report().mismatched, 1);
  c.add('GET /', 'GET /', json({ generatedAt: 3 }), json({ generatedAt: 4 }), json({ generatedAt: 3 }));
  const r = c.report();
  t.is(r.mismatched, 0);
  t.deepEqual(r.routes[0].fields, []);
});

test('noise is per route: a field noisy on one route still counts on another', (t) => {
  const c = new Comparison([]);
  c.add('GET /a', 'GET /a', json({ x: 1 }), json({ x: 2 }), json({ x: 3 }));
  c.add('GET /b', 'GET /b', json({ x: 1 }), json({ x: 1 }), json({ x: 3 }));
  const r = c.report();
  t.is(r.routes.find((x) => x.route === 'GET /a')!.mismatched, 0);
  t.is(r.routes.find((x) => x.route === 'GET /b')!.mismatched, 1);
});

test('bounds: examples per field, fields per route, routes, example length', (t) => {
  const limits = { ...DEFAULT_COMPARATOR_LIMITS, maxRoutes: 2, maxFields: 3, examplesPerField: 2, maxExampleChars: 10 };
  const c = new Comparison([], limits);
  for (let i = 0; i < 5; i++) c.add('GET /a', 'GET /a', json({ f: 'x'.repeat(50) }), json({ f: 'x'.repeat(50) }), json({ f: `y${i}` }));
  const wide = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`k${i}`, i]));
  c.add('GET /b', 'GET /b', json(wide), json(wide), json({}));
  c.add('GET /c', 'GET /c', json({}), json({}), json({ z: 1 }));
  c.add('GET /d', 'GET /d', json({}), json({}), json({ z: 1 }));
  const r = c.report();
  const a = r.routes.find((x) => x.route === 'GET /a')!;
  t.is(a.fields[0].examples.length, 2);
  t.true(a.fields[0].examples[0].primary.length <= 11);
  const b = r.routes.find((x) => x.route === 'GET /b')!;
  t.is(b.fields.length, 3, 'fields beyond the limit are not tracked');
  t.is(b.mismatched, 1, 'the comparison still counts');
  t.deepEqual(r.routes.map((x) => x.route).sort(), [OTHER_ROUTE, 'GET /a', 'GET /b'].sort());
  t.is(r.routes.find((x) => x.route === OTHER_ROUTE)!.compared, 2);
});

test('signatures over the limit still count as mismatches', (t) => {
  const c = new Comparison([], { ...DEFAULT_COMPARATOR_LIMITS, maxSignatures: 2 });
  for (let i = 0; i < 5; i++) c.add('GET /', 'GET /', json({}), json({}), json({ [`f${i}`]: 1 }));
  t.is(c.report().mismatched, 5);
});

test('judging: waits below minRequests, fails above the bound, passes under it, reports only without a bound', (t) => {
  const report = (compared: number, mismatchPercent: number) => ({ compared, mismatched: 0, mismatchPercent, routes: [] });
  const a = { minRequests: 50, failureLimit: 1, maxMismatchPercent: 5 };
  t.is(judgeMismatch(a, report(10, 50)).result, 'waiting');
  t.regex(judgeMismatch(a, report(10, 50)).message, /waiting for traffic: 10\/50 compared requests/);
  t.is(judgeMismatch(a, report(100, 10)).result, 'failed');
  t.regex(judgeMismatch(a, report(100, 10)).message, /mismatch 10% > 5%/);
  t.is(judgeMismatch(a, report(100, 2)).result, 'passed');
  const only = judgeMismatch({ minRequests: 0, failureLimit: 1 }, report(100, 90));
  t.is(only.result, 'waiting');
  t.true(only.reportOnly);
});

// ---- the server: methods, bounds, the caller never waits ----

async function upstream(t: import('ava').ExecutionContext, answer: (req: http.IncomingMessage) => { body: unknown; delayMs?: number }) {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const a = answer(req);
    setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(a.body)), a.delayMs ?? 0);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    server.close();
    server.closeAllConnections();
  });
  return { port: (server.address() as { port: number }).port, seen };
}

async function comparatorWith(t: import('ava').ExecutionContext, stable: Instance[], candidate: Instance[], limits = {}, model?: MeshModel) {
  const server = new ComparatorServer({
    instances: (ref) => (ref.service === 'reviews-v1' ? stable : candidate),
    log: () => {},
    limits,
    // These runs take plaintext mirrors (no STRICT Service); mTLS below.
    mtlsRequired: () => false,
    ...(model ? { authorize: (ref: { service: string; namespace: string }, r: Parameters<typeof mirrorAuthorized>[2]) => mirrorAuthorized(model, ref, r) } : {}),
  });
  const port = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  server.setRuns([
    { key: 'default/reviews', version: '1', target: { service: 'reviews', namespace: 'default' }, stable: { service: 'reviews-v1', namespace: 'default' }, candidate: { service: 'reviews-v2', namespace: 'default' }, methods: ['GET', 'HEAD', 'OPTIONS'], headers: ['content-type'] },
  ]);
  const mirror = async (method: string, path: string, host = 'reviews:9080', body?: string) => {
    const res = await request(`http://127.0.0.1:${port}${path}`, { method: method as 'GET', headers: { host }, body });
    await res.body.dump();
    return res.statusCode;
  };
  return { server, mirror };
}

const until = async (check: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

test('the comparator answers the mirror at once, even when the candidate is slow, then compares', async (t) => {
  const s1 = await upstream(t, () => ({ body: { v: 1 } }));
  const s2 = await upstream(t, () => ({ body: { v: 1 } }));
  const cand = await upstream(t, () => ({ body: { v: 2 }, delayMs: 500 }));
  const { server, mirror } = await comparatorWith(t, [{ address: '127.0.0.1', port: s1.port }, { address: '127.0.0.1', port: s2.port }], [{ address: '127.0.0.1', port: cand.port }]);
  const started = Date.now();
  t.is(await mirror('GET', '/reviews/1'), 202);
  t.true(Date.now() - started < 300, `answered after ${Date.now() - started} ms`);
  await until(() => (server.status('default/reviews')?.compared ?? 0) === 1);
  const status = server.status('default/reviews')!;
  t.is(status.routes[0].route, 'GET /reviews/{id}');
  t.deepEqual(status.routes[0].fields.map((f) => f.field), ['body.v']);
  t.deepEqual(s1.seen.concat(s2.seen), ['GET /reviews/1', 'GET /reviews/1'], 'primary and secondary are two instances');
});

test('methods the run does not allow are counted as skipped and never forwarded; unknown hosts are dropped', async (t) => {
  const s1 = await upstream(t, () => ({ body: {} }));
  const cand = await upstream(t, () => ({ body: {} }));
  const { server, mirror } = await comparatorWith(t, [{ address: '127.0.0.1', port: s1.port }], [{ address: '127.0.0.1', port: cand.port }]);
  t.is(await mirror('POST', '/orders', 'reviews', '{"buy":1}'), 202);
  t.is(await mirror('DELETE', '/orders/1', 'reviews.default.svc.cluster.local:9080'), 202);
  t.is(await mirror('GET', '/x', 'ratings'), 404);
  await new Promise((r) => setTimeout(r, 200));
  t.deepEqual(s1.seen, []);
  t.deepEqual(cand.seen, []);
  const status = server.status('default/reviews')!;
  t.deepEqual(status.skipped, { POST: 1, DELETE: 1 });
  t.is(status.compared, 0);
  t.deepEqual(server.dropped, { unknown_host: 1 });
});

test('over the concurrency and queue bounds, mirrored requests are dropped and counted', async (t) => {
  const s1 = await upstream(t, () => ({ body: {}, delayMs: 300 }));
  const cand = await upstream(t, () => ({ body: {}, delayMs: 300 }));
  const { server, mirror } = await comparatorWith(t, [{ address: '127.0.0.1', port: s1.port }], [{ address: '127.0.0.1', port: cand.port }], { maxConcurrent: 2, maxQueued: 3 });
  await Promise.all(Array.from({ length: 10 }, (_, i) => mirror('GET', `/r/${i}`)));
  t.true(server.inFlight <= 2);
  t.true(server.queued <= 3);
  await until(() => server.inFlight === 0 && server.queued === 0);
  const status = server.status('default/reviews')!;
  t.is(status.compared, 5);
  t.deepEqual(status.dropped, { queue_full: 5 });
});

test('a mirrored body over the limit and an answer over the limit are dropped and counted', async (t) => {
  const s1 = await upstream(t, (req) => ({ body: { big: req.url === '/big' ? 'x'.repeat(5000) : '' } }));
  const cand = await upstream(t, () => ({ body: {} }));
  const { server, mirror } = await comparatorWith(t, [{ address: '127.0.0.1', port: s1.port }], [{ address: '127.0.0.1', port: cand.port }], { maxRequestBytes: 100, maxResponseBytes: 1000 });
  t.is(await mirror('GET', '/small', 'reviews', 'x'.repeat(500)), 413);
  await mirror('GET', '/big');
  await until(() => (server.status('default/reviews')?.dropped.response_too_large ?? 0) === 1);
  t.deepEqual(server.status('default/reviews')!.dropped, { request_too_large: 1, response_too_large: 1 });
});

// ---- which instances, and how to speak to them ----

test('instances: healthy ones of the Service, mTLS to those whose sidecar has a certificate (not under DISABLE), the dialled port of a multi-port Service', (t) => {
  const e = (id: string, port: number, over: Partial<Endpoint> = {}): Endpoint => ({ id, service: 'reviews-v1', namespace: 'default', address: '10.0.0.1', port, labels: {}, health: 'healthy', source: 'registry', ...over });
  const model: MeshModel = {
    services: [{ name: 'reviews-v1', namespace: 'default', serviceAccounts: ['reviews'], ports: [{ port: 80, targetPort: 8080, appProtocol: 'http' }, { port: 81, targetPort: 8081, appProtocol: 'http' }] }],
    routes: [],
    policies: [],
    endpoints: [],
  };
  const endpoints = [e('a', 8080, { labels: { 'tessera.dev/tls-mode': 'mutual' } }), e('b', 8080, { address: '10.0.0.2', health: 'unhealthy' }), e('c', 8081), e('d', 8080, { service: 'other' })];
  const ref = { service: 'reviews-v1', namespace: 'default' };
  t.deepEqual(comparatorInstances(model, endpoints, ref, 80), [{ address: '10.0.0.1', port: 8080, tls: { identities: ['spiffe://tessera.local/ns/default/sa/reviews'] } }]);
  t.deepEqual(comparatorInstances(model, endpoints, ref, 81), [{ address: '10.0.0.1', port: 8081 }]);
  t.deepEqual(comparatorInstances(model, endpoints, ref), comparatorInstances(model, endpoints, ref, 80), 'no port: the first HTTP port');
  const disabled = { ...model, meshConfig: { trustDomain: 'tessera.local', mtlsMode: 'DISABLE' as const, certificateLifetimeMs: 1 } };
  t.deepEqual(comparatorInstances(disabled, endpoints, ref, 80), [{ address: '10.0.0.1', port: 8080 }]);
});

test('the comparator accepts a peer only with one of the Service\'s SPIFFE identities', (t) => {
  const check = checkSpiffeIdentity(['spiffe://tessera.local/ns/default/sa/reviews']);
  t.is(check('10.0.0.1', { subjectaltname: 'URI:spiffe://tessera.local/ns/default/sa/reviews' }), undefined);
  t.regex(check('10.0.0.1', { subjectaltname: 'URI:spiffe://tessera.local/ns/default/sa/ratings' })!.message, /peer is spiffe:\/\/tessera.local\/ns\/default\/sa\/ratings, not one of/);
  t.truthy(check('10.0.0.1', { subjectaltname: 'DNS:reviews' }));
});

// ---- who may mirror: mTLS for STRICT runs, the caller's identity checked ----

test('the acceptance rule: a mesh client certificate is always accepted and named; TLS without one never; plaintext only when the run needs no mTLS', (t) => {
  const run = (mtlsRequired: boolean) => ({ key: 'default/reviews', mtlsRequired });
  const td = 'tessera.local';
  const mesh = { tls: true as const, authorized: true, uris: ['spiffe://tessera.local/ns/default/sa/productpage'] };
  t.deepEqual(acceptMirror(mesh, run(true), td), { accept: true, peer: 'spiffe://tessera.local/ns/default/sa/productpage' });
  t.deepEqual(acceptMirror(mesh, run(false), td), { accept: true, peer: 'spiffe://tessera.local/ns/default/sa/productpage' });
  t.deepEqual(acceptMirror({ tls: false }, run(false), td), { accept: true });
  const refused = (v: ReturnType<typeof acceptMirror>) => (v.accept ? 'accepted' : v.reason);
  t.is(refused(acceptMirror({ tls: false }, run(true), td)), 'mtls_required');
  t.regex((acceptMirror({ tls: false }, run(true), td) as { message: string }).message, /default\/reviews .*STRICT.*mTLS/);
  // Another CA, no certificate, or a certificate of this CA for another trust domain: refused, even for a run that takes plaintext.
  for (const mtlsRequired of [true, false]) {
    t.is(refused(acceptMirror({ tls: true, authorized: false, error: 'UNABLE_TO_GET_ISSUER_CERT', uris: mesh.uris }, run(mtlsRequired), td)), 'untrusted_client');
    t.is(refused(acceptMirror({ tls: true, authorized: false, error: 'no client certificate', uris: [] }, run(mtlsRequired), td)), 'untrusted_client');
    t.is(refused(acceptMirror({ ...mesh, uris: ['spiffe://other.org/ns/default/sa/productpage'] }, run(mtlsRequired), td)), 'untrusted_client');
    t.is(refused(acceptMirror({ ...mesh, uris: [] }, run(mtlsRequired), td)), 'untrusted_client');
  }
  t.deepEqual(uriSans('DNS:x, URI:spiffe://a/ns/b/sa/c, URI:https://y'), ['spiffe://a/ns/b/sa/c', 'https://y']);
});

test('a run needs mTLS mirrors when its target, stable or candidate Service is STRICT, or when there is no model yet', (t) => {
  const model: MeshModel = { services: [], routes: [], policies: [], endpoints: [] };
  const run = { target: { service: 'reviews', namespace: 'default' }, stable: { service: 'reviews-v1', namespace: 'default' }, candidate: { service: 'reviews-v2', namespace: 'default' } };
  const mesh = (mtlsMode: 'STRICT' | 'PERMISSIVE' | 'DISABLE') => ({ trustDomain: 'tessera.local', mtlsMode, certificateLifetimeMs: 1 });
  t.false(mirrorNeedsMtls(model, run), 'PERMISSIVE by default');
  t.true(mirrorNeedsMtls({ ...model, meshConfig: mesh('STRICT') }, run));
  t.false(mirrorNeedsMtls({ ...model, meshConfig: mesh('DISABLE') }, run));
  t.true(mirrorNeedsMtls({ ...model, mtlsOverrides: [{ name: 'c', targets: [{ service: 'reviews-v2', namespace: 'default' }], mode: 'STRICT' }] }, run), 'the candidate alone is STRICT');
  t.true(mirrorNeedsMtls(undefined, run));
});

async function strictComparator(t: import('ava').ExecutionContext, model?: MeshModel) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-cmp-test-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const ca = await CertificateAuthority.open({ dir: path.join(dir, 'ca'), trustDomain: 'tessera.local', rotationGraceMs: 0 });
  const identity = new ComparatorIdentity(ca, () => 3600_000, () => {});
  await identity.start();
  t.teardown(() => identity.close());
  const s1 = await upstream(t, () => ({ body: { v: 1 } }));
  const cand = await upstream(t, () => ({ body: { v: 1 } }));
  const instances: Instance[] = [{ address: '127.0.0.1', port: s1.port }];
  const server = new ComparatorServer({
    instances: (ref) => (ref.service === 'reviews-v1' ? instances : [{ address: '127.0.0.1', port: cand.port }]),
    log: () => {},
    tls: () => identity.current(),
    mtlsRequired: () => true,
    trustDomain: () => 'tessera.local',
    ...(model ? { authorize: (ref: { service: string; namespace: string }, r: Parameters<typeof mirrorAuthorized>[2]) => mirrorAuthorized(model, ref, r) } : {}),
  });
  const port = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  server.setRuns([
    { key: 'default/reviews', version: '1', target: { service: 'reviews', namespace: 'default' }, stable: { service: 'reviews-v1', namespace: 'default' }, candidate: { service: 'reviews-v2', namespace: 'default' }, methods: ['GET'], headers: [] },
  ]);
  /** A sidecar's certificate from `from` (this mesh's CA by default). */
  const client = async (serviceAccount: string, from: CertificateAuthority = ca, trust = ca.trustBundle()) => {
    const { keyPem, csrPem } = await createKeyAndCsr();
    const issued = await from.issue(csrPem, { namespace: 'default', serviceAccount }, 3600_000);
    const agent = new Agent({ connect: { key: keyPem, cert: issued.certificateChain, ca: trust, checkServerIdentity: checkSpiffeIdentity(['spiffe://tessera.local/ns/tessera-system/sa/tessera-comparator']) } });
    t.teardown(() => agent.close());
    return agent;
  };
  const mirror = async (dispatcher?: Agent) => {
    const res = await request(`${dispatcher ? 'https' : 'http'}://127.0.0.1:${port}/reviews/1`, { headers: { host: 'reviews' }, dispatcher });
    const body = await res.body.text();
    return { status: res.statusCode, body };
  };
  return { ca, dir, server, client, mirror, seen: () => [...s1.seen, ...cand.seen] };
}

test('a STRICT run takes mirrors over mTLS from a mesh certificate on the same port, and refuses plaintext and another CA\'s certificate with 403, forwarding nothing', async (t) => {
  const { dir, server, client, mirror, seen } = await strictComparator(t);
  const plain = await mirror();
  t.is(plain.status, 403);
  t.regex(plain.body, /mirrors must come over mTLS/);
  const stranger = await CertificateAuthority.open({ dir: path.join(dir, 'other-ca'), trustDomain: 'tessera.local' });
  const foreign = await mirror(await client('productpage', stranger));
  t.is(foreign.status, 403);
  t.regex(foreign.body, /client certificate not of this mesh/);
  await new Promise((r) => setTimeout(r, 200));
  t.deepEqual(seen(), [], 'nothing forwarded for a refused mirror');
  t.is(server.status('default/reviews')!.compared, 0);

  t.is((await mirror(await client('productpage'))).status, 202);
  await until(() => server.status('default/reviews')!.compared === 1);
  const status = server.status('default/reviews')!;
  t.deepEqual(status.dropped, { mtls_required: 1, untrusted_client: 1 });
  t.deepEqual(status.mirroredBy, { 'spiffe://tessera.local/ns/default/sa/productpage': 1 });
  t.deepEqual(server.dropped, { mtls_required: 1, untrusted_client: 1 });
});

test('after a root rotation the comparator trusts sidecar certificates of the new root (it reloads its trust bundle)', async (t) => {
  const { ca, server, client, mirror } = await strictComparator(t);
  t.is((await mirror(await client('productpage'))).status, 202);
  await ca.rotate();
  // Grace 0: the new root signs at once; the old one stays trusted.
  const fresh = await client('productpage');
  const answer = await mirror(fresh);
  t.is(answer.status, 202, answer.body);
  t.deepEqual(server.status('default/reviews')!.dropped, {});
  await until(() => server.status('default/reviews')!.compared === 2);
});

// ---- not a confused deputy: the target's policies apply to the mirroring identity ----

const authz = (name: string, service: string, action: 'ALLOW' | 'DENY', rule: Partial<AuthorizationPolicy['rules'][number]>): AuthorizationPolicy => ({
  name,
  namespace: 'default',
  targets: [{ service, namespace: 'default' }],
  action,
  rules: [{ from: rule.from ?? [], to: rule.to ?? [], when: rule.when ?? [] }],
});
const modelWith = (...authorizationPolicies: AuthorizationPolicy[]): MeshModel => ({ ...emptyModel(), authorizationPolicies });
const ADMIT_PRODUCTPAGE = authz('reviews-v1-readers', 'reviews-v1', 'ALLOW', { from: [{ serviceAccounts: [{ name: 'productpage', namespace: 'default' }] }] });

test("a mirror from an identity the stable's ALLOW policy does not admit is dropped as denied_by_policy and reaches no instance; an admitted one is compared", async (t) => {
  const { server, client, mirror, seen } = await strictComparator(t, modelWith(ADMIT_PRODUCTPAGE));
  const denied = await mirror(await client('ratings'));
  t.is(denied.status, 202, 'never an error for the caller');
  await until(() => (server.status('default/reviews')!.dropped.denied_by_policy ?? 0) === 1);
  await new Promise((r) => setTimeout(r, 200));
  t.deepEqual(seen(), [], 'no instance was called for the denied mirror');
  t.is(server.status('default/reviews')!.compared, 0);

  t.is((await mirror(await client('productpage'))).status, 202);
  await until(() => server.status('default/reviews')!.compared === 1);
  t.deepEqual(seen(), ['GET /reviews/1', 'GET /reviews/1', 'GET /reviews/1'], 'primary, secondary and candidate called once each');
  const status = server.status('default/reviews')!;
  t.deepEqual(status.dropped, { denied_by_policy: 1 });
  t.deepEqual(server.dropped, { denied_by_policy: 1 });
  t.deepEqual(status.mirroredBy, { 'spiffe://tessera.local/ns/default/sa/ratings': 1, 'spiffe://tessera.local/ns/default/sa/productpage': 1 });
});

test("the candidate's policies apply too: a DENY on the candidate drops what the stable would allow", async (t) => {
  const deny = authz('reviews-v2-no-admin', 'reviews-v2', 'DENY', { to: [{ paths: ['/reviews/*'] }] });
  const { server, client, mirror, seen } = await strictComparator(t, modelWith(ADMIT_PRODUCTPAGE, deny));
  t.is((await mirror(await client('productpage'))).status, 202);
  await until(() => (server.status('default/reviews')!.dropped.denied_by_policy ?? 0) === 1);
  await new Promise((r) => setTimeout(r, 200));
  t.deepEqual(seen(), []);
});

test('a plaintext mirror has no identity: an ALLOW on service accounts fails closed, a path rule is checked on the normalized path', async (t) => {
  const s1 = await upstream(t, () => ({ body: {} }));
  const cand = await upstream(t, () => ({ body: {} }));
  const stable = [{ address: '127.0.0.1', port: s1.port }];
  const candidate = [{ address: '127.0.0.1', port: cand.port }];
  const closed = await comparatorWith(t, stable, candidate, {}, modelWith(ADMIT_PRODUCTPAGE));
  t.is(await closed.mirror('GET', '/reviews/1'), 202);
  await until(() => (closed.server.status('default/reviews')!.dropped.denied_by_policy ?? 0) === 1);

  const noAdmin = authz('no-admin', 'reviews-v1', 'DENY', { to: [{ paths: ['/admin*'] }] });
  const paths = await comparatorWith(t, stable, candidate, {}, modelWith(noAdmin));
  t.is(await paths.mirror('GET', '/ok/../admin'), 202);
  t.is(await paths.mirror('GET', '//admin'), 202);
  t.is(await paths.mirror('GET', '/ok'), 202);
  await until(() => paths.server.status('default/reviews')!.compared === 1 && (paths.server.status('default/reviews')!.dropped.denied_by_policy ?? 0) === 2);
  await new Promise((r) => setTimeout(r, 200));
  t.deepEqual([...s1.seen, ...cand.seen], ['GET /ok', 'GET /ok', 'GET /ok']);
});

test('mirrorAuthorized: no policy allows, no model yet denies', (t) => {
  const r = { principal: 'spiffe://tessera.local/ns/default/sa/ratings', method: 'GET', path: '/', headers: {}, port: 9080 };
  const ref = { service: 'reviews-v1', namespace: 'default' };
  t.true(mirrorAuthorized(emptyModel(), ref, r));
  t.false(mirrorAuthorized(modelWith(ADMIT_PRODUCTPAGE), ref, r));
  t.true(mirrorAuthorized(modelWith(ADMIT_PRODUCTPAGE), ref, { ...r, principal: 'spiffe://tessera.local/ns/default/sa/productpage' }));
  t.false(mirrorAuthorized(undefined, ref, r));
});
