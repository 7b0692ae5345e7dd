// `npm run bench`: runs every benchmark and writes JSON to bench/results/.
// Sizes can be lowered for a quick look: BENCH_CLIENTS=200 npm run bench
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fanout } from './xds-fanout.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
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
const outDir = path.join(here, 'results');
fs.mkdirSync(outDir, { recursive: true });
const file = path.join(outDir, `bench-${Date.now()}.json`);
fs.writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
process.stdout.write(JSON.stringify(results, null, 2) + '\n');
process.stderr.write(`bench: results written to ${path.relative(process.cwd(), file)}\n`);
process.exit(0);
