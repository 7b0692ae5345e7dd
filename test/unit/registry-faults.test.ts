// The registry and admin API under bad input and a failing store: refused with a
// reason naming the field, nothing half-applied, the process serving on.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { request } from 'undici';
import { startControlPlane } from '../../control-plane/main.ts';

async function start(t: ExecutionContext, extra: { adminToken?: string; store?: string } = {}) {
  const lines: string[] = [];
  const cp = await startControlPlane({ xdsPort: 0, adminPort: 0, address: '127.0.0.1', log: (l) => lines.push(l), ...extra });
  t.teardown(() => cp.close());
  const base = `http://127.0.0.1:${cp.adminPort}`;
  const call = async (method: string, p: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await request(base + p, { method: method as any, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.body.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.statusCode, text, json, headers: res.headers };
  };
  return { cp, call, lines };
}

const badChecks: [string, Record<string, unknown>, RegExp][] = [
  ['an interval past Node\'s timer limit', { tcp: true, interval: '99999h' }, /check\.interval must be from 100ms to 24h, got "99999h"/],
  ['a 1 ms interval', { tcp: true, interval: '1ms' }, /check\.interval must be from 100ms to 24h, got "1ms"/],
  ['a huge timeout', { tcp: true, timeout: '99999h' }, /check\.timeout must be from 10ms to 5m/],
  ['a huge TTL', { ttl: '99999h' }, /check\.ttl must be from 100ms to 24h/],
  ['a TTL of 1 ms', { ttl: '1ms' }, /check\.ttl must be from 100ms/],
  ['expected statuses lowest last', { http: '/', expectedStatuses: '399-200' }, /check\.expectedStatuses "399-200" must be a range .* lowest first/],
  ['expected statuses that are not HTTP statuses', { http: '/', expectedStatuses: '000-999' }, /check\.expectedStatuses "000-999"/],
];

for (const [what, check, reason] of badChecks) {
  test(`a check with ${what} gets 400 naming the field, and nothing is registered`, async (t) => {
    const { call } = await start(t);
    const res = await call('PUT', '/api/v1/services/web/instances/w1', { address: '10.0.0.1', port: 80, check });
    t.is(res.status, 400);
    t.regex(res.json.error, reason);
    t.is((await call('GET', '/api/v1/services')).json.services.length, 0);
  });
}

test('checks at the bounds are accepted', async (t) => {
  const { call } = await start(t);
  t.is((await call('PUT', '/api/v1/services/web/instances/a', { address: '10.0.0.1', port: 80, check: { tcp: true, interval: '24h', timeout: '5m' } })).status, 201);
  t.is((await call('PUT', '/api/v1/services/web/instances/b', { address: '10.0.0.1', port: 81, check: { http: '/', interval: '100ms', timeout: '10ms', expectedStatuses: '200-200' } })).status, 201);
  t.is((await call('PUT', '/api/v1/services/web/instances/c', { address: '10.0.0.1', port: 82, check: { ttl: '24h' } })).status, 201);
});

test('HEAD is answered like GET without a body, and Allow lists it', async (t) => {
  const { call } = await start(t);
  for (const p of ['/healthz', '/readyz', '/api/v1/services', '/metrics']) {
    const res = await call('HEAD', p);
    t.is(res.status, 200, p);
    t.is(res.text, '', `${p} has no body`);
    t.true(Number(res.headers['content-length']) > 0, `${p} says how long the GET body is`);
  }
  const wrong = await call('POST', '/api/v1/services');
  t.is(wrong.status, 405);
  t.is(wrong.headers.allow, 'GET, HEAD');
});

test('the bearer scheme is case-insensitive, the token is not', async (t) => {
  const { call } = await start(t, { adminToken: 's3cret' });
  const body = { address: '10.0.0.1', port: 80 };
  t.is((await call('PUT', '/api/v1/services/web/instances/a', body, { authorization: 'bearer s3cret' })).status, 201);
  t.is((await call('PUT', '/api/v1/services/web/instances/b', body, { authorization: 'BEARER s3cret' })).status, 201);
  t.is((await call('PUT', '/api/v1/services/web/instances/c', body, { authorization: 'bearer S3CRET' })).status, 401);
  t.is((await call('PUT', '/api/v1/services/web/instances/d', body, { authorization: 'Basic s3cret' })).status, 401);
  t.deepEqual((await call('GET', '/api/v1/services/web')).json.instances.map((i: { id: string }) => i.id), ['a', 'b']);
});

test('a failed file-store write gets 500 with its reason and breaks no later write; /readyz follows the store', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-store-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'registry.json');
  // What a crash in the middle of a write leaves behind: removed at start.
  fs.writeFileSync(`${file}.tmp-99999999`, '{"version": 1, "instances": [{"serv');
  const { cp, call, lines } = await start(t, { store: `file:${file}` });
  t.false(fs.existsSync(`${file}.tmp-99999999`), 'the leftover temp file is gone');
  t.is((await call('PUT', '/api/v1/services/web/instances/w1', { address: '10.0.0.1', port: 80 })).status, 201);

  // A directory where the temp file goes: every write fails until it is removed.
  const blocker = `${file}.tmp-${process.pid}`;
  fs.mkdirSync(blocker);
  const failed = await call('PUT', '/api/v1/services/web/instances/w2', { address: '10.0.0.2', port: 80 });
  t.is(failed.status, 500);
  t.is(failed.json.code, 'TESSERA_ERR_STORE');
  t.regex(failed.json.error, new RegExp(`registry file ${file.replace(/[.]/g, '\\.')} cannot be written: EISDIR`));
  t.true(lines.some((l) => /registry: PUT web\/w2 failed: registry file .* EISDIR/.test(l)), 'the reason is logged');
  const notReady = await call('GET', '/readyz');
  t.is(notReady.status, 503);
  t.regex(notReady.text, /not ready: registry store: registry file .* cannot be written since .*EISDIR/);
  t.deepEqual((await call('GET', '/api/v1/services/web')).json.instances.map((i: { id: string }) => i.id), ['w1'], 'the failed write changed nothing');
  t.is((await call('DELETE', '/api/v1/services/web/instances/w1')).status, 500, 'a delete fails the same way, and keeps the instance');
  t.is(cp.registry.endpoints().length, 1);

  fs.rmdirSync(blocker);
  t.is((await call('PUT', '/api/v1/services/web/instances/w3', { address: '10.0.0.3', port: 80 })).status, 201, 'the next write works');
  t.is((await call('GET', '/readyz')).status, 200);
  const stored = JSON.parse(fs.readFileSync(file, 'utf8')).instances.map((i: { id: string }) => i.id).sort();
  t.deepEqual(stored, ['w1', 'w3'], 'the file holds exactly what was acknowledged');
});

test('a store that is fixed by hand becomes ready again without another write', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-store-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'registry.json');
  const { call } = await start(t, { store: `file:${file}` });
  fs.mkdirSync(`${file}.tmp-${process.pid}`);
  t.is((await call('PUT', '/api/v1/services/web/instances/w1', { address: '10.0.0.1', port: 80 })).status, 500);
  t.is((await call('GET', '/readyz')).status, 503);
  fs.rmdirSync(`${file}.tmp-${process.pid}`);
  let status = 0;
  for (let i = 0; i < 100 && status !== 200; i++) {
    await new Promise((r) => setTimeout(r, 100));
    status = (await call('GET', '/readyz')).status;
  }
  t.is(status, 200);
});

test('an instance registered by DNS name is served at the addresses it resolves to; one that does not resolve gets 400', async (t) => {
  const { cp, call } = await start(t);
  t.is((await call('PUT', '/api/v1/services/web/instances/w1', { address: 'localhost', port: 8080 })).status, 201);
  t.deepEqual(cp.registry.endpoints().map((e) => `${e.address}:${e.port}`), ['127.0.0.1:8080'], 'only IP addresses reach EDS');
  t.like((await call('GET', '/api/v1/services/web')).json.instances[0], { address: 'localhost', resolved: ['127.0.0.1'] });
  const bad = await call('PUT', '/api/v1/services/web/instances/w2', { address: 'no-such-host.invalid', port: 8080 });
  t.is(bad.status, 400);
  t.regex(bad.json.error, /address "no-such-host\.invalid" does not resolve here \(ENOTFOUND\)/);
  t.is(cp.registry.endpoints().length, 1);
});
