// What a registration says, checked up front with messages that name the fix.
import net from 'node:net';
import { parseDuration } from '../config/duration.ts';

export type CheckSpec =
  | { kind: 'http'; path: string; host?: string; expectedStatuses: [number, number] }
  | { kind: 'tcp' }
  | { kind: 'grpc'; service: string }
  | { kind: 'ttl'; ttlMs: number };

export interface CheckTiming {
  intervalMs: number;
  timeoutMs: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
}

export interface InstanceSpec {
  address: string;
  port: number;
  labels: Record<string, string>;
  zone?: string;
  check?: CheckSpec & CheckTiming;
}

export class RegistrationError extends Error {
  readonly code = 'TESSERA_ERR_BAD_REGISTRATION';
}

const SERVICE_NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
const INSTANCE_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const HOSTNAME = /^(?=.{1,253}$)([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$/;

export function checkServiceName(name: string): void {
  if (!SERVICE_NAME.test(name)) {
    throw new RegistrationError(`service name ${JSON.stringify(name)} must be a DNS label: lowercase letters, digits and '-', at most 63`);
  }
}

export function checkInstanceId(id: string): void {
  if (!INSTANCE_ID.test(id) || id === '.' || id === '..') {
    throw new RegistrationError(`instance id ${JSON.stringify(id)} must be 1-128 characters of A-Z a-z 0-9 . _ : - (and not . or ..)`);
  }
}

const TOP_FIELDS = new Set(['address', 'port', 'labels', 'zone', 'check']);
const CHECK_FIELDS = new Set(['http', 'tcp', 'grpc', 'ttl', 'interval', 'timeout', 'healthyThreshold', 'unhealthyThreshold', 'host', 'expectedStatuses', 'service']);

export function parseInstanceSpec(body: unknown): InstanceSpec {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new RegistrationError('the body must be a JSON object');
  const b = body as Record<string, unknown>;
  const unknown = Object.keys(b).filter((k) => !TOP_FIELDS.has(k));
  if (unknown.length) throw new RegistrationError(`unknown field${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} (known: ${[...TOP_FIELDS].join(', ')})`);
  if (typeof b.address !== 'string' || !(net.isIP(b.address) || HOSTNAME.test(b.address))) {
    throw new RegistrationError(`address must be an IP address or a DNS name, got ${JSON.stringify(b.address)}`);
  }
  if (!Number.isInteger(b.port) || (b.port as number) < 1 || (b.port as number) > 65535) {
    throw new RegistrationError(`port must be an integer from 1 to 65535, got ${JSON.stringify(b.port)}`);
  }
  const labels = b.labels ?? {};
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels) || Object.values(labels).some((v) => typeof v !== 'string')) {
    throw new RegistrationError('labels must be an object of string values');
  }
  if (b.zone !== undefined && (typeof b.zone !== 'string' || b.zone.length === 0 || b.zone.length > 128)) {
    throw new RegistrationError('zone must be a non-empty string');
  }
  const spec: InstanceSpec = { address: b.address, port: b.port as number, labels: labels as Record<string, string> };
  if (b.zone !== undefined) spec.zone = b.zone as string;
  if (b.check !== undefined) spec.check = parseCheck(b.check);
  return spec;
}

/** Bounds that make sense for a check, and keep clear of Node's timer limit
 *  (a delay past 2^31 ms fires after 1 ms: a huge interval would be a hot loop). */
export const DURATION_BOUNDS: Record<'interval' | 'timeout' | 'ttl', { min: number; max: number; minText: string; maxText: string }> = {
  interval: { min: 100, max: 24 * 3_600_000, minText: '100ms', maxText: '24h' },
  timeout: { min: 10, max: 5 * 60_000, minText: '10ms', maxText: '5m' },
  ttl: { min: 100, max: 24 * 3_600_000, minText: '100ms', maxText: '24h' },
};

function duration(value: unknown, field: keyof typeof DURATION_BOUNDS, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'string') throw new RegistrationError(`check.${field} must be a duration string like "1s"`);
  let ms: number;
  try {
    ms = parseDuration(value);
  } catch (err) {
    throw new RegistrationError(`check.${field}: ${(err as Error).message}`);
  }
  const b = DURATION_BOUNDS[field];
  if (ms < b.min || ms > b.max) throw new RegistrationError(`check.${field} must be from ${b.minText} to ${b.maxText}, got ${JSON.stringify(value)}`);
  return ms;
}

function threshold(value: unknown, field: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > 100) throw new RegistrationError(`check.${field} must be an integer from 1 to 100`);
  return value as number;
}

function parseCheck(check: unknown): CheckSpec & CheckTiming {
  if (typeof check !== 'object' || check === null || Array.isArray(check)) throw new RegistrationError('check must be an object');
  const c = check as Record<string, unknown>;
  const unknown = Object.keys(c).filter((k) => !CHECK_FIELDS.has(k));
  if (unknown.length) throw new RegistrationError(`unknown check field${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}`);
  const kinds = ['http', 'tcp', 'grpc', 'ttl'].filter((k) => c[k] !== undefined && c[k] !== false);
  if (kinds.length !== 1) throw new RegistrationError('check must be one of http, tcp, grpc, ttl (exactly one)');
  const timing: CheckTiming = {
    intervalMs: duration(c.interval, 'interval', 10_000),
    timeoutMs: duration(c.timeout, 'timeout', 1000),
    healthyThreshold: threshold(c.healthyThreshold, 'healthyThreshold', 1),
    unhealthyThreshold: threshold(c.unhealthyThreshold, 'unhealthyThreshold', 2),
  };
  switch (kinds[0]) {
    case 'http': {
      if (typeof c.http !== 'string' || !c.http.startsWith('/')) throw new RegistrationError('check.http must be a path starting with /');
      const range = typeof c.expectedStatuses === 'string' ? /^(\d{3})-(\d{3})$/.exec(c.expectedStatuses) : c.expectedStatuses === undefined ? ['', '200', '399'] : null;
      if (!range) throw new RegistrationError('check.expectedStatuses must look like "200-399"');
      const [low, high] = [Number(range[1]), Number(range[2])];
      if (low < 100 || high > 599 || low > high) {
        throw new RegistrationError(`check.expectedStatuses ${JSON.stringify(c.expectedStatuses)} must be a range of HTTP statuses from 100 to 599, lowest first (e.g. "200-399")`);
      }
      if (c.host !== undefined && typeof c.host !== 'string') throw new RegistrationError('check.host must be a string');
      return { kind: 'http', path: c.http, host: c.host as string | undefined, expectedStatuses: [Number(range[1]), Number(range[2])], ...timing };
    }
    case 'tcp':
      if (c.tcp !== true) throw new RegistrationError('check.tcp must be true');
      return { kind: 'tcp', ...timing };
    case 'grpc':
      if (c.grpc !== true) throw new RegistrationError('check.grpc must be true');
      if (c.service !== undefined && typeof c.service !== 'string') throw new RegistrationError('check.service must be a string');
      return { kind: 'grpc', service: (c.service as string) ?? '', ...timing };
    default:
      if (typeof c.ttl !== 'string') throw new RegistrationError('check.ttl must be a duration string like "10s"');
      return { kind: 'ttl', ttlMs: duration(c.ttl, 'ttl', 0), ...timing };
  }
}
