// The dashboard's server side in-process: the live feed (GET /api/v1/events) and the
// built page's files (/ui/), with real HTTP clients on port 0.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { request } from 'undici';
import { LiveEvents } from '../../control-plane/admin/live-events.ts';
import { AdminServer } from '../../control-plane/admin/server.ts';
import { uiRoutes } from '../../control-plane/admin/ui-routes.ts';
import { startControlPlane } from '../../control-plane/main.ts';
import { waitFor } from '../support/processes.ts';

interface EventStream {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Messages so far, comments (heartbeats) included as `{ comment }`. */
  messages: { event?: string; data?: string; comment?: string }[];
  close: () => void;
  closed: Promise<void>;
}

/** A minimal EventSource over node:http, to see the exact bytes the server sends. */
function openEvents(url: string): Promise<EventStream> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, (res) => {
      const stream: EventStream = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        messages: [],
        close: () => req.destroy(),
        closed: new Promise((r) => res.once('close', () => r())),
      };
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const message: EventStream['messages'][number] = {};
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) message.comment = line.slice(1).trim();
            else if (line.startsWith('event: ')) message.event = line.slice(7);
            else if (line.startsWith('data: ')) message.data = line.slice(6);
          }
          stream.messages.push(message);
        }
      });
      res.on('error', () => {});
      resolve(stream);
    });
    req.on('error', reject);
  });
}

const updates = (s: EventStream) => s.messages.filter((m) => m.event === 'update').map((m) => JSON.parse(m.data!).topics as string[]);

async function controlPlane(t: any) {
  const cp = await startControlPlane({ xdsPort: 0, adminPort: 0, address: '127.0.0.1', log: () => {} });
  t.teardown(() => cp.close());
  return { cp, base: `http://127.0.0.1:${cp.adminPort}` };
}

test('GET /api/v1/events is an event stream that says "services" after a registration', async (t) => {
  const { base } = await controlPlane(t);
  const events = await openEvents(`${base}/api/v1/events`);
  t.teardown(events.close);
  t.is(events.status, 200);
  t.regex(events.headers['content-type'] ?? '', /^text\/event-stream/);
  t.is(events.headers['cache-control'], 'no-cache, no-transform');
  await waitFor('the hello message', () => events.messages.some((m) => m.event === 'hello'));
  t.deepEqual(updates(events), [], 'nothing happened yet');

  const put = await request(`${base}/api/v1/services/web/instances/web-1`, { method: 'PUT', body: JSON.stringify({ address: '127.0.0.1', port: 8080 }) });
  t.is(put.statusCode, 201, await put.body.text());
  await waitFor('an update naming services', () => updates(events).some((topics) => topics.includes('services')), 5000);
  await waitFor('an update naming changes: the registration was published as a change too', () => updates(events).flat().includes('changes'), 5000);
  t.pass();
});

test('the event stream is read-only and open to GET, while mutations still need the token', async (t) => {
  const cp = await startControlPlane({ xdsPort: 0, adminPort: 0, address: '127.0.0.1', adminToken: 'sekret', log: () => {} });
  t.teardown(() => cp.close());
  const base = `http://127.0.0.1:${cp.adminPort}`;
  const post = await request(`${base}/api/v1/events`, { method: 'POST', body: '{}' });
  t.is(post.statusCode, 405);
  await post.body.dump();
  const events = await openEvents(`${base}/api/v1/events`);
  t.teardown(events.close);
  t.is(events.status, 200, 'no token needed to watch');
  const put = await request(`${base}/api/v1/services/web/instances/web-1`, { method: 'PUT', body: JSON.stringify({ address: '127.0.0.1', port: 8080 }) });
  t.is(put.statusCode, 401);
  await put.body.dump();
});

test('no listener or client is left behind after many clients connect and go away', async (t) => {
  const { cp, base } = await controlPlane(t);
  const registryListeners = cp.registry.listenerCount('change');
  const reconcilerListeners = cp.reconciler.listenerCount('published');
  const streams: EventStream[] = [];
  for (let i = 0; i < 60; i++) streams.push(await openEvents(`${base}/api/v1/events`));
  await waitFor('every hello', () => streams.every((s) => s.messages.length > 0));
  t.is(cp.events.clientCount, 60);
  for (const s of streams) s.close();
  await waitFor('every client dropped', () => cp.events.clientCount === 0, 5000);
  t.is(cp.registry.listenerCount('change'), registryListeners, 'clients add no registry listeners');
  t.is(cp.reconciler.listenerCount('published'), reconcilerListeners, 'clients add no reconciler listeners');
  // A change after they left reaches nobody and breaks nothing; a new client still works.
  await request(`${base}/api/v1/services/web/instances/web-1`, { method: 'PUT', body: JSON.stringify({ address: '127.0.0.1', port: 8080 }) }).then((r) => r.body.dump());
  const late = await openEvents(`${base}/api/v1/events`);
  t.teardown(late.close);
  await request(`${base}/api/v1/services/web/instances/web-2`, { method: 'PUT', body: JSON.stringify({ address: '127.0.0.1', port: 8081 }) }).then((r) => r.body.dump());
  await waitFor('an update for the late client', () => updates(late).length > 0, 5000);
});

test('a burst of notifications is sent as few messages carrying every topic, and idle streams get heartbeats', async (t) => {
  const events = new LiveEvents({ minIntervalMs: 200, heartbeatMs: 100 });
  const server = new AdminServer({ routes: uiRoutes(events, { dir: os.tmpdir() }) });
  const port = await server.listen(0, '127.0.0.1');
  t.teardown(() => {
    events.close();
    return server.close();
  });
  const stream = await openEvents(`http://127.0.0.1:${port}/api/v1/events`);
  t.teardown(stream.close);
  await waitFor('hello', () => stream.messages.length > 0);
  // 2,000 notifications in 20 bursts about 35 ms apart: one message per burst would be 20.
  const started = Date.now();
  let i = 0;
  for (let round = 0; round < 20; round++) {
    for (let k = 0; k < 100; k++) events.notify(i++ % 2 === 0 ? 'proxies' : 'changes');
    await new Promise((r) => setTimeout(r, 35));
  }
  events.notify('config');
  await waitFor('the last topic', () => updates(stream).flat().includes('config'), 3000);
  const elapsed = Date.now() - started;
  const sent = updates(stream);
  t.log(`${i + 1} notifications over ${elapsed} ms: ${sent.length} messages`);
  t.true(sent.length <= Math.ceil(elapsed / 200) + 1, `${sent.length} messages in ${elapsed} ms: at most one per 200 ms`);
  t.true(sent.length < 20, 'bursts are coalesced');
  t.deepEqual([...new Set(sent.flat())].sort(), ['changes', 'config', 'proxies']);
  await waitFor('a heartbeat comment', () => stream.messages.some((m) => m.comment === 'heartbeat'), 3000);
});

test('/ui/ serves the built files with their content types, and a 503 page saying how to build when there are none', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-ui-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const events = new LiveEvents();
  const server = new AdminServer({ routes: uiRoutes(events, { dir }) });
  const port = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  const get = async (p: string) => {
    const res = await request(`http://127.0.0.1:${port}${p}`);
    return { status: res.statusCode, type: String(res.headers['content-type']), headers: res.headers, text: await res.body.text() };
  };

  const missing = await get('/ui/');
  t.is(missing.status, 503);
  t.regex(missing.type, /^text\/html/);
  t.regex(missing.text, /run <code>npm run build:ui<\/code>/);

  fs.mkdirSync(path.join(dir, 'assets'));
  fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>t</title>');
  fs.writeFileSync(path.join(dir, 'assets/index-abc.js'), 'console.log(1)');
  fs.writeFileSync(path.join(dir, 'assets/index-abc.css'), 'body{}');
  const index = await get('/ui/');
  t.is(index.status, 200);
  t.is(index.type, 'text/html; charset=utf-8');
  t.is(index.headers['cache-control'], 'no-cache');
  t.regex(String(index.headers['content-security-policy']), /default-src 'self'/, 'nothing from elsewhere');
  t.is((await get('/ui/index.html')).text, '<!doctype html><title>t</title>');
  const js = await get('/ui/assets/index-abc.js');
  t.is(js.type, 'text/javascript; charset=utf-8');
  t.regex(String(js.headers['cache-control']), /immutable/);
  t.is((await get('/ui/assets/index-abc.css')).type, 'text/css; charset=utf-8');
  t.is((await get('/ui/assets/nope.js')).status, 404);
  t.is((await get('/ui/assets')).status, 404, 'a directory is not a file');
  t.is((await get('/ui/%2e%2e/%2e%2e/package.json')).status, 404, 'nothing outside the build dir');
  t.is((await get('/ui/..%2fpackage.json')).status, 404);
  const bare = await get('/ui');
  t.is(bare.status, 302);
  t.is(bare.headers.location, '/ui/');
  t.is((await get('/')).headers.location, '/ui/');
});

test('past its limit of open streams the feed answers 503 instead of holding more', async (t) => {
  const events = new LiveEvents({ maxClients: 2 });
  const server = new AdminServer({ routes: uiRoutes(events, { dir: os.tmpdir() }) });
  const port = await server.listen(0, '127.0.0.1');
  t.teardown(() => {
    events.close();
    return server.close();
  });
  const url = `http://127.0.0.1:${port}/api/v1/events`;
  const [a, b] = [await openEvents(url), await openEvents(url)];
  const third = await openEvents(url);
  t.is(third.status, 503);
  t.is(third.headers['retry-after'], '5');
  a.close();
  await waitFor('a slot to free up', () => events.clientCount === 1);
  const fourth = await openEvents(url);
  t.is(fourth.status, 200);
  b.close();
  fourth.close();
});
