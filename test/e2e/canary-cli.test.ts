// Driving a Canary by hand with `tessera canary …` (token-protected), against the
// example mesh and a real Envoy whose served routes show the split. The Canary's
// interval is long, so only the hand-made moves happen.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import { envoyTest, repoRoot, requireEnvoy, reviewsCanary, startControlPlaneProcess, startEnvoy, tempDir, tesseraBin } from '../support/mesh.ts';
import { waitFor } from '../support/processes.ts';

const run = promisify(execFile);

const CANARY = reviewsCanary(`  strategy: Canary
  steps: [5, 25, 50, 100]
  interval: 10m
  analysis: {successRate: {min: 99}, latencyP99: {max: 500ms}, minRequests: 20, failureLimit: 2}
`);

interface WeightedRoute {
  match: { headers?: unknown[] };
  route: { cluster?: string; weighted_clusters?: { clusters: { name: string; weight: { value: number } }[] } };
}

envoyTest.serial('tessera canary pause/resume/promote/abort move the served split; the files stay as they are and a reload does not undo it', async (t) => {
  if (!requireEnvoy(t)) return;
  const dir = tempDir(t);
  for (const f of fs.readdirSync(path.join(repoRoot, 'examples/mesh'))) fs.copyFileSync(path.join(repoRoot, 'examples/mesh', f), path.join(dir, f));
  fs.writeFileSync(path.join(dir, 'canary.yaml'), CANARY);
  const routesBefore = fs.readFileSync(path.join(dir, 'routes.yaml'), 'utf8');
  const tokenFile = path.join(tempDir(t), 'token');
  fs.writeFileSync(tokenFile, 'sesame\n');
  const cp = await startControlPlaneProcess(t, { configDir: dir, extraArgs: ['--admin-token-file', tokenFile] });
  const envoy = await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'sotw', nodeId: 'canary-cli', service: 'productpage' });
  const tessera = (...args: string[]) => run(process.execPath, [tesseraBin, 'canary', ...args, '--admin', cp.adminUrl, '--admin-token-file', tokenFile]).then((r) => r.stdout);

  /** The reviews virtual host's routes as the Envoy is served them. */
  const servedRoutes = async () => {
    const dump = await cp.api<{ resources: { RDS?: { virtual_hosts: { name: string; routes: WeightedRoute[] }[] }[] } }>('/api/v1/proxies/canary-cli/config');
    return dump.resources.RDS?.[0]?.virtual_hosts.find((v) => v.name === 'reviews.default:9080')?.routes ?? [];
  };
  const weights = (r: WeightedRoute) => r.route.weighted_clusters?.clusters.map((c) => `${c.name}=${c.weight.value}`) ?? [`${r.route.cluster}=all`];
  const served = async () => (await servedRoutes()).map(weights);

  const v1 = 'outbound|9080||reviews-v1.default';
  const v2 = 'outbound|9080||reviews-v2.default';
  // The header rule for testers is left alone; the default rule follows the Canary, not the file's 80/20.
  t.deepEqual(await waitFor('the split to be served', async () => (await servedRoutes()).length === 2 && served()), [[`${v2}=all`], [`${v1}=95`, `${v2}=5`]]);

  const list = await tessera('list');
  t.regex(list, /^NAME\s+TARGET\s+MODE\s+PHASE\s+STEP\s+WEIGHT\s+FAILURES\s+LAST ANALYSIS/);
  t.regex(list, /default\/reviews\s+reviews\s+Canary\s+Progressing\s+1\/4\s+5%\s+0\/2\s+-/);

  // Without the token nothing changes.
  const refused = await request(`${cp.adminUrl}/api/v1/canaries/default/reviews/promote`, { method: 'POST' });
  t.is(refused.statusCode, 401);
  await refused.body.dump();
  t.regex(await tessera('status', 'reviews'), /phase Progressing, step 1\/4/);

  t.regex(await tessera('pause', 'reviews'), /Paused, 5% to reviews-v2: paused by hand at step 1\/4/);
  const get = await run(process.execPath, [tesseraBin, 'get', 'canaries', '--admin', cp.adminUrl]);
  t.regex(get.stdout, /default\/reviews\s+reviews\s+Canary\s+Paused\s+1\/4\s+5%/);
  t.regex(await tessera('resume', 'reviews'), /Progressing, 5% to reviews-v2: resumed by hand/);
  t.regex(await tessera('promote', 'reviews'), /Promoted, 100% to reviews-v2/);
  t.deepEqual(await waitFor('the promotion to be served', async () => JSON.stringify(await served()).includes(`${v2}=all"],["${v2}`) && served()), [[`${v2}=all`], [`${v2}=all`]]);

  const abort = await run(process.execPath, [tesseraBin, 'canary', 'abort', 'reviews', '--admin', cp.adminUrl, '--admin-token-file', tokenFile]).catch((e) => e);
  t.regex(abort.stderr, /409 Canary default\/reviews is Promoted: abort does not apply/);
  const missing = await run(process.execPath, [tesseraBin, 'canary', 'status', 'nope', '--admin', cp.adminUrl]).catch((e) => e);
  t.regex(missing.stderr, /404 no Canary default\/nope/);

  const { changes } = await cp.api<{ changes: { kind: string; note?: Record<string, unknown> }[] }>('/api/v1/changes');
  const canaryChange = changes.find((c) => c.kind === 'canary');
  t.like(canaryChange?.note, { canary: 'default/reviews', phase: 'Promoted', weight: 100, reason: 'promote by hand' });

  // An unrelated config edit is applied, and the served split stays the Canary's.
  fs.writeFileSync(path.join(dir, 'extra.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: extra}\nspec:\n  ports: [{port: 80}]\n');
  await waitFor('the edit to be applied', async () => (await cp.api<{ resources: { name: string }[] }>('/api/v1/config')).resources.some((r) => r.name === 'extra'));
  t.deepEqual(await served(), [[`${v2}=all`], [`${v2}=all`]]);
  t.is(fs.readFileSync(path.join(dir, 'routes.yaml'), 'utf8'), routesBefore, 'the user\'s files are never written');
  t.is(await envoy.stat('http.outbound_http.rds.outbound_http.update_rejected'), 0);
});
