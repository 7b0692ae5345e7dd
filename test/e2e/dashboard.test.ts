// The dashboard in a real browser (Debian's Chromium through playwright-core) against a
// control plane with real Envoys: what a person sees turns with what the mesh does,
// live (server-sent events), with no reload. Screenshots go to test-results/ui/.
import fs from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import { openPage, screenshot, styleOf } from '../support/browser.ts';
import {
  REGISTRY_API_CONFIG,
  requireEnvoy,
  serviceWithInstance,
  startBackend,
  startControlPlaneProcess,
  startEnvoy,
  tally,
  tempDir,
  type ControlPlaneProcess,
} from '../support/mesh.ts';
import { findEnvoy } from '../../sidecar/agent/envoy.ts';
import { CHROMIUM_PATH, requireChromium, testNeeding, waitFor } from '../support/processes.ts';

const test = testNeeding({ envoy: findEnvoy() !== undefined, chromium: fs.existsSync(CHROMIUM_PATH) });

const webRoute = (backend: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{kind: Service, name: web}]
  rules:
  - backendRefs: [{name: ${backend}, port: 80}]
`;

// Line 5 holds the field no Service has; the page must say broken.yaml:5.
const BROKEN = `apiVersion: v1
kind: Service
metadata: {name: broken}
spec:
  ports: [{name: http, port: 80, appProtocol: http, colour: blue}]
`;

async function latestVersion(cp: ControlPlaneProcess): Promise<number> {
  const { changes } = await cp.api<{ changes: { version: string }[] }>('/api/v1/changes');
  return Number(changes[0]?.version ?? 0);
}

const UI_WAIT = { timeout: 30_000 };

test.serial('the dashboard shows a route edit turn applied, a broken file at file:line and a killed instance turn red, live', async (t) => {
  if (!requireEnvoy(t) || !requireChromium(t)) return;
  t.timeout(240_000);
  const v1 = await startBackend(t, 'web-v1');
  const v2 = await startBackend(t, 'web-v2');
  const dir = tempDir(t);
  fs.writeFileSync(
    path.join(dir, 'services.yaml'),
    [
      serviceWithInstance('web', { port: 80, targetPort: v1.port }),
      serviceWithInstance('web-v1', { port: 80, targetPort: v1.port }),
      serviceWithInstance('web-v2', { port: 80, targetPort: v2.port }),
      REGISTRY_API_CONFIG,
    ].join('---\n'),
  );
  fs.writeFileSync(path.join(dir, 'routes.yaml'), webRoute('web-v1'));
  const cp = await startControlPlaneProcess(t, { configDir: dir });
  const envoys = [
    await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'sotw', nodeId: 'envoy-sotw', service: 'frontend' }),
    await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'delta', nodeId: 'envoy-delta', service: 'frontend' }),
  ];

  // The demo app behind a registered, health-checked instance of `api`.
  const demo = await startBackend(t, 'api-demo');
  const put = await request(`${cp.adminUrl}/api/v1/services/api/instances/api-1`, {
    method: 'PUT',
    body: JSON.stringify({ address: '127.0.0.1', port: demo.port, check: { http: '/healthz', interval: '300ms', timeout: '250ms', unhealthyThreshold: 2 } }),
  });
  t.is(put.statusCode, 201, await put.body.text());

  const { page, errors } = await openPage(t, `${cp.adminUrl}/ui/`);
  await page.waitForSelector('#live[data-state="live"]', UI_WAIT);
  await page.waitForSelector('[data-instance="api/api-1"][data-health="healthy"]', UI_WAIT);
  for (const envoy of envoys) await page.waitForSelector(`#proxies tr[data-node="${envoy.nodeId}"][data-state="acked"]`, UI_WAIT);
  // Everything after this comes over the event stream: a reload would clear the mark.
  await page.evaluate(() => ((window as unknown as { mark: string }).mark = 'no reload'));
  await screenshot(page, 'dashboard');

  // 1. A route edit shows up in the changes feed and turns "applied" once both Envoys ACK it.
  const before = await latestVersion(cp);
  const editedAt = Date.now();
  fs.writeFileSync(path.join(dir, 'routes.yaml'), webRoute('web-v2'));
  const edit = await waitFor('the route edit in the changes feed', async () => {
    const { changes } = await cp.api<{ changes: { version: string; kind: string }[] }>('/api/v1/changes');
    return changes.find((c) => Number(c.version) > before && c.kind === 'config');
  });
  const row = page.locator(`#changes [data-change-version="${edit.version}"]`);
  await row.waitFor(UI_WAIT);
  await page.waitForSelector(`#changes [data-change-version="${edit.version}"][data-status="applied"]`, UI_WAIT);
  t.log(`route edit: file written to "applied" on the page in ${Date.now() - editedAt} ms (includes the watcher's settle time)`);
  t.is(await row.locator('.badge').first().textContent(), 'applied');
  t.regex((await row.textContent()) ?? '', /config edit \(config \S+\).*2\/2 ACKed/);
  const applied = await cp.api<{ proxies: { nodeId: string; status: string }[] }>(`/api/v1/changes/${edit.version}`);
  t.deepEqual(applied.proxies.map((p) => `${p.nodeId}:${p.status}`).sort(), ['envoy-delta:acked', 'envoy-sotw:acked'], 'the page agrees with the API');
  t.deepEqual(await tally(envoys[0].outboundPort, 'web', 5), { 'web-v2': 5 }, 'and the Envoys route by it');
  await screenshot(page, 'route-edit-applied');

  // 1b. A change the Envoys refuse (a regex past Envoy's default RE2 program size) shows NACKed, with Envoy's error.
  const beforeNack = await latestVersion(cp);
  fs.writeFileSync(
    path.join(dir, 'routes.yaml'),
    webRoute('web-v2').replace('  - backendRefs', '  - matches: [{path: {type: RegularExpression, value: "^/items/[a-z0-9]{1,40}/[a-z0-9]{1,40}$"}}]\n    backendRefs'),
  );
  const refused = await waitFor('the refused change in the feed', async () => {
    const { changes } = await cp.api<{ changes: { version: string; kind: string }[] }>('/api/v1/changes');
    return changes.find((c) => Number(c.version) > beforeNack && c.kind === 'config');
  });
  await page.waitForSelector(`#changes [data-change-version="${refused.version}"][data-status="nacked"]`, UI_WAIT);
  const refusedRow = page.locator(`#changes [data-change-version="${refused.version}"]`);
  await refusedRow.locator('.change-proxies li[data-status="nacked"]').first().waitFor(UI_WAIT);
  t.regex((await refusedRow.textContent()) ?? '', /NACKed.*RDS: .*program size/is, 'the proxies and Envoy\'s own error, without a click');
  for (const envoy of envoys) await page.waitForSelector(`#proxies tr[data-node="${envoy.nodeId}"][data-state="nacked"] td[data-type="RDS"] [data-state="nacked"]`, UI_WAIT);
  await screenshot(page, 'change-nacked');
  fs.writeFileSync(path.join(dir, 'routes.yaml'), webRoute('web-v2'));
  for (const envoy of envoys) await page.waitForSelector(`#proxies tr[data-node="${envoy.nodeId}"][data-state="acked"]`, UI_WAIT);

  // The graph: edges from traffic stats when the control plane has them, else the routes' own, dashed.
  const traffic = await request(`${cp.adminUrl}/api/v1/traffic`);
  await traffic.body.dump();
  if (traffic.statusCode === 404) {
    await page.waitForSelector('#graph [data-edge="web->web-v2"][data-kind="declared"]', UI_WAIT);
    t.regex((await page.locator('#graph').textContent()) ?? '', /declared \(no traffic data\)/);
    const dash = await styleOf(page, '#graph [data-edge="web->web-v2"] path', 'stroke-dasharray');
    t.not(dash, 'none', 'declared edges are dashed');
    t.is(await page.locator('#graph [data-edge="web->web-v1"]').count(), 0, 'the edge of the old route is gone');
  } else {
    await page.waitForSelector('#graph [data-kind="traffic"], #graph .hint', UI_WAIT);
    t.regex((await page.locator('#graph').textContent()) ?? '', /from the proxies' own stats/);
  }

  // 2. A broken file: the page names it at its line; the last good config keeps serving.
  fs.writeFileSync(path.join(dir, 'broken.yaml'), BROKEN);
  const error = page.locator('#config .config-errors li[data-file="broken.yaml"]');
  await error.waitFor(UI_WAIT);
  t.regex((await error.locator('.where').textContent()) ?? '', /^broken\.yaml:5(:\d+)?$/);
  t.regex((await error.textContent()) ?? '', /colour/);
  t.regex((await page.locator('#config').textContent()) ?? '', /Config change rejected.*keeps serving/);
  const apiErrors = (await cp.api<{ errors: { file: string; line: number }[] }>('/api/v1/config')).errors;
  t.deepEqual(apiErrors.map((e) => `${e.file}:${e.line}`), ['broken.yaml:5']);
  await screenshot(page, 'config-rejected');
  fs.rmSync(path.join(dir, 'broken.yaml'));
  await page.waitForSelector('#config .config-ok[data-state="ok"]', UI_WAIT);

  // 3. The demo app stops: its instance fails its check and turns red on the page.
  await demo.close();
  const killedAt = Date.now();
  const instance = page.locator('[data-instance="api/api-1"]');
  await page.waitForSelector('[data-instance="api/api-1"][data-health="unhealthy"]', UI_WAIT);
  t.log(`demo app stopped to red on the page in ${Date.now() - killedAt} ms (check every 300 ms, 2 failures)`);
  t.is(await instance.locator('.health').textContent(), 'unhealthy');
  t.is(await styleOf(page, '[data-instance="api/api-1"] .health', 'background-color'), 'rgb(207, 34, 46)', 'red');
  await page.waitForSelector('#graph [data-service="api"][data-health="unhealthy"]', UI_WAIT);
  t.is(await styleOf(page, '#graph [data-service="api"] rect', 'stroke'), 'rgb(207, 34, 46)');
  await screenshot(page, 'instance-unhealthy');

  t.is(await page.evaluate(() => (window as unknown as { mark?: string }).mark), 'no reload', 'every update arrived live');
  t.deepEqual(errors, [], 'no script errors on the page');
});
