// Health checks against real local servers: HTTP, TCP and grpc.health.v1.
import http from 'node:http';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import { HealthImplementation } from 'grpc-health-check';
import { HealthChecker, probe, type HealthState } from '../../control-plane/registry/health.ts';
import { parseInstanceSpec } from '../../control-plane/registry/spec.ts';

const fast = { interval: '100ms', timeout: '200ms' };

function checker(check: Record<string, unknown>, port: number) {
  const spec = parseInstanceSpec({ address: '127.0.0.1', port, check: { ...fast, ...check } });
  const transitions: string[] = [];
  const c = new HealthChecker(spec.check!, spec, (s: HealthState) => transitions.push(s.health));
  return { c, transitions };
}

const until = async (what: string, fn: () => boolean, ms = 10_000) => {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

test('an HTTP check turns unhealthy after its threshold of failures and healthy again after a pass', async (t) => {
  let status = 200;
  let hits = 0;
  const server = http.createServer((req, res) => {
    hits++;
    t.is(req.url, '/healthz');
    res.writeHead(status).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const { c, transitions } = checker({ http: '/healthz', unhealthyThreshold: 3 }, (server.address() as net.AddressInfo).port);
  t.teardown(() => c.stop());
  c.start();
  await until('healthy', () => transitions.length === 1);
  t.deepEqual(transitions, ['healthy']);
  status = 500;
  const hitsAtFailure = hits;
  await until('unhealthy', () => transitions.length === 2);
  t.true(hits - hitsAtFailure >= 3, 'three failures were needed');
  t.is(c.state.lastError, 'HTTP 500');
  status = 204;
  await until('healthy again', () => transitions.length === 3);
  t.deepEqual(transitions, ['healthy', 'unhealthy', 'healthy']);
});

test('an HTTP check with an expected status range and a Host header', async (t) => {
  const server = http.createServer((req, res) => res.writeHead(req.headers.host === 'svc.local' ? 418 : 200).end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const spec = (extra: object) => parseInstanceSpec({ address: '127.0.0.1', port, check: { http: '/', ...extra } }).check!;
  t.true((await probe(spec({ host: 'svc.local', expectedStatuses: '418-418' }), '127.0.0.1', port, 2000)).ok);
  t.false((await probe(spec({ host: 'svc.local' }), '127.0.0.1', port, 2000)).ok);
});

test('an HTTP check that hangs fails by its timeout', async (t) => {
  const server = http.createServer(() => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as net.AddressInfo).port;
  const started = Date.now();
  const result = await probe(parseInstanceSpec({ address: '127.0.0.1', port, check: { http: '/' } }).check!, '127.0.0.1', port, 200);
  t.false(result.ok);
  t.true(Date.now() - started < 1500);
});

test('a TCP check fails once the port is closed', async (t) => {
  const server = net.createServer((s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const { c, transitions } = checker({ tcp: true }, port);
  t.teardown(() => c.stop());
  c.start();
  await until('healthy', () => transitions.length === 1);
  await new Promise<void>((r) => server.close(() => r()));
  await until('unhealthy', () => transitions.length === 2);
  t.deepEqual(transitions, ['healthy', 'unhealthy']);
  t.regex(c.state.lastError ?? '', /ECONNREFUSED/);
});

test('a gRPC check follows grpc.health.v1 SERVING and NOT_SERVING', async (t) => {
  const server = new grpc.Server();
  const health = new HealthImplementation({ '': 'SERVING', 'shop.Cart': 'SERVING' });
  health.addToServer(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  t.teardown(() => server.forceShutdown());
  const { c, transitions } = checker({ grpc: true, service: 'shop.Cart' }, port);
  t.teardown(() => c.stop());
  c.start();
  await until('healthy', () => transitions.length === 1);
  health.setStatus('shop.Cart', 'NOT_SERVING');
  await until('unhealthy', () => transitions.length === 2);
  t.deepEqual(transitions, ['healthy', 'unhealthy']);
  t.regex(c.state.lastError ?? '', /NOT_SERVING/);
});
