// The app's original Kubernetes probes, run by the agent on the kubelet's behalf:
// the injector rewrites each probe to `GET /app-health/<container>/<kind>` on the
// probe port (15020) and passes the original handler in TESSERA_APP_PROBES. The
// kubelet then never talks to the app through Envoy, so probes survive STRICT mTLS.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { createRequire } from 'node:module';
import path from 'node:path';

export class ProbeConfigError extends Error {
  readonly code = 'TESSERA_ERR_APP_PROBES';
}

export type ProbeHandler =
  | { httpGet: { path: string; port: number; scheme: 'HTTP' | 'HTTPS'; httpHeaders: { name: string; value: string }[] } }
  | { tcpSocket: { port: number } }
  | { grpc: { port: number; service: string } };

const PROBE_PATH = /^\/app-health\/[a-z0-9]([-a-z0-9]*[a-z0-9])?\/(livez|readyz|startupz)$/;

/** Parses TESSERA_APP_PROBES, naming the path and field of every mistake. */
export function parseAppProbes(json: string | undefined): Map<string, ProbeHandler> {
  const probes = new Map<string, ProbeHandler>();
  if (json === undefined || json.trim() === '') return probes;
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new ProbeConfigError(`TESSERA_APP_PROBES is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ProbeConfigError('TESSERA_APP_PROBES must be a JSON object');
  const errors: string[] = [];
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    const where = `TESSERA_APP_PROBES[${JSON.stringify(key)}]`;
    if (!PROBE_PATH.test(key)) {
      errors.push(`${where}: the key must be /app-health/<container>/livez|readyz|startupz`);
      continue;
    }
    try {
      probes.set(key, parseHandler(value, where));
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  if (errors.length) throw new ProbeConfigError(errors.join('; '));
  return probes;
}

type Loose = Record<string, Record<string, unknown> | undefined>;

function parseHandler(raw: unknown, where: string): ProbeHandler {
  const v = (typeof raw === 'object' && raw !== null ? raw : {}) as Loose;
  const kinds = ['httpGet', 'tcpSocket', 'grpc'].filter((k) => v[k] !== undefined);
  if (typeof raw !== 'object' || raw === null || kinds.length !== 1) throw new ProbeConfigError(`${where}: needs exactly one of httpGet, tcpSocket, grpc`);
  const port = (p: unknown, field: string) => {
    if (!Number.isInteger(p) || (p as number) < 1 || (p as number) > 65535) {
      // Named ports are resolved by the injector against the container's ports.
      throw new ProbeConfigError(`${where}.${field}: must be a port number, got ${JSON.stringify(p)}`);
    }
    return p as number;
  };
  if (v.httpGet) {
    const h = v.httpGet;
    const scheme = h.scheme ?? 'HTTP';
    if (scheme !== 'HTTP' && scheme !== 'HTTPS') throw new ProbeConfigError(`${where}.httpGet.scheme: must be HTTP or HTTPS`);
    if (h.host !== undefined) throw new ProbeConfigError(`${where}.httpGet.host: probing another host is not supported; the agent probes 127.0.0.1`);
    const headers = (h.httpHeaders ?? []) as { name: string; value: string }[];
    if (!Array.isArray(headers) || headers.some((x) => typeof x?.name !== 'string' || typeof x?.value !== 'string')) {
      throw new ProbeConfigError(`${where}.httpGet.httpHeaders: must be a list of {name, value}`);
    }
    const p = h.path ?? '/';
    if (typeof p !== 'string' || !p.startsWith('/')) throw new ProbeConfigError(`${where}.httpGet.path: must start with /`);
    return { httpGet: { path: p, port: port(h.port, 'httpGet.port'), scheme: scheme as 'HTTP' | 'HTTPS', httpHeaders: headers } };
  }
  if (v.tcpSocket) {
    if (v.tcpSocket.host !== undefined) throw new ProbeConfigError(`${where}.tcpSocket.host: probing another host is not supported`);
    return { tcpSocket: { port: port(v.tcpSocket.port, 'tcpSocket.port') } };
  }
  const service = v.grpc?.service ?? '';
  if (typeof service !== 'string') throw new ProbeConfigError(`${where}.grpc.service: must be a string`);
  return { grpc: { port: port(v.grpc?.port, 'grpc.port'), service } };
}

export interface ProbeResult {
  status: number;
  body: string;
}

/** Runs one probe against the app on 127.0.0.1, as the kubelet would: 200-399 passes. */
export async function runProbe(handler: ProbeHandler, timeoutMs: number): Promise<ProbeResult> {
  if ('httpGet' in handler) return httpProbe(handler.httpGet, timeoutMs);
  if ('tcpSocket' in handler) return tcpProbe(handler.tcpSocket.port, timeoutMs);
  return grpcProbe(handler.grpc, timeoutMs);
}

function httpProbe(h: Extract<ProbeHandler, { httpGet: unknown }>['httpGet'], timeoutMs: number): Promise<ProbeResult> {
  const headers: Record<string, string> = { 'user-agent': 'kube-probe/tessera' };
  for (const { name, value } of h.httpHeaders) headers[name.toLowerCase()] = value;
  const mod = h.scheme === 'HTTPS' ? https : http;
  return new Promise((resolve) => {
    // Like the kubelet, an HTTPS probe does not verify the app's certificate.
    const req = mod.request(
      { host: '127.0.0.1', port: h.port, path: h.path, method: 'GET', headers, timeout: timeoutMs, rejectUnauthorized: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body = (body + c).slice(0, 10_000)));
        res.on('end', () => resolve({ status: res.statusCode ?? 500, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => resolve({ status: 503, body: `probe of 127.0.0.1:${h.port}${h.path} failed: ${err.message}` }));
    req.end();
  });
}

function tcpProbe(port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, timeout: timeoutMs });
    socket.once('connect', () => {
      socket.destroy();
      resolve({ status: 200, body: `connected to 127.0.0.1:${port}` });
    });
    socket.once('timeout', () => socket.destroy(new Error(`no connection within ${timeoutMs} ms`)));
    socket.once('error', (err) => resolve({ status: 503, body: `tcp probe of 127.0.0.1:${port} failed: ${err.message}` }));
  });
}

type HealthCheckCallback = (err: grpc.ServiceError | null, res: { status: string }) => void;
interface HealthClient {
  Check(request: { service: string }, options: { deadline: number }, callback: HealthCheckCallback): void;
  close(): void;
}
type HealthClientConstructor = new (address: string, credentials: grpc.ChannelCredentials) => HealthClient;

let healthClientType: HealthClientConstructor | undefined;
function healthClient(): HealthClientConstructor {
  if (!healthClientType) {
    const require = createRequire(import.meta.url);
    const proto = path.join(path.dirname(require.resolve('grpc-health-check/package.json')), 'proto/health/v1/health.proto');
    const def = protoLoader.loadSync(proto, { keepCase: true, enums: String });
    const loaded = grpc.loadPackageDefinition(def) as unknown as { grpc: { health: { v1: { Health: HealthClientConstructor } } } };
    healthClientType = loaded.grpc.health.v1.Health;
  }
  return healthClientType;
}

function grpcProbe(g: { port: number; service: string }, timeoutMs: number): Promise<ProbeResult> {
  const Client = healthClient();
  const client = new Client(`127.0.0.1:${g.port}`, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    client.Check({ service: g.service }, { deadline: Date.now() + timeoutMs }, (err, res) => {
      client.close();
      if (err) resolve({ status: 503, body: `grpc probe of 127.0.0.1:${g.port} failed: ${err.message}` });
      else resolve({ status: res.status === 'SERVING' ? 200 : 503, body: res.status });
    });
  });
}
