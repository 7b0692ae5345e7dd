// AuthorizationPolicy through a real Envoy: a `ratings` app behind a sidecar's inbound
// listener, the control plane watching a config dir, and the policies file rewritten
// between phases (hot reload, no restart). Requests go straight to the inbound port,
// as another sidecar's would, in plaintext: there is no peer certificate, so no
// principal (the mTLS version of the principal rules is the mTLS suite's).
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import {
  envoyTest,
  requireEnvoy,
  startBackend,
  startControlPlaneProcess,
  startEnvoy,
  tempDir,
  type Backend,
  type ControlPlaneProcess,
  type EnvoyProcess,
} from '../support/mesh.ts';
import { freePort, waitFor } from '../support/processes.ts';

interface Reply {
  status: number;
  body: string;
  /** The path the app received, when the request reached it. */
  appPath?: string;
}

/** A raw request: node:http sends the path exactly as given (no URL normalization). */
function send(port: number, method: string, requestPath: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: requestPath, headers: { host: 'ratings', ...headers }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        const reply: Reply = { status: res.statusCode ?? 0, body };
        if (res.headers['x-backend'] === 'ratings') reply.appPath = JSON.parse(body).path;
        resolve(reply);
      });
    });
    req.on('error', reject);
    req.end(method === 'POST' ? 'x' : undefined);
  });
}

const service = (port: number) => `apiVersion: v1
kind: Service
metadata: {name: ratings}
spec:
  ports: [{name: http, port: 80, targetPort: ${port}, appProtocol: http}]
`;

const DENY_ADMIN = `apiVersion: tessera.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: no-admin}
spec:
  targetRefs: [{group: "", kind: Service, name: ratings}]
  action: DENY
  rules:
  - to: [{paths: ["/admin*"]}]
`;

const ALLOW_GET = `apiVersion: tessera.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: readers}
spec:
  targetRefs: [{group: "", kind: Service, name: ratings}]
  action: ALLOW
  rules:
  - to: [{methods: [GET]}]
`;

const ALLOW_REVIEWS_ONLY = `apiVersion: tessera.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: reviews-only}
spec:
  targetRefs: [{group: "", kind: Service, name: ratings}]
  action: ALLOW
  rules:
  - from: [{serviceAccounts: [reviews]}]
`;

interface Setup {
  dir: string;
  cp: ControlPlaneProcess;
  envoy: EnvoyProcess;
  app: Backend;
  port: number;
}

async function setup(t: ExecutionContext, policies: string): Promise<Setup> {
  const app = await startBackend(t, 'ratings');
  const port = await freePort();
  const dir = tempDir(t, 'tessera-authz-');
  fs.writeFileSync(path.join(dir, 'service.yaml'), service(port));
  fs.writeFileSync(path.join(dir, 'policies.yaml'), policies);
  const cp = await startControlPlaneProcess(t, { configDir: dir });
  const envoy = await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'delta', service: 'ratings', inbound: { port, appPort: app.port } });
  return { dir, cp, envoy, app, port };
}

/** Rewrites the policies and waits until `probe` shows the new behaviour; returns ms. */
async function rewrite(s: Setup, policies: string, what: string, probe: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  const tmp = path.join(s.dir, '.policies.yaml.tmp');
  fs.writeFileSync(tmp, policies);
  fs.renameSync(tmp, path.join(s.dir, 'policies.yaml'));
  await waitFor(what, probe, 20_000, 50);
  return Date.now() - started;
}

async function assertNoRejections(t: ExecutionContext, s: Setup): Promise<void> {
  t.is(await s.envoy.stat('listener_manager.lds.update_rejected'), 0, 'Envoy rejected no listener update');
  const { errors } = await s.cp.api<{ errors: unknown[] }>('/api/v1/config');
  t.deepEqual(errors, [], 'the control plane accepted every config');
}

envoyTest.serial('a DENY on /admin* answers 403 for /admin, also spelled //admin or /ok/../admin, and 200 for /ok', async (t) => {
  if (!requireEnvoy(t)) return;
  const s = await setup(t, DENY_ADMIN);
  await waitFor('the inbound listener to enforce the DENY', async () => (await send(s.port, 'GET', '/admin')).status === 403, 20_000);

  const ok = await send(s.port, 'GET', '/ok');
  t.is(ok.status, 200);
  t.is(ok.appPath, '/ok');
  t.is((await send(s.port, 'POST', '/ok')).status, 200, 'a DENY on paths leaves other methods alone');
  const hitsBefore = s.app.hits;
  for (const p of ['/admin', '/admin/users', '/admin?x=1', '//admin', '/ok/../admin', '/%61dmin']) {
    const r = await send(s.port, 'GET', p);
    t.is(r.status, 403, `GET ${p} is denied`);
    t.regex(r.body, /RBAC: access denied/, `GET ${p} was denied by RBAC`);
  }
  t.is(s.app.hits, hitsBefore, 'no denied request reached the app');
  t.is((await send(s.port, 'GET', '/administrator')).status, 403, 'prefix* is a string prefix, as in Istio');
  t.is((await send(s.port, 'GET', '/ok/admin')).status, 200);
  t.true((await s.envoy.stat(`http.inbound_${s.port}.rbac.deny.denied`)) >= 7, 'the DENY filter counted its denials');
  const { resources } = await s.cp.api<{ resources: { kind: string; name: string; source: string }[] }>('/api/v1/config');
  t.like(resources.find((r) => r.kind === 'AuthorizationPolicy'), { name: 'no-admin', source: 'policies.yaml:3' }, 'the admin API lists the policy');
  await assertNoRejections(t, s);
});

envoyTest.serial('ALLOW GET only: GET 200, POST 403; DENY wins over ALLOW; edits are hot-reloaded within seconds', async (t) => {
  if (!requireEnvoy(t)) return;
  const s = await setup(t, '');
  await waitFor('the sidecar to forward to the app', async () => (await send(s.port, 'POST', '/ok')).status === 200, 20_000);
  t.is((await send(s.port, 'GET', '/admin')).status, 200, 'no policy: everything is allowed');

  const allowMs = await rewrite(s, ALLOW_GET, 'POST to be refused by the ALLOW policy', async () => (await send(s.port, 'POST', '/ok')).status === 403);
  t.is((await send(s.port, 'GET', '/ok')).status, 200);
  t.is((await send(s.port, 'HEAD', '/ok')).status, 403, 'HEAD is not GET');
  t.is((await send(s.port, 'GET', '/admin')).status, 200);

  const bothMs = await rewrite(s, `${ALLOW_GET}---\n${DENY_ADMIN}`, 'GET /admin to be denied although ALLOW matches it', async () => (await send(s.port, 'GET', '/admin')).status === 403);
  t.is((await send(s.port, 'GET', '/ok')).status, 200, 'ALLOW still lets GET through');
  t.is((await send(s.port, 'POST', '/ok')).status, 403);

  const removedMs = await rewrite(s, '', 'every request to be allowed again', async () => (await send(s.port, 'POST', '/admin')).status === 200);
  t.log(`policy edit -> new behaviour at the sidecar: add ALLOW ${allowMs} ms, add DENY ${bothMs} ms, remove both ${removedMs} ms`);
  for (const ms of [allowMs, bothMs, removedMs]) t.true(ms < 10_000, `reloaded in ${ms} ms`);
  await assertNoRejections(t, s);
});

envoyTest.serial('an ALLOW from the reviews service account only fails closed in plaintext: 403 for every caller', async (t) => {
  if (!requireEnvoy(t)) return;
  const s = await setup(t, ALLOW_REVIEWS_ONLY);
  await waitFor('the ALLOW policy to be enforced', async () => (await send(s.port, 'GET', '/')).status === 403, 20_000);
  const hitsBefore = s.app.hits;
  // Headers a caller could forge prove nothing: only a peer certificate would.
  const forged: Record<string, string>[] = [{}, { 'x-forwarded-client-cert': 'URI=spiffe://tessera.local/ns/default/sa/reviews' }, { 'x-spiffe-id': 'spiffe://tessera.local/ns/default/sa/reviews' }];
  for (const headers of forged) {
    for (const method of ['GET', 'POST']) t.is((await send(s.port, method, '/ratings/1', headers)).status, 403, `${method} with ${JSON.stringify(headers)}`);
  }
  t.is(s.app.hits, hitsBefore, 'nothing reached the app');
  t.true((await s.envoy.stat(`http.inbound_${s.port}.rbac.allow.denied`)) >= 6);
  await assertNoRejections(t, s);
});

envoyTest.serial('a policy the sidecars could not enforce is refused at its line and the last good policy keeps serving', async (t) => {
  if (!requireEnvoy(t)) return;
  const s = await setup(t, DENY_ADMIN);
  await waitFor('the DENY to be enforced', async () => (await send(s.port, 'GET', '/admin')).status === 403, 20_000);
  fs.writeFileSync(path.join(s.dir, 'policies.yaml'), DENY_ADMIN.replace('action: DENY', 'action: CUSTOM'));
  const { errors } = await waitFor('the bad policy to be reported', async () => {
    const config = await s.cp.api<{ errors: { file: string; line: number; message: string }[] }>('/api/v1/config');
    return config.errors.length > 0 ? config : undefined;
  });
  t.like(errors[0], { file: 'policies.yaml', line: 6 });
  t.regex(errors[0].message, /spec\.action must be one of "ALLOW", "DENY"/);
  t.is((await send(s.port, 'GET', '/admin')).status, 403, 'the last good policy still holds');
  t.is((await send(s.port, 'GET', '/ok')).status, 200);
});
