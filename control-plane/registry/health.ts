// Active health checks: one prober per instance, whatever number of proxies
// watch it. A result flips the instance's health only after its threshold of
// consecutive passes or failures.
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { request } from 'undici';
import type { Health } from '../model/types.ts';
import type { CheckSpec, CheckTiming } from './spec.ts';

export interface ProbeResult {
  ok: boolean;
  error?: string;
}

const HealthClient = grpc.makeGenericClientConstructor(healthService, 'Health');

export async function probe(check: CheckSpec, address: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  try {
    switch (check.kind) {
      case 'http':
        return await probeHttp(check, address, port, timeoutMs);
      case 'tcp':
        return await probeTcp(address, port, timeoutMs);
      case 'grpc':
        return await probeGrpc(check.service, address, port, timeoutMs);
      case 'ttl':
        return { ok: true };
    }
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}

async function probeHttp(check: Extract<CheckSpec, { kind: 'http' }>, address: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  const host = net.isIPv6(address) ? `[${address}]` : address;
  const res = await request(`http://${host}:${port}${check.path}`, {
    headers: check.host ? { host: check.host } : {},
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    signal: AbortSignal.timeout(timeoutMs),
  });
  await res.body.dump();
  const [low, high] = check.expectedStatuses;
  return res.statusCode >= low && res.statusCode <= high ? { ok: true } : { ok: false, error: `HTTP ${res.statusCode}` };
}

function probeTcp(address: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: address, port });
    const done = (result: ProbeResult) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => done({ ok: false, error: `no connection within ${timeoutMs} ms` }));
    socket.once('connect', () => done({ ok: true }));
    socket.once('error', (err) => done({ ok: false, error: err.message }));
  });
}

function probeGrpc(service: string, address: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  const client = new HealthClient(`${net.isIPv6(address) ? `[${address}]` : address}:${port}`, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    // biome-ignore lint/suspicious/noExplicitAny: grpc-health-check's client is generated without method types
    (client as any).check({ service }, { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, reply: { status: string }) => {
      client.close();
      if (err) resolve({ ok: false, error: `gRPC ${grpc.status[err.code]}: ${err.details}` });
      else resolve(reply.status === 'SERVING' ? { ok: true } : { ok: false, error: `gRPC health ${reply.status}` });
    });
  });
}

export interface HealthState {
  health: Health;
  lastCheck?: string;
  lastError?: string;
}

/** Runs one instance's checks on its schedule and reports health transitions. */
export class HealthChecker {
  readonly state: HealthState = { health: 'unknown' };
  private passes = 0;
  private failures = 0;
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly check: CheckSpec & CheckTiming,
    private readonly target: { address: string; port: number },
    private readonly onTransition: (state: HealthState) => void,
    /** How late each probe started against its schedule (for the benchmark). */
    private readonly onProbeLag?: (lagMs: number) => void,
  ) {}

  start(): void {
    if (this.check.kind === 'ttl') {
      // Until its first heartbeat a TTL instance is unknown; then it lives for one TTL.
      this.armTtl();
      return;
    }
    void this.run();
  }

  /** A heartbeat passes a TTL check at once. */
  heartbeat(): void {
    if (this.check.kind !== 'ttl') return;
    this.record({ ok: true }, true);
    this.armTtl();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private armTtl(): void {
    clearTimeout(this.timer);
    if (this.stopped || this.check.kind !== 'ttl') return;
    const ttl = this.check.ttlMs;
    this.timer = setTimeout(() => this.record({ ok: false, error: `no heartbeat within ${ttl} ms` }, true), ttl);
    this.timer.unref();
  }

  private dueAt = 0;

  private async run(): Promise<void> {
    if (this.stopped) return;
    if (this.dueAt) this.onProbeLag?.(Date.now() - this.dueAt);
    const result = await probe(this.check, this.target.address, this.target.port, this.check.timeoutMs);
    if (this.stopped) return;
    this.record(result, false);
    // Up to 10% jitter, so instances registered together are not probed in lockstep.
    const delay = this.check.intervalMs * (1 + Math.random() * 0.1);
    this.dueAt = Date.now() + delay;
    this.timer = setTimeout(() => void this.run(), delay);
    this.timer.unref();
  }

  private record(result: ProbeResult, immediate: boolean): void {
    this.state.lastCheck = new Date().toISOString();
    this.state.lastError = result.error;
    if (result.ok) {
      this.passes++;
      this.failures = 0;
    } else {
      this.failures++;
      this.passes = 0;
    }
    let next = this.state.health;
    if (result.ok && (immediate || this.passes >= this.check.healthyThreshold)) next = 'healthy';
    if (!result.ok && (immediate || this.failures >= this.check.unhealthyThreshold)) next = 'unhealthy';
    if (next !== this.state.health) {
      this.state.health = next;
      this.onTransition(this.state);
    }
  }
}
