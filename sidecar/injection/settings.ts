// Per-pod settings from the tessera.dev annotations, validated: a value the injector cannot
// honour is a Problem the user sees, never a silent default.
import net from 'node:net';
import type { Problem } from './errors.ts';
import type { PodTemplate } from './kube-types.ts';
import { ANNOTATIONS, PORTS } from './names.ts';

export interface PodSettings {
  service: string;
  /** Ports whose inbound connections Envoy takes; '*' = every port. */
  inboundPorts: number[] | '*';
  /** The app's main port, for the agent's registration and health check (first inbound port). */
  appPort?: number;
  excludeOutboundPorts: number[];
  excludeOutboundIpRanges: string[];
  drainTimeout?: string;
  nativeSidecar: boolean;
}

const KNOWN_ANNOTATIONS: ReadonlySet<string> = new Set(Object.values(ANNOTATIONS));
const RESERVED_PORTS: ReadonlySet<number> = new Set(Object.values(PORTS));
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// The agent's --drain-timeout grammar (Go-style, as Kubernetes users write durations).
const DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DEFAULT_GRACE_SECONDS = 30; // Kubernetes' terminationGracePeriodSeconds default

export const annotationPath = (name: string) => `metadata.annotations[${JSON.stringify(name)}]`;

export function parseSettings(template: PodTemplate, defaults: { workloadName?: string; legacySidecar: boolean }): { settings?: PodSettings; problems: Problem[] } {
  const problems: Problem[] = [];
  const annotations = template.metadata?.annotations ?? {};
  const labels = template.metadata?.labels ?? {};
  const bad = (name: string, message: string) => problems.push({ path: annotationPath(name), message });

  for (const name of Object.keys(annotations)) {
    if (name.startsWith('tessera.dev/') && !KNOWN_ANNOTATIONS.has(name)) {
      bad(name, `unknown Tessera annotation (known: ${[...KNOWN_ANNOTATIONS].filter((a) => a !== ANNOTATIONS.status).join(', ')})`);
    }
  }

  const service = annotations[ANNOTATIONS.service] ?? labels['app.kubernetes.io/name'] ?? labels.app ?? defaults.workloadName;
  if (service === undefined || service === '') {
    problems.push({ path: annotationPath(ANNOTATIONS.service), message: 'no service name: set this annotation, or an app / app.kubernetes.io/name label' });
  } else if (!DNS_LABEL.test(service) || service.length > 63) {
    const from = annotations[ANNOTATIONS.service] !== undefined ? annotationPath(ANNOTATIONS.service) : 'the service name taken from the labels/workload name';
    problems.push({ path: from, message: `${JSON.stringify(service)} is not a valid service name (lower-case DNS label, at most 63 characters)` });
  }

  const declaredPorts = appContainerPorts(template);
  for (const { port, where } of declaredPorts) {
    if (RESERVED_PORTS.has(port)) problems.push({ path: where, message: `port ${port} is reserved by the Tessera sidecar (${[...RESERVED_PORTS].join(', ')})` });
  }

  let inboundPorts: number[] | '*' = [...new Set(declaredPorts.map((p) => p.port))];
  const inboundRaw = annotations[ANNOTATIONS.inboundPorts];
  if (inboundRaw !== undefined) {
    if (inboundRaw.trim() === '*') inboundPorts = '*';
    else {
      const parsed = parsePorts(inboundRaw);
      if (typeof parsed === 'string') bad(ANNOTATIONS.inboundPorts, parsed);
      else {
        for (const p of parsed) if (RESERVED_PORTS.has(p)) bad(ANNOTATIONS.inboundPorts, `port ${p} is the sidecar's own port and cannot be captured`);
        inboundPorts = parsed;
      }
    }
  }

  let excludeOutboundPorts: number[] = [];
  const excludePortsRaw = annotations[ANNOTATIONS.excludeOutboundPorts];
  if (excludePortsRaw !== undefined) {
    const parsed = parsePorts(excludePortsRaw);
    if (typeof parsed === 'string') bad(ANNOTATIONS.excludeOutboundPorts, parsed);
    else excludeOutboundPorts = parsed;
  }

  let excludeOutboundIpRanges: string[] = [];
  const rangesRaw = annotations[ANNOTATIONS.excludeOutboundIpRanges];
  if (rangesRaw !== undefined) {
    const items = splitList(rangesRaw);
    if (items.length === 0) bad(ANNOTATIONS.excludeOutboundIpRanges, 'is empty: give CIDRs such as 10.0.0.0/8,fd00::/8, or remove the annotation');
    for (const item of items) {
      const why = cidrProblem(item);
      if (why) bad(ANNOTATIONS.excludeOutboundIpRanges, why);
    }
    excludeOutboundIpRanges = items;
  }

  const drainTimeout = annotations[ANNOTATIONS.drainTimeout];
  if (drainTimeout !== undefined) {
    const ms = durationMs(drainTimeout);
    const grace = template.spec.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS;
    if (ms === undefined) bad(ANNOTATIONS.drainTimeout, `${JSON.stringify(drainTimeout)} is not a duration (examples: 500ms, 10s, 1m30s)`);
    else if (ms <= 0) bad(ANNOTATIONS.drainTimeout, 'must be greater than zero');
    else if (ms >= grace * 1000) {
      // Kubernetes kills the pod when the grace period ends, drained or not.
      bad(ANNOTATIONS.drainTimeout, `${drainTimeout} does not fit in the pod's terminationGracePeriodSeconds (${grace}s): shorten it or raise spec.terminationGracePeriodSeconds`);
    }
  }

  let nativeSidecar = !defaults.legacySidecar;
  const nativeRaw = annotations[ANNOTATIONS.nativeSidecar];
  if (nativeRaw !== undefined) {
    if (nativeRaw === 'true') nativeSidecar = true;
    else if (nativeRaw === 'false') nativeSidecar = false;
    else bad(ANNOTATIONS.nativeSidecar, `must be "true" or "false", got ${JSON.stringify(nativeRaw)}`);
  }

  if (problems.length > 0) return { problems };
  const firstDeclared = declaredPorts[0]?.port;
  const appPort = inboundPorts === '*' ? firstDeclared : inboundPorts[0];
  return {
    problems,
    settings: { service: service!, inboundPorts, appPort, excludeOutboundPorts, excludeOutboundIpRanges, drainTimeout, nativeSidecar },
  };
}

/** TCP ports the app containers declare, with where each is declared. */
function appContainerPorts(template: PodTemplate): { port: number; where: string }[] {
  const out: { port: number; where: string }[] = [];
  for (const [i, c] of template.spec.containers.entries()) {
    for (const [j, p] of (c.ports ?? []).entries()) {
      if ((p.protocol ?? 'TCP') === 'TCP') out.push({ port: p.containerPort, where: `spec.containers[${i}].ports[${j}].containerPort` });
    }
  }
  return out;
}

function splitList(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** A comma-separated port list, or the reason it is not one. */
function parsePorts(raw: string): number[] | string {
  const items = splitList(raw);
  if (items.length === 0) return 'is empty: give ports such as 8080,9090, or remove the annotation';
  const ports: number[] = [];
  for (const item of items) {
    const n = /^\d+$/.test(item) ? Number(item) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > 65535) return `${JSON.stringify(item)} is not a port number (1-65535); expected a comma-separated list such as 8080,9090`;
    ports.push(n);
  }
  return [...new Set(ports)];
}

function cidrProblem(item: string): string | undefined {
  const [ip, prefix, extra] = item.split('/');
  const family = net.isIP(ip ?? '');
  if (extra !== undefined || prefix === undefined || family === 0 || !/^\d{1,3}$/.test(prefix)) {
    return `${JSON.stringify(item)} is not a CIDR (examples: 10.0.0.0/8, 192.168.1.1/32, fd00::/8)`;
  }
  const max = family === 4 ? 32 : 128;
  if (Number(prefix) > max) return `${JSON.stringify(item)}: prefix length ${prefix} is larger than ${max}`;
  return undefined;
}

function durationMs(value: string): number | undefined {
  if (!DURATION.test(value)) return undefined;
  let ms = 0;
  for (const [, n, unit] of value.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) ms += Number(n) * UNIT_MS[unit];
  return ms;
}
