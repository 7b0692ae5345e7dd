// `npm run bench`: runs every benchmark and writes JSON to bench/results/.
// Sizes can be lowered for a quick look: BENCH_CLIENTS=200 npm run bench
// `npm run bench -- --soak` runs only the soak (SOAK_MINUTES, default 30).
// `npm run bench -- --peer` runs only the side-by-side benchmark against
// go-control-plane (bench/peer/peer.ts).
// `npm run bench -- --comparator` runs only the ParallelRun comparator's throughput
// (bench/comparator.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { churn, fanout } from './xds-fanout.ts';
import { healthChecks } from './health-checks.ts';
import { metricsIngest } from './metrics-ingest.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
if (process.argv.includes('--soak')) {
  const { runSoak } = await import('./soak.ts');
  process.exit(await runSoak());
}
if (process.argv.includes('--peer')) {
  const { runPeer } = await import('./peer/peer.ts');
  await runPeer(path.join(here, 'results'));
  process.exit(0);
}
if (process.argv.includes('--comparator')) {
  const { comparatorBench } = await import('./comparator.ts');
  const result = {
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memGb: Math.round(os.totalmem() / 2 ** 30), node: process.version },
    at: new Date().toISOString(),
    comparator: await comparatorBench(),
  };
  const outDir = path.join(here, 'results');
  fs.mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `comparator-${Date.now()}.json`);
  fs.writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  process.stderr.write(`bench: results written to ${path.relative(process.cwd(), file)}\n`);
  process.exit(0);
}
const clients = Number(process.env.BENCH_CLIENTS ?? 2000);

const results: Record<string, unknown> = {
  machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memGb: Math.round(os.totalmem() / 2 ** 30), node: process.version },
  at: new Date().toISOString(),
};
for (const mode of ['sotw', 'delta'] as const) {
  process.stderr.write(`bench: xds fan-out, ${mode}, ${clients} clients…\n`);
  results[`xdsFanout_${mode}`] = await fanout(mode, clients);
  process.stderr.write(`${JSON.stringify(results[`xdsFanout_${mode}`])}\n`);
}
const instances = Number(process.env.BENCH_INSTANCES ?? 5000);
process.stderr.write(`bench: health checks, ${instances} instances, HTTP every 1 s…\n`);
results.healthChecks = await healthChecks(instances);
process.stderr.write(`${JSON.stringify(results.healthChecks)}\n`);
const churnClients = Number(process.env.BENCH_CHURN_CLIENTS ?? 500);
process.stderr.write(`bench: endpoint churn, 50 changes/s, ${churnClients} delta clients…\n`);
results.endpointChurn = await churn('delta', churnClients);
process.stderr.write(`${JSON.stringify(results.endpointChurn)}\n`);
const sidecars = Number(process.env.BENCH_SIDECARS ?? 500);
process.stderr.write(`bench: metric ingestion, ${sidecars} sidecars flushing every 5 s…\n`);
results.metricsIngest = await metricsIngest(sidecars);
process.stderr.write(`${JSON.stringify(results.metricsIngest)}\n`);
process.stderr.write('bench: ParallelRun comparator…\n');
results.comparator = await (await import('./comparator.ts')).comparatorBench();

const outDir = path.join(here, 'results');
fs.mkdirSync(outDir, { recursive: true });
const file = path.join(outDir, `bench-${Date.now()}.json`);
fs.writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
process.stdout.write(JSON.stringify(results, null, 2) + '\n');
process.stderr.write(`bench: results written to ${path.relative(process.cwd(), file)}\n`);
process.exit(0);
