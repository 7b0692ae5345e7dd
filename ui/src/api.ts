// The admin API's JSON shapes the page reads (DESIGN.md, "Registry and admin HTTP API").
export type Health = 'healthy' | 'unhealthy' | 'unknown';

export interface Instance {
  id: string;
  address: string;
  port: number;
  zone?: string;
  source: 'registry' | 'file';
  health: Health;
  lastCheck?: string | null;
  lastError?: string;
  check?: string;
}

export interface Service {
  name: string;
  instances: Instance[];
}

export interface TypeStatus {
  sentVersion?: string;
  sentNonce?: string;
  sentAt?: string;
  ackedVersion?: string;
  ackedNonce?: string;
  ackedAt?: string;
  lastNack?: { version: string; nonce: string; error: string; at: string };
}

export interface ProxyView {
  nodeId: string;
  service?: string;
  userAgent?: string;
  protocol: 'sotw' | 'delta';
  peer: string;
  streamId: number;
  connectedSince: string;
  types: Record<string, TypeStatus>;
}

export interface ChangeSummary {
  version: string;
  kind: 'config' | 'registration' | 'endpoints' | 'retirement';
  appliedAt: string;
  services: string[];
  note?: { configVersion?: string; files?: string[] };
  affected: number;
  acked: number;
  nacked: number;
  pending: number;
  disconnected: number;
}

export interface ChangeDetail extends ChangeSummary {
  proxies: { nodeId: string; status: string; types: Record<string, { status: string; error?: string; latencyMs?: number }> }[];
}

export interface ConfigError {
  file: string;
  line: number;
  column?: number;
  message: string;
}

export interface ConfigResource {
  kind: string;
  namespace: string;
  name: string;
  source?: string;
  spec: {
    parents?: { service: string; namespace: string }[];
    rules?: { backends: { service: string; namespace: string; weight: number }[] }[];
  };
}

export interface ConfigView {
  version?: string;
  appliedAt?: string;
  files: string[];
  resources: ConfigResource[];
  errors: ConfigError[];
}

export interface TrafficEdge {
  from: { service: string; namespace: string };
  to: { service: string; namespace: string };
  requests: number;
  errors5xx: number;
  p99Ms: number | null;
}

export interface Traffic {
  windowSeconds: number;
  edges: TrafficEdge[];
}

export async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(path, { headers: { accept: 'application/json' } });
  if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** The traffic stats, or undefined while the control plane has no such endpoint (404). */
export async function getTraffic(): Promise<Traffic | undefined> {
  const res = await fetch('/api/v1/traffic', { headers: { accept: 'application/json' } });
  if (res.status === 404) return undefined;
  if (!res.ok) throw new Error(`GET /api/v1/traffic: ${res.status}`);
  return (await res.json()) as Traffic;
}
