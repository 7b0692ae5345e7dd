// AuthorizationPolicy under transparent capture, for real: host B (a network namespace)
// runs an HTTP app and a TCP echo server behind `tessera sidecar --capture`; callers
// on the host side of the bridge are redirected by iptables into Envoy's inbound
// capture listener. HTTP meets the HTTP RBAC filters, anything else the network RBAC
// filters, so plain TCP cannot walk around a policy.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { request } from 'undici';
import { findEnvoy } from '../../sidecar/agent/envoy.ts';
import { requireEnvoy, startControlPlaneProcess, tempDir, tesseraBin } from '../support/mesh.ts';
import { canUseNetns, envoyStat, makeHosts, noProxyEnv } from '../support/netns.ts';
import { requireTool, startProcess, testNeeding, waitFor } from '../support/processes.ts';

const HTTP_APP = `require('node:http').createServer((req, res) => {
  res.writeHead(200, {'x-backend': 'b'}); res.end(req.url);
}).listen(8081, '0.0.0.0');`;
const ECHO_APP = `require('node:net').createServer((s) => s.pipe(s)).listen(9000, '0.0.0.0');`;

const SERVICE = `apiVersion: v1
kind: Service
metadata: {name: b, namespace: mesh}
spec:
  ports:
  - {name: http, port: 80, targetPort: 8081, appProtocol: http}
  - {name: echo, port: 9000, appProtocol: tcp}
`;

const policy = (name: string, spec: string) => `apiVersion: tessera.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: ${name}, namespace: mesh}
spec:
  targetRefs: [{kind: Service, name: b}]
${spec}`;

const DENY_ADMIN = policy('no-admin', '  action: DENY\n  rules:\n  - to: [{paths: ["/admin*"], ports: [8081]}]\n');
const DENY_ECHO = policy('no-echo', '  action: DENY\n  rules:\n  - to: [{ports: [9000]}]\n');
const ALLOW_MESH_ONLY = policy('mesh-only', '  action: ALLOW\n  rules:\n  - from: [{namespaces: [mesh]}]\n');

/** One TCP exchange: what came back before the connection closed (or 2 s passed). */
function echo(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const socket = net.connect(port, host, () => socket.write('ping\n'));
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(got);
    };
    const timer = setTimeout(done, 2000);
    socket.setEncoding('utf8');
    socket.on('data', (d) => {
      got += d;
      if (got.includes('\n')) done();
    });
    socket.on('close', done);
    socket.on('error', done);
  });
}

async function httpStatus(url: string): Promise<number> {
  const res = await request(url);
  await res.body.dump();
  return res.statusCode;
}

const netnsTest = testNeeding({ envoy: findEnvoy() !== undefined, netns: canUseNetns() });

netnsTest.serial('with --capture, HTTP meets the HTTP rules and plain TCP the network rules: a DENY on a tcp port closes it, an ALLOW by identity fails closed', async (t: ExecutionContext) => {
  if (!requireEnvoy(t)) return;
  if (!requireTool(t, canUseNetns(), 'ip netns + iptables (as root)', 'run as root with iproute2 and iptables (apt-get install iptables)')) return;
  const hosts = makeHosts(t);
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'service.yaml'), SERVICE);
  const policies = path.join(dir, 'policies.yaml');
  const write = (text: string) => {
    fs.writeFileSync(`${policies}.tmp`, text);
    fs.renameSync(`${policies}.tmp`, policies);
  };
  write(`${DENY_ADMIN}---\n${DENY_ECHO}`);
  const cp = await startControlPlaneProcess(t, { configDir: dir, address: hosts.hostIp, readyTimeoutMs: 60_000 });

  const inB = (args: string[]) => startProcess(t, 'ip', ['netns', 'exec', hosts.ns.b, ...args], { env: noProxyEnv() });
  inB([process.execPath, '-e', HTTP_APP]);
  inB([process.execPath, '-e', ECHO_APP]);
  const agent = inB([
    process.execPath, tesseraBin, 'sidecar', '--capture',
    '--service', 'b', '--namespace', 'mesh', '--app-port', '8081',
    '--address', hosts.ip.b, '--control-plane', cp.adminUrl, '--xds', `${hosts.hostIp}:${cp.xdsPort}`,
    '--no-register',
  ]);
  t.teardown(() => {
    if (!t.passed) t.log(`agent b:\n${agent.output().slice(-5000)}`);
  });
  await waitFor('agent b to be ready', async () => {
    if (agent.child.exitCode !== null) throw new Error(`agent exited: ${agent.output()}`);
    return (await httpStatus(`http://${hosts.ip.b}:15021/ready`)) === 200;
  }, 60_000, 200);

  const b = hosts.ip.b;
  // HTTP: the path rule applies, through the capture listener's HTTP chain.
  await waitFor('the DENY on /admin to hold', async () => (await httpStatus(`http://${b}:8081/admin`)) === 403, 20_000);
  t.is(await httpStatus(`http://${b}:8081/ok`), 200);
  // TCP: the echo port is denied by the network filter; the connection is closed unanswered.
  t.is(await echo(b, 9000), '', 'the DENY on port 9000 closes the TCP connection');
  t.true((await envoyStat(hosts.ns.b, 'inbound_capture_tcp.deny.rbac.denied')) >= 1, 'the network RBAC filter denied it');

  // Drop the TCP DENY: the path DENY (limited to the HTTP port) leaves TCP alone.
  write(DENY_ADMIN);
  await waitFor('the echo port to answer', async () => (await echo(b, 9000)) === 'ping\n', 20_000, 200);
  t.is(await httpStatus(`http://${b}:8081/admin`), 403);

  // An ALLOW by identity: plaintext callers have none, over HTTP or TCP.
  write(ALLOW_MESH_ONLY);
  await waitFor('the ALLOW by namespace to refuse HTTP', async () => (await httpStatus(`http://${b}:8081/ok`)) === 403, 20_000, 200);
  t.is(await echo(b, 9000), '', 'and TCP');
  t.true((await envoyStat(hosts.ns.b, 'inbound_capture_tcp.allow.rbac.denied')) >= 1);
  t.is(await envoyStat(hosts.ns.b, 'listener_manager.lds.update_rejected'), 0, 'Envoy accepted every listener');
});
