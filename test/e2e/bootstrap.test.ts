// `tessera bootstrap` prints a bootstrap that real Envoy accepts, in both xDS variants.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import YAML from 'yaml';
import { findEnvoy } from '../../sidecar/agent/envoy.ts';
import { envoyTest, requireEnvoy, tempDir, tesseraBin } from '../support/mesh.ts';

const run = promisify(execFile);

async function tessera(args: string[]) {
  try {
    const { stdout, stderr } = await run(process.execPath, [tesseraBin, ...args]);
    return { code: 0, stdout, stderr };
  } catch (err: any) {
    return { code: err.code as number, stdout: err.stdout as string, stderr: err.stderr as string };
  }
}

for (const [mode, format] of [['sotw', 'json'], ['delta', 'yaml']] as const) {
  envoyTest(`a ${mode} bootstrap printed as ${format} passes envoy --mode validate`, async (t) => {
    if (!requireEnvoy(t)) return;
    const out = await tessera([
      'bootstrap', '--service', 'reviews', '--node-id', 'reviews-1', '--xds', '127.0.0.1:18000,127.0.0.1:18001',
      '--xds-mode', mode, '--inbound-port', '9080', '--app-port', '8080', '-o', format,
    ]);
    t.is(out.code, 0, out.stderr);
    const config = format === 'json' ? JSON.parse(out.stdout) : YAML.parse(out.stdout);
    t.is(config.dynamic_resources.ads_config.api_type, mode === 'delta' ? 'DELTA_GRPC' : 'GRPC');
    t.is(config.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints.length, 2, 'both control planes are named');
    t.is(config.node.metadata.tessera.inbound.app_port, 8080);
    const file = path.join(tempDir(t), `bootstrap.${format}`);
    fs.writeFileSync(file, out.stdout);
    const { stdout } = await run(findEnvoy()!, ['--mode', 'validate', '-c', file, '--disable-hot-restart', '-l', 'error']);
    t.regex(stdout, /OK/);
  });
}

test('bootstrap flags that do not fit are refused with the reason and exit code 2', async (t) => {
  const missing = await tessera(['bootstrap', '--service', 'x']);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /--node-id is required/);
  const badMode = await tessera(['bootstrap', '--node-id', 'n', '--xds-mode', 'incremental']);
  t.is(badMode.code, 2);
  t.regex(badMode.stderr, /--xds-mode must be sotw or delta/);
  const badXds = await tessera(['bootstrap', '--node-id', 'n', '--xds', 'nohost']);
  t.regex(badXds.stderr, /--xds expects HOST:PORT/);
  const half = await tessera(['bootstrap', '--node-id', 'n', '--inbound-port', '9080']);
  t.regex(half.stderr, /--inbound-port and --app-port go together/);
});

test('--stats-port moves the Prometheus stats listener, none leaves it out, and a bad value is refused', async (t) => {
  const statsListener = (stdout: string) => (JSON.parse(stdout).static_resources.listeners ?? []).find((l: any) => l.name === 'tessera_prometheus_stats');
  const byDefault = await tessera(['bootstrap', '--node-id', 'n']);
  t.is(byDefault.code, 0, byDefault.stderr);
  t.deepEqual(statsListener(byDefault.stdout).address, { socket_address: { address: '0.0.0.0', port_value: 15090 } });
  const moved = await tessera(['bootstrap', '--node-id', 'n', '--stats-port', '9102']);
  t.is(statsListener(moved.stdout).address.socket_address.port_value, 9102);
  const off = await tessera(['bootstrap', '--node-id', 'n', '--stats-port', 'none']);
  t.is(off.code, 0, off.stderr);
  t.is(statsListener(off.stdout), undefined);
  const bad = await tessera(['bootstrap', '--node-id', 'n', '--stats-port', '99999']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /--stats-port \(or TESSERA_STATS_PORT\) must be a port number, or 0 or none/);
  const grpc = await tessera(['bootstrap', '--grpc', '--node-id', 'n', '--stats-port', '9102']);
  t.is(grpc.code, 2);
  t.regex(grpc.stderr, /--stats-port.*not a --grpc client/);
});

test('an unknown command names itself and prints the usage', async (t) => {
  const out = await tessera(['frobnicate']);
  t.is(out.code, 2);
  t.regex(out.stderr, /unknown command "frobnicate"/);
  t.regex(out.stderr, /usage: tessera/);
});
