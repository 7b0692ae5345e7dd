// Bad config input: alias bombs, oversized files, a dir that vanishes, files read
// mid-write, and parsing that must not stall the event loop.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import test, { type ExecutionContext } from 'ava';
import { validateCommand } from '../../control-plane/cli/validate.ts';
import { ConfigLoader } from '../../control-plane/config/load-async.ts';
import { loadConfigDir, type LoadResult } from '../../control-plane/config/load.ts';
import { watchConfigDir } from '../../control-plane/config/watch.ts';

function dir(t: ExecutionContext, files: Record<string, string>): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-faults-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(d, name), text);
  return d;
}

const service = (name: string) => `apiVersion: v1
kind: Service
metadata: {name: ${name}}
spec:
  ports: [{name: http, port: 80, appProtocol: http}]
`;

/** An EndpointSlice of `count` instances of service api. */
const slice = (count: number) => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: api-1
  labels: {kubernetes.io/service-name: api}
addressType: IPv4
ports: [{name: http, port: 80}]
endpoints:
${Array.from({ length: count }, (_, i) => `- addresses: ["10.0.0.${i + 1}"]`).join('\n')}
`;

// Each level doubles the one before: 2^20 expansions from a few hundred bytes.
const aliasBomb = `apiVersion: v1
kind: Service
metadata: {name: bomb}
spec:
  a0: &a0 [x, x]
${Array.from({ length: 20 }, (_, i) => `  a${i + 1}: &a${i + 1} [*a${i}, *a${i}]`).join('\n')}
`;

test('normal YAML aliases load, and an alias bomb is refused with its file and line', async (t) => {
  const d = dir(t, {
    'good.yaml': `${service('api')}---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: api-1
  labels: {kubernetes.io/service-name: api}
addressType: IPv4
ports: [{name: http, port: 80}]
endpoints:
- {addresses: ["10.0.0.1"], zone: &zone eu-west-1a}
- {addresses: ["10.0.0.2"], zone: *zone}
`,
  });
  const good = loadConfigDir(d);
  t.deepEqual(good.errors, []);
  t.deepEqual(good.model.endpoints.map((e) => e.zone), ['eu-west-1a', 'eu-west-1a']);

  fs.writeFileSync(path.join(d, 'bomb.yaml'), aliasBomb);
  const bad = loadConfigDir(d);
  t.is(bad.errors.length, 1);
  t.like(bad.errors[0], { file: 'bomb.yaml', line: 6 });
  t.regex(bad.errors[0].message, /aliases expand beyond the limit of 100/);

  const err: string[] = [];
  const sink = { write: (s: string) => err.push(s) } as unknown as NodeJS.WritableStream;
  t.is(await validateCommand([d], sink, sink), 1);
  t.regex(err.join(''), /^bomb\.yaml:6:\d+: YAML: aliases expand beyond the limit/m);
});

test('a file over the per-file limit, or a dir over its total, is refused with the size and the limit', (t) => {
  const d = dir(t, { 'a.yaml': service('a'), 'b.yaml': service('b') + '#'.repeat(2000) + '\n' });
  const perFile = loadConfigDir(d, { maxFileBytes: 1000, maxDirBytes: 1_000_000 });
  t.deepEqual(perFile.errors.map((e) => e.file), ['b.yaml']);
  t.regex(perFile.errors[0].message, /over the limit of .* per file \(TESSERA_CONFIG_MAX_FILE_BYTES\)/);
  const perDir = loadConfigDir(d, { maxFileBytes: 1_000_000, maxDirBytes: 1500 });
  t.deepEqual(perDir.errors.map((e) => e.file), ['b.yaml']);
  t.regex(perDir.errors[0].message, /TESSERA_CONFIG_MAX_DIR_BYTES/);
});

test('a missing config dir is an error naming the dir, not an empty config', (t) => {
  const missing = path.join(os.tmpdir(), `tessera-nope-${process.pid}`);
  const r = loadConfigDir(missing);
  t.is(r.errors.length, 1);
  t.is(r.errors[0].file, missing);
  t.regex(r.errors[0].message, /the config dir cannot be read \(ENOENT\)/);
});

test('the watcher reports a removed or renamed dir as an error and picks the dir up again when it returns', async (t) => {
  const parent = dir(t, {});
  const d = path.join(parent, 'mesh');
  fs.mkdirSync(d);
  fs.writeFileSync(path.join(d, 'a.yaml'), service('a'));
  const seen: LoadResult[] = [];
  const w = watchConfigDir(d, (r) => seen.push(r), { debounceMs: 20, settleMs: 50, pollMs: 200 });
  t.teardown(() => w.close());
  const until = async (what: string, ok: () => boolean) => {
    for (let i = 0; i < 300 && !ok(); i++) await new Promise((r) => setTimeout(r, 50));
    t.true(ok(), what);
  };

  fs.renameSync(d, `${d}.old`);
  await until('the rename is reported', () => seen.length === 1);
  t.deepEqual(seen[0].model.services, [], 'nothing is loaded from a dir that is gone');
  t.is(seen[0].errors[0].file, d);
  t.regex(seen[0].errors[0].message, /cannot be read \(ENOENT\)/);

  fs.renameSync(`${d}.old`, d);
  await until('the dir coming back is reported', () => seen.length === 2);
  t.deepEqual(seen[1].errors, []);
  t.deepEqual(seen[1].model.services.map((s) => s.name), ['a']);

  fs.rmSync(d, { recursive: true });
  await until('the removal is reported', () => seen.length === 3);
  t.regex(seen[2].errors[0].message, /ENOENT/);
  fs.mkdirSync(d);
  fs.writeFileSync(path.join(d, 'b.yaml'), service('b'));
  await until('a new dir at the same path is watched', () => seen.length === 4);
  t.deepEqual(seen[3].model.services.map((s) => s.name), ['b']);
  // And it is watched, not just polled once: an edit inside it is seen.
  fs.writeFileSync(path.join(d, 'c.yaml'), service('c'));
  await until('an edit in the new dir is reported', () => seen.length === 5);
  t.deepEqual(seen[4].model.services.map((s) => s.name).sort(), ['b', 'c']);
});

test('a file written slowly, or truncated then filled, is loaded only once complete', async (t) => {
  const d = dir(t, { 'api.yaml': service('api'), 'slice.yaml': slice(5) });
  const seen: LoadResult[] = [];
  const w = watchConfigDir(d, (r) => seen.push(r), { debounceMs: 20, settleMs: 300 });
  t.teardown(() => w.close());
  await new Promise((r) => setTimeout(r, 100));

  // Rewrite with one more endpoint, 60 bytes every 100 ms: every prefix that ends at
  // a line is valid YAML with fewer endpoints.
  const text = slice(6);
  const fd = fs.openSync(path.join(d, 'slice.yaml'), 'w'); // truncates
  for (let at = 0; at < text.length; at += 60) {
    fs.writeSync(fd, text.slice(at, at + 60));
    await new Promise((r) => setTimeout(r, 100));
  }
  fs.closeSync(fd);
  for (let i = 0; i < 300 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 500));
  t.is(seen.length, 1, `reports: ${seen.map((r) => `${r.model.endpoints.length} endpoints, ${r.errors.length} errors`).join('; ')}`);
  t.deepEqual(seen[0].errors, []);
  t.is(seen[0].model.endpoints.length, 6);
});

test('loading a huge config in the worker leaves the event loop free, and its size is refused', async (t) => {
  // 10k documents: seconds of synchronous YAML parsing, under an 8 MiB file limit.
  const docs = Array.from({ length: 10_000 }, (_, i) => service(`s${i}`)).join('---\n');
  const d = dir(t, { 'big.yaml': docs });
  const loader = new ConfigLoader();
  t.teardown(() => loader.close());
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const started = Date.now();
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 20);
  const big = await loader.load(d, { maxFileBytes: 8 * 1024 * 1024, maxDirBytes: 64 * 1024 * 1024 });
  clearInterval(ticker);
  lag.disable();
  const took = Date.now() - started;
  t.deepEqual(big.errors, []);
  t.is(big.model.services.length, 10_000);
  const maxLagMs = lag.max / 1e6;
  t.log(`loaded ${(docs.length / 1e6).toFixed(1)} MB in ${took} ms; event-loop lag max ${maxLagMs.toFixed(0)} ms, p99 ${(lag.percentile(99) / 1e6).toFixed(0)} ms`);
  t.true(took > 500, 'the load is slow enough for a stall to show');
  t.true(maxLagMs < Math.max(300, took / 4), `event loop stalled ${maxLagMs.toFixed(0)} ms during a ${took} ms load`);

  const refused = await loader.load(d, { maxFileBytes: 512 * 1024, maxDirBytes: 64 * 1024 * 1024 });
  t.is(refused.errors.length, 1);
  t.is(refused.errors[0].file, 'big.yaml');
  t.regex(refused.errors[0].message, /over the limit of 0\.5 MiB per file/);
});
