// Bad config files under a running control plane with a real Envoy: an alias bomb,
// a huge file, the dir renamed away and a file rewritten slowly. Each is reported
// with what and where, the process stays up, and Envoy keeps serving the last good
// config throughout.
import fs from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import { envoyTest, envoyHosts, requireEnvoy, startBackend, startControlPlaneProcess, startEnvoy, tempDir } from '../support/mesh.ts';
import { waitFor } from '../support/processes.ts';

const CLUSTER = 'outbound|80||api.default';

const service = `apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  ports: [{name: http, port: 80, appProtocol: http}]
`;

/** One EndpointSlice per backend port, all on 127.0.0.1. */
const slices = (ports: number[]) =>
  ports
    .map(
      (port, i) => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: api-${i}
  labels: {kubernetes.io/service-name: api}
addressType: IPv4
ports: [{name: http, port: ${port}}]
endpoints: [{addresses: ["127.0.0.1"]}]
`,
    )
    .join('---\n');

const aliasBomb = `apiVersion: v1
kind: Service
metadata: {name: bomb}
spec:
  a0: &a0 [x, x]
${Array.from({ length: 20 }, (_, i) => `  a${i + 1}: &a${i + 1} [*a${i}, *a${i}]`).join('\n')}
`;

interface ConfigView {
  version?: string;
  errors: { file: string; line: number; message: string }[];
}

envoyTest.serial('bad config files never take the control plane down, and Envoy serves the last good config throughout', async (t) => {
  if (!requireEnvoy(t)) return;
  const backends = await Promise.all([0, 1, 2, 3, 4].map((i) => startBackend(t, `b${i}`)));
  const ports = backends.map((b) => b.port);
  const parent = tempDir(t);
  const dir = path.join(parent, 'mesh');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'api.yaml'), service);
  fs.writeFileSync(path.join(dir, 'slices.yaml'), slices(ports));
  const cp = await startControlPlaneProcess(t, { configDir: dir });
  const envoy = await startEnvoy(t, { xdsPorts: [cp.xdsPort], mode: 'delta' });
  await waitFor('Envoy to get 5 hosts', async () => (await envoyHosts(envoy, CLUSTER)).length === 5, 10_000);

  // Traffic and Envoy's host count, sampled all along.
  const failures: string[] = [];
  let served = 0;
  let fewestHosts = 5;
  let running = true;
  const sampling = (async () => {
    while (running) {
      const res = await request(`http://127.0.0.1:${envoy.outboundPort}/`, { headers: { host: 'api' } }).catch((err) => err as Error);
      if (res instanceof Error) failures.push(res.message);
      else {
        await res.body.dump();
        if (res.statusCode === 200) served++;
        else failures.push(`status ${res.statusCode}`);
      }
      fewestHosts = Math.min(fewestHosts, (await envoyHosts(envoy, CLUSTER)).length);
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  const config = () => cp.api<ConfigView>('/api/v1/config');
  const goodVersion = (await config()).version;
  t.truthy(goodVersion);

  // 1. An alias bomb: refused with file:line, nothing else changes.
  fs.writeFileSync(path.join(dir, 'bomb.yaml'), aliasBomb);
  const bombed = await waitFor('the alias bomb to be reported', async () => {
    const c = await config();
    return c.errors.length > 0 && c;
  });
  t.like(bombed.errors[0], { file: 'bomb.yaml', line: 6 });
  t.regex(bombed.errors[0].message, /aliases expand beyond the limit/);
  t.is(bombed.version, goodVersion);
  fs.rmSync(path.join(dir, 'bomb.yaml'));
  await waitFor('the errors to clear', async () => (await config()).errors.length === 0);

  // 2. A 40 MB file: refused by size before it is read.
  fs.writeFileSync(path.join(dir, 'huge.yaml'), `# ${'x'.repeat(40 * 1024 * 1024)}\n`);
  const huge = await waitFor('the huge file to be reported', async () => {
    const c = await config();
    return c.errors.length > 0 && c;
  });
  t.is(huge.errors[0].file, 'huge.yaml');
  t.regex(huge.errors[0].message, /file is 40 MiB, over the limit of 4 MiB per file/);
  fs.rmSync(path.join(dir, 'huge.yaml'));
  await waitFor('the errors to clear', async () => (await config()).errors.length === 0);

  // 3. The dir renamed away: an error naming it, never "no config"; back when it returns.
  fs.renameSync(dir, `${dir}.moved`);
  const gone = await waitFor('the missing dir to be reported', async () => {
    const c = await config();
    return c.errors.length > 0 && c;
  }, 10_000);
  t.is(gone.errors[0].file, dir);
  t.regex(gone.errors[0].message, /the config dir cannot be read \(ENOENT\)/);
  t.is(gone.version, goodVersion);
  const notReady = await request(`${cp.adminUrl}/readyz`);
  t.is(notReady.statusCode, 200, 'a good config is still served, so the control plane stays ready');
  await notReady.body.dump();
  fs.renameSync(`${dir}.moved`, dir);
  await waitFor('the dir to be picked up again', async () => (await config()).errors.length === 0, 10_000);

  // 4. The slices rewritten slowly (truncated, then 80 bytes every 60 ms) with one
  // backend fewer at the end: Envoy never sees a half-written file.
  const text = slices(ports.slice(0, 4));
  const fd = fs.openSync(path.join(dir, 'slices.yaml'), 'w');
  for (let at = 0; at < text.length; at += 80) {
    fs.writeSync(fd, text.slice(at, at + 80));
    await new Promise((r) => setTimeout(r, 60));
  }
  fs.closeSync(fd);
  await waitFor('Envoy to get the 4 hosts of the finished file', async () => (await envoyHosts(envoy, CLUSTER)).length === 4, 10_000);
  const lowDuringWrite = fewestHosts;

  running = false;
  await sampling;
  t.true(lowDuringWrite >= 4, `Envoy went down to ${lowDuringWrite} hosts: fewer than a complete file gives`);
  t.is(cp.process.child.exitCode, null, 'the control plane is alive');
  t.true(served > 50, `${served} requests served`);
  t.deepEqual(failures, [], 'every request was served');
  t.regex(cp.process.output(), /config change rejected, last good config keeps serving:\n.*bomb\.yaml:6:\d+: YAML: aliases expand/);
});
