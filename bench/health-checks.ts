// 5,000 instances with HTTP checks every second against local servers (in a child
// process): how late checks start (lag) and what the checker costs in CPU.
import { fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HealthChecker } from '../control-plane/registry/health.ts';
import { parseInstanceSpec } from '../control-plane/registry/spec.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const round = (n: number) => Math.round(n * 10) / 10;
const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;

export async function healthChecks(instances: number, seconds = 10, serverPorts = 16) {
  const child = fork(path.join(here, 'health-servers.ts'), [String(serverPorts)], { execArgv: ['--import', 'tsx'] });
  const ports = await new Promise<number[]>((resolve) => child.once('message', (m) => resolve(m as number[])));
  const lags: number[] = [];
  let transitions = 0;
  const checkers: HealthChecker[] = [];
  try {
    for (let i = 0; i < instances; i++) {
      const spec = parseInstanceSpec({ address: '127.0.0.1', port: ports[i % ports.length], check: { http: `/health/${i}`, interval: '1s', timeout: '1s' } });
      const c = new HealthChecker(spec.check!, spec, () => transitions++, (lag) => lags.push(lag));
      checkers.push(c);
      c.start();
    }
    await new Promise((r) => setTimeout(r, 2000)); // the first round, started all at once
    lags.length = 0;
    const cpu0 = process.cpuUsage();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const cpu = process.cpuUsage(cpu0);
    const sorted = [...lags].sort((a, b) => a - b);
    const unhealthy = checkers.filter((c) => c.state.health !== 'healthy').length;
    return {
      instances,
      intervalMs: 1000,
      seconds,
      probes: sorted.length,
      probesPerSecond: Math.round(sorted.length / seconds),
      lagMs: { p50: round(quantile(sorted, 0.5)), p99: round(quantile(sorted, 0.99)), max: round(sorted[sorted.length - 1] ?? 0) },
      checkerCpuPercentOfOneCore: Math.round(((cpu.user + cpu.system) / 1000 / (seconds * 1000)) * 100),
      rssMb: Math.round(process.memoryUsage().rss / 2 ** 20),
      notHealthyAtEnd: unhealthy,
    };
  } finally {
    for (const c of checkers) c.stop();
    child.kill('SIGKILL');
  }
}
