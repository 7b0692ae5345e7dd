// ParallelRun comparator throughput, per core (`npm run bench -- --comparator`).
//   diff:   Comparison.add alone (three ~0.9 KB JSON answers: parse, diff primary vs
//           secondary and primary vs candidate, count) on one thread.
//   server: the whole path in one process: mirrored GETs over HTTP to the
//           ComparatorServer, which sends each to two stable apps and a candidate app
//           (in-process HTTP servers) and compares. Rate per CPU-second of the process,
//           so the apps' own CPU is charged to the comparator: a lower bound.
import http from 'node:http';
import { Agent, request } from 'undici';
import { Comparison, type Answer } from '../control-plane/delivery/comparator.ts';
import { ComparatorServer } from '../control-plane/delivery/parallel-run.ts';

function document(i: number, variant: 'stable' | 'candidate'): Record<string, unknown> {
  return {
    id: i,
    generatedAt: Date.now() + Math.random(),
    user: { id: `u${i % 100}`, name: 'Ada Lovelace', tier: 'gold', address: { city: 'London', zip: 'NW1' } },
    items: Array.from({ length: 10 }, (_, k) => ({
      sku: `sku-${k}`,
      title: `Item number ${k}`,
      price: variant === 'candidate' && i % 10 === 0 && k === 3 ? 10.5 : 10 + k,
      tags: ['a', 'b', 'c'],
    })),
    total: 145,
  };
}

const answer = (body: unknown): Answer => ({ status: 200, headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify(body)) });

function diffBench(durationMs: number) {
  const c = new Comparison(['content-type']);
  // Precomputed answers: only the comparator's work is timed.
  const sets = Array.from({ length: 100 }, (_, i) => [answer(document(i, 'stable')), answer(document(i, 'stable')), answer(document(i, 'candidate'))]);
  const bytes = sets[0][0].body.length;
  const started = performance.now();
  const cpu = process.cpuUsage();
  let n = 0;
  while (performance.now() - started < durationMs) {
    for (let k = 0; k < 100; k++, n++) {
      const [p, s, cand] = sets[n % 100];
      c.add('GET /orders/{id}', 'GET /orders/1', p, s, cand);
    }
  }
  const used = process.cpuUsage(cpu);
  const seconds = (performance.now() - started) / 1000;
  const cpuSeconds = (used.user + used.system) / 1e6;
  const report = c.report();
  return {
    bodyBytes: bytes,
    compared: n,
    seconds: round(seconds),
    comparedPerSecond: Math.round(n / seconds),
    comparedPerCpuSecond: Math.round(n / cpuSeconds),
    mismatchPercent: report.mismatchPercent,
    fields: report.routes[0].fields.map((f) => f.field),
    noisyFields: report.routes[0].noisyFields,
  };
}

async function serverBench(requests: number, concurrency: number) {
  const apps: http.Server[] = [];
  const ports: number[] = [];
  for (const variant of ['stable', 'stable', 'candidate'] as const) {
    const server = http.createServer((req, res) => {
      const i = Number(req.url?.split('/').pop());
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(document(i, variant)));
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    apps.push(server);
    ports.push((server.address() as { port: number }).port);
  }
  const comparator = new ComparatorServer({
    instances: (ref) => (ref.service === 'orders-v1' ? [ports[0], ports[1]] : [ports[2]]).map((port) => ({ address: '127.0.0.1', port })),
    log: (line) => process.stderr.write(`${line}\n`),
    limits: { maxQueued: requests },
  });
  const port = await comparator.listen(0, '127.0.0.1');
  comparator.setRuns([
    { key: 'default/orders', version: '1', target: { service: 'orders', namespace: 'default' }, stable: { service: 'orders-v1', namespace: 'default' }, candidate: { service: 'orders-v2', namespace: 'default' }, methods: ['GET'], headers: ['content-type'] },
  ]);
  const mirror = new Agent({ connections: concurrency });
  const started = performance.now();
  const cpu = process.cpuUsage();
  let next = 0;
  const worker = async () => {
    while (next < requests) {
      const i = next++;
      const res = await request(`http://127.0.0.1:${port}/orders/${i}`, { headers: { host: 'orders' }, dispatcher: mirror });
      await res.body.dump();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  while ((comparator.status('default/orders')?.compared ?? 0) + Object.values(comparator.dropped).reduce((a, b) => a + (b ?? 0), 0) < requests) {
    await new Promise((r) => setTimeout(r, 5));
  }
  const used = process.cpuUsage(cpu);
  const seconds = (performance.now() - started) / 1000;
  const cpuSeconds = (used.user + used.system) / 1e6;
  const status = comparator.status('default/orders')!;
  await comparator.close();
  await mirror.close();
  for (const a of apps) {
    a.close();
    a.closeAllConnections();
  }
  return {
    requests,
    concurrency,
    compared: status.compared,
    dropped: status.dropped,
    seconds: round(seconds),
    comparedPerSecond: Math.round(status.compared / seconds),
    cpuSeconds: round(cpuSeconds),
    comparedPerCpuSecond: Math.round(status.compared / cpuSeconds),
    mismatchPercent: status.mismatchPercent,
  };
}

const round = (x: number) => Math.round(x * 1000) / 1000;

export async function comparatorBench(): Promise<Record<string, unknown>> {
  const durationMs = Number(process.env.BENCH_COMPARATOR_MS ?? 5000);
  const requests = Number(process.env.BENCH_COMPARATOR_REQUESTS ?? 20_000);
  diffBench(500); // warm-up
  const diff = diffBench(durationMs);
  process.stderr.write(`comparator diff: ${JSON.stringify(diff)}\n`);
  await serverBench(2000, 32); // warm-up
  const server = await serverBench(requests, 32);
  process.stderr.write(`comparator server: ${JSON.stringify(server)}\n`);
  return { diff, server };
}
