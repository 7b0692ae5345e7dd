// A real Prometheus server (Debian's `prometheus` package) for end-to-end tests: its own
// config and TSDB in a temp dir, on a free port of 127.0.0.1, scraping the given
// Envoy stats listeners' /stats/prometheus; killed by PID at teardown.
import fs from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { request } from 'undici';
import { findEnvoy } from '../../sidecar/agent/envoy.ts';
import { tempDir } from './mesh.ts';
import { freePort, requireTool, startProcess, testNeeding, waitFor, type Started } from './processes.ts';

export const PROMETHEUS_PATH = process.env.TESSERA_PROMETHEUS ?? '/usr/bin/prometheus';

const found = () => fs.existsSync(PROMETHEUS_PATH);

/** Declares tests that need a real Prometheus and a real Envoy (skipped when one is
 *  missing outside CI; run, and failed by requirePrometheus, under CI=true). */
export const prometheusEnvoyTest = testNeeding({ prometheus: found(), envoy: findEnvoy() !== undefined });

export function requirePrometheus(t: ExecutionContext): boolean {
  return requireTool(t, found(), `prometheus (${PROMETHEUS_PATH})`, 'apt-get install prometheus');
}

export interface PrometheusProcess {
  /** Base URL of its HTTP API: http://127.0.0.1:PORT */
  address: string;
  process: Started;
  /** The value of an instant query's single sample, or undefined for an empty answer. */
  query: (promql: string) => Promise<number | undefined>;
  /** Resolves once every target has been scraped up. */
  targetsUp: (timeoutMs?: number) => Promise<void>;
}

/** Starts Prometheus scraping each `HOST:PORT` stats listener's /stats/prometheus every
 *  `scrapeIntervalSeconds` (the targets may start later: see targetsUp). */
export async function startPrometheus(t: ExecutionContext, opts: { targets: string[]; scrapeIntervalSeconds?: number }): Promise<PrometheusProcess> {
  const dir = tempDir(t, 'tessera-prometheus-');
  const port = await freePort();
  const every = `${opts.scrapeIntervalSeconds ?? 1}s`;
  const config = [
    'global:',
    `  scrape_interval: ${every}`,
    `  scrape_timeout: ${every}`,
    `  evaluation_interval: ${every}`,
    'scrape_configs:',
    '  - job_name: envoy',
    '    metrics_path: /stats/prometheus',
    `    static_configs: [{targets: [${opts.targets.map((x) => JSON.stringify(x)).join(', ')}]}]`,
    '',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), config);
  const proc = startProcess(t, PROMETHEUS_PATH, [
    `--config.file=${path.join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
  ]);
  t.teardown(() => {
    if (!t.passed) t.log(`prometheus output:\n${proc.output().slice(-3000)}`);
  });
  const address = `http://127.0.0.1:${port}`;
  const query = async (promql: string): Promise<number | undefined> => {
    const res = await request(`${address}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await res.body.json()) as { status: string; data?: { result?: { value: [number, string] }[] } };
    if (body.status !== 'success') throw new Error(`query ${promql}: ${JSON.stringify(body)}`);
    const [first] = body.data?.result ?? [];
    return first ? Number(first.value[1]) : undefined;
  };
  await waitFor(
    'prometheus to be ready',
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`prometheus exited: ${proc.output().slice(-2000)}`);
      const res = await request(`${address}/-/ready`);
      await res.body.dump();
      return res.statusCode === 200;
    },
    30_000,
    100,
  );
  const targetsUp = async (timeoutMs = 30_000) => {
    await waitFor('prometheus to scrape every target', async () => (await query('sum(up{job="envoy"})')) === opts.targets.length, timeoutMs, 200);
  };
  return { address, process: proc, query, targetsUp };
}
