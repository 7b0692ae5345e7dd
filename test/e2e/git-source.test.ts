// Desired state from git, end to end: a control plane polling a real git repository
// served over HTTP, a real Envoy and demo backends. A commit that moves a route's
// weight is followed by the traffic and shown as the applied revision; a broken commit
// is reported with file:line and its SHA while traffic follows the last good one; a
// fix applies again; suspend holds new commits back and resume applies them; the
// repository going away is reported and survived; credentials never show.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { request } from 'undici';
import {
  envoyTest,
  requireEnvoy,
  serviceWithInstance,
  startBackend,
  startControlPlaneProcess,
  startEnvoy,
  tally,
  tempDir,
  tesseraBin,
} from '../support/mesh.ts';
import { serveGit, testRepo } from '../support/git-server.ts';
import { freePort, startProcess, waitFor } from '../support/processes.ts';

function webRoute(v1: number, v2: number) {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - backendRefs:
    - {name: web-v1, port: 80, weight: ${v1}}
    - {name: web-v2, port: 80, weight: ${v2}}
`;
}

const webService = `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports: [{name: http, port: 80, appProtocol: http}]
`;

interface GitStatus {
  url: string;
  suspended: boolean;
  fetchedRevision?: string;
  appliedRevision?: string;
  fetchedAt?: string;
  lastError?: { kind: string; message: string; revision?: string };
}
interface ConfigView {
  version?: string;
  revision?: string;
  source: GitStatus;
  errors: { file: string; line: number; message: string; revision?: string }[];
}

envoyTest.serial('commits to a git branch served over HTTP steer real traffic: applied, rejected at file:line with the SHA, suspended, resumed', async (t) => {
  if (!requireEnvoy(t)) return;
  const v1 = await startBackend(t, 'web-v1');
  const v2 = await startBackend(t, 'web-v2');
  const repo = testRepo(t);
  const first = repo.commit(
    {
      'mesh/services.yaml': [webService, serviceWithInstance('web-v1', { port: 80, targetPort: v1.port }), serviceWithInstance('web-v2', { port: 80, targetPort: v2.port })].join('---\n'),
      'mesh/web-route.yaml': webRoute(100, 0),
      'README.md': '# not config: outside mesh/\n',
    },
    'web: all on v1',
  );
  // A port of our own (not an ephemeral one): the server is stopped and started again on it.
  const server = await serveGit(t, repo.root, 'dumb', await freePort());
  const tokenFile = path.join(tempDir(t), 'token');
  fs.writeFileSync(tokenFile, 'let-me-steer\n');
  const cp = await startControlPlaneProcess(t, {
    configDir: `git+http://127.0.0.1:${server.port}/repo.git#main:mesh`,
    extraArgs: ['--git-interval', '1s', '--admin-token-file', tokenFile],
  });
  const config = () => cp.api<ConfigView>('/api/v1/config');
  const post = async (what: string, token?: string) => {
    const res = await request(`${cp.adminUrl}/api/v1/config/${what}`, { method: 'POST', headers: token ? { authorization: `Bearer ${token}` } : {} });
    return { status: res.statusCode, body: (await res.body.json()) as { source: GitStatus; error?: string } };
  };
  const onlyTo = async (backend: string) => {
    const counts = await tally(envoy.outboundPort, 'web', 20);
    return counts[backend] === 20;
  };

  const envoy = await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'delta', service: 'client' });
  await waitFor('web to be served by v1', () => onlyTo('web-v1'), 15_000);
  let c = await config();
  t.is(c.revision, first);
  t.like(c.source, { url: `http://127.0.0.1:${server.port}/repo.git`, fetchedRevision: first, appliedRevision: first, suspended: false });

  // 100/0 -> 0/100 in one commit: followed within a few poll intervals.
  const pushedAt = Date.now();
  const second = repo.commit({ 'mesh/web-route.yaml': webRoute(0, 100) }, 'web: all on v2');
  await waitFor('the traffic to move to v2', () => onlyTo('web-v2'), 20_000, 100);
  const followedMs = Date.now() - pushedAt;
  t.log(`commit followed by the traffic after ${followedMs} ms (poll interval 1 s)`);
  t.true(followedMs < 10_000, `took ${followedMs} ms`);
  c = await config();
  t.is(c.revision, second);
  t.like(c.source, { fetchedRevision: second, appliedRevision: second });
  t.deepEqual(c.errors, []);

  // A broken commit: reported with file:line and its SHA; the last good keeps serving.
  const broken = repo.commit({ 'mesh/web-route.yaml': webRoute(50, 50).replace('  rules:', '  rulez:') }, 'web: a typo');
  c = await waitFor('the broken commit to be reported', async () => {
    const now = await config();
    return now.source.fetchedRevision === broken && now.errors.length > 0 && now;
  }, 20_000);
  const typo = c.errors.find((e) => /unknown field 'spec.rulez'/.test(e.message));
  t.like(typo, { file: 'mesh/web-route.yaml', line: 7, revision: broken }, JSON.stringify(c.errors));
  t.is(c.revision, second, 'the last good revision is still the one served');
  t.like(c.source, { appliedRevision: second, lastError: { kind: 'config', revision: broken } });
  t.regex(cp.process.output(), new RegExp(`config change \\(revision ${broken}\\) rejected, last good config \\(revision ${second}\\) keeps serving`));
  t.regex(cp.process.output(), /mesh\/web-route\.yaml:7:\d+: HTTPRoute web: unknown field 'spec.rulez'/);
  t.deepEqual(await tally(envoy.outboundPort, 'web', 50), { 'web-v2': 50 }, 'traffic follows the last good revision');
  const ready = await request(`${cp.adminUrl}/readyz`);
  t.is(ready.statusCode, 200, await ready.body.text());

  // The fix applies again and clears the errors.
  const fixed = repo.commit({ 'mesh/web-route.yaml': webRoute(100, 0) }, 'web: back to v1');
  await waitFor('the fix to move the traffic back to v1', () => onlyTo('web-v1'), 20_000, 100);
  c = await config();
  t.like(c, { revision: fixed, errors: [] });
  t.is(c.source.lastError, undefined);

  // Suspend: token-protected; new commits are not applied while suspended.
  t.is((await post('suspend')).status, 401);
  t.is((await post('suspend', 'wrong')).status, 401);
  t.false((await config()).source.suspended, 'a refused request changed nothing');
  const suspended = await post('suspend', 'let-me-steer');
  t.is(suspended.status, 200);
  t.true(suspended.body.source.suspended);
  const held = repo.commit({ 'mesh/web-route.yaml': webRoute(0, 100) }, 'web: v2 again, while suspended');
  const sync = await post('sync', 'let-me-steer');
  t.is(sync.status, 409);
  t.regex(sync.body.error ?? '', /suspended: resume it first/);
  await new Promise((r) => setTimeout(r, 4000)); // four poll intervals
  t.deepEqual(await tally(envoy.outboundPort, 'web', 30), { 'web-v1': 30 }, 'nothing applied while suspended');
  c = await config();
  t.like(c, { revision: fixed, source: { suspended: true, appliedRevision: fixed } });
  const fetchedWhileSuspended = c.source.fetchedAt;
  await new Promise((r) => setTimeout(r, 1500));
  t.is((await config()).source.fetchedAt, fetchedWhileSuspended, 'no fetch while suspended');
  t.regex(await (await request(`${cp.adminUrl}/metrics`)).body.text(), /^tessera_config_git_suspended 1$/m);

  const resumed = await post('resume', 'let-me-steer');
  t.false(resumed.body.source.suspended);
  await waitFor('the held commit to apply once resumed', () => onlyTo('web-v2'), 20_000, 100);
  t.is((await config()).source.appliedRevision, held);

  // The repository goes away: reported, retried, and traffic goes on; it comes back.
  await server.stop();
  c = await waitFor('the fetch failure to be reported', async () => {
    const now = await config();
    return now.source.lastError?.kind === 'fetch' && now;
  }, 20_000);
  t.regex(c.source.lastError!.message, new RegExp(`fetch of branch main from http://127.0.0.1:${server.port}/repo.git failed`));
  t.is(c.source.appliedRevision, held);
  t.is((await request(`${cp.adminUrl}/readyz`)).statusCode, 200, 'a revision was applied before: still ready');
  t.deepEqual(await tally(envoy.outboundPort, 'web', 30), { 'web-v2': 30 });
  await server.start();
  const last = repo.commit({ 'mesh/web-route.yaml': webRoute(100, 0) }, 'web: v1 once more');
  // Sync fetches now and answers with the state after that fetch (for CI).
  const synced = await post('sync', 'let-me-steer');
  t.is(synced.status, 200);
  t.like(synced.body.source, { fetchedRevision: last, appliedRevision: last });
  t.is(synced.body.source.lastError, undefined);
  await waitFor('v1 again', () => onlyTo('web-v1'), 10_000, 100);

  // The changes feed names the commit, so `tessera status --wait` after a push tells which proxies have it.
  const change = await waitFor('the change to be ACKed', async () => {
    const latest = await cp.api<{ kind: string; note?: { revision?: string }; acked: number }>('/api/v1/changes/latest');
    return latest.note?.revision === last && latest.acked > 0 && latest;
  }, 10_000);
  t.is(change.kind, 'config');

  const metrics = await (await request(`${cp.adminUrl}/metrics`)).body.text();
  t.regex(metrics, new RegExp(`^tessera_config_git_revision_info\\{state="applied",revision="${last}"\\} 1$`, 'm'));
  t.regex(metrics, /^tessera_config_git_fetches_total\{result="failed"\} [1-9]/m);
  t.regex(metrics, /^tessera_config_git_suspended 0$/m);
  // The dumb protocol cannot fetch shallow; the source fell back to a whole fetch once.
  t.true(server.requests > 0);
  const { proxies } = await cp.api<{ proxies: { nodeId: string; types: Record<string, { lastNack?: unknown }> }[] }>('/api/v1/proxies');
  for (const [type, s] of Object.entries(proxies.find((p) => p.nodeId === envoy.nodeId)!.types)) t.falsy(s.lastNack, `${type} NACKed`);
});

test.serial('a control plane whose repository does not answer yet starts, is not ready with the reason, never shows the credentials, and serves once the repository answers', async (t) => {
  const repo = testRepo(t);
  const sha = repo.commit({ 'mesh/api.yaml': webService }, 'first');
  const port = await freePort();
  const adminPort = await freePort();
  const xdsPort = await freePort();
  const cp = startProcess(t, process.execPath, [
    tesseraBin, 'control-plane', '--address', '127.0.0.1', '--xds-port', String(xdsPort), '--admin-port', String(adminPort),
    '--config', `git+http://deploy:hunter2@127.0.0.1:${port}/repo.git#main:mesh`, '--git-interval', '1s',
  ]);
  const admin = `http://127.0.0.1:${adminPort}`;
  const readyz = async () => {
    const res = await request(`${admin}/readyz`);
    return { status: res.statusCode, text: await res.body.text() };
  };
  const notReady = await waitFor('a not-ready answer that names the failing fetch', async () => {
    const r = await readyz();
    return r.status === 503 && /fetch of branch main/.test(r.text) && r;
  }, 20_000);
  t.regex(notReady.text, new RegExp(`no revision applied yet from http://\\*\\*\\*@127\\.0\\.0\\.1:${port}/repo\\.git#main:mesh: fetch of branch main`));
  const before = await (await request(`${admin}/api/v1/config`)).body.text();
  t.is(JSON.parse(before).source.url, `http://***@127.0.0.1:${port}/repo.git`);

  // The smart protocol (git http-backend): the source fetches shallow.
  const server = await serveGit(t, repo.root, 'smart', port);
  await waitFor('ready once the repository answers', async () => (await readyz()).status === 200, 20_000);
  const after = JSON.parse(await (await request(`${admin}/api/v1/config`)).body.text()) as ConfigView;
  t.is(after.source.appliedRevision, sha);
  t.true(server.uploadPackBodies.some((b) => b.includes('deepen 1')), 'a shallow fetch (deepen 1) was asked for');
  t.is(after.source.lastError, undefined);

  // Nowhere: not in the log, not in the API, not in readyz.
  for (const text of [cp.output(), before, JSON.stringify(after), notReady.text]) {
    t.false(text.includes('hunter2'), text);
    t.false(text.includes('deploy:'), text);
  }
  t.regex(cp.output(), /works again after \d+ failed attempts?/);

  // The same state from the CLI.
  const cli = (...args: string[]) => execFileSync(process.execPath, [tesseraBin, ...args, '--admin', admin], { encoding: 'utf8' });
  const shown = cli('get', 'config');
  t.regex(shown, new RegExp(`^SOURCE +git http://\\*\\*\\*@127\\.0\\.0\\.1:${port}/repo\\.git#main:mesh \\(every 1 s\\)$`, 'm'), shown);
  t.regex(shown, new RegExp(`^APPLIED +${sha} at `, 'm'), shown);
  t.regex(shown, /^STATE +polling$/m, shown);
  t.regex(cli('config', 'suspend'), /: suspended; fetched [0-9a-f]{40}, applied [0-9a-f]{40}/);
  t.regex(cli('get', 'config'), /^STATE +suspended$/m);
});
