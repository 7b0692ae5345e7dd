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

const here = path.dirname(fileURLToPath(import.meta.url));

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

export async function fanout(mode: 'sotw' | 'delta', clients: number, services = 50, perService = 5): Promise<FanoutResult> {
  const cache = new SnapshotCache();
  const reconciler = new Reconciler(cache);
  reconciler.setModel(model(services));
  reconciler.setEndpoints(endpoints(services, perService));
  let changeAt = 0;
  const ackedAt = new Map<string, number>();
  let bytes = 0;
  let pushes = 0;
  let initialAcks = new Set<string>();
  let changeVersion = new Map<string, string>();
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
    const cpu0 = process.cpuUsage();
    changeAt = performance.now();
    reconciler.setEndpoints(endpoints(services, perService, 1)); // one new instance of svc-0
    await wait('every client to ACK the change', () => ackedAt.size >= clients);
    const cpu = process.cpuUsage(cpu0);
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
