// The registry API in-process: every bad input gets its status and changes nothing.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { request } from 'undici';
import { startControlPlane } from '../../control-plane/main.ts';
import { AdminServer } from '../../control-plane/admin/server.ts';

async function start(t: any, extra: { adminToken?: string; store?: string } = {}) {
  const cp = await startControlPlane({ xdsPort: 0, adminPort: 0, address: '127.0.0.1', log: () => {}, ...extra });
  t.teardown(() => cp.close());
  const base = `http://127.0.0.1:${cp.adminPort}`;
  const call = async (method: string, p: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await request(base + p, {
      method: method as any,
      headers: { 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.body.text();
    return { status: res.statusCode, json: text ? JSON.parse(text) : undefined };
  };
  return { cp, call };
}

test('an instance is registered, listed with its health, replaced and deregistered', async (t) => {
  const { call } = await start(t);
  t.is((await call('PUT', '/api/v1/services/web/instances/web-1', { address: '10.0.0.1', port: 8080, zone: 'a', labels: { v: '1' } })).status, 201);
  t.is((await call('PUT', '/api/v1/services/web/instances/web-1', { address: '10.0.0.2', port: 8080 })).status, 200);
  const web = (await call('GET', '/api/v1/services/web')).json;
  t.is(web.name, 'web');
  t.like(web.instances[0], { id: 'web-1', address: '10.0.0.2', port: 8080, source: 'registry', health: 'healthy' });
  t.deepEqual((await call('GET', '/api/v1/services')).json.services.map((s: { name: string }) => s.name), ['web']);
  t.is((await call('DELETE', '/api/v1/services/web/instances/web-1')).status, 200);
  t.is((await call('DELETE', '/api/v1/services/web/instances/web-1')).status, 404);
  t.is((await call('GET', '/api/v1/services/web')).status, 404);
});

const badBodies: [string, unknown, RegExp][] = [
  ['malformed JSON', '{"address": ', /not valid JSON/],
  ['a missing address', { port: 80 }, /address must be/],
  ['an address with a space', { address: 'a b', port: 80 }, /address must be/],
  ['port 0', { address: '10.0.0.1', port: 0 }, /port must be an integer from 1 to 65535/],
  ['a port that is a string', { address: '10.0.0.1', port: '80' }, /port must be/],
  ['an unknown field', { address: '10.0.0.1', port: 80, weight: 3 }, /unknown field weight/],
  ['an unknown check kind', { address: '10.0.0.1', port: 80, check: { exec: 'true' } }, /unknown check field exec/],
  ['two check kinds', { address: '10.0.0.1', port: 80, check: { tcp: true, ttl: '5s' } }, /exactly one/],
  ['a bad check interval', { address: '10.0.0.1', port: 80, check: { tcp: true, interval: 'often' } }, /check\.interval/],
  ['labels that are not strings', { address: '10.0.0.1', port: 80, labels: { a: 1 } }, /labels must be/],
  ['an array body', [1, 2], /JSON object/],
];

for (const [what, body, reason] of badBodies) {
  test(`a registration with ${what} gets 400 with the reason and changes nothing`, async (t) => {
    const { call } = await start(t);
    const res = await call('PUT', '/api/v1/services/web/instances/w1', body);
    t.is(res.status, 400);
    t.regex(res.json.error, reason);
    t.is((await call('GET', '/api/v1/services')).json.services.length, 0);
  });
}

test('ids with path tricks or control characters are refused', async (t) => {
  const { call } = await start(t);
  for (const id of ['a%2Fb', 'a%00b', 'a%0Ab', 'a%ZZ', 'x'.repeat(129)]) {
    const res = await call('PUT', `/api/v1/services/web/instances/${id}`, { address: '10.0.0.1', port: 80 });
    t.is(res.status, 400, id);
  }
  // A literal `..` is folded by the URL before routing: it never names an instance.
  for (const dots of ['..', '%2e%2e']) {
    t.true((await call('PUT', `/api/v1/services/web/instances/${dots}`, { address: '10.0.0.1', port: 80 })).status >= 400);
  }
  t.is((await call('PUT', '/api/v1/services/Web_App/instances/a', { address: '10.0.0.1', port: 80 })).status, 400);
  t.is((await call('GET', '/api/v1/services')).json.services.length, 0);
});

test('a body over the size limit gets 413', async (t) => {
  const { call } = await start(t);
  const res = await call('PUT', '/api/v1/services/web/instances/w1', { address: '10.0.0.1', port: 80, labels: { big: 'x'.repeat(100_000) } });
  t.is(res.status, 413);
  t.is((await call('GET', '/api/v1/services')).json.services.length, 0);
});

test('with a token configured, a mutation without it or with a wrong one gets 401 and changes nothing', async (t) => {
  const { call } = await start(t, { adminToken: 's3cret' });
  const body = { address: '10.0.0.1', port: 80 };
  t.is((await call('PUT', '/api/v1/services/web/instances/w1', body)).status, 401);
  t.is((await call('PUT', '/api/v1/services/web/instances/w1', body, { authorization: 'Bearer wrong' })).status, 401);
  t.is((await call('GET', '/api/v1/services')).json.services.length, 0, 'reads need no token');
  t.is((await call('PUT', '/api/v1/services/web/instances/w1', body, { authorization: 'Bearer s3cret' })).status, 201);
  t.is((await call('DELETE', '/api/v1/services/web/instances/w1')).status, 401);
});

test('a heartbeat passes a TTL check; a missing instance is 404, a non-TTL one 400', async (t) => {
  const { call } = await start(t);
  await call('PUT', '/api/v1/services/job/instances/j1', { address: '10.0.0.1', port: 80, check: { ttl: '2s' } });
  t.is((await call('GET', '/api/v1/services/job')).json.instances[0].health, 'unknown');
  t.is((await call('POST', '/api/v1/services/job/instances/j1/heartbeat')).status, 200);
  t.is((await call('GET', '/api/v1/services/job')).json.instances[0].health, 'healthy');
  await new Promise((r) => setTimeout(r, 3000));
  t.like((await call('GET', '/api/v1/services/job')).json.instances[0], { health: 'unhealthy', lastError: 'no heartbeat within 2000 ms' });
  t.is((await call('POST', '/api/v1/services/job/instances/nope/heartbeat')).status, 404);
  await call('PUT', '/api/v1/services/job/instances/j2', { address: '10.0.0.1', port: 80 });
  t.is((await call('POST', '/api/v1/services/job/instances/j2/heartbeat')).status, 400);
});

test('a file store keeps every instance across a restart, and a torn temp file harms nothing', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-store-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'registry.json');
  const first = await start(t, { store: `file:${file}` });
  for (let i = 0; i < 5; i++) await first.call('PUT', `/api/v1/services/web/instances/w${i}`, { address: `10.0.0.${i + 1}`, port: 80 });
  await first.call('DELETE', '/api/v1/services/web/instances/w0');
  await first.cp.close();
  // What a crash in the middle of a write leaves behind.
  fs.writeFileSync(`${file}.tmp-99999`, '{"version": 1, "instances": [{"serv');
  const second = await start(t, { store: `file:${file}` });
  const ids = (await second.call('GET', '/api/v1/services/web')).json.instances.map((i: { id: string }) => i.id);
  t.deepEqual(ids, ['w1', 'w2', 'w3', 'w4']);
});

test('without a token, an admin API that is not loopback-only refuses changes with 403', async (t) => {
  // The control plane sets openMutations only for a loopback address; here the
  // server is told it is exposed, while the test still binds 127.0.0.1.
  let called = false;
  const server = new AdminServer({
    openMutations: false,
    routes: [{ method: 'PUT', pattern: '/x', mutates: true, handler: () => ((called = true), { status: 200, json: {} }) }],
  });
  const port = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  const res = await request(`http://127.0.0.1:${port}/x`, { method: 'PUT', body: '{}' });
  t.is(res.statusCode, 403);
  t.regex(((await res.body.json()) as { error: string }).error, /--admin-token-file/);
  t.false(called);
});
