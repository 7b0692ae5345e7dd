// Pure parts of the sidecar agent: its options (flags, env, errors), the iptables
// rules of capture, the app probe config, and probes run against real local servers.
import http from 'node:http';
import net from 'node:net';
import test from 'ava';
import grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { captureRules, DEFAULT_CAPTURE } from '../../sidecar/agent/capture.ts';
import { AgentConfigError, parseSidecarArgs } from '../../sidecar/agent/options.ts';
import { parseAppProbes, ProbeConfigError, runProbe } from '../../sidecar/agent/probes.ts';

const rule = (r: string[]) => r.join(' ');

test('capture rules: outbound goes to 15001 except the proxy uid/gid, loopback, status ports and configured exclusions', (t) => {
  const rules = captureRules({ ...DEFAULT_CAPTURE, excludeOutboundPorts: [5432], excludeOutboundCidrs: ['10.96.0.0/12'] }).map(rule);
  t.true(rules.includes('-A TESSERA_REDIRECT -p tcp -j REDIRECT --to-ports 15001'));
  t.true(rules.includes('-A OUTPUT -p tcp -j TESSERA_OUTPUT'));
  const output = rules.filter((r) => r.startsWith('-A TESSERA_OUTPUT'));
  // Every exclusion comes before the final jump to the redirect.
  t.is(output.at(-1), '-A TESSERA_OUTPUT -j TESSERA_REDIRECT');
  for (const expected of [
    '-m owner --uid-owner 1337 -j RETURN',
    '-m owner --gid-owner 1337 -j RETURN',
    '-d 127.0.0.0/8 -j RETURN',
    '-p tcp --dport 15000 -j RETURN',
    '-p tcp --dport 15020 -j RETURN',
    '-p tcp --dport 15021 -j RETURN',
    '-p tcp --dport 15090 -j RETURN',
    '-p tcp --dport 5432 -j RETURN',
    '-d 10.96.0.0/12 -j RETURN',
  ]) {
    t.true(output.slice(0, -1).includes(`-A TESSERA_OUTPUT ${expected}`), expected);
  }
});

test('capture rules: inbound * redirects every port to 15006 but the proxy ports and exclusions; a list redirects only those', (t) => {
  const all = captureRules({ ...DEFAULT_CAPTURE, excludeInboundPorts: [22] }).map(rule);
  t.true(all.includes('-A PREROUTING -p tcp -j TESSERA_INBOUND'));
  t.true(all.includes('-A TESSERA_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006'));
  const inbound = all.filter((r) => r.startsWith('-A TESSERA_INBOUND'));
  t.is(inbound.at(-1), '-A TESSERA_INBOUND -p tcp -j TESSERA_IN_REDIRECT');
  for (const port of [15000, 15001, 15006, 15020, 15021, 15090, 22]) t.true(inbound.includes(`-A TESSERA_INBOUND -p tcp --dport ${port} -j RETURN`), String(port));

  const listed = captureRules({ ...DEFAULT_CAPTURE, inboundPorts: [9080, 15021, 15090] }).map(rule).filter((r) => r.startsWith('-A TESSERA_INBOUND'));
  t.deepEqual(listed, ['-A TESSERA_INBOUND -p tcp --dport 9080 -j TESSERA_IN_REDIRECT'], 'an always-excluded port stays excluded');
  const none = captureRules({ ...DEFAULT_CAPTURE, inboundPorts: [] }).map(rule);
  t.false(none.some((r) => r.includes('PREROUTING')), 'no inbound ports: no inbound capture');
});

test('sidecar options: flags win over the TESSERA_* environment the injector sets, which wins over defaults', (t) => {
  const env = { TESSERA_SERVICE: 'reviews', TESSERA_NAMESPACE: 'shop', TESSERA_APP_PORT: '9080', TESSERA_INSTANCE_ID: 'reviews-abc', TESSERA_INSTANCE_ADDRESS: '10.1.2.3', TESSERA_CONTROL_PLANE: 'http://cp.tessera:18080', TESSERA_DRAIN_TIMEOUT: '20s' };
  const o = parseSidecarArgs(['--app-port', '9081'], env);
  t.is(o.service, 'reviews');
  t.is(o.namespace, 'shop');
  t.is(o.appPort, 9081);
  t.is(o.instanceId, 'reviews-abc');
  t.is(o.address, '10.1.2.3');
  t.deepEqual(o.xds, [{ host: 'cp.tessera', port: 18000 }], 'xDS defaults to the control plane host');
  t.is(o.drainTimeoutMs, 20_000);
  t.deepEqual([o.statusPort, o.probePort, o.adminPort, o.outboundPort], [15021, 15020, 15000, 15001]);
  t.deepEqual(o.healthCheck, { tcp: true });
  t.is(o.capture, undefined);
});

test('sidecar options: the stats listener is on 15090 unless --stats-port (or TESSERA_STATS_PORT) moves it or 0/none turns it off', (t) => {
  const args = ['--service', 'a', '--app-port', '8080'];
  t.is(parseSidecarArgs(args, {}).statsPort, 15090);
  t.is(parseSidecarArgs([...args, '--stats-port', '9102'], {}).statsPort, 9102);
  t.is(parseSidecarArgs(args, { TESSERA_STATS_PORT: '9103' }).statsPort, 9103);
  t.is(parseSidecarArgs([...args, '--stats-port', '9102'], { TESSERA_STATS_PORT: '9103' }).statsPort, 9102, 'the flag wins');
  t.is(parseSidecarArgs([...args, '--stats-port', '0'], {}).statsPort, undefined);
  t.is(parseSidecarArgs([...args, '--stats-port', 'none'], {}).statsPort, undefined);
  const err = t.throws(() => parseSidecarArgs([...args, '--stats-port', 'prometheus'], {}), { instanceOf: AgentConfigError });
  t.regex(err!.message, /--stats-port \(or TESSERA_STATS_PORT\) must be a port number, or 0 or none to turn the stats listener off, got "prometheus"/);
  // With capture, a moved stats port is left out of the inbound redirect like 15090 is.
  const captured = parseSidecarArgs([...args, '--capture', '--stats-port', '9102'], {});
  t.deepEqual(captured.capture?.excludeInboundPorts, [9102]);
  t.true(captureRules(captured.capture!).map(rule).includes('-A TESSERA_INBOUND -p tcp --dport 9102 -j RETURN'));
  t.deepEqual(parseSidecarArgs([...args, '--capture'], {}).capture?.excludeInboundPorts, [], '15090 is always excluded already');
});

test('sidecar options: --capture takes the capture flags and TESSERA_INBOUND_PORTS; capture flags without it are an error', (t) => {
  const o = parseSidecarArgs(['--service', 'a', '--app-port', '8080', '--capture', '--exclude-outbound-ip-ranges', '10.0.0.0/8', '--proxy-uid', '1500'], { TESSERA_INBOUND_PORTS: '8080,8443' });
  t.deepEqual(o.capture?.inboundPorts, [8080, 8443]);
  t.deepEqual(o.capture?.excludeOutboundCidrs, ['10.0.0.0/8']);
  t.is(o.capture?.proxyUid, 1500);
  const err = t.throws(() => parseSidecarArgs(['--service', 'a', '--app-port', '8080', '--exclude-outbound-ports', '22'], {}), { instanceOf: AgentConfigError });
  t.regex(err!.message, /--exclude-outbound-ports only apply with --capture/);
  const bad = t.throws(() => parseSidecarArgs(['--service', 'a', '--app-port', '8080', '--capture', '--exclude-outbound-ip-ranges', '10.0.0.0/40'], {}));
  t.regex(bad!.message, /"10\.0\.0\.0\/40" is not an IPv4 CIDR/);
});

test('app probes: every mistake in TESSERA_APP_PROBES is named with its key and field', (t) => {
  const probes = parseAppProbes(JSON.stringify({
    '/app-health/web/livez': { httpGet: { path: '/healthz', port: 8080, httpHeaders: [{ name: 'X-Probe', value: '1' }] } },
    '/app-health/web/readyz': { tcpSocket: { port: 8080 } },
    '/app-health/grpc/startupz': { grpc: { port: 9090 } },
  }));
  t.is(probes.size, 3);
  const err = t.throws(() => parseAppProbes(JSON.stringify({ '/app-health/web/livez': { httpGet: { port: 'http' } }, '/health': { tcpSocket: { port: 1 } }, '/app-health/x/readyz': {} })), { instanceOf: ProbeConfigError });
  t.regex(err!.message, /\["\/app-health\/web\/livez"\]\.httpGet\.port: must be a port number, got "http"/);
  t.regex(err!.message, /\["\/health"\]: the key must be/);
  t.regex(err!.message, /\["\/app-health\/x\/readyz"\]: needs exactly one of httpGet, tcpSocket, grpc/);
  t.throws(() => parseAppProbes('{'), { message: /not valid JSON/ });
});

test('app probes run against the app on 127.0.0.1: HTTP status and headers, TCP connect, gRPC health', async (t) => {
  let seenHeader: string | undefined;
  const app = http.createServer((req, res) => {
    seenHeader = req.headers['x-probe'] as string;
    res.writeHead(req.url === '/healthz' ? 204 : 500).end();
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  t.teardown(() => app.close());
  const port = (app.address() as net.AddressInfo).port;
  const ok = await runProbe({ httpGet: { path: '/healthz', port, scheme: 'HTTP', httpHeaders: [{ name: 'X-Probe', value: 'yes' }] } }, 2000);
  t.is(ok.status, 204);
  t.is(seenHeader, 'yes');
  t.is((await runProbe({ httpGet: { path: '/broken', port, scheme: 'HTTP', httpHeaders: [] } }, 2000)).status, 500);
  t.is((await runProbe({ tcpSocket: { port } }, 2000)).status, 200);

  const closed = net.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const closedPort = (closed.address() as net.AddressInfo).port;
  await new Promise((r) => closed.close(r));
  t.is((await runProbe({ tcpSocket: { port: closedPort } }, 2000)).status, 503);

  const server = new grpc.Server();
  const health = new HealthImplementation({ '': 'SERVING', 'demo.Echo': 'NOT_SERVING' });
  health.addToServer(server);
  const grpcPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  t.teardown(() => server.forceShutdown());
  t.is((await runProbe({ grpc: { port: grpcPort, service: '' } }, 2000)).status, 200);
  t.is((await runProbe({ grpc: { port: grpcPort, service: 'demo.Echo' } }, 2000)).status, 503);
});
