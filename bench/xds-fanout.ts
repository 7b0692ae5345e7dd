// For one endpoint change, how long until every simulated proxy has ACKed it,
// what the control plane spent doing it, and how many bytes went out.
import { fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Endpoint, MeshModel } from '../control-plane/model/types.ts';
import { Reconciler } from '../control-plane/reconcile/reconciler.ts';
import { SnapshotCache } from '../control-plane/xds/cache/cache.ts';
import { TypeUrl } from '../control-plane/xds/resources/type-urls.ts';
import { XdsServer } from '../control-plane/xds/server/server.ts';
import type { XdsCallbacks } from '../control-plane/xds/server/types.ts';
import { combineCallbacks } from '../control-plane/reconcile/proxy-tracker.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

/** With BENCH_PROFILE=1, a CPU profile of the measured window is written to
 *  bench/results/NAME.cpuprofile (open it in Chrome's DevTools). */
async function startProfile(): Promise<{ stop(name: string): Promise<void> } | undefined> {
  if (!process.env.BENCH_PROFILE) return undefined;
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return {
    async stop(name: string) {
      const { profile } = await session.post('Profiler.stop');
      const fs = await import('node:fs');
      fs.mkdirSync(path.join(here, 'results'), { recursive: true });
      fs.writeFileSync(path.join(here, 'results', `${name}.cpuprofile`), JSON.stringify(profile));
      session.disconnect();
    },
  };
}

export interface FanoutResult {
  mode: 'sotw' | 'delta';
  clients: number;
  services: number;
  proxyGroups: number;
  connectMs: number;
  changeToAllAckedMs: { p50: number; p99: number; max: number };
  controlPlaneCpuMs: number;
  controlPlaneRssMb: number;
  bytesSentPerChange: number;
  pushesPerChange: number;
}

function model(services: number): MeshModel {
  const m: MeshModel = { services: [], routes: [], policies: [], endpoints: [] };
  for (let s = 0; s < services; s++) {
    m.services.push({ name: `svc-${s}`, namespace: 'default', ports: [{ name: 'http', port: 80, targetPort: 8080, appProtocol: 'http' }] });
  }
  return m;
}

function endpoints(services: number, perService: number, extra = 0): Endpoint[] {
  const out: Endpoint[] = [];
  for (let s = 0; s < services; s++) {
    for (let e = 0; e < perService + (s === 0 ? extra : 0); e++) {
      out.push({ id: `e${e}`, service: `svc-${s}`, namespace: 'default', address: `10.0.${s % 250}.${e + 1}`, port: 8080, labels: {}, health: 'healthy', source: 'registry' });
    }
  }
  return out;
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

export interface ChurnResult {
  mode: 'sotw' | 'delta';
  clients: number;
  changesPerSecond: number;
  seconds: number;
  pushToAckMs: { p50: number; p99: number; max: number };
  acks: number;
  controlPlaneCpuPercentOfOneCore: number;
}

/** Endpoint churn: `rate` registry changes a second while `clients` proxies stay
 *  subscribed; push-to-ACK latency of every EDS push in that time. */
export async function churn(mode: 'sotw' | 'delta', clients: number, rate = 50, seconds = 10, services = 50, perService = 5): Promise<ChurnResult> {
  const latencies: number[] = [];
  let measuring = false;
  const setup = await connectClients(mode, clients, services, perService, {
    onAck: (_s, a) => {
      if (measuring && a.typeUrl === TypeUrl.ClusterLoadAssignment && a.latencyMs !== undefined) latencies.push(a.latencyMs);
    },
  });
  try {
    measuring = true;
    const cpu0 = process.cpuUsage();
    const started = performance.now();
    for (let i = 0; i < rate * seconds; i++) {
      setup.reconciler.setEndpoints(endpoints(services, perService, (i % 3) + 1));
      // On a fixed schedule, so slow rebuilds show as latency, not as a lower rate.
      const next = started + ((i + 1) * 1000) / rate;
      await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
    }
    const changesMs = performance.now() - started;
    await new Promise((r) => setTimeout(r, 1000));
    const elapsedMs = performance.now() - started;
    const cpu = process.cpuUsage(cpu0);
    const sorted = latencies.sort((a, b) => a - b);
    return {
      mode,
      clients,
      changesPerSecond: Math.round((rate * seconds * 1000) / changesMs),
      seconds,
      pushToAckMs: { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted[sorted.length - 1] ?? 0 },
      // The reconciler coalesces changes that arrive within a few milliseconds.
      acks: sorted.length,
      controlPlaneCpuPercentOfOneCore: Math.round(((cpu.user + cpu.system) / 1000 / elapsedMs) * 100),
    };
  } finally {
    await setup.close();
  }
}

async function connectClients(mode: 'sotw' | 'delta', clients: number, services: number, perService: number, callbacks: XdsCallbacks) {
  const cache = new SnapshotCache();
  const reconciler = new Reconciler(cache);
  reconciler.setModel(model(services));
  reconciler.setEndpoints(endpoints(services, perService));
  const initialAcks = new Set<string>();
  const server = new XdsServer({
    cache,
    group: reconciler.groupOf,
    callbacks: combineCallbacks(callbacks, {
      onAck: (s, a) => {
        if (a.typeUrl === TypeUrl.ClusterLoadAssignment) initialAcks.add(s.node.id!);
      },
    }),
  });
  const port = await server.listen('127.0.0.1:0');
  const child = fork(path.join(here, 'ads-clients.ts'), [String(clients), mode, String(port), String(services)], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  await wait('every client to ACK its initial EDS', () => initialAcks.size >= clients);
  return {
    reconciler,
    close: async () => {
      child.kill('SIGKILL');
      reconciler.close();
      await server.close();
    },
  };
}

async function wait(what: string, done: () => boolean, timeoutMs = 180_000) {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export async function fanout(mode: 'sotw' | 'delta', clients: number, services = 50, perService = 5): Promise<FanoutResult> {
  const cache = new SnapshotCache();
  const reconciler = new Reconciler(cache);
  reconciler.setModel(model(services));
  reconciler.setEndpoints(endpoints(services, perService));
  let changeAt = 0;
  const ackedAt = new Map<string, number>();
  let bytes = 0;
  let pushes = 0;
  const initialAcks = new Set<string>();
  const changeVersion = new Map<string, string>();
  const server = new XdsServer({
    cache,
    group: reconciler.groupOf,
    callbacks: {
      onPush: (s, p) => {
        if (changeAt && p.typeUrl === TypeUrl.ClusterLoadAssignment) {
          bytes += p.bytes;
          pushes++;
          changeVersion.set(`${s.node.id}`, p.version);
        }
      },
      onAck: (s, a) => {
        if (a.typeUrl !== TypeUrl.ClusterLoadAssignment) return;
        if (!changeAt) initialAcks.add(s.node.id!);
        else if (changeVersion.get(s.node.id!) === a.version && !ackedAt.has(s.node.id!)) ackedAt.set(s.node.id!, performance.now() - changeAt);
      },
    },
  });
  const port = await server.listen('127.0.0.1:0');
  const started = performance.now();
  const child = fork(path.join(here, 'ads-clients.ts'), [String(clients), mode, String(port), String(services)], {
    execArgv: ['--import', 'tsx'],
    stdio: 'inherit',
  });
  const wait = async (what: string, done: () => boolean, timeoutMs = 180_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`bench: timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  try {
    await wait('every client to ACK its initial EDS', () => initialAcks.size >= clients);
    const connectMs = performance.now() - started;
    await new Promise((r) => setTimeout(r, 500));
    global.gc?.();
    const profile = await startProfile();
    const cpu0 = process.cpuUsage();
    changeAt = performance.now();
    reconciler.setEndpoints(endpoints(services, perService, 1)); // one new instance of svc-0
    await wait('every client to ACK the change', () => ackedAt.size >= clients);
    const cpu = process.cpuUsage(cpu0);
    await profile?.stop(`fanout-${mode}-${clients}`);
    const latencies = [...ackedAt.values()].sort((a, b) => a - b);
    return {
      mode,
      clients,
      services,
      proxyGroups: cache.watchedGroups().length,
      connectMs: Math.round(connectMs),
      changeToAllAckedMs: {
        p50: +quantile(latencies, 0.5).toFixed(1),
        p99: +quantile(latencies, 0.99).toFixed(1),
        max: +latencies[latencies.length - 1].toFixed(1),
      },
      controlPlaneCpuMs: Math.round((cpu.user + cpu.system) / 1000),
      controlPlaneRssMb: Math.round(process.memoryUsage().rss / 2 ** 20),
      bytesSentPerChange: bytes,
      pushesPerChange: pushes,
    };
  } finally {
    child.kill('SIGKILL');
    reconciler.close();
    await server.close();
  }
}
