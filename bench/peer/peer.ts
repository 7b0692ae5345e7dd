// `npm run bench -- --peer`: Tessera side by side with go-control-plane's reference
// server, same machine, same run, same simulated Envoy-like clients. For each mode
// (SotW, delta) and size, each server gets its clients connected, then `reps`
// single-endpoint changes; per change: time from the trigger until each client
// ACKed the EDS response holding the new endpoint (p50/p99/max), the server's CPU
// seconds, bytes of resources and responses all clients received. Medians over the
// changes, RSS after them, and the ratios Tessera / go-control-plane.
//
// Env: BENCH_PEER_CLIENTS (default "2000,5000"; "0" skips), BENCH_PEER_MODES
// ("sotw,delta"), BENCH_PEER_REPS (3), BENCH_PEER_SERVICES (100),
// BENCH_PEER_ENDPOINTS (2), BENCH_PEER_10K=1 (also 10,000 clients on Tessera alone,
// mode BENCH_PEER_10K_MODE, default delta; connect timeout BENCH_PEER_10K_CONNECT_TIMEOUT_S,
// default 1200), BENCH_PEER_CLIENTS_PER_PROCESS (2500).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ClientFleet, CLIENTS_PER_PROCESS } from './client-fleet.ts';
import { addedAddress } from './mesh-config.ts';
import { cpuSeconds, memoryMb, openFds } from './proc-stats.ts';
import { buildGoPeer, startGoPeer, startTessera, type ServerUnderTest } from './servers.ts';

type Mode = 'sotw' | 'delta';
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const round = (x: number, digits = 1) => +x.toFixed(digits);

/** After every client converged, trailing pushes (and their CPU) still count. */
const SETTLE_MS = 1000;
const CONVERGE_TIMEOUT_MS = 180_000;

export interface ChangeFigures {
  convergenceMs: { p50: number; p99: number; max: number };
  cpuSeconds: number;
  /** Bytes of resources (Any values) all clients received for the change. */
  bytes: number;
  /** Responses all clients received for the change, and per type. */
  pushes: number;
  pushesByType: Record<string, number>;
  converged: number;
  /** CPU seconds of all client processes over the same window, and the wall time
   *  of that window: clients near (processes x window) CPU were the bottleneck. */
  clientCpuSeconds: number;
  windowSeconds: number;
}

export interface PathFigures extends ChangeFigures {
  /** Every change, in order; the figures above are their medians. */
  changes: ChangeFigures[];
}

export interface ServerFigures {
  connectMs: number;
  clientProcesses: number;
  /** RSS before the clients connected, after them and the changes, and the
   *  difference per connected client. */
  idleRssMb: number;
  rssMb: number;
  peakRssMb: number;
  rssPerClientKb: number;
  openFds: number;
  /** Client streams that failed while connecting and were reopened (accept queue overflow). */
  streamsReopenedWhileConnecting: number;
  paths: Record<string, PathFigures>;
}

/** Change `k` of a server adds a third endpoint to svc-k (k < services), so every
 *  change, on every server and path, has the same shape and the same bytes. */
async function measureChange(server: ServerUnderTest, fleet: ClientFleet, trigger: string, k: number, services: number): Promise<ChangeFigures> {
  const address = addedAddress(k);
  await fleet.arm(address);
  const clientCpu = () => fleet.pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  const cpu0 = cpuSeconds(server.pid);
  const clientCpu0 = clientCpu();
  const t = now();
  await server.triggers[trigger](k % services, address);
  await fleet.converged(CONVERGE_TIMEOUT_MS);
  await sleep(SETTLE_MS);
  const cpu = cpuSeconds(server.pid) - cpu0;
  const clientCpuSeconds = clientCpu() - clientCpu0;
  const windowSeconds = (now() - t) / 1000;
  const report = await fleet.collect();
  const latencies = report.ackedAt.map((at) => at - t).sort((a, b) => a - b);
  const byType = Object.fromEntries(Object.entries(report.responses).map(([type, n]) => [type.split('.').at(-1)!, n]));
  return {
    convergenceMs: { p50: round(quantile(latencies, 0.5)), p99: round(quantile(latencies, 0.99)), max: round(latencies.at(-1)!) },
    cpuSeconds: round(cpu, 2),
    bytes: report.resourceBytes,
    pushes: Object.values(report.responses).reduce((a, b) => a + b, 0),
    pushesByType: byType,
    converged: latencies.length,
    clientCpuSeconds: round(clientCpuSeconds, 2),
    windowSeconds: round(windowSeconds, 2),
  };
}

function medians(changes: ChangeFigures[]): PathFigures {
  const m = (f: (c: ChangeFigures) => number) => median(changes.map(f));
  return {
    convergenceMs: { p50: round(m((c) => c.convergenceMs.p50)), p99: round(m((c) => c.convergenceMs.p99)), max: round(m((c) => c.convergenceMs.max)) },
    cpuSeconds: round(m((c) => c.cpuSeconds), 2),
    bytes: m((c) => c.bytes),
    pushes: m((c) => c.pushes),
    pushesByType: changes[Math.floor(changes.length / 2)].pushesByType,
    converged: Math.min(...changes.map((c) => c.converged)),
    clientCpuSeconds: round(m((c) => c.clientCpuSeconds), 2),
    windowSeconds: round(m((c) => c.windowSeconds), 2),
    changes,
  };
}

async function measureServer(server: ServerUnderTest, mode: Mode, clients: number, services: number, reps: number, connectTimeoutMs?: number): Promise<ServerFigures> {
  try {
    process.stderr.write(`bench: peer: ${server.name}, ${mode}, ${clients} clients connecting…\n`);
    const idle = memoryMb(server.pid);
    let k = 0;
    // Connecting is the slow part: allow 60 ms a client, 5 min at least.
    const timeout = connectTimeoutMs ?? Math.max(300_000, clients * 60);
    const { fleet, connectMs, processes, streamsReopened } = await ClientFleet.connect(clients, mode, server.xdsPort, services, timeout).catch((err) => {
      throw new Error(`${(err as Error).message}; server: ${openFds(server.pid)} open fds, ${memoryMb(server.pid).rss} MB RSS, ${round(cpuSeconds(server.pid))} CPU s`);
    });
    try {
      await sleep(1000);
      const paths: Record<string, PathFigures> = {};
      for (const trigger of Object.keys(server.triggers)) {
        const changes: ChangeFigures[] = [];
        for (let r = 0; r < reps; r++) {
          const c = await measureChange(server, fleet, trigger, k++, services);
          process.stderr.write(`bench: peer:   ${server.name} ${trigger} change ${r + 1}/${reps}: ${JSON.stringify(c)}\n`);
          changes.push(c);
          await sleep(500);
        }
        paths[trigger] = medians(changes);
      }
      const mem = memoryMb(server.pid);
      return {
        connectMs: Math.round(connectMs),
        clientProcesses: processes,
        idleRssMb: idle.rss,
        rssMb: mem.rss,
        peakRssMb: mem.peak,
        rssPerClientKb: round(((mem.rss - idle.rss) * 1024) / clients),
        openFds: openFds(server.pid),
        streamsReopenedWhileConnecting: streamsReopened,
        paths,
      };
    } finally {
      fleet.close();
    }
  } catch (err) {
    throw new Error(`${(err as Error).message} (server log: ${server.log})`);
  } finally {
    await server.stop();
  }
}

const ratio = (a: number, b: number) => (b > 0 ? round(a / b, 2) : null);

function ratios(tessera: ServerFigures, peer: ServerFigures) {
  const g = peer.paths.http;
  return Object.fromEntries(
    Object.entries(tessera.paths).map(([p, t]) => [
      p,
      {
        convergenceP50: ratio(t.convergenceMs.p50, g.convergenceMs.p50),
        convergenceP99: ratio(t.convergenceMs.p99, g.convergenceMs.p99),
        cpuSeconds: ratio(t.cpuSeconds, g.cpuSeconds),
        rss: ratio(tessera.rssMb, peer.rssMb),
        rssPerClient: ratio(tessera.rssPerClientKb, peer.rssPerClientKb),
        bytes: ratio(t.bytes, g.bytes),
      },
    ]),
  );
}

function table(runs: any[]): string {
  const rows: string[][] = [['mode', 'clients', 'server/path', 'conv p50 ms', 'conv p99 ms', 'max ms', 'CPU s', 'RSS MB', 'KB/client', 'bytes/change', 'pushes', 'connect s', 'clients CPU s']];
  for (const run of runs) {
    const add = (name: string, s: ServerFigures, p: PathFigures) =>
      rows.push([run.mode, String(run.clients), name, String(p.convergenceMs.p50), String(p.convergenceMs.p99), String(p.convergenceMs.max),
        String(p.cpuSeconds), String(s.rssMb), String(s.rssPerClientKb), String(p.bytes), String(p.pushes), String(round(s.connectMs / 1000)),
        `${p.clientCpuSeconds} in ${p.windowSeconds}`]);
    add('go-control-plane', run.goControlPlane, run.goControlPlane.paths.http);
    for (const [p, f] of Object.entries(run.tessera.paths as Record<string, PathFigures>)) add(`tessera/${p}`, run.tessera, f);
    for (const [p, r] of Object.entries(run.ratios as Record<string, Record<string, number | null>>)) {
      rows.push([run.mode, String(run.clients), `ratio ${p}/go`, `${r.convergenceP50}x`, `${r.convergenceP99}x`, '', `${r.cpuSeconds}x`, `${r.rss}x`, `${r.rssPerClient}x`, `${r.bytes}x`, '', '', '']);
    }
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padStart(widths[i])).join('  ')).join('\n');
}

/** 10,000 streams on Tessera alone: connect time, one change's convergence, RSS,
 *  and the limits that matter (file descriptors, ephemeral ports). */
async function tenThousand(mode: Mode, services: number, perService: number) {
  const clients = 10_000;
  const limits = {
    fdSoftLimitOfHarness: Number(fs.readFileSync('/proc/self/limits', 'utf8').match(/Max open files\s+(\d+)/)?.[1]),
    ephemeralPortRange: fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().replace(/\s+/, '-'),
    note: 'each stream is one TCP connection on 127.0.0.1: one fd in the server, one in a client process, one ephemeral port',
  };
  try {
    const server = await startTessera(services, perService);
    const serverFdLimit = Number(fs.readFileSync(`/proc/${server.pid}/limits`, 'utf8').match(/Max open files\s+(\d+)/)?.[1]);
    const connectTimeoutMs = Number(process.env.BENCH_PEER_10K_CONNECT_TIMEOUT_S ?? 1200) * 1000;
    const figures = await measureServer({ ...server, triggers: { registry: server.triggers.registry } }, mode, clients, services, 1, connectTimeoutMs);
    return { mode, clients, ok: true, ...figures, limits: { ...limits, fdLimitOfServer: serverFdLimit } };
  } catch (err) {
    return { mode, clients, ok: false, error: (err as Error).message, limits };
  }
}

export async function runPeer(outDir: string): Promise<void> {
  const sizes = (process.env.BENCH_PEER_CLIENTS ?? '2000,5000').split(',').map(Number).filter((n) => n > 0);
  const modes = (process.env.BENCH_PEER_MODES ?? 'sotw,delta').split(',') as Mode[];
  const reps = Number(process.env.BENCH_PEER_REPS ?? 3);
  const services = Number(process.env.BENCH_PEER_SERVICES ?? 100);
  const perService = Number(process.env.BENCH_PEER_ENDPOINTS ?? 2);
  for (const m of modes) if (m !== 'sotw' && m !== 'delta') throw new Error(`bench: BENCH_PEER_MODES: unknown mode "${m}" (sotw, delta)`);

  const results: Record<string, unknown> = {
    benchmark: 'peer: Tessera vs go-control-plane v0.14.0, one endpoint added to svc-0',
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memGb: Math.round(os.totalmem() / 2 ** 30), node: process.version, loadAvg: os.loadavg().map((l) => round(l, 2)) },
    at: new Date().toISOString(),
    setup: {
      services,
      endpointsPerService: perService,
      changesPerPath: reps,
      clientsPerProcess: CLIENTS_PER_PROCESS,
      settleMsAfterConvergence: SETTLE_MS,
      figures: 'medians over the changes; convergence = trigger -> client ACKed the EDS response holding the new endpoint (client wall clock); CPU = server utime+stime from trigger to convergence + settle; bytes = resource bytes all clients received',
      paths: { http: 'go-control-plane: HTTP trigger sets a new snapshot', registry: 'Tessera: PUT /api/v1/services/svc-0/instances/ID on the admin API', file: 'Tessera: the EndpointSlice file rewritten (includes the config watcher debounce of 50 ms, settle time of 200 ms and reload)' },
    },
  };
  const runs: any[] = [];
  results.runs = runs;
  if (sizes.length > 0) {
    process.stderr.write('bench: peer: building the go-control-plane peer (bench/peer/go)…\n');
    const binary = buildGoPeer();
    for (const mode of modes) {
      for (const clients of sizes) {
        const goControlPlane = await measureServer(await startGoPeer(binary, services, perService), mode, clients, services, reps);
        const tessera = await measureServer(await startTessera(services, perService), mode, clients, services, reps);
        runs.push({ mode, clients, goControlPlane, tessera, ratios: ratios(tessera, goControlPlane) });
        process.stdout.write(`\n${table(runs.slice(-1))}\n`);
      }
    }
  }
  if (process.env.BENCH_PEER_10K === '1') {
    const mode = (process.env.BENCH_PEER_10K_MODE ?? 'delta') as Mode;
    process.stderr.write(`bench: peer: 10,000 ${mode} clients on Tessera alone…\n`);
    results.tenThousand = await tenThousand(mode, services, perService);
    process.stderr.write(`${JSON.stringify(results.tenThousand)}\n`);
  }
  // Other work on the machine shows here: compare with loadAvg at the start.
  results.loadAvgAtEnd = os.loadavg().map((l) => round(l, 2));
  fs.mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `peer-${Date.now()}.json`);
  fs.writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
  if (runs.length) process.stdout.write(`\n${table(runs)}\n`);
  process.stderr.write(`bench: peer: results written to ${path.relative(process.cwd(), file)}\n`);
}
