// The soak: a control plane (its own process, file store) under SOAK_MINUTES
// (default 30) of mixed churn, with its RSS and event-loop lag sampled from its
// own /metrics every 5 s:
//   - config edits every second (route weights), and a broken file now and then;
//   - registrations and deregistrations every 100 ms, with TCP checks;
//   - ADS streams (SotW and delta, ACKing like Envoy) that connect and drop;
//   - one slow client that subscribes and never reads.
// Everything runs on 127.0.0.1, bounded in time, and stops by itself.
// `npm run bench -- --soak` runs it alone; results are JSON in bench/results/.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { request } from 'undici';
import { grpcPackageDefinition } from '../protos/loader.ts';
import { decodeAny } from '../control-plane/xds/resources/codec.ts';
import { references } from '../control-plane/xds/resources/references.ts';
import { TypeUrl } from '../control-plane/xds/resources/type-urls.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const SERVICES = 10;
const STREAMS = Number(process.env.SOAK_STREAMS ?? 40);

const definition = grpc.loadPackageDefinition(grpcPackageDefinition()) as any;
const Ads = definition.envoy.service.discovery.v3.AggregatedDiscoveryService as grpc.ServiceClientConstructor;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function config(edit: number): string {
  const docs: string[] = [];
  for (let s = 0; s < SERVICES; s++) {
    docs.push(`apiVersion: v1\nkind: Service\nmetadata: {name: svc-${s}}\nspec:\n  ports: [{name: http, port: 80, appProtocol: http}]\n`);
    docs.push(`apiVersion: v1\nkind: Service\nmetadata: {name: svc-${s}-canary}\nspec:\n  ports: [{name: http, port: 80, appProtocol: http}]\n`);
    const w = (edit * 7 + s * 13) % 100;
    docs.push(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: svc-${s}}
spec:
  parentRefs: [{kind: Service, name: svc-${s}}]
  rules:
  - backendRefs:
    - {name: svc-${s}, port: 80, weight: ${100 - w}}
    - {name: svc-${s}-canary, port: 80, weight: ${w}}
    timeouts: {request: ${1 + (edit % 5)}s}
`);
  }
  return docs.join('---\n');
}

function node(i: number) {
  const service = `svc-${i % SERVICES}`;
  return {
    id: `soak-${i}`,
    cluster: service,
    user_agent_name: 'envoy',
    metadata: { fields: { tessera: { structValue: { fields: { mode: { stringValue: 'sidecar' }, service: { stringValue: service } } } } } },
  };
}

/** A SotW or delta stream that subscribes and ACKs like Envoy; returns its cancel. */
function stream(client: grpc.Client, i: number, delta: boolean, onResponse: () => void): () => void {
  const call = (delta ? (client as any).DeltaAggregatedResources() : (client as any).StreamAggregatedResources()) as grpc.ClientDuplexStream<any, any>;
  const names: Record<string, string[]> = {};
  call.on('data', (r: any) => {
    onResponse();
    const resources = delta ? (r.resources ?? []).map((x: any) => x.resource) : (r.resources ?? []);
    if (delta) call.write({ type_url: r.type_url, response_nonce: r.nonce });
    else call.write({ type_url: r.type_url, version_info: r.version_info, response_nonce: r.nonce, resource_names: names[r.type_url] ?? [] });
    if (r.type_url === TypeUrl.Cluster || r.type_url === TypeUrl.Listener) {
      const typeUrl = r.type_url === TypeUrl.Cluster ? TypeUrl.ClusterLoadAssignment : TypeUrl.RouteConfiguration;
      const wanted = [...new Set(resources.flatMap((a: any) => references(r.type_url, decodeAny(a)).map((n) => n.name)))].sort() as string[];
      const before = names[typeUrl] ?? [];
      if (wanted.join() !== before.join()) {
        names[typeUrl] = delta ? [...new Set([...before, ...wanted])] : wanted;
        if (delta) call.write({ type_url: typeUrl, resource_names_subscribe: wanted.filter((n) => !before.includes(n)) });
        else call.write({ type_url: typeUrl, resource_names: wanted });
      }
    }
  });
  call.on('error', () => {});
  call.write({ node: node(i), type_url: TypeUrl.Cluster });
  call.write({ type_url: TypeUrl.Listener });
  return () => call.cancel();
}

interface Sample {
  atS: number;
  rssMb: number;
  heapMb: number;
  lagP99Ms: number;
  proxies: number;
}

function metric(text: string, name: string): number {
  let total = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) {
      total += Number(line.split(' ').pop());
      found = true;
    }
  }
  return found ? total : NaN;
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};

async function startControlPlane(configDir: string, storeFile: string) {
  const xdsPort = await freePort();
  const adminPort = await freePort();
  const child = spawn(process.execPath, [
    path.join(here, '../bin/tessera.js'), 'control-plane', '--config', configDir, '--address', '127.0.0.1',
    '--xds-port', String(xdsPort), '--admin-port', String(adminPort), '--store', `file:${storeFile}`,
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  const handle = { child, xdsPort, admin: `http://127.0.0.1:${adminPort}`, logBytes: 0, stop: () => {} };
  child.stderr!.on('data', (c: Buffer) => (handle.logBytes += c.length));
  handle.stop = () => void (child.pid && child.exitCode === null && process.kill(child.pid, 'SIGKILL'));
  process.once('exit', handle.stop);
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error('the control plane exited at start');
    const ok = await request(`${handle.admin}/readyz`).then((r) => (r.body.dump(), r.statusCode === 200)).catch(() => false);
    if (ok) break;
    if (i > 200) throw new Error('the control plane did not become ready');
    await new Promise((r) => setTimeout(r, 100));
  }
  return handle;
}

async function sample(admin: string, started: number): Promise<Sample | undefined> {
  const text = await request(`${admin}/metrics`).then((r) => r.body.text()).catch(() => '');
  if (!text) return undefined;
  return {
    atS: Math.round((Date.now() - started) / 1000),
    rssMb: Math.round(metric(text, 'tessera_process_process_resident_memory_bytes') / 2 ** 20),
    heapMb: Math.round(metric(text, 'tessera_process_nodejs_heap_size_used_bytes') / 2 ** 20),
    lagP99Ms: Math.round(metric(text, 'tessera_process_nodejs_eventloop_lag_p99_seconds') * 1000 * 10) / 10,
    proxies: metric(text, 'tessera_xds_connected_proxies'),
  };
}

export async function soak(minutes: number) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-soak-'));
  const configDir = path.join(dir, 'mesh');
  fs.mkdirSync(configDir);
  fs.writeFileSync(path.join(configDir, 'mesh.yaml'), config(0));
  const backend = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const backendPort = (backend.address() as net.AddressInfo).port;

  const cp = await startControlPlane(configDir, path.join(dir, 'registry.json'));
  // The same control plane with no churn at all, sampled alongside: on a shared
  // machine its lag is the floor that the machine's load alone gives.
  const idleDir = path.join(dir, 'idle');
  fs.mkdirSync(idleDir);
  fs.writeFileSync(path.join(idleDir, 'mesh.yaml'), config(0));
  const idle = await startControlPlane(idleDir, path.join(dir, 'idle-registry.json'));
  const admin = cp.admin;
  const xdsPort = cp.xdsPort;

  const deadline = Date.now() + minutes * 60_000;
  const started = Date.now();
  const counts = { configEdits: 0, brokenEdits: 0, registrations: 0, deregistrations: 0, registryErrors: 0, streamsOpened: 0, responses: 0 };
  const timers: NodeJS.Timeout[] = [];
  const every = (ms: number, fn: () => void | Promise<void>) => {
    let busy = false;
    timers.push(
      setInterval(async () => {
        if (busy || Date.now() > deadline) return;
        busy = true;
        try {
          await fn();
        } catch {
          counts.registryErrors++;
        } finally {
          busy = false;
        }
      }, ms),
    );
  };

  // Config edits; every 15th leaves a broken file for one edit period.
  every(1000, () => {
    counts.configEdits++;
    if (counts.configEdits % 15 === 0) {
      counts.brokenEdits++;
      fs.writeFileSync(path.join(configDir, 'broken.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: broken}\nspec: {portz: []}\n');
    } else fs.rmSync(path.join(configDir, 'broken.yaml'), { force: true });
    fs.writeFileSync(path.join(configDir, 'mesh.yaml'), config(counts.configEdits));
  });

  // Registrations: 100 instance slots, each PUT or DELETE at random.
  const registered = new Set<number>();
  every(100, async () => {
    const slot = Math.floor(Math.random() * 100);
    const url = `${admin}/api/v1/services/svc-${slot % SERVICES}/instances/i-${slot}`;
    if (registered.has(slot) && Math.random() < 0.5) {
      const res = await request(url, { method: 'DELETE' });
      await res.body.dump();
      if (res.statusCode === 200) (counts.deregistrations++, registered.delete(slot));
      else counts.registryErrors++;
    } else {
      const res = await request(url, {
        method: 'PUT',
        body: JSON.stringify({ address: `127.0.0.${1 + (slot % 200)}`, port: backendPort, zone: `z${slot % 3}`, check: { tcp: true, interval: '1s' } }),
      });
      await res.body.dump();
      if (res.statusCode < 300) (counts.registrations++, registered.add(slot));
      else counts.registryErrors++;
    }
  });

  // Streams that connect, live 2-10 s, drop and come back.
  const clients: grpc.Client[] = [];
  const cancels: (() => void)[] = [];
  const churnStream = (i: number) => {
    if (Date.now() > deadline) return;
    const client = clients[i];
    counts.streamsOpened++;
    cancels[i] = stream(client, i, i % 2 === 1, () => counts.responses++);
    timers.push(setTimeout(() => {
      cancels[i]();
      churnStream(i);
    }, 2000 + Math.random() * 8000));
  };
  for (let i = 0; i < STREAMS; i++) {
    clients.push(new Ads(`127.0.0.1:${xdsPort}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': 64 << 20 }));
    churnStream(i);
  }

  // One slow client: subscribes to everything, then never reads again.
  const slowClient = new Ads(`127.0.0.1:${xdsPort}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  const slow = (slowClient as any).StreamAggregatedResources() as grpc.ClientDuplexStream<any, any>;
  slow.on('error', () => {});
  slow.write({ node: node(10_000), type_url: TypeUrl.Cluster });
  slow.write({ type_url: TypeUrl.Listener });
  slow.pause();

  const samples: Sample[] = [];
  const idleLags: number[] = [];
  let alive = true;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 5000));
    if (cp.child.exitCode !== null) {
      alive = false;
      break;
    }
    const [s, i] = await Promise.all([sample(admin, started), sample(idle.admin, started)]);
    if (i) idleLags.push(i.lagP99Ms);
    if (!s) continue;
    samples.push(s);
    process.stderr.write(`soak: ${JSON.stringify(s)} (idle control plane: lag p99 ${i?.lagP99Ms} ms)\n`);
  }

  for (const t of timers) clearTimeout(t);
  for (const c of cancels) c?.();
  slow.cancel();
  for (const c of [...clients, slowClient]) c.close();
  const finalConfig = await request(`${admin}/api/v1/config`).then((r) => r.body.json() as Promise<{ errors: unknown[] }>).catch(() => undefined);
  cp.stop();
  idle.stop();
  backend.close();
  fs.rmSync(dir, { recursive: true, force: true });

  // Growth is judged after the first minute (warm-up: code loading, JIT, caches).
  const settled = samples.filter((s) => s.atS >= 60);
  const base = settled[0] ?? samples[0];
  const last = samples[samples.length - 1];
  const lags = samples.map((s) => s.lagP99Ms);
  const settledLags = (settled.length > 0 ? settled : samples).map((s) => s.lagP99Ms);
  const bounds = { rssGrowthMb: 100, lagP99Ms: 100 };
  const result = {
    minutes,
    streams: STREAMS,
    alive,
    counts,
    logBytes: cp.logBytes,
    rssMb: { first: samples[0]?.rssMb, afterWarmup: base?.rssMb, last: last?.rssMb, max: Math.max(...samples.map((s) => s.rssMb)) },
    heapMb: { afterWarmup: base?.heapMb, last: last?.heapMb },
    // p99 of each 5 s window (prom-client resets it per scrape): over the whole run, and after warm-up.
    eventLoopLagP99Ms: { median: percentile(lags, 50), max: Math.max(...lags), afterWarmupMedian: percentile(settledLags, 50), afterWarmupMax: Math.max(...settledLags) },
    // The same figures for a control plane with no load at all, on the same machine at the same time.
    idleEventLoopLagP99Ms: { median: percentile(idleLags, 50), max: Math.max(...idleLags) },
    machineLoadAverage: os.loadavg().map((l) => Math.round(l * 10) / 10),
    bounds,
    withinBounds: alive && last !== undefined && base !== undefined && last.rssMb - base.rssMb <= bounds.rssGrowthMb && Math.max(...settledLags) <= bounds.lagP99Ms,
    finalConfigErrors: finalConfig?.errors.length,
    samples,
  };
  return result;
}

export async function runSoak(): Promise<number> {
  const minutes = Number(process.env.SOAK_MINUTES ?? 30);
  process.stderr.write(`bench: soak, ${minutes} minutes of mixed churn…\n`);
  const result = await soak(minutes);
  const outDir = path.join(here, 'results');
  fs.mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `soak-${Date.now()}.json`);
  fs.writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  const { samples, ...summary } = result;
  process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
  process.stderr.write(`bench: soak results (${samples.length} samples) written to ${path.relative(process.cwd(), file)}\n`);
  return result.withinBounds ? 0 : 1;
}
